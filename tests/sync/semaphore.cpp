// multiproc::semaphore and bounded_semaphore: counting between processes, CPython's
// errors, and units given back when their holder dies (never made up for a consumer),
// whatever step of the semaphore's bookkeeping it died at. Every case that starts children
// runs under each start method (START_METHODS): the semaphore crosses into them as an
// argument.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <mutex>
#include <sstream>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

/// Runs `f.template operator()<Sem>(value)` for the semaphores a stress of holder kills
/// used to wedge: semaphore(1), semaphore(2), bounded_semaphore(3).
template <class F>
void for_each_semaphore(F&& f) {
    {
        INFO("semaphore(1)");
        f.template operator()<semaphore>(1);
    }
    {
        INFO("semaphore(2)");
        f.template operator()<semaphore>(2);
    }
    {
        INFO("bounded_semaphore(3)");
        f.template operator()<bounded_semaphore>(3);
    }
}


} // namespace

TEST_CASE("a semaphore counts, a bounded one refuses to pass its bound", "[sync][semaphore]") {
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

TEMPLATE_TEST_CASE("a semaphore lets at most n processes in at once", "[sync][semaphore]", START_METHODS) {
    constexpr int n = 2, procs = 5, rounds = 300;
    semaphore s(n);
    raw_value<int> inside(0), most(0);
    test::gate go;
    auto ps = test::children<TestType>(
        procs,
        [](semaphore sem, raw_value<int> in, raw_value<int> top, test::fd_arg g, int times) {
            g.wait_eof();
            for (int j = 0; j < times; ++j) {
                std::lock_guard guard(sem);
                int now = in.fetch_add(1) + 1;
                int m = top.load();
                while (now > m && !top.compare_exchange(m, now)) {
                }
                in.fetch_sub(1);
            }
        },
        s, inside, most, go.end(), rounds);
    for (auto& p : ps) p.start();
    go.release();
    test::join_all_ok(ps);
    CHECK(most.load() <= n);
    CHECK(most.load() >= 1);
    CHECK(s.get_value() == n);
}

TEMPLATE_TEST_CASE("a semaphore signals from one process to another", "[sync][semaphore]", START_METHODS) {
    semaphore items(0);
    test::process_t<TestType> producer(
        [](semaphore sem) {
            for (int i = 0; i < 3; ++i) sem.release();
        },
        items);
    producer.start();
    for (int i = 0; i < 3; ++i) CHECK(items.acquire(30s));
    producer.join();
    CHECK(producer.exitcode() == 0);
    CHECK(items.get_value() == 0);
}

TEMPLATE_TEST_CASE("units taken by a consumer that ends are not made up: signals are consumed",
                   "[sync][semaphore][dead]", START_METHODS) {
    semaphore items(0);
    items.release();
    items.release();
    test::process_t<TestType> consumer(
        [](semaphore sem) { std::_Exit(sem.acquire(false) && sem.acquire(false) ? 0 : 1); }, items);
    consumer.start();
    consumer.join();
    CHECK(consumer.exitcode() == 0);
    CHECK_FALSE(items.acquire(30ms)); // waited long enough to look for dead holders
    CHECK(items.get_value() == 0);
}

TEMPLATE_TEST_CASE("units held by a killed process go back to the semaphore, the acquirer is told",
                   "[sync][semaphore][dead]", START_METHODS) {
    semaphore s(3);
    auto p = test::start_holder<TestType>(
        [](semaphore sem) {
            sem.acquire();
            sem.acquire();
        },
        s);
    CHECK(s.acquire(false)); // the third unit, free
    CHECK_FALSE(s.owner_died());
    CHECK_FALSE(s.acquire(false));
    p.kill();
    REQUIRE(s.acquire(30s)); // (a lost unit would time out: false)
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

TEMPLATE_TEST_CASE("a unit handed off (acquired here, released there) is not given back twice",
                   "[sync][semaphore][dead]", START_METHODS) {
    bounded_semaphore b(1);
    auto p = test::start_holder<TestType>([](bounded_semaphore sem) { sem.acquire(); }, b);
    b.release(); // on the holder's behalf
    p.kill();
    p.join();
    CHECK(b.acquire(false));
    CHECK_FALSE(b.owner_died());
    CHECK_FALSE(b.acquire(30ms)); // no phantom second unit
    CHECK(b.get_value() == 0);
    b.release();
}

TEMPLATE_TEST_CASE("a bounded semaphore is not over-filled by units coming back", "[sync][semaphore][dead]",
                   START_METHODS) {
    bounded_semaphore b(2);
    auto p = test::start_holder<TestType>([](bounded_semaphore sem) { sem.acquire(); }, b);
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

TEMPLATE_TEST_CASE("a semaphore with many holders at once tracks them all: the units of every killed one come back",
                   "[sync][semaphore][dead]", START_METHODS) {
    constexpr int n = 70; // more than the 64 holders once tracked
    semaphore s(n);
    event all;
    raw_value<int> taken(0);
    auto ps = test::children<TestType>(
        n,
        [](semaphore sem, event everyone, raw_value<int> count, int holders) {
            sem.acquire();
            if (count.fetch_add(1) + 1 == holders) everyone.set();
            for (;;) ::pause();
        },
        s, all, taken, n);
    for (auto& p : ps) p.start();
    REQUIRE(all.wait(60s));
    CHECK(s.get_value() == 0);
    for (auto& p : ps) p.kill();
    for (auto& p : ps) p.join();
    test::take_back(s, n);
    CHECK(s.owner_died());
    test::give_back(s, n);
}

TEMPLATE_TEST_CASE("the unit of a killed holder comes back although other processes held and released units before it",
                   "[sync][semaphore][dead]", START_METHODS) {
    for_each_semaphore([]<class Sem>(int n) {
        Sem s(n);
        std::vector<test::process_t<TestType>> past, holders;
        // Processes that held units and released them all, and live on.
        for (int i = 0; i < n; ++i)
            past.push_back(test::start_holder<TestType>(
                [](Sem x) {
                    x.acquire();
                    x.release();
                },
                s));
        for (int i = 0; i < n; ++i) holders.push_back(test::start_holder<TestType>([](Sem x) { x.acquire(); }, s));
        CHECK(s.get_value() == 0);
        for (auto& p : holders) p.kill();
        for (auto& p : holders) p.join();
        test::take_back(s, n);
        CHECK(s.owner_died());
        test::give_back(s, n);
        for (auto& p : past) p.kill();
        for (auto& p : past) p.join();
    });
}

TEMPLATE_TEST_CASE("a process killed at any step of acquire, release or taking back a dead holder's unit loses no unit "
                   "and makes none up",
                   "[sync][semaphore][dead][faults]", START_METHODS) {
    for_each_semaphore([]<class Sem>(int n) {
        int kills = 0;
        for (int nth = 1;; ++nth) {
            INFO("killed at step " << nth);
            REQUIRE(nth < 200); // the steps of one run of the child are far fewer
            Sem s(n);
            // One unit is held by a process that is killed: the child takes it back.
            auto dead = test::start_holder<TestType>([](Sem x) { x.acquire(); }, s);
            dead.kill();
            dead.join();
            test::process_t<TestType> p(
                [](Sem x, int units, int step) {
                    test::step_killer::arm(step);
                    for (int i = 0; i < units; ++i) x.acquire();
                    for (int i = 0; i < units; ++i) x.release();
                    x.acquire(); // and ends holding it
                },
                s, n, nth);
            p.start();
            p.join();
            REQUIRE(p.exitcode().has_value());
            test::take_back(s, n);
            test::give_back(s, n);
            if (*p.exitcode() == 0) break; // ran out of steps to kill it at
            REQUIRE(*p.exitcode() == -SIGKILL);
            ++kills;
        }
        CHECK(kills > 10);
    });
}
