/// @file fwd.hpp
/// Declarations of multiproc's class templates and their everyday aliases, for headers
/// that only name them (Python: the names multiprocessing exports).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

namespace multiproc { MULTIPROC_ABI_BEGIN

template <class Derived, class... Policies>
class process_base;
template <class... Policies>
class basic_process;
/// A process with the default policies (Python: multiprocessing.Process).
using process = basic_process<>;

template <class... Policies>
class context;

template <class T, class... Policies>
class basic_queue;
/// A queue of T with the default policies (Python: multiprocessing.Queue).
template <class T>
using queue = basic_queue<T>;
template <class T, class... Policies>
class basic_simple_queue;
/// A simple queue of T with the default policies (Python: multiprocessing.SimpleQueue).
template <class T>
using simple_queue = basic_simple_queue<T>;
template <class T, class... Policies>
class basic_joinable_queue;
/// A joinable queue of T with the default policies (Python: multiprocessing.JoinableQueue).
template <class T>
using joinable_queue = basic_joinable_queue<T>;

template <class T, class... Policies>
class basic_connection;
/// One end of a pipe carrying T, with the default policies (Python:
/// multiprocessing.connection.Connection).
template <class T>
using connection = basic_connection<T>;

template <class... Policies>
class basic_pool;
/// A pool with the default policies (Python: multiprocessing.Pool).
using pool = basic_pool<>;
template <class V>
class async_result;

namespace views {
template <class Pool, class F, class Rng, bool Ordered>
class imap_view;
} // namespace views

template <class... Policies>
class basic_lock;
/// A lock shared between processes (Python: multiprocessing.Lock).
using lock = basic_lock<>;
class rlock;
class semaphore;
class bounded_semaphore;
class event;
class condition;
class barrier;

template <class T>
class raw_value;
template <class T, class Lock = rlock>
class value;
template <class T>
class raw_array;
template <class T, class Lock = rlock>
class array;

class shared_memory;

MULTIPROC_ABI_END } // namespace multiproc
