/// @file policies/kinds.hpp
/// Policy kinds and the `policy` concept (Python: the arguments of get_context() and
/// the keyword arguments that configure processes, queues and pools).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// Kinds of policy. A policy names its kind with `using policy_kind = kind::X;`.
namespace kind {
/// How a child process is created: `start::fork`, `start::spawn`, `start::forkserver`.
struct start {};
/// Whether a new process is a daemon by default: `daemon::no`, `daemon::yes`.
struct daemon {};
/// Whether a daemon may have children of its own: `nested::forbid`, `nested::allow`.
struct nested {};
/// How bytes travel between processes: `transport::pipe`, `transport::socketpair`, `transport::shm`.
struct transport {};
/// How values become bytes: `serialize::bitwise`, `serialize::binary`, `ext::serialize::cereal`.
struct serialize {};
/// What `imap`-like calls yield first: `order::ordered`, `order::unordered`.
struct order {};
/// What a pool does with the task of a worker that dies: `worker_death::fail`, `worker_death::retry<N>`.
struct worker_death {};
/// What a pool's destructor does: `pool_exit::drain`, `pool_exit::terminate`.
struct pool_exit {};
} // namespace kind

/// A type that opts in as a policy by naming its kind.
template <class P>
concept policy = requires { typename P::policy_kind; };

/// A policy of kind `K`.
template <class P, class K>
concept policy_of_kind = policy<P> && std::same_as<typename P::policy_kind, K>;

/// The policy used for kind `K` when a class is given none: specialize with a member
/// `type` for a new kind of your own.
template <class K>
struct default_policy;

MULTIPROC_ABI_END } // namespace multiproc
