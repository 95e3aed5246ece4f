// Nested pools (issue 17 item 7): CPython forbids a daemon, so a pool worker, to have
// children; nested::forbid (the default) keeps that rule, nested::allow lifts it. Under it
// a task may run a pool of its own, under any start method, and nothing is orphaned when
// the outer pool is terminated, its workers killed, or the process owning it killed: every
// daemon dies with its creator, so the inner workers die with the outer ones.
//
// The inner workers are grandchildren of the test (or further off), so the tasks report
// their pids through a named pipe and the test watches each with a pidfd, bounded.
#include "pool/helpers.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>

#include <csignal>
#include <string>
#include <vector>

using namespace multiproc;
using pooltest::pool_of;

namespace {

// The pool a task runs inside a worker: the inner start method's, default policies.
template <class Inner>
using inner_pool = basic_pool<typename Inner::policies::start>;
// The pool the test runs: the outer start method's, under nested::allow.
template <class Outer>
using outer_pool = basic_pool<typename Outer::policies::start, nested::allow>;

// A task that starts a process of its own (refused in a worker under nested::forbid).
template <class Ctx>
int start_a_child() {
    test::process_t<Ctx> child([] {});
    child.start();
    child.join();
    return child.exitcode().value_or(-1);
}

// A task that runs a pool: the sum of squares of 0..n-1, computed by an inner pool.
template <class Inner>
long inner_sum(int n) {
    inner_pool<Inner> p(2);
    std::vector<int> xs;
    for (int i = 0; i < n; ++i) xs.push_back(i);
    long total = 0;
    for (int r : p.map(fn<&pooltest::square>, xs)) total += r;
    return total;
}

long sum_of_squares(int n) {
    long total = 0;
    for (long i = 0; i < n; ++i) total += i * i;
    return total;
}

// An inner task: reports its pid, then blocks on a token the test never sends, so that
// only its death ends it.
int inner_blocker(std::string reports, std::string tokens) { return pooltest::report_pid_then_wait_at(reports, tokens); }

// An outer task: reports its pid, runs an inner pool of two workers each blocked in
// inner_blocker, and waits for them (forever).
template <class Inner>
int outer_blocker(std::string reports, std::string tokens) {
    pooltest::say_to(reports, std::to_string(::getpid()));
    inner_pool<Inner> p(2);
    auto a = p.apply_async(fn<&inner_blocker>, reports, tokens);
    auto b = p.apply_async(fn<&inner_blocker>, reports, tokens);
    return a.get() + b.get();
}

// The outer worker's pid and the two inner workers' pids, as the tasks report them.
struct tree {
    pid_t outer = 0;
    std::vector<pid_t> inner;
};

tree read_tree(pooltest::named_pipe& reports) {
    tree t;
    t.outer = std::stoi(reports.line());
    // Both inner tasks run at once (two workers), so both report.
    for (int i = 0; i < 2; ++i) t.inner.push_back(std::stoi(reports.line()));
    return t;
}

// Checks that every pid in `t` has exited within a bounded time; a survivor is killed
// afterwards so that a failing run leaves nothing behind.
void require_all_gone(const tree& t, bool outer_too = true) {
    std::vector<pid_t> pids = t.inner;
    if (outer_too) pids.push_back(t.outer);
    bool all = true;
    for (pid_t pid : pids) {
        bool gone = test::wait_exit(pid, std::chrono::seconds(10));
        if (!gone) ::kill(pid, SIGKILL);
        INFO("pid " << pid << (pid == t.outer ? " (outer worker)" : " (inner worker)"));
        CHECK(gone);
        all = all && gone;
    }
    REQUIRE(all);
}

// Runs outer_blocker in a one-worker outer pool, then `stop(pool, tree)`; checks that the
// whole tree has gone after.
template <class Ctx, class Stop>
void stop_outer(Stop stop) {
    pooltest::named_pipe reports, tokens;
    outer_pool<Ctx> p(1);
    auto r = p.apply_async(fn<&outer_blocker<Ctx>>, reports.path(), tokens.path());
    tree t = read_tree(reports);
    stop(p, t);
    require_all_gone(t);
}

template <class Ctx>
constexpr bool is_forkserver = std::is_same_v<typename Ctx::policies::start, start::forkserver>;

// (c): a forked child of the test owns the outer pool and is SIGKILLed once the whole tree
// runs. Under forkserver the child starts a server of its own, which then sees its starter
// die: the harder case, where the server has to kill daemons of daemons on its way out.
template <class Outer, class Inner>
void owner_killed() {
    pooltest::named_pipe reports, tokens;
    pid_t owner = ::fork();
    REQUIRE(owner >= 0);
    if (owner == 0) {
        int code = 0;
        try {
            if constexpr (is_forkserver<Outer> || is_forkserver<Inner>)
                (void)detail::forkserver::ensure_running(/*restart=*/true);
            outer_pool<Outer> p(1);
            auto r = p.apply_async(fn<&outer_blocker<Inner>>, reports.path(), tokens.path());
            for (;;) ::pause(); // until the test kills this process
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    tree t = read_tree(reports);
    REQUIRE(::kill(owner, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(owner, &status, 0) == owner);
    CHECK(test::decode(status) == -SIGKILL);
    require_all_gone(t);
}

} // namespace

TEMPLATE_TEST_CASE("under nested::forbid (the default) a pool worker may not start a process, as in CPython",
                   "[pool][nested]", START_METHODS) {
    pool_of<TestType> p(1);
    try {
        (void)p.apply(fn<&start_a_child<TestType>>);
        FAIL("no remote_error");
    } catch (const remote_error& e) {
        CHECK(e.type_name() == "multiproc::state_error");
        CHECK(e.message() == "daemonic processes are not allowed to have children");
    }
}

TEMPLATE_TEST_CASE("under nested::allow a pool worker may start a process", "[pool][nested]", START_METHODS) {
    outer_pool<TestType> p(1);
    CHECK(p.apply(fn<&start_a_child<TestType>>) == 0);
}

TEMPLATE_TEST_CASE("under nested::allow a task may run a pool of its own, with the right results",
                   "[pool][nested]", START_METHODS) {
    outer_pool<TestType> p(2);
    auto sums = p.map(fn<&inner_sum<TestType>>, std::vector<int>{1, 10, 100});
    CHECK(sums == std::vector<long>{sum_of_squares(1), sum_of_squares(10), sum_of_squares(100)});
}

TEST_CASE("nested pools may use another start method than the outer pool", "[pool][nested]") {
    {
        outer_pool<by_fork> p(1);
        CHECK(p.apply(fn<&inner_sum<by_spawn>>, 50) == sum_of_squares(50));
        CHECK(p.apply(fn<&inner_sum<by_forkserver>>, 50) == sum_of_squares(50));
    }
    {
        outer_pool<by_spawn> p(1);
        CHECK(p.apply(fn<&inner_sum<by_forkserver>>, 50) == sum_of_squares(50));
    }
    {
        outer_pool<by_forkserver> p(1);
        CHECK(p.apply(fn<&inner_sum<by_fork>>, 50) == sum_of_squares(50));
    }
}

TEMPLATE_TEST_CASE("a daemon process under nested::allow may start a child", "[pool][nested][daemon]", START_METHODS) {
    test::report_pipe out;
    basic_process<typename TestType::policies::start, daemon::yes, nested::allow> d(
        [](test::fd_arg o) {
            test::process_t<TestType> child([](test::fd_arg o2) { o2.write("child ran"); }, o);
            try {
                child.start();
                child.join();
            } catch (const state_error& e) {
                o.write(e.what());
            }
        },
        out.w_arg());
    REQUIRE(d.daemon());
    d.start();
    CHECK(out.collect() == "child ran");
    d.join();
    CHECK(d.exitcode() == 0);
}

TEMPLATE_TEST_CASE("stopping the outer pool, or killing one of its workers, leaves no inner worker behind",
                   "[pool][nested][orphans]", START_METHODS) {
    SECTION("terminate()") {
        stop_outer<TestType>([](auto& p, const tree&) { p.terminate(); });
    }
    SECTION("kill_workers()") {
        stop_outer<TestType>([](auto& p, const tree&) { p.kill_workers(); });
    }
    SECTION("an outer worker killed from outside, terminate() after") {
        stop_outer<TestType>([](auto& p, const tree& t) {
            REQUIRE(::kill(t.outer, SIGKILL) == 0);
            require_all_gone(t);
            // The pool goes on with a new worker; a task it runs proves it has started, so
            // that terminate() does not meet a worker still on its way up.
            CHECK(p.apply(fn<&pooltest::square>, 3) == 9);
            p.terminate();
        });
    }
}

TEMPLATE_TEST_CASE("the process owning the outer pool killed leaves no worker behind", "[pool][nested][orphans]",
                   START_METHODS) {
    owner_killed<TestType, TestType>();
}

TEST_CASE("the process owning the outer pool killed leaves no worker behind, with mixed start methods",
          "[pool][nested][orphans]") {
    SECTION("fork outside, forkserver inside") { owner_killed<by_fork, by_forkserver>(); }
    SECTION("forkserver outside, fork inside") { owner_killed<by_forkserver, by_fork>(); }
    SECTION("spawn outside, forkserver inside") { owner_killed<by_spawn, by_forkserver>(); }
}
