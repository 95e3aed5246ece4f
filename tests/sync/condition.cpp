// multiproc::condition: wait/notify between processes with CPython's messages; no wake-up
// stolen by a later waiter or lost to one that timed out; a dead holder of its lock. Every
// case that starts children runs under each start method (START_METHODS): the condition
// crosses into them as an argument.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
/// Starts a child of context `Ctx` that waits on `c` for at most `timeout`; it exits with 0
/// if wait() returned `expect` (true: notified), else 1.
template <class Ctx>
test::process_t<Ctx> start_waiter(condition& c, std::chrono::milliseconds timeout, bool expect = true) {
    test::process_t<Ctx> p(
        [](condition cond, long long timeout_ms, bool expected) {
            std::lock_guard g(cond);
            bool woken = cond.wait(std::chrono::milliseconds(timeout_ms));
            cond.release(); // _Exit runs no destructor
            std::_Exit(woken == expected ? 0 : 1);
        },
        c, static_cast<long long>(timeout.count()), expect);
    p.start();
    return p;
}
} // namespace

TEST_CASE("wait and notify need the lock held: CPython's AssertionError messages", "[sync][condition]") {
    condition c;
    CHECK_THROWS_MATCHES(c.wait(), state_error, Catch::Matchers::Message("must acquire() condition before using wait()"));
    CHECK_THROWS_MATCHES(c.notify(), state_error, Catch::Matchers::Message("lock is not owned"));
    CHECK_THROWS_MATCHES(c.notify_all(), state_error, Catch::Matchers::Message("lock is not owned"));
    CHECK_THROWS_MATCHES(c.notify(0), state_error, Catch::Matchers::Message("lock is not owned")); // (as CPython's)
    CHECK(test::repr(c) == "<Condition(<RLock(None, 0)>, 0)>");
    std::lock_guard g(c);
    CHECK_NOTHROW(c.notify());
    CHECK_NOTHROW(c.notify_all());
    CHECK(test::repr(c) == "<Condition(<RLock(MainProcess, 1)>, 0)>");
}

// CPython's SemLock._is_mine: held by this thread. (A condition over a plain lock took any
// thread of the holding process for the holder, and such a thread's wait() let go of the
// lock the other thread held, for another process to take. An outside trial.)
TEST_CASE("another thread of the holding process may not wait on or notify the condition", "[sync][condition]") {
    for (bool recursive : {false, true}) {
        INFO((recursive ? "over an rlock" : "over a lock"));
        lock plain;
        rlock reentrant;
        std::optional<condition> c;
        if (recursive)
            c.emplace(reentrant);
        else
            c.emplace(plain);
        c->acquire();
        std::string notify_error, wait_error;
        std::thread other([&] {
            try {
                c->notify();
            } catch (const state_error& e) {
                notify_error = e.what();
            }
            try {
                (void)c->wait(0ms);
            } catch (const state_error& e) {
                wait_error = e.what();
            }
        });
        other.join();
        CHECK(notify_error == "lock is not owned");
        CHECK(wait_error == "must acquire() condition before using wait()");
        CHECK((recursive ? reentrant.locked() : plain.locked())); // still this thread's
        CHECK_NOTHROW(c->notify());
        c->release();
    }
}

