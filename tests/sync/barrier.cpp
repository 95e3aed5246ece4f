// multiproc::barrier: CPython's Barrier between processes (indices, action, timeout, reset,
// abort), and what happens when a party dies: the barrier breaks instead of hanging.
// Every case that starts children runs under each start method (START_METHODS), except
// those of a barrier with an action: an action is a callable that cannot cross into a
// spawn or forkserver child (start() refuses, see tests/shared/crossing.cpp), so they are
// fork-only.
#include "sync/sync_support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <set>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
/// Runs `b.wait(timeout)` in a child of context `Ctx`; its exit code is the index, or 100
/// for broken_barrier_error with the message `expect` (when given), 101 for another message.
template <class Ctx>
test::process_t<Ctx> party(barrier& b, std::string expect = {}, std::chrono::milliseconds timeout = 30s) {
    test::process_t<Ctx> p(
        [](barrier bar, std::string expected, long long timeout_ms) {
            try {
                std::_Exit(static_cast<int>(bar.wait(std::chrono::milliseconds(timeout_ms))));
            } catch (const broken_barrier_error& e) {
                std::_Exit(expected.empty() || e.what() == expected ? 100 : 101);
            }
        },
        b, std::move(expect), static_cast<long long>(timeout.count()));
    p.start();
    return p;
}
} // namespace

// Fork only: the barrier has an action.
TEST_CASE("a barrier releases its parties together, each with its own index, round after round",
          "[sync][barrier]") {
    raw_value<int> actions(0);
    barrier b(3, [&] { actions.fetch_add(1); });
    CHECK(b.parties() == 3);
    for (int round = 1; round <= 3; ++round) {
        auto p1 = party<by_fork>(b);
        auto p2 = party<by_fork>(b);
        std::size_t mine = b.wait(30s);
        p1.join();
        p2.join();
        std::set<int> indices{static_cast<int>(mine), *p1.exitcode(), *p2.exitcode()};
        CHECK(indices == std::set<int>{0, 1, 2});
        CHECK(actions.load() == round);
        CHECK(b.n_waiting() == 0);
    }
    CHECK_FALSE(b.broken());
}

TEMPLATE_TEST_CASE("a barrier wait that times out breaks it for everyone until reset()", "[sync][barrier][timeout]",
                   START_METHODS) {
    barrier b(2, 40ms); // the default timeout
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_MATCHES(b.wait(), broken_barrier_error,
                         Catch::Matchers::Message("barrier is broken: a party timed out waiting for the others"));
    CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
    CHECK(b.broken());
    CHECK_THROWS_AS(b.wait(30s), broken_barrier_error); // at once
    b.reset();
    CHECK_FALSE(b.broken());
    auto p = party<TestType>(b);
    CHECK(b.wait(30s) <= 1);
    p.join();
    CHECK(p.exitcode() <= 1);
}

TEMPLATE_TEST_CASE("abort() and reset() break the wait of the parties waiting", "[sync][barrier]", START_METHODS) {
    barrier b(3);
    auto p = party<TestType>(b, "barrier is broken: abort() was called");
    REQUIRE(test::asleep_in(*p.pid()));
    CHECK(b.n_waiting() == 1);
    b.abort();
    p.join();
    CHECK(p.exitcode() == 100);
    CHECK(b.broken());
    b.reset();
    auto q = party<TestType>(b, "barrier was reset while waiting");
    REQUIRE(test::asleep_in(*q.pid()));
    b.reset();
    q.join();
    CHECK(q.exitcode() == 100);
    CHECK_FALSE(b.broken());
    CHECK(b.n_waiting() == 0);
}

// Fork only: the barrier has an action.
TEST_CASE("an action that throws breaks the barrier, its party gets the exception", "[sync][barrier]") {
    barrier b(2, [] { throw std::runtime_error("action failed"); });
    auto p = party<by_fork>(b, "barrier is broken: its action threw an exception");
    REQUIRE(test::asleep_in(*p.pid()));
    CHECK_THROWS_MATCHES(b.wait(30s), std::runtime_error, Catch::Matchers::Message("action failed"));
    p.join();
    CHECK(p.exitcode() == 100);
    CHECK(b.broken());
}

