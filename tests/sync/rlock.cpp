// multiproc::rlock: recursion, owner-only release with CPython's messages, and a holder
// killed with SIGKILL. Every case that starts children runs under each start method
// (START_METHODS): the rlock crosses into them as an argument.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>

#include <mutex>
#include <sstream>
#include <thread>

using namespace multiproc;
using namespace std::chrono_literals;

TEMPLATE_TEST_CASE("an rlock is re-entered by its holder and released as often", "[sync][rlock]", START_METHODS) {
    rlock r;
    CHECK(test::repr(r) == "<RLock(None, 0)>");
    CHECK(r.acquire());
    CHECK(r.acquire(false));
    CHECK(r.acquire(0ms));
    CHECK(test::repr(r) == "<RLock(MainProcess, 3)>");
    {
        std::lock_guard g(r); // a fourth level, undone by the guard
        CHECK(test::repr(r) == "<RLock(MainProcess, 4)>");
    }
    r.release();
    r.release();
    CHECK(test::repr(r) == "<RLock(MainProcess, 1)>");
    // Another process cannot take it until the last release.
    test::process_t<TestType> p([](rlock m) { std::_Exit(m.acquire(false) ? 1 : 0); }, r);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    r.release();
    CHECK(test::repr(r) == "<RLock(None, 0)>");
    test::process_t<TestType> q([](rlock m) { std::_Exit(m.acquire(false) ? 0 : 1); }, r);
    q.start();
    q.join();
    CHECK(q.exitcode() == 0); // q ended holding it; it is free for the taking now
    CHECK(r.acquire(30s));
    CHECK(r.owner_died());
    r.release();
}

TEMPLATE_TEST_CASE("only the holding thread may release an rlock, with CPython's AssertionError message",
                   "[sync][rlock]", START_METHODS) {
    rlock r;
    auto not_owned = Catch::Matchers::Message("attempt to release recursive lock not owned by thread");
    CHECK_THROWS_MATCHES(r.release(), state_error, not_owned);
    r.acquire();
    test::process_t<TestType> p(
        [](rlock m) {
            try {
                m.release();
            } catch (const state_error& e) {
                std::_Exit(std::string(e.what()) == "attempt to release recursive lock not owned by thread" ? 0 : 2);
            }
            std::_Exit(1);
        },
        r);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    bool thrown_in_thread = false;
    std::string seen;
    std::thread t([&] {
        seen = test::repr(r);
        try {
            r.release();
        } catch (const state_error&) {
            thrown_in_thread = true;
        }
    });
    t.join();
    CHECK(thrown_in_thread);
    CHECK(seen == "<RLock(SomeOtherThread, nonzero)>");
    r.release();
    CHECK_THROWS_MATCHES(r.release(), state_error, not_owned);
}

TEMPLATE_TEST_CASE("an rlock held at depth 3 by a killed process goes to the next acquirer, who is told",
                   "[sync][rlock][dead]", START_METHODS) {
    rlock r;
    auto p = test::start_holder<TestType>(
        [](rlock m) {
            m.acquire();
            m.acquire();
            m.acquire();
        },
        r);
    CHECK(test::repr(r) == "<RLock(SomeOtherProcess, nonzero)>");
    CHECK_FALSE(r.acquire(20ms));
    p.kill();
    REQUIRE(r.acquire(30s));
    CHECK(r.owner_died());
    CHECK(r.dead_owner_pid() == *p.pid());
    CHECK(test::repr(r) == "<RLock(MainProcess, 1)>");
    r.release();
    CHECK(test::repr(r) == "<RLock(None, 0)>");
    p.join();
}

TEMPLATE_TEST_CASE("an rlock passed to a child as an argument is the same lock", "[sync][rlock]", START_METHODS) {
    rlock r;
    r.acquire();
    test::process_t<TestType> p([](rlock mine) { std::_Exit(mine.acquire(10ms) ? 1 : 0); }, r);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    r.release();
}
