// multiproc::lock: CPython's Lock semantics and messages between processes, the standard
// lock wrappers, and a holder killed with SIGKILL.
#include "sync/sync_support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <mutex>
#include <sstream>

using namespace multiproc;
using namespace std::chrono_literals;
using detail::sys::call;

namespace {
auto elapsed_since(std::chrono::steady_clock::time_point t0) { return std::chrono::steady_clock::now() - t0; }

/// Starts a child that acquires `l`, then releases it when `gate` opens.
template <class Lock>
process holder_until(Lock& l, test::gate& gate) {
    event held;
    process p([&l, held, &gate]() mutable {
        l.acquire();
        held.set();
        gate.wait();
        l.release();
    });
    p.start();
    REQUIRE(held.wait(30s));
    return p;
}
} // namespace

TEST_CASE("a lock is acquired once; releasing an unlocked lock is CPython's ValueError", "[sync][lock]") {
    lock l;
    CHECK(l.acquire());
    CHECK_FALSE(l.acquire(false)); // not recursive: held, even by this process
    CHECK_FALSE(l.acquire(0ms));
    CHECK(test::repr(l) == "<Lock(owner=MainProcess)>");
    l.release();
    CHECK(test::repr(l) == "<Lock(owner=None)>");
    CHECK_THROWS_MATCHES(l.release(), value_error, Catch::Matchers::Message("semaphore or lock released too many times"));
    CHECK(l.acquire(true));
    CHECK_FALSE(l.owner_died());
    l.release();
}

TEST_CASE("any process may release a lock, as Python's Lock is a binary semaphore", "[sync][lock]") {
    lock l;
    l.acquire();
    process p([&] { l.release(); });
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK(l.acquire(false));
    l.release();
}

