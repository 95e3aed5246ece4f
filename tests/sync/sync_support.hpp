// Helpers for the tests of locks, semaphores, conditions and barriers.
#pragma once

#include "support/support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <semaphore>
#include <thread>
#include <type_traits>
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

/// A name for process `pid` while it runs: its pid and, above, its start time (field 22 of
/// /proc/<pid>/stat), so that a pid reused by another process gets another name. 0 once it
/// has ended (a zombie included). Read independently of the library's own liveness checks.
inline std::uint64_t running_id(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return 0;
    auto rp = stat.rfind(')');
    if (rp == std::string::npos) return 0;
    std::istringstream rest(stat.substr(rp + 1));
    std::string field;
    std::uint64_t start = 0;
    for (int i = 3; i <= 22 && rest >> field; ++i) {
        if (i == 3 && (field == "Z" || field == "X")) return 0;
        if (i == 22) start = std::stoull(field);
    }
    return (start << 32) | static_cast<std::uint32_t>(pid);
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

/// The bound (issue 15): the next acquirer gets a dead holder's lock or unit back
/// within 1 s. The library looks for dead holders after 1 ms of waiting, then at most every
/// 64 ms; a second leaves room for a loaded machine, and a unit that is really lost never
/// comes back.
inline constexpr auto dead_holder_bound = 1s;

/// Takes the `n` units of `obj` (a lock has one), each within dead_holder_bound, and checks
/// that there is no other: every unit came back and none was made up. An rlock is taken
/// and released (its holder could take it again).
template <class Obj>
void take_back(Obj& obj, int n) {
    for (int i = 0; i < n; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        REQUIRE(obj.acquire(10s));
        CHECK(std::chrono::steady_clock::now() - t0 < dead_holder_bound);
    }
    if constexpr (std::is_same_v<Obj, multiproc::rlock>) {
        obj.release();
    } else {
        CHECK_FALSE(obj.acquire(false));
        if constexpr (requires { obj.get_value(); }) CHECK(obj.get_value() == 0);
    }
}

/// Gives back the `n` units take_back took; a semaphore then counts `n` again.
template <class Obj>
void give_back(Obj& obj, int n) {
    if constexpr (std::is_same_v<Obj, multiproc::rlock>) return;
    for (int i = 0; i < n; ++i) obj.release();
    if constexpr (requires { obj.get_value(); }) CHECK(obj.get_value() == n);
}

/// In a child: dies with SIGKILL at its `nth` step of a sync object's bookkeeping in shared
/// memory (detail::sys::step), the windows between two stores that others must repair.
namespace step_killer {
inline std::atomic<int> countdown{0};
inline int hook(multiproc::detail::sys::call c) {
    return c == multiproc::detail::sys::call::step && countdown.fetch_sub(1) == 1 ? 1 : 0;
}
inline void arm(int nth) {
    countdown = nth;
    multiproc::detail::sys::fault_hook = &hook;
}
} // namespace step_killer

/// The reprs of a lock and an rlock as seen while another thread of this process holds both
/// (the rlock twice): one per line, that thread's kernel id first, then the reprs from the
/// holding thread, then from this one, then the lock's once this thread holds it.
inline std::string reprs_across_threads(multiproc::lock& l, multiproc::rlock& r) {
    std::binary_semaphore held(0), looked(0);
    std::string out;
    std::thread holder([&] {
        l.acquire();
        r.acquire();
        r.acquire();
        out += std::to_string(multiproc::detail::sys::gettid()) + "\n" + repr(l) + "\n" + repr(r) + "\n";
        held.release();
        looked.acquire();
        r.release();
        r.release();
        l.release();
    });
    held.acquire();
    out += repr(l) + "\n" + repr(r) + "\n";
    looked.release();
    holder.join();
    l.acquire();
    out += repr(l) + "\n";
    l.release();
    return out;
}

/// What reprs_across_threads must give in the process named `name`, for a holding thread `tid`.
inline std::string expected_reprs(const std::string& name, const std::string& tid) {
    std::string holder = name + "|Thread-" + tid;
    return tid + "\n<Lock(owner=" + holder + ")>\n<RLock(" + holder + ", 2)>\n<Lock(owner=SomeOtherThread)>\n" +
           "<RLock(SomeOtherThread, nonzero)>\n<Lock(owner=" + name + ")>\n";
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