// (The action ran holding the barrier's own lock, which abort() and reset() took again: the
// last party hung for ever, and the others with it. An outside trial.)
TEST_CASE("an action may abort() or reset() its own barrier: the round ends all the same, as CPython's",
          "[sync][barrier]") {
    barrier* self = nullptr;
    barrier aborting(1, [&] { self->abort(); });
    self = &aborting;
    CHECK(aborting.wait(30s) == 0);
    CHECK_FALSE(aborting.broken()); // (CPython's _release sets it draining after the action)
    CHECK(aborting.wait(30s) == 0);

    // ... with parties asleep in it: they are released with their indices, not broken.
    barrier aborting3(3, [&] { self->abort(); });
    self = &aborting3;
    for (int round = 1; round <= 2; ++round) {
        auto p1 = party<by_fork>(aborting3);
        REQUIRE(test::asleep_in(*p1.pid()));
        auto p2 = party<by_fork>(aborting3);
        REQUIRE(test::asleep_in(*p2.pid())); // (so this process is the last, and runs the action)
        CHECK(aborting3.wait(30s) == 2);
        p1.join();
        p2.join();
        CHECK(std::set<int>{*p1.exitcode(), *p2.exitcode()} == std::set<int>{0, 1});
        CHECK_FALSE(aborting3.broken());
        CHECK(aborting3.n_waiting() == 0);
    }

    barrier resetting(2, [&] { self->reset(); });
    self = &resetting;
    auto p = party<by_fork>(resetting);
    REQUIRE(test::asleep_in(*p.pid()));
    CHECK(resetting.wait(30s) == 1);
    p.join();
    CHECK(p.exitcode() == 0); // released, with its index
    CHECK_FALSE(resetting.broken());
    CHECK(resetting.n_waiting() == 0);
}

TEST_CASE("an action that waits on its own barrier is a state_error, not a hang", "[sync][barrier]") {
    barrier* self = nullptr;
    barrier b(1, [&] { (void)self->wait(30s); });
    self = &b;
    CHECK_THROWS_MATCHES(b.wait(30s), state_error,
                         Catch::Matchers::Message("multiproc: a barrier's action cannot wait on its own barrier: the "
                                                  "parties are released only once it returns"));
    CHECK(b.broken()); // (an action that throws breaks it)
}

TEST_CASE("a barrier needs at least one party", "[sync][barrier]") {
    CHECK_THROWS_MATCHES(barrier(0), value_error, Catch::Matchers::Message("parties must be >= 1"));
    CHECK_THROWS_AS(barrier(100000), value_error);
    barrier one(1);
    CHECK(one.wait() == 0);
    CHECK(one.wait() == 0);
}

TEMPLATE_TEST_CASE("a party killed while waiting breaks the barrier, naming it, reset() makes it usable",
                   "[sync][barrier][dead]", START_METHODS) {
    barrier b(3);
    auto doomed = party<TestType>(b);
    REQUIRE(test::asleep_in(*doomed.pid()));
    CHECK(b.n_waiting() == 1);
    pid_t pid = *doomed.pid();
    doomed.kill();
    CHECK_THROWS_MATCHES(b.wait(30s), broken_barrier_error,
                         Catch::Matchers::Message("barrier is broken: party pid " + std::to_string(pid) +
                                                  " died while waiting"));
    doomed.join();
    CHECK(b.n_waiting() == 0);
    b.reset();
    auto p1 = party<TestType>(b);
    auto p2 = party<TestType>(b);
    CHECK(b.wait(30s) <= 2);
    p1.join();
    p2.join();
    CHECK(p1.exitcode() <= 2);
    CHECK(p2.exitcode() <= 2);
}

// From an outside trial: the last party to arrive released the barrier with the dead party
// counted, so the others went on with one missing.
TEMPLATE_TEST_CASE("the last party to arrive does not count a party that died waiting", "[sync][barrier][dead]",
                   START_METHODS) {
    barrier b(2);
    auto doomed = party<TestType>(b);
    REQUIRE(test::asleep_in(*doomed.pid()));
    const pid_t pid = *doomed.pid();
    doomed.kill();
    doomed.join(); // dead and reaped before this party arrives
    CHECK(b.n_waiting() == 1); // (nobody has looked for it yet)
    CHECK_THROWS_MATCHES(b.wait(30s), broken_barrier_error,
                         Catch::Matchers::Message("barrier is broken: party pid " + std::to_string(pid) +
                                                  " died while waiting"));
    CHECK(b.broken());
    CHECK(b.n_waiting() == 0);
    b.reset();
    auto other = party<TestType>(b);
    CHECK(b.wait(30s) <= 1);
    other.join();
    CHECK(other.exitcode() <= 1);
}

// Fork only: the barrier has an action.
TEST_CASE("a party that dies running the action breaks the barrier for the others", "[sync][barrier][dead]") {
    pid_t main_pid = ::getpid();
    barrier b(2, [main_pid] {
        if (::getpid() != main_pid) ::raise(SIGKILL); // dies holding the barrier's own lock
    });
    process last([&] {
        if (!test::asleep_in(main_pid)) std::_Exit(3); // arrive last, so as to run the action
        b.wait(30s);
    });
    last.start();
    CHECK_THROWS_MATCHES(b.wait(30s), broken_barrier_error,
                         Catch::Matchers::Message("barrier is broken: pid " + std::to_string(*last.pid()) +
                                                  " died while using it"));
    last.join();
    CHECK(last.exitcode() == -SIGKILL);
    CHECK(b.broken());
    CHECK(b.n_waiting() == 0);
}