TEST_CASE("acquire(timeout) gives up after the timeout, and returns when the holder releases", "[sync][lock][timeout]") {
    lock l;
    test::gate gate;
    auto p = holder_until(l, gate);
    CHECK(test::repr(l) == "<Lock(owner=SomeOtherProcess)>");
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(l.acquire(50ms));
    CHECK(elapsed_since(t0) >= 50ms);
    CHECK_FALSE(l.try_lock_for(10ms));
    CHECK_FALSE(l.try_lock_until(std::chrono::system_clock::now() + 10ms));
    CHECK_FALSE(l.acquire(-1s)); // a negative timeout does not wait, as in Python
    CHECK_FALSE(l.acquire(false, 10s)); // the timeout counts only when blocking
    gate.release();
    CHECK(l.acquire(true, 30s));
    CHECK_FALSE(l.owner_died());
    l.release();
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("N processes x M increments under a lock give exactly N*M", "[sync][lock][counter]") {
    constexpr int n = 4, m = 20000;
    lock l;
    raw_value<int> counter(0); // plain, non-atomic increments: only the lock makes them safe
    test::gate go;             // all start at once, so that they contend
    std::vector<process> ps;
    for (int i = 0; i < n; ++i)
        ps.emplace_back([&] {
            go.wait();
            for (int j = 0; j < m; ++j) {
                std::lock_guard g(l);
                int v = counter.get_obj();
                counter.get_obj() = v + 1;
            }
        });
    for (auto& p : ps) p.start();
    go.release();
    for (auto& p : ps) p.join();
    for (auto& p : ps) CHECK(p.exitcode() == 0);
    CHECK(counter.load() == n * m);
}

TEST_CASE("locks work with std::unique_lock (timed) and std::scoped_lock of two locks", "[sync][lock][std]") {
    lock a, b;
    raw_value<long> counter(0);
    constexpr int rounds = 5000;
    test::gate go;
    // Two processes take the same two locks in opposite orders: std::scoped_lock avoids the deadlock.
    process p1([&] {
        go.wait();
        for (int i = 0; i < rounds; ++i) {
            std::scoped_lock both(a, b);
            ++counter.get_obj();
        }
    });
    process p2([&] {
        go.wait();
        for (int i = 0; i < rounds; ++i) {
            std::scoped_lock both(b, a);
            ++counter.get_obj();
        }
    });
    p1.start();
    p2.start();
    go.release();
    p1.join();
    p2.join();
    CHECK(p1.exitcode() == 0);
    CHECK(p2.exitcode() == 0);
    CHECK(counter.load() == 2 * rounds);

    std::unique_lock ua(a, std::defer_lock);
    CHECK(ua.try_lock_for(1s));
    process q([&] { std::_Exit(a.try_lock() ? 1 : 0); });
    q.start();
    q.join();
    CHECK(q.exitcode() == 0);
    ua.unlock();
    CHECK(ua.try_lock_until(std::chrono::steady_clock::now() + 1s));
}

TEST_CASE("a lock whose holder is killed goes to the next acquirer, who is told", "[sync][lock][dead]") {
    lock l;
    auto p = test::start_holder([&] { l.acquire(); });
    CHECK_FALSE(l.acquire(false)); // the holder is alive
    pid_t pid = *p.pid();
    p.kill(); // not reaped yet: a zombie still holds the pid
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(l.acquire(30s));
    CHECK(elapsed_since(t0) < 5s);
    CHECK(l.owner_died());
    CHECK(l.dead_owner_pid() == pid);
    l.release();
    CHECK_FALSE(l.owner_died());
    CHECK(l.acquire(false));
    CHECK_FALSE(l.owner_died());
    l.release();
    p.join();
    CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("a process blocked on a lock takes it over when the holder is killed", "[sync][lock][dead]") {
    lock l;
    auto p = test::start_holder([&] { l.acquire(); });
    event waiting;
    process waiter([&] {
        waiting.set();
        bool got = l.acquire(30s);
        std::_Exit(got && l.owner_died() ? 0 : 1);
    });
    waiter.start();
    REQUIRE(waiting.wait(30s));
    p.kill();
    p.join();
    waiter.join();
    CHECK(waiter.exitcode() == 0);
    // The waiter exited holding it in turn: so the lock passes on again.
    CHECK(l.acquire(30s));
    CHECK(l.owner_died());
    l.release();
}

TEST_CASE("a non-blocking acquire takes over a lock whose holder has ended", "[sync][lock][dead]") {
    lock l;
    process p([&] { l.acquire(); }); // exits normally, still holding it
    p.start();
    p.join();
    CHECK(l.acquire(false));
    CHECK(l.owner_died());
    l.release();
}

TEST_CASE("an interrupted futex wait is retried; a failing one is an os_error naming it", "[sync][lock][faults]") {
    lock l;
    test::gate gate;
    auto p = holder_until(l, gate);
    {
        test::inject eintr(call::futex, EINTR, 3);
        CHECK_FALSE(l.acquire(30ms));
        CHECK(eintr.left() == 0);
    }
    {
        test::inject fail(call::futex, EINVAL, 1000);
        CHECK_THROWS_MATCHES(l.acquire(5s), os_error, Catch::Matchers::Message("multiproc: futex wait: Invalid argument"));
    }
    gate.release();
    CHECK(l.acquire(30s));
    l.release();
    p.join();
}

TEST_CASE("without /proc, a dead holder that has been reaped is still found", "[sync][lock][dead][faults]") {
    lock l;
    l.acquire(); // this process's id is known before /proc goes missing
    l.release();
    auto p = test::start_holder([&] { l.acquire(); });
    p.kill();
    p.join(); // reaped: kill(pid, 0) reports ESRCH
    test::inject no_proc(call::open, EACCES, 1000);
    CHECK(l.acquire(30s));
    CHECK(l.owner_died());
    l.release();
}

TEST_CASE("a context makes locks with its policies", "[sync][lock][context]") {
    context<start::fork> ctx;
    auto l = ctx.lock();
    static_assert(std::is_same_v<decltype(l), basic_lock<start::fork>>);
    std::lock_guard g(l);
    CHECK(test::repr(l) == "<Lock(owner=MainProcess)>");
}

TEST_CASE("a lock that was moved from is still the same lock", "[sync][lock]") {
    lock a;
    lock b = std::move(a);
    CHECK(b.acquire(false));
    CHECK_FALSE(a.acquire(false)); // NOLINT(bugprone-use-after-move): moving copies
    b.release();
}
