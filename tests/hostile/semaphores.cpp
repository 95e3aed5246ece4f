// Hostile conditions for locks and semaphores (issue 15, items 1 and 7): holders killed with
// SIGKILL at random points, from outside or at a random step of the object's bookkeeping in
// shared memory, while the others go on. Invariants, checked all along:
//   - never more holders inside than the object allows (1 for a lock, the value for a
//     semaphore), counting the holders that are still running;
//   - no stall: after each kill the survivors make progress within 1 s (the bound);
//   - no unit lost: at the end the test takes every unit back, each within 1 s, and no more;
//   - nothing left behind: no child, no descriptor (and no /dev/shm entry: the fixture).
// Each object is attacked for a fixed time and at least a fixed number of kills (whichever
// ends later: a slow start method, e.g. spawn under ASan, gets its kills rather than a
// shorter attack), so the whole file takes a few seconds per start method.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <atomic>
#include <optional>
#include <random>
#include <type_traits>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;

/// The bound on a stall, and on how long a dead holder's unit may stay lost.
constexpr auto stall_bound = test::dead_holder_bound;
/// How long each object is attacked at least.
constexpr auto attack_time = 700ms;
/// How many holders are killed per object at least.
constexpr int min_kills = 8;
/// Holders at once.
constexpr int holders = 5;

/// What the holders share with the test: who is inside (test::running_id per holder, 0 if none),
/// how often any holder got in, and how often one found too many inside.
struct board {
    raw_array<std::uint64_t> inside{holders};
    raw_value<std::uint64_t> entries{0};
    raw_value<int> too_many{0};
};

/// The holders' loop: take the object, say so, count the holders inside that still run,
/// and let go. An rlock is entered twice. `die_at` > 0 kills the holder at that step of
/// the object's bookkeeping.
template <class Obj>
[[noreturn]] void hold_forever(Obj obj, raw_array<std::uint64_t> inside, raw_value<std::uint64_t> entries,
                               raw_value<int> too_many, int index, int allowed, int die_at) {
    if (die_at > 0) test::step_killer::arm(die_at);
    const std::uint64_t me = test::running_id(::getpid());
    std::minstd_rand rng(static_cast<unsigned>(me));
    for (;;) {
        obj.acquire();
        if constexpr (std::is_same_v<Obj, rlock>) obj.acquire();
        inside[index] = me;
        int live = 0;
        for (std::size_t j = 0; j < inside.size(); ++j) {
            std::uint64_t p = inside[j];
            if (p == me || (p != 0 && test::running_id(static_cast<pid_t>(p & 0xffffffff)) == p)) ++live;
        }
        if (live > allowed) too_many.fetch_add(1);
        entries.fetch_add(1);
        for (unsigned spin = rng() % 2000; spin > 0; --spin) detail::cpu_relax();
        inside[index] = 0;
        if constexpr (std::is_same_v<Obj, rlock>) obj.release();
        obj.release();
    }
}

/// Attacks `obj` (which lets `allowed` holders in at once) for attack_time with `holders`
/// children of context `Ctx`: kills one at random after a random number of entries, and
/// starts a new one in its place; some holders are set to die at a random step of the
/// object's bookkeeping; for attack_time and at least min_kills kills. Then checks every
/// invariant.
template <class Ctx, class Obj>
void attack(Obj obj, int allowed) {
    std::random_device seed_source;
    const unsigned seed = seed_source();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    board b;
    std::vector<std::optional<test::process_t<Ctx>>> kids(holders);
    // However the attack ends (a failed REQUIRE included), no holder outlives it.
    struct reaper {
        std::vector<std::optional<test::process_t<Ctx>>>& kids;
        ~reaper() {
            for (auto& k : kids)
                if (k && k->pid()) k->kill();
            for (auto& k : kids)
                if (k && k->pid()) k->join();
        }
    } reap{kids};
    int killed = 0;
    auto start = [&](int j) {
        int die_at = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 40) : 0;
        kids[j].emplace(fn<&hold_forever<Obj>>, obj, b.inside, b.entries, b.too_many, j, allowed, die_at);
        kids[j]->start();
    };
    auto replace_the_dead = [&] {
        for (int j = 0; j < holders; ++j)
            if (!kids[j]->is_alive()) {
                CHECK(kids[j]->exitcode() == -SIGKILL); // a step kill; anything else is a failure
                ++killed;
                start(j);
            }
    };
    for (int j = 0; j < holders; ++j) start(j);
    const auto end = steady::now() + attack_time;
    while (steady::now() < end || killed < min_kills) {
        // Some entries first, so that the kill lands anywhere in a holder's loop.
        const std::uint64_t target = b.entries.load() + 1 + rng() % 30;
        const auto t0 = steady::now();
        while (b.entries.load() < target) {
            replace_the_dead();
            if (steady::now() - t0 >= stall_bound)
                FAIL("stalled: no holder got in for " << stall_bound.count() << " s after " << killed << " kills ("
                                                      << b.entries.load() << " entries so far)");
            detail::sys::yield();
        }
        int j = static_cast<int>(rng() % holders);
        kids[j]->kill();
        kids[j]->join();
        ++killed;
        start(j);
    }
    for (auto& k : kids) k->kill();
    for (auto& k : kids) k->join();
    kids.clear();
    CHECK(b.too_many.load() == 0);
    CHECK(b.entries.load() > 0);
    // Every unit comes back, each within the bound, and there is no extra one.
    test::take_back(obj, allowed);
    test::give_back(obj, allowed);
}

} // namespace

TEMPLATE_TEST_CASE("semaphore holders killed at random points: no unit lost for more than 1 s, the bound never exceeded",
                   "[hostile][semaphore]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline before;
    {
        INFO("semaphore(1)");
        attack<TestType>(semaphore(1), 1);
    }
    {
        INFO("semaphore(2)");
        semaphore s(2);
        attack<TestType>(s, 2);
        CHECK(s.get_value() == 2);
    }
    {
        INFO("bounded_semaphore(3)");
        bounded_semaphore s(3);
        attack<TestType>(s, 3);
        CHECK(s.get_value() == 3);
        CHECK_THROWS_AS(s.release(), value_error);
    }
    before.check();
}

TEMPLATE_TEST_CASE("lock and rlock holders killed at random points: never two inside, no stall over 1 s",
                   "[hostile][lock]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline before;
    {
        INFO("lock");
        lock l;
        attack<TestType>(l, 1);
        CHECK(test::repr(l) == "<Lock(owner=None)>");
    }
    {
        INFO("rlock");
        rlock r;
        attack<TestType>(r, 1);
        CHECK(r.acquire(false));
        r.release();
    }
    before.check();
}
