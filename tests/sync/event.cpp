// multiproc::event: set, clear, is_set and wait between processes.
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

TEST_CASE("a set() in one process wakes every process waiting on the event", "[sync][event]") {
    event e, ready;
    constexpr int n = 3;
    semaphore waiting(0);
    std::vector<process> ps;
    for (int i = 0; i < n; ++i)
        ps.emplace_back([&] {
            waiting.release();
            std::_Exit(e.wait(30s) ? 0 : 1);
        });
    for (auto& p : ps) p.start();
    for (int i = 0; i < n; ++i) REQUIRE(waiting.acquire(30s));
    process setter([&] { e.set(); });
    setter.start();
    setter.join();
    for (auto& p : ps) p.join();
    for (auto& p : ps) CHECK(p.exitcode() == 0);
}

TEST_CASE("a waiter woken by set() returns true even if clear() follows at once", "[sync][event]") {
    event e;
    process p([&] { std::_Exit(e.wait(30s) ? 0 : 1); });
    p.start();
    REQUIRE(test::asleep_in(*p.pid()));
    e.set();
    e.clear();
    p.join();
    CHECK(p.exitcode() == 0);
}
