// multiproc::lock: CPython's Lock semantics and messages between processes, the standard
// lock wrappers, and a holder killed with SIGKILL. Every case that starts children runs
// under each start method (START_METHODS): the lock crosses into them as an argument.
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

/// Starts a child of context `Ctx` that acquires `l`, then releases it when `gate` opens.
template <class Ctx>
test::process_t<Ctx> holder_until(lock& l, test::gate& gate) {
    event held;
    test::process_t<Ctx> p(
        [](lock m, event h, test::fd_arg g) {
            m.acquire();
            h.set();
            g.wait_eof();
            m.release();
        },
        l, held, gate.end());
    p.start();
    REQUIRE(held.wait(30s));
    return p;
}
} // namespace

TEST_CASE("a lock is acquired once, releasing an unlocked lock is CPython's ValueError", "[sync][lock]") {
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

TEMPLATE_TEST_CASE("any process may release a lock, as Python's Lock is a binary semaphore", "[sync][lock]",
                   START_METHODS) {
    lock l;
    l.acquire();
    test::process_t<TestType> p([](lock m) { m.release(); }, l);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK(l.acquire(false));
    l.release();
}

TEMPLATE_TEST_CASE("acquire(timeout) gives up after the timeout, and returns when the holder releases",
                   "[sync][lock][timeout]", START_METHODS) {
    lock l;
    test::gate gate;
    auto p = holder_until<TestType>(l, gate);
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

TEMPLATE_TEST_CASE("N processes x M increments under a lock give exactly N*M", "[sync][lock][counter]",
                   START_METHODS) {
    constexpr int n = 4, m = 20000;
    lock l;
    raw_value<int> counter(0); // plain, non-atomic increments: only the lock makes them safe
    test::gate go;             // all start at once, so that they contend
    auto ps = test::children<TestType>(
        n,
        [](lock lk, raw_value<int> c, test::fd_arg g, int times) {
            g.wait_eof();
            for (int j = 0; j < times; ++j) {
                std::lock_guard guard(lk);
                int v = c.get_obj();
                c.get_obj() = v + 1;
            }
        },
        l, counter, go.end(), m);
    for (auto& p : ps) p.start();
    go.release();
    test::join_all_ok(ps);
    CHECK(counter.load() == n * m);
}

TEMPLATE_TEST_CASE("locks work with std::unique_lock (timed) and std::scoped_lock of two locks", "[sync][lock][std]",
                   START_METHODS) {
    lock a, b;
    raw_value<long> counter(0);
    constexpr int rounds = 5000;
    test::gate go;
    // Two processes take the same two locks in opposite orders: std::scoped_lock avoids the
    // deadlock. The second gets them swapped.
    auto both_locks = [](lock first, lock second, raw_value<long> c, test::fd_arg g, int times) {
        g.wait_eof();
        for (int i = 0; i < times; ++i) {
            std::scoped_lock both(first, second);
            ++c.get_obj();
        }
    };
    test::process_t<TestType> p1(both_locks, a, b, counter, go.end(), rounds);
    test::process_t<TestType> p2(both_locks, b, a, counter, go.end(), rounds);
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
    test::process_t<TestType> q([](lock m) { std::_Exit(m.try_lock() ? 1 : 0); }, a);
    q.start();
    q.join();
    CHECK(q.exitcode() == 0);
    ua.unlock();
    CHECK(ua.try_lock_until(std::chrono::steady_clock::now() + 1s));
}

TEMPLATE_TEST_CASE("a lock whose holder is killed goes to the next acquirer, who is told", "[sync][lock][dead]",
                   START_METHODS) {
    lock l;
    auto p = test::start_holder<TestType>([](lock m) { m.acquire(); }, l);
    CHECK_FALSE(l.acquire(false)); // the holder is alive
    pid_t pid = *p.pid();
    p.kill(); // not reaped yet (under fork and spawn): a zombie still holds the pid
    REQUIRE(l.acquire(30s)); // (a lock never taken back would time out: false)
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

TEMPLATE_TEST_CASE("a process blocked on a lock takes it over when the holder is killed", "[sync][lock][dead]",
                   START_METHODS) {
    lock l;
    auto p = test::start_holder<TestType>([](lock m) { m.acquire(); }, l);
    event waiting;
    test::process_t<TestType> waiter(
        [](lock m, event w) {
            w.set();
            bool got = m.acquire(30s);
            std::_Exit(got && m.owner_died() ? 0 : 1);
        },
        l, waiting);
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

TEMPLATE_TEST_CASE("a non-blocking acquire takes over a lock whose holder has ended", "[sync][lock][dead]",
                   START_METHODS) {
    lock l;
    test::process_t<TestType> p([](lock m) { m.acquire(); }, l); // exits normally, still holding it
    p.start();
    p.join();
    CHECK(l.acquire(false));
    CHECK(l.owner_died());
    l.release();
}

TEMPLATE_TEST_CASE("an interrupted futex wait is retried, a failing one is an os_error naming it",
                   "[sync][lock][faults]", START_METHODS) {
    lock l;
    test::gate gate;
    auto p = holder_until<TestType>(l, gate);
    {
        // Each timed-out acquire must have waited its whole timeout, interrupted or not. A
        // loaded machine can keep one attempt from reaching the futex before its deadline,
        // so attempts go on until the three interruptions have been seen.
        test::inject eintr(call::futex, EINTR, 3);
        for (int attempt = 0; attempt < 1000 && eintr.left() > 0; ++attempt) {
            auto t0 = std::chrono::steady_clock::now();
            CHECK_FALSE(l.acquire(30ms));
            CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
        }
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

TEMPLATE_TEST_CASE("without /proc, a dead holder that has been reaped is still found", "[sync][lock][dead][faults]",
                   START_METHODS) {
    lock l;
    l.acquire(); // this process's id is known before /proc goes missing
    l.release();
    auto p = test::start_holder<TestType>([](lock m) { m.acquire(); }, l);
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

TEST_CASE("a lock's repr names the holding thread as CPython's does: SomeOtherThread, or the process and its thread",
          "[sync][lock][repr]") {
    lock l;
    rlock r;
    std::string seen = test::reprs_across_threads(l, r);
    std::string tid = seen.substr(0, seen.find('\n'));
    CHECK(std::stoi(tid) != ::getpid());
    CHECK(seen == test::expected_reprs("MainProcess", tid));
}

TEMPLATE_TEST_CASE("in a child, a lock's repr names the child and its holding thread", "[sync][lock][repr]",
                   START_METHODS) {
    lock l;
    rlock r;
    test::report_pipe out;
    test::process_t<TestType> p([](lock m, rlock n, test::fd_arg w) { w.write(test::reprs_across_threads(m, n)); }, l,
                                r, out.w_arg());
    p.start();
    std::string seen = out.collect();
    p.join();
    CHECK(p.exitcode() == 0);
    std::string tid = seen.substr(0, seen.find('\n'));
    CHECK(seen == test::expected_reprs(p.name(), tid));
}

TEST_CASE("a lock that was moved from is still the same lock", "[sync][lock]") {
    lock a;
    lock b = std::move(a);
    CHECK(b.acquire(false));
    CHECK_FALSE(a.acquire(false)); // NOLINT(bugprone-use-after-move): moving copies
    b.release();
}
