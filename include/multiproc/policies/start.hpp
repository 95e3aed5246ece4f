/// @file policies/start.hpp
/// Start-method policies (Python: multiprocessing.get_context('fork' | 'spawn' | 'forkserver')).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <string_view>

#include <sys/types.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace start {
/// The child is a copy of the caller made by fork(): it inherits memory, so any callable,
/// capturing lambdas included, can be a target. The default, as in CPython on Linux.
struct fork {
    using policy_kind = kind::start;
    static constexpr std::string_view name = "fork";
    static constexpr bool inherits_memory = true;

    /// Creates the child: in it, `child.run_in_child()` runs and never returns; in the
    /// caller, returns the child's pid, or -1 with errno set.
    template <class Child>
    static pid_t launch(Child& child) noexcept {
        pid_t pid = child.fork();
        if (pid == 0) child.run_in_child();
        return pid;
    }
};

/// The child is a fresh copy of the running program (Python: 'spawn'): it shares nothing
/// with its parent, global variables included. The target must be stateless (a lambda
/// without captures, `multiproc::fn<&function>`, an empty function object) and its
/// arguments data; main() must start with `multiproc::freeze_support();`.
struct spawn {
    using policy_kind = kind::start;
    static constexpr std::string_view name = "spawn";
    static constexpr bool inherits_memory = false;

    /// Starts the child and gives it its target; returns once the child has taken it.
    /// Throws os_error if the program cannot be started, error if the child refuses.
    template <class Child>
    static pid_t launch(Child& child) {
        return child.spawn();
    }
};

/// The child is forked by a server process that was itself started as a fresh copy of the
/// program, on first use (Python: 'forkserver'): as cheap as fork, as clean as spawn, with
/// spawn's rules for targets and arguments.
struct forkserver {
    using policy_kind = kind::start;
    static constexpr std::string_view name = "forkserver";
    static constexpr bool inherits_memory = false;

    /// Has the server fork the child and gives it its target; returns once the child has it.
    template <class Child>
    static pid_t launch(Child& child) {
        return child.via_forkserver();
    }
};
/// A pool's workers are threads of this process (Python: multiprocessing.pool.ThreadPool
/// and multiprocessing.dummy): `basic_pool<start::thread>` has the whole pool API, so a
/// template written over the start method works unchanged. Tasks and results go through the
/// pool's rings but are not serialized: values are moved in memory, so any movable type
/// crosses and a large one is not copied. A thread cannot be killed: a task
/// timeout is refused, cancel(kill_running) leaves a running task to finish, and
/// terminate() waits for the tasks that run. Only pools take it: a process cannot be a
/// thread (basic_process<start::thread> does not compile; use std::jthread).
struct thread {
    using policy_kind = kind::start;
    static constexpr std::string_view name = "thread";
    static constexpr bool inherits_memory = true;
    /// Pool workers are threads (what basic_pool looks for).
    static constexpr bool threads = true;
    template <class Child>
    static pid_t launch(Child&) noexcept {
        static_assert(sizeof(Child) == 0,
                      "multiproc: start::thread makes the workers of a pool threads (Python: ThreadPool); a process "
                      "cannot be a thread: use std::jthread, or start::fork, start::spawn or start::forkserver");
        return -1;
    }
};
} // namespace start

/// Whether start method `S` runs a pool's workers as threads (start::thread).
template <class S>
inline constexpr bool start_runs_threads = requires { requires S::threads; };

/// Whether start method `S` runs a pool's workers on other machines (ext::start::mpi): each
/// is stood for by a thread of this process, which `S::configure_pool(pool_config&, bool
/// processes_given)` sets up.
template <class S>
inline constexpr bool start_runs_remote = requires { requires S::remote; };

template <>
struct default_policy<kind::start> {
    using type = start::fork;
};

/// What a start-method policy provides: its `name` as in Python and whether the child
/// `inherits_memory` of its creator (only then may a target carry state of its own), and a
/// static `launch(child)` that starts the child with the child object's services
/// (`fork()` + `run_in_child()`, `spawn()`, `via_forkserver()`) and returns its pid.
template <class P>
concept start_policy = policy_of_kind<P, kind::start> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
    { P::inherits_memory } -> std::convertible_to<bool>;
};

MULTIPROC_ABI_END } // namespace multiproc
