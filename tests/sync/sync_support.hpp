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

/// Starts a child that runs `take()` (acquiring a lock, units of a semaphore, ...), says
/// so, and then waits to be killed: the holder of the tests of what a dead holder does.
/// Returns once `take()` has returned in the child.
template <class F>
multiproc::process start_holder(F take) {
    multiproc::event held;
    multiproc::process p([take, held]() mutable {
        take();
        held.set();
        for (;;) ::pause();
    });
    p.start();
    REQUIRE(held.wait(30s));
    return p;
}

} // namespace test
