// multiproc::semaphore and bounded_semaphore: counting between processes, CPython's
// errors, and units given back when their holder dies (never made up for a consumer).
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <mutex>
#include <sstream>

using namespace multiproc;
using namespace std::chrono_literals;

TEST_CASE("a semaphore counts; a bounded one refuses to pass its bound", "[sync][semaphore]") {
    semaphore s(2);
    CHECK(test::repr(s) == "<Semaphore(value=2)>");
    CHECK(s.acquire());
    CHECK(s.acquire(false));
    CHECK_FALSE(s.acquire(false));
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(s.acquire(30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK(s.get_value() == 0);
    s.release();
    s.release();
    s.release(); // unbounded: above the initial value is fine
    CHECK(s.get_value() == 3);

    bounded_semaphore b(2);
    CHECK(test::repr(b) == "<BoundedSemaphore(value=2, maxvalue=2)>");
    CHECK_THROWS_MATCHES(b.release(), value_error, Catch::Matchers::Message("semaphore or lock released too many times"));
    {
        std::lock_guard g(b);
        CHECK(b.get_value() == 1);
    }
    CHECK(b.get_value() == 2);
    CHECK(b.max_value() == 2);

    CHECK_THROWS_MATCHES(semaphore(-1), value_error, Catch::Matchers::Message("semaphore initial value must be >= 0"));
    CHECK_THROWS_AS(bounded_semaphore(-1), value_error);
}

TEST_CASE("a semaphore lets at most n processes in at once", "[sync][semaphore]") {
    constexpr int n = 2, procs = 5, rounds = 300;
    semaphore s(n);
    raw_value<int> inside(0), most(0);
    test::gate go;
    std::vector<process> ps;
    for (int i = 0; i < procs; ++i)
        ps.emplace_back([&] {
            go.wait();
            for (int j = 0; j < rounds; ++j) {
                std::lock_guard g(s);
                int now = inside.fetch_add(1) + 1;
                int m = most.load();
                while (now > m && !most.compare_exchange(m, now)) {
                }
                inside.fetch_sub(1);
            }
        });
    for (auto& p : ps) p.start();
    go.release();
    for (auto& p : ps) p.join();
    for (auto& p : ps) CHECK(p.exitcode() == 0);
    CHECK(most.load() <= n);
    CHECK(most.load() >= 1);
    CHECK(s.get_value() == n);
}

TEST_CASE("a semaphore signals from one process to another", "[sync][semaphore]") {
    semaphore items(0);
    process producer([&] {
        for (int i = 0; i < 3; ++i) items.release();
    });
    producer.start();
    for (int i = 0; i < 3; ++i) CHECK(items.acquire(30s));
    producer.join();
    CHECK(items.get_value() == 0);
}

TEST_CASE("units taken by a consumer that ends are not made up: signals are consumed", "[sync][semaphore][dead]") {
    semaphore items(0);
    items.release();
    items.release();
    process consumer([&] { std::_Exit(items.acquire(false) && items.acquire(false) ? 0 : 1); });
    consumer.start();
    consumer.join();
    CHECK(consumer.exitcode() == 0);
    CHECK_FALSE(items.acquire(30ms)); // waited long enough to look for dead holders
    CHECK(items.get_value() == 0);
}

TEST_CASE("units held by a killed process go back to the semaphore; the acquirer is told", "[sync][semaphore][dead]") {
    semaphore s(3);
    auto p = test::start_holder([&] {
        s.acquire();
        s.acquire();
    });
    CHECK(s.acquire(false)); // the third unit, free
    CHECK_FALSE(s.owner_died());
    CHECK_FALSE(s.acquire(false));
    p.kill();
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(s.acquire(30s));
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    CHECK(s.owner_died());
    REQUIRE(s.acquire(30s));
    CHECK(s.owner_died());
    CHECK_FALSE(s.acquire(false));
    s.release();
    s.release();
    s.release();
    CHECK(s.get_value() == 3);
    p.join();
}

TEST_CASE("a unit handed off (acquired here, released there) is not given back twice", "[sync][semaphore][dead]") {
    bounded_semaphore b(1);
    auto p = test::start_holder([&] { b.acquire(); });
    b.release(); // on the holder's behalf
    p.kill();
    p.join();
    CHECK(b.acquire(false));
    CHECK_FALSE(b.owner_died());
    CHECK_FALSE(b.acquire(30ms)); // no phantom second unit
    CHECK(b.get_value() == 0);
    b.release();
}

TEST_CASE("a bounded semaphore is not over-filled by units coming back", "[sync][semaphore][dead]") {
    bounded_semaphore b(2);
    auto p = test::start_holder([&] { b.acquire(); });
    p.kill();
    p.join();
    CHECK(b.acquire(30s));
    CHECK(b.acquire(30s));
    CHECK_FALSE(b.acquire(30ms));
    b.release();
    b.release();
    CHECK(b.get_value() == 2);
    CHECK_THROWS_AS(b.release(), value_error);
}

TEST_CASE("a semaphore with many holders tracks the first 64 and still counts the rest", "[sync][semaphore]") {
    constexpr int n = 70;
    semaphore s(n);
    std::vector<process> ps;
    event all;
    raw_value<int> taken(0);
    test::gate done;
    for (int i = 0; i < n; ++i)
        ps.emplace_back([&] {
            s.acquire();
            if (taken.fetch_add(1) + 1 == n) all.set();
            done.wait();
            s.release();
        });
    for (auto& p : ps) p.start();
    REQUIRE(all.wait(30s));
    CHECK(s.get_value() == 0);
    done.release();
    for (auto& p : ps) p.join();
    for (auto& p : ps) CHECK(p.exitcode() == 0);
    CHECK(s.get_value() == n);
}
