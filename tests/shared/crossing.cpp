// Shared objects as process arguments under every start method: under fork the child
// inherits the mapping; under spawn and forkserver the object crosses (its shared memory's
// descriptor travels with SCM_RIGHTS) and the child maps the same memory.
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/shared_memory.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

TEMPLATE_TEST_CASE("a lock and a value cross into children: N children x M locked increments give N*M",
                   "[shared][crossing]", START_METHODS) {
    constexpr int n = 3, m = 2000;
    value<long> counter(0);
    lock guard;
    std::vector<test::process_t<TestType>> ps;
    for (int i = 0; i < n; ++i)
        ps.emplace_back(
            [](value<long> c, lock l, int times) {
                for (int k = 0; k < times; ++k) {
                    std::lock_guard g(l);
                    *c += 1; // a plain read-modify-write: only the lock makes it safe
                }
            },
            counter, guard, m);
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    CHECK(counter.load() == n * m);
}

TEMPLATE_TEST_CASE("values and arrays cross with their lock: fetch_add and get_lock() work in the child",
                   "[shared][crossing]", START_METHODS) {
    raw_value<int> hits(0);
    array<int> cells(4);
    value<double> total(0.5);
    auto p = test::process_t<TestType>(
        [](raw_value<int> h, array<int> a, value<double> t) {
            for (int k = 0; k < 100; ++k) h.fetch_add(1);
            for (std::size_t i = 0; i < a.size(); ++i) a.atomic(i).fetch_add(static_cast<int>(i) + 1);
            std::lock_guard g(t.get_lock());
            t.store(t.load() * 4);
        },
        hits, cells, total);
    CHECK(test::exit_of(p) == 0);
    CHECK(hits.load() == 100);
    CHECK(std::vector<int>(cells.begin(), cells.end()) == std::vector<int>{1, 2, 3, 4});
    CHECK(total.load() == 2.0);
}

TEMPLATE_TEST_CASE("events, semaphores and conditions cross: a child wakes its parent through each",
                   "[shared][crossing]", START_METHODS) {
    event ready;
    semaphore units(0);
    bounded_semaphore one(1);
    condition cond;
    raw_value<int> flag(0);
    {
        std::unique_lock held(cond); // the child's notify comes while we wait, never before
        auto p = test::process_t<TestType>(
            [](event e, semaphore s, bounded_semaphore b, condition c, raw_value<int> f) {
                e.set();
                s.release();
                s.release();
                if (!b.acquire(false)) std::_Exit(3); // the parent left it free
                b.release();
                std::lock_guard g(c);
                f.store(1);
                c.notify();
            },
            ready, units, one, cond, flag);
        p.start();
        CHECK(ready.wait(30s));
        CHECK(units.acquire(30s));
        CHECK(units.acquire(30s));
        CHECK(cond.wait_for([&] { return flag.load() == 1; }, 30s));
        held.unlock();
        p.join();
        CHECK(p.exitcode() == 0);
    }
    CHECK(one.get_value() == 1);
}

TEMPLATE_TEST_CASE("a barrier crosses: the parent and two children each get a different index",
                   "[shared][crossing]", START_METHODS) {
    barrier b(3, 30s);
    raw_array<int> indices(2);
    std::vector<test::process_t<TestType>> ps;
    for (int i = 0; i < 2; ++i)
        ps.emplace_back([](barrier bb, raw_array<int> out, int slot) { out[static_cast<std::size_t>(slot)] = static_cast<int>(bb.wait()) + 10; },
                        b, indices, i);
    for (auto& p : ps) p.start();
    int mine = static_cast<int>(b.wait()) + 10;
    for (auto& p : ps) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    std::set<int> all{mine, indices[0], indices[1]};
    CHECK(all == std::set<int>{10, 11, 12});
}

TEMPLATE_TEST_CASE("a barrier with an action cannot cross into a spawn or forkserver child: start() says why",
                   "[shared][crossing]", by_spawn, by_forkserver) {
    barrier b(2, [] {});
    auto p = test::process_t<TestType>([](barrier bb) { bb.wait(); }, b);
    CHECK_THROWS_WITH(p.start(), Catch::Contains("a barrier with an action cannot cross"));
    CHECK(active_children().empty());
}

TEMPLATE_TEST_CASE("shared memory crosses: the child writes through its own attachment and never unlinks",
                   "[shared][crossing]", START_METHODS) {
    auto shm = shared_memory::create(4096);
    auto p = test::process_t<TestType>(
        [](shared_memory m) {
            if (m.is_owner() || m.size() < 5) std::_Exit(3);
            std::memcpy(m.buf().data(), "hello", 5);
        },
        shm);
    CHECK(test::exit_of(p) == 0);
    CHECK(std::string(reinterpret_cast<const char*>(shm.buf().data()), 5) == "hello");
    CHECK(shm.is_owner());
    shm.unlink(); // still there after the child left: only the owner removes it
}