TEST_CASE("wait(timeout) returns false after the timeout, holding the lock again at its depth", "[sync][condition][timeout]") {
    rlock r;
    condition c(r);
    std::lock_guard g1(c);
    std::lock_guard g2(c);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(c.wait(30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK(test::repr(r) == "<RLock(MainProcess, 2)>");
    CHECK_FALSE(c.wait_for([] { return false; }, 20ms));
    CHECK(c.wait_for([] { return 7; }, 0ms) == 7);
    CHECK(test::repr(c) == "<Condition(<RLock(MainProcess, 2)>, 0)>");
}

TEMPLATE_TEST_CASE("a condition over a plain lock: a producer notifies a consumer in another process",
                   "[sync][condition]", START_METHODS) {
    lock l;
    condition c(l);
    raw_value<int> items(0);
    test::process_t<TestType> consumer(
        [](condition cond, raw_value<int> its) {
            std::unique_lock g(cond);
            bool ok = cond.wait_for([&] { return its.load() == 3; }, 30s);
            g.unlock(); // _Exit runs no destructor
            std::_Exit(ok ? 0 : 1);
        },
        c, items);
    consumer.start();
    for (int i = 0; i < 3; ++i) {
        std::lock_guard g(c);
        items.fetch_add(1);
        c.notify();
    }
    consumer.join();
    CHECK(consumer.exitcode() == 0);
    CHECK(test::repr(c) == "<Condition(<Lock(owner=None)>, 0)>");
}

TEMPLATE_TEST_CASE("notify(n) wakes n waiters, notify_all the rest", "[sync][condition]", START_METHODS) {
    condition c;
    raw_value<int> woken(0);
    constexpr int n = 3;
    auto ps = test::children<TestType>(
        n,
        [](condition cond, raw_value<int> w) {
            cond.acquire();
            bool ok = cond.wait(30s);
            w.fetch_add(1);
            cond.release();
            std::_Exit(ok ? 0 : 1);
        },
        c, woken);
    for (auto& p : ps) p.start();
    for (auto& p : ps) REQUIRE(test::asleep_in(*p.pid()));
    {
        std::lock_guard g(c);
        CHECK(test::repr(c) == "<Condition(<RLock(MainProcess, 1)>, 3)>");
        c.notify();
        CHECK(test::repr(c) == "<Condition(<RLock(MainProcess, 1)>, 2)>");
    }
    process_handle* first = nullptr; // exactly one leaves: wait for it (10 s bounds a failure)
    for (auto end = std::chrono::steady_clock::now() + 10s; !first && std::chrono::steady_clock::now() < end;)
        for (auto& p : ps)
            if (!first && !test::running(*p.pid())) first = &p;
    REQUIRE(first);
    first->join();
    CHECK(first->exitcode() == 0);
    CHECK(woken.load() == 1);
    {
        std::lock_guard g(c);
        c.notify_all();
    }
    test::join_all_ok(ps);
    CHECK(woken.load() == n);
}

TEMPLATE_TEST_CASE("a waiter that comes after notify() does not take the wake-up of one already waiting",
                   "[sync][condition]", START_METHODS) {
    condition c;
    auto early = start_waiter<TestType>(c, 30s);
    REQUIRE(test::asleep_in(*early.pid()));
    std::optional<test::process_t<TestType>> late;
    {
        std::lock_guard g(c);
        c.notify();
        late = start_waiter<TestType>(c, 100ms, false); // it cannot wait before we release the lock
    }
    early.join();
    late->join();
    CHECK(early.exitcode() == 0);
    CHECK(late->exitcode() == 0); // not woken
}

TEMPLATE_TEST_CASE("a waiter that timed out does not absorb a later notify()", "[sync][condition][timeout]",
                   START_METHODS) {
    condition c;
    auto quitter = start_waiter<TestType>(c, 100ms, false);
    REQUIRE(test::asleep_in(*quitter.pid()));
    auto stayer = start_waiter<TestType>(c, 30s); // its ticket comes after the quitter's
    REQUIRE(test::asleep_in(*stayer.pid()));
    quitter.join();
    CHECK(quitter.exitcode() == 0);
    {
        std::lock_guard g(c);
        c.notify();
    }
    stayer.join();
    CHECK(stayer.exitcode() == 0);
}

TEMPLATE_TEST_CASE("the lock of a condition whose holder is killed goes to the next acquirer, who is told",
                   "[sync][condition][dead]", START_METHODS) {
    condition c;
    auto p = test::start_holder<TestType>([](condition cond) { cond.acquire(); }, c);
    p.kill();
    std::unique_lock g(c, std::defer_lock);
    REQUIRE(g.try_lock_for(30s));
    CHECK(c.owner_died());
    c.notify_all(); // usable as ever
    g.unlock();
    CHECK_FALSE(c.owner_died());
    p.join();
}

TEMPLATE_TEST_CASE("a waiter killed while waiting does not stop notify_all() from waking the others",
                   "[sync][condition][dead]", START_METHODS) {
    condition c;
    test::process_t<TestType> doomed(
        [](condition cond) {
            std::lock_guard g(cond);
            cond.wait();
        },
        c);
    doomed.start();
    REQUIRE(test::asleep_in(*doomed.pid()));
    auto waiter = start_waiter<TestType>(c, 30s);
    REQUIRE(test::asleep_in(*waiter.pid()));
    doomed.kill();
    doomed.join();
    {
        std::lock_guard g(c);
        c.notify_all();
    }
    waiter.join();
    CHECK(waiter.exitcode() == 0);
}
