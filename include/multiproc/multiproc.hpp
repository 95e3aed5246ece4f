/// @file multiproc.hpp
/// Everything in multiproc but ext/, connection.hpp and manager.hpp (they need OpenSSL's
/// libcrypto: link multiproc::connection) and shared_heap.hpp (it needs exceptions and
/// RTTI, as Boost.Interprocess does) (Python: import multiprocessing).
#pragma once

#include <multiproc/config.hpp>
#include <multiproc/context.hpp>
#include <multiproc/crossing.hpp>
#include <multiproc/error.hpp>
#include <multiproc/futures.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/logging.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/serialize.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/shared_memory.hpp>
#include <multiproc/spawn.hpp>
#include <multiproc/subprocess.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>
#include <multiproc/version.hpp>
#include <multiproc/views/imap.hpp>
