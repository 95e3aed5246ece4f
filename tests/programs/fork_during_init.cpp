// A child forked while another thread of its parent is inside one of the library's
// first-use initialisations must not hang (issue 14 item 2). A thread uses the library for
// the first time and a fault hook stops it inside the initialisation named by argv[1], at
// the system call that initialisation makes; meanwhile the main thread starts a process
// (start::fork: the child is a copy of this state) that needs the same initialisation. A
// function-local static initialised there left its guard "in progress" in the child, which
// then waited forever in __cxa_guard_acquire.
//
//   holder_id  this process's holder id (locks, semaphores, ...): stopped at pthread_atfork
//   arena      the arena sync objects are carved from: stopped at pthread_atfork
//   pipe_size  /proc/sys/fs/pipe-max-size, read for a new pipe: stopped at its open()
//
// Exit code: 0 if the child ran and exited with 0; 1 if it hung (killed after 10 s, a
// failure bound) or failed; 2 on a bad argument. Built with MULTIPROC_FAULT_INJECTION.
#include <multiproc/detail/sync/liveness.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

using multiproc::detail::sys::call;

std::atomic<int> stop_at{-1};
thread_local bool stoppable = false; // only in the thread being stopped, and only once
int stopped_w = -1, gate_r = -1;

// Stops the calling thread at its first call of `stop_at`: says so on `stopped_w`, then waits
// for the gate to close. Any other call, thread or process goes on.
int hook(call c) {
    if (!stoppable || static_cast<int>(c) != stop_at.load()) return 0;
    stoppable = false;
    char x = 's';
    (void)!::write(stopped_w, &x, 1);
    while (::read(gate_r, &x, 1) != 0) {
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string what = argc > 1 ? argv[1] : "";
    std::function<void()> first_use, in_child;
    std::optional<multiproc::rlock> r;
    if (what == "holder_id") {
        stop_at = static_cast<int>(call::atfork);
        r.emplace(); // the arena is ready: the first use is the holder id's
        first_use = in_child = [&] {
            r->acquire();
            r->release();
        };
    } else if (what == "arena") {
        stop_at = static_cast<int>(call::atfork);
        first_use = [] { multiproc::lock l; }; // the first sync object of this process
        in_child = [] {
            multiproc::lock l;
            l.acquire();
            l.release();
        };
    } else if (what == "pipe_size") {
        stop_at = static_cast<int>(call::open);
        r.emplace();                               // the arena is ready,
        (void)multiproc::detail::self_holder_id(); // and the holder id (its /proc read is an open)
        first_use = [] { auto ends = multiproc::pipe<int>(); };
        in_child = [] {
            auto [a, b] = multiproc::pipe<int>();
            a.send(7);
            if (b.recv() != 7) std::_Exit(3);
        };
    } else {
        std::fprintf(stderr, "usage: fork_during_init holder_id|arena|pipe_size\n");
        return 2;
    }

    int stopped[2], gate[2];
    if (::pipe(stopped) != 0 || ::pipe(gate) != 0) return 2;
    stopped_w = stopped[1];
    gate_r = gate[0];
    multiproc::detail::sys::fault_hook = &hook;
    std::thread user([&] {
        stoppable = true;
        first_use();
        stoppable = false;
        char x = 'd'; // done without being stopped: the initialisation made no such call
        (void)!::write(stopped_w, &x, 1);
    });
    char where = 0;
    if (::read(stopped[0], &where, 1) != 1) return 2;

    multiproc::process child([&] { in_child(); });
    child.start();
    child.join(std::chrono::seconds(10));
    int code = 0;
    if (child.is_alive()) {
        std::fprintf(stderr, "the child hung (%s; first use %s)\n", what.c_str(),
                     where == 's' ? "stopped inside it" : "not stopped");
        child.kill();
        child.join();
        code = 1;
    } else if (child.exitcode() != 0) {
        std::fprintf(stderr, "the child exited with %d\n", *child.exitcode());
        code = 1;
    }
    ::close(gate[1]); // lets the stopped thread go on
    user.join();
    return code;
}
