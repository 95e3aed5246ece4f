// Helpers for the tests of locks, semaphores, conditions and barriers.
#pragma once

#include "support/support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>

#include <chrono>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <string>
#include <vector>

namespace test {

/// The text of `x`'s operator<< (its Python repr).
template <class T>
std::string repr(const T& x) {
    std::ostringstream os;
    os << x;
    return os.str();
}

/// Waits until process `pid` is asleep in the kernel in a function whose name contains
/// `where` ("futex": blocked in a wait), for at most `guard`, a failure bound of the test.
/// This is how a test knows that a process is waiting, rather than about to wait.
inline bool asleep_in(pid_t pid, const std::string& where = "futex", std::chrono::milliseconds guard = 10s) {
    auto end = std::chrono::steady_clock::now() + guard;
    while (std::chrono::steady_clock::now() < end) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/wchan");
        std::string w;
        std::getline(in, w);
        if (w.find(where) != std::string::npos) return true;
        ::sched_yield();
    }
    return false;
}

/// Starts a child of context `Ctx` that runs `Take{}(args...)` (acquiring a lock, units of a
/// semaphore, ...), says so, and then waits to be killed: the holder of the tests of what a
/// dead holder does. `Take` is a lambda without captures, so that it runs in a spawn or
/// forkserver child too; what it acts on comes in `args`. Returns once it has returned in
/// the child.
template <class Ctx, class Take, class... Args>
process_t<Ctx> start_holder(Take, Args... args) {
    multiproc::event held;
    process_t<Ctx> p(
        [](multiproc::event h, Args... a) {
            Take{}(a...);
            h.set();
            for (;;) ::pause();
        },
        held, args...);
    p.start();
    REQUIRE(held.wait(30s));
    return p;
}

/// `n` unstarted children of context `Ctx`, each running `target(args...)`.
template <class Ctx, class F, class... Args>
std::vector<process_t<Ctx>> children(int n, F target, const Args&... args) {
    std::vector<process_t<Ctx>> ps;
    for (int i = 0; i < n; ++i) ps.emplace_back(target, args...);
    return ps;
}

/// Joins every child, checking that each exited with 0.
template <class P>
void join_all_ok(std::vector<P>& ps) {
    for (auto& p : ps) p.join();
    for (auto& p : ps) CHECK(p.exitcode() == 0);
}

} // namespace test
