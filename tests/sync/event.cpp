// multiproc::event: set, clear, is_set and wait between processes, under each start method
// (START_METHODS): the event crosses into the children as an argument.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>

using namespace multiproc;
using namespace std::chrono_literals;

TEST_CASE("an event is set, cleared and waited for", "[sync][event]") {
    event e;
    CHECK_FALSE(e.is_set());
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(e.wait(30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK_FALSE(e.wait(-1s));
    e.set();
    CHECK(e.is_set());
    CHECK(e.wait());
    CHECK(e.wait(0s));
    e.set(); // setting twice is harmless
    e.clear();
    CHECK_FALSE(e.is_set());
    CHECK_FALSE(e.wait(0s));
}

TEMPLATE_TEST_CASE("a set() in one process wakes every process waiting on the event", "[sync][event]", START_METHODS) {
    event e;
    constexpr int n = 3;
    semaphore waiting(0);
    auto ps = test::children<TestType>(
        n,
        [](event ev, semaphore w) {
            w.release();
            std::_Exit(ev.wait(30s) ? 0 : 1);
        },
        e, waiting);
    for (auto& p : ps) p.start();
    for (int i = 0; i < n; ++i) REQUIRE(waiting.acquire(30s));
    test::process_t<TestType> setter([](event ev) { ev.set(); }, e);
    setter.start();
    setter.join();
    CHECK(setter.exitcode() == 0);
    test::join_all_ok(ps);
}

TEMPLATE_TEST_CASE("a waiter woken by set() returns true even if clear() follows at once", "[sync][event]",
                   START_METHODS) {
    event e;
    test::process_t<TestType> p([](event ev) { std::_Exit(ev.wait(30s) ? 0 : 1); }, e);
    p.start();
    REQUIRE(test::asleep_in(*p.pid()));
    e.set();
    e.clear();
    p.join();
    CHECK(p.exitcode() == 0);
}
