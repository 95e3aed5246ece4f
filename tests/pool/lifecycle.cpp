// Lifecycle with CPython's rules and errors: close, join, terminate, the destructor's policy,
// bad arguments, maxtasksperchild, the initializer (and one that throws).
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <atomic>
#include <cerrno>
#include <csignal>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>

using namespace multiproc;
using namespace std::chrono_literals;
using pooltest::square;

namespace {
void report_init(int fd) { pooltest::say(fd, "init " + std::to_string(::getpid())); }
void failing_init() { throw std::runtime_error("no database"); }

/// Blocks SIGTERM in the calling worker (tasks and initializers may).
void block_sigterm() {
    sigset_t term;
    ::sigemptyset(&term);
    ::sigaddset(&term, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &term, nullptr);
}

/// A task that blocks SIGTERM (tasks may), says it runs, waits for a token and returns: its
/// result comes after terminate() has failed it, and before the SIGKILL a second later.
int outlives_sigterm(std::string reports, std::string tokens) {
    block_sigterm();
    pooltest::say_to(reports, "running");
    pooltest::take_token_from(tokens);
    return 7;
}

/// An initializer that blocks SIGTERM, says it runs, waits for a token, then throws.
void init_outlives_sigterm_then_throws(std::string reports, std::string tokens) {
    block_sigterm();
    pooltest::say_to(reports, "init");
    pooltest::take_token_from(tokens);
    throw std::runtime_error("too late");
}

int init_mark = 0;
void set_init_mark(int v) { init_mark = v; }
int read_init_mark(int) { return init_mark; }
void init_exits(int code) { ::_exit(code); }
void init_killed() { ::raise(SIGKILL); }

/// A fault hook that kills a pool worker (any process but the test's) right after its first
/// sigaction, which it makes before it starts its initializer, once per byte in `tokens`.
struct die_before_initializer {
    test::pipe_pair tokens;
    static inline int token_fd = -1;
    static inline pid_t test_pid = 0;
    static int hook(detail::sys::call c) {
        if (c != detail::sys::call::sigaction || ::getpid() == test_pid) return 0;
        char ch;
        return ::read(token_fd, &ch, 1) == 1 ? detail::sys::die_after_call : 0;
    }
    explicit die_before_initializer(int deaths) {
        ::fcntl(tokens.r, F_SETFL, O_NONBLOCK);
        token_fd = tokens.r;
        test_pid = ::getpid();
        test::write_str(tokens.w, std::string(static_cast<std::size_t>(deaths), 'k'));
        detail::sys::fault_hook = &hook;
    }
    die_before_initializer(const die_before_initializer&) = delete;
    die_before_initializer& operator=(const die_before_initializer&) = delete;
    ~die_before_initializer() { detail::sys::fault_hook = nullptr; }
    /// Whether every planned death has been taken by a worker.
    bool all_taken() const {
        char ch;
        return ::read(tokens.r, &ch, 1) < 0 && errno == EAGAIN;
    }
};
} // namespace

TEST_CASE("bad arguments are CPython's ValueErrors", "[pool][lifecycle][errors]") {
    CHECK_THROWS_AS(pool(0), value_error);
    CHECK_THROWS_WITH(pool(0), "Number of processes must be at least 1");
    CHECK_THROWS_WITH(pool(-3), "Number of processes must be at least 1");
    CHECK_THROWS_WITH(pool(pool_options{1, {}, 0}), "maxtasksperchild must be a positive int or None");
    CHECK_THROWS_WITH(pool(pool_options{1, {}, -1}), "maxtasksperchild must be a positive int or None");
    CHECK(test::children_of(::getpid()).empty());
}

TEST_CASE("use after close or terminate is 'Pool not running', join before either is 'Pool is still running'",
          "[pool][lifecycle][errors]") {
    pool p(2);
    CHECK_THROWS_AS(p.join(), value_error);
    CHECK_THROWS_WITH(p.join(), "Pool is still running");
    auto pending = p.apply_async(square, 4);
    p.close();
    p.close(); // twice is harmless
    CHECK_THROWS_AS(p.apply(square, 1), value_error);
    CHECK_THROWS_WITH(p.apply(square, 1), "Pool not running");
    CHECK_THROWS_WITH(p.apply_async(square, 1), "Pool not running");
    CHECK_THROWS_WITH(p.map(square, std::vector<int>{1}), "Pool not running");
    CHECK_THROWS_WITH(p.imap(square, std::vector<int>{1}), "Pool not running");
    p.join();
    CHECK(pending.get() == 16); // work submitted before close() completes
    p.join();                   // again: nothing to wait for
    CHECK(test::children_of(::getpid()).empty());
}

TEST_CASE("terminate stops at once, results not yet in fail with broken_pool", "[pool][lifecycle]") {
    pooltest::tokens tokens; // never released
    pooltest::reports reports;
    pool p(2);
    auto stuck = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 1);
    (void)reports.line(); // it is running
    auto queued = p.map_async(square, std::vector<int>{1, 2, 3});
    p.terminate();
    CHECK(test::children_of(::getpid()).empty()); // gone when terminate() returns
    CHECK_THROWS_AS(stuck.get(), broken_pool);
    CHECK_THROWS_WITH(stuck.get(), "multiproc: the pool was terminated before the task completed");
    CHECK(queued.ready());
    CHECK_THROWS_WITH(p.apply(square, 2), "Pool not running");
    p.join();
    p.terminate(); // again: harmless
}

TEMPLATE_TEST_CASE("a result that races terminate() is dropped silently, not taken for a corrupt worker",
                   "[pool][lifecycle]", START_METHODS) {
    // terminate() fails the running task at once and sends SIGTERM; this task has blocked
    // SIGTERM, and returns its result only once the test has seen the failure, so the
    // result always arrives for a task the pool no longer holds.
    pooltest::named_pipe reports, tokens;
    pooltest::pool_of<TestType> p(1);
    pooltest::stderr_capture err; // after the pool: its worker keeps the test's stderr
    auto r = p.apply_async(fn<&outlives_sigterm>, reports.path(), tokens.path());
    REQUIRE(reports.line() == "running");
    std::thread release_after_failure([&] {
        r.wait();
        tokens.release();
    });
    p.terminate(); // returns once the worker is gone: the SIGKILL a second after the SIGTERM
    release_after_failure.join();
    CHECK_THROWS_WITH(r.get(), "multiproc: the pool was terminated before the task completed");
    const std::string text = err.finish();
    CHECK(text.find("sent a result for a task it was not given") == std::string::npos);
    CHECK(text.empty());
}

TEMPLATE_TEST_CASE("an initializer that fails after terminate() leaves the pool terminated, not broken",
                   "[pool][lifecycle][initializer]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pooltest::pool_of<TestType> p(1, fn<&init_outlives_sigterm_then_throws>, std::tuple{reports.path(), tokens.path()});
    pooltest::stderr_capture err;
    auto r = p.apply_async(fn<&square>, 2);
    REQUIRE(reports.line() == "init");
    std::thread release_after_failure([&] {
        r.wait();
        tokens.release();
    });
    p.terminate();
    release_after_failure.join();
    CHECK_THROWS_WITH(r.get(), "multiproc: the pool was terminated before the task completed");
    CHECK_THROWS_WITH(p.apply(fn<&square>, 3), "Pool not running");
    CHECK(err.finish().empty());
}

TEST_CASE("design 5.6: the destructor drains by default: close, then join", "[pool][lifecycle][design5]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    async_result<int> r;
    {
        pool p(1);
        r = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 7);
        (void)reports.line(); // the task is running, and waits for its token
        tokens.release();     // (the destructor waits for it either way)
    }
    CHECK(r.ready());
    CHECK(r.get() == 7);
    CHECK(test::children_of(::getpid()).empty());
}

TEST_CASE("design 5.6: under pool_exit::terminate the destructor terminates, as CPython's `with Pool()`",
          "[pool][lifecycle][design5]") {
    pooltest::tokens tokens; // never released
    pooltest::reports reports;
    async_result<int> r;
    {
        basic_pool<pool_exit::terminate> p(1);
        r = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 7);
        (void)reports.line();
    }
    CHECK(r.ready());
    CHECK_THROWS_AS(r.get(), broken_pool);
    CHECK(test::children_of(::getpid()).empty());
}

TEST_CASE("maxtasksperchild replaces each worker after that many tasks", "[pool][lifecycle]") {
    pool p(pool_options{1, {}, 2});
    std::map<pid_t, int> tasks_of;
    for (int i = 0; i < 6; ++i) ++tasks_of[p.apply(pooltest::worker_pid)];
    CHECK(tasks_of.size() == 3);
    for (auto& [pid, n] : tasks_of) CHECK(n == 2);
    // A map's chunks count as tasks, as in CPython.
    auto ys = p.map(square, std::vector<int>{1, 2, 3, 4, 5, 6, 7}, 1);
    CHECK(ys == std::vector<int>{1, 4, 9, 16, 25, 36, 49});
}

TEST_CASE("the initializer runs once in each worker, replacements included", "[pool][lifecycle][initializer]") {
    pooltest::reports reports;
    {
        pool p(2, report_init, std::tuple{reports.fd()}, 3);
        std::set<pid_t> used;
        for (int i = 0; i < 12; ++i) used.insert(p.apply(pooltest::worker_pid));
        p.close();
        p.join();
        reports.p.close_w();
        std::string text = test::read_all(reports.p.r);
        std::set<std::string> lines;
        std::size_t n = 0;
        for (std::size_t at = 0; (at = text.find("init ", at)) != std::string::npos; at += 5) ++n;
        for (pid_t pid : used) CHECK(test::count(text, "init " + std::to_string(pid) + "\n") == 1);
        CHECK(n >= used.size()); // every worker, used or not, ran it exactly once
    }
}

TEST_CASE("an initializer that throws breaks the pool with a clear error instead of respawning forever",
          "[pool][lifecycle][initializer]") {
    auto fds = test::open_fds();
    {
        pool p(pool_options{2, failing_init, {}});
        try {
            (void)p.apply(square, 2);
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK_THAT(std::string(e.what()),
                       Catch::Matchers::Matches("multiproc: the pool's initializer raised std::runtime_error: no "
                                                "database in (Fork|Spawn|ForkServer)PoolWorker-\\d+ \\(pid \\d+\\); the pool is broken and "
                                                "runs no more tasks"));
        }
        CHECK_THROWS_AS(p.apply(square, 2), broken_pool); // and stays so
        CHECK_THROWS_AS(p.map(square, std::vector<int>{1, 2}), broken_pool);
        p.close();
        p.join();
    }
    CHECK(test::children_of(::getpid()).empty());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

TEST_CASE("a worker killed before its initializer started is replaced: the pool does not break",
          "[pool][lifecycle][initializer]") {
    // A random SIGKILL often lands while a worker is starting; only an initializer that
    // really failed may break the pool. (Under fork only: the fault hook is this process's.)
    for (bool trivial : {false, true}) {
        INFO("trivial initializer: " << trivial);
        init_mark = 0;
        die_before_initializer deaths(2);
        pool p = trivial ? pool(pool_options{2, [] {}}) : pool(2, set_init_mark, std::tuple{5});
        auto marks = p.map(read_init_mark, std::vector<int>(40, 0), 1);
        CHECK(deaths.all_taken()); // two workers died before their initializer
        CHECK(marks == std::vector<int>(40, trivial ? 0 : 5));
        CHECK(p.apply(square, 3) == 9);
    }
}

TEMPLATE_TEST_CASE("a worker killed after its initializer completed is an ordinary dying worker",
                   "[pool][lifecycle][initializer]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pooltest::pool_of<TestType> p(1, fn<&set_init_mark>, std::tuple{5});
    // Mid-task: the task fails with broken_pool naming the signal; a replacement takes over.
    auto r = p.apply_async(fn<&pooltest::report_pid_then_wait_at>, reports.path(), tokens.path());
    const pid_t first = std::stoi(reports.line());
    ::kill(first, SIGKILL);
    CHECK_THROWS_WITH(r.get(), Catch::Contains("was killed by signal 9 (SIGKILL) while running task 0"));
    // Idle, between tasks: nothing fails.
    const pid_t second = p.apply(fn<&pooltest::worker_pid>);
    CHECK(second != first);
    ::kill(second, SIGKILL);
    CHECK(test::wait_exit(second));
    CHECK(p.apply(fn<&read_init_mark>, 0) == 5); // a third worker, initialized
    CHECK(p.apply(fn<&pooltest::worker_pid>) != second);
}

TEMPLATE_TEST_CASE("an initializer that dies breaks the pool, naming how", "[pool][lifecycle][initializer]",
                   START_METHODS) {
    {
        pooltest::pool_of<TestType> p(1, fn<&init_exits>, std::tuple{7});
        CHECK_THROWS_WITH(p.apply(fn<&square>, 2),
                          Catch::Matches("multiproc: the pool's initializer did not complete: the worker exited with "
                                         "code 7 in (Fork|Spawn|ForkServer)PoolWorker-\\d+ \\(pid \\d+\\); the pool is broken and runs no "
                                         "more tasks"));
    }
    {
        pooltest::pool_of<TestType> p(1, fn<&init_killed>);
        CHECK_THROWS_WITH(p.apply(fn<&square>, 2),
                          Catch::Contains("the pool's initializer did not complete: the worker was killed by signal 9"));
        CHECK_THROWS_AS(p.apply(fn<&square>, 2), broken_pool);
    }
}

TEST_CASE("a pool worker may not start processes: it is a daemon", "[pool][lifecycle]") {
    pool p(1);
    try {
        p.apply([] {
            process child([] {});
            child.start();
        });
        FAIL("no remote_error");
    } catch (const remote_error& e) {
        CHECK(e.type_name() == "multiproc::state_error");
        CHECK(e.message() == "daemonic processes are not allowed to have children");
    }
}

TEST_CASE("a failed fork while starting the pool is an os_error, and leaks nothing", "[pool][lifecycle][sys]") {
    auto fds = test::open_fds();
    {
        test::inject fail(detail::sys::call::fork, EAGAIN);
        CHECK_THROWS_AS(pool(2), os_error);
    }
    {
        test::inject fail(detail::sys::call::eventfd, EMFILE);
        CHECK_THROWS_WITH(pool(2), "multiproc: eventfd for a pool: Too many open files");
    }
    {
        test::inject fail(detail::sys::call::memfd_create, ENOMEM);
        CHECK_THROWS_AS(pool(2), os_error);
    }
    CHECK(test::children_of(::getpid()).empty());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    pool p(2); // nothing is left broken
    CHECK(p.apply(square, 3) == 9);
}

TEST_CASE("submitting from many threads at once", "[pool][threads]") {
    pool p(2);
    std::vector<std::thread> ts;
    std::atomic<int> good{0};
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) good += p.apply(square, t * 1000 + i) == (t * 1000 + i) * (t * 1000 + i);
            auto ys = p.map(square, std::vector<int>{1, 2, 3});
            good += ys == std::vector<int>{1, 4, 9};
        });
    for (auto& t : ts) t.join();
    CHECK(good == 4 * 201);
}

TEST_CASE("a child process may make and use a pool of its own, but not its parent's", "[pool][lifecycle]") {
    pool outer(1);
    CHECK(outer.apply(square, 2) == 4); // (the owner check has read this process's id before the fork)
    process child([&outer] {
        pool inner(2);
        int r = inner.apply(square, 6);
        bool refused = false;
        try {
            (void)outer.apply(square, 1); // inherited: not this process's pool
        } catch (const state_error& e) {
            refused = std::string(e.what()) == "multiproc: a pool can only be used by the process that created it";
        }
        std::_Exit(r == 36 && refused ? 0 : 1);
    });
    child.start();
    child.join();
    CHECK(child.exitcode() == 0);
    CHECK(outer.apply(square, 7) == 49);
}

// Python: `pool = Pool(2)` at a script's top. Here the workers fork during static
// initialisation, before the program's task registrations: they run the tasks all the same
// (the code the parent names is at the same address in a fork), and the pool, a static,
// ends its workers when the program exits.
TEST_CASE("a pool made at namespace scope, before the tasks' registrations, runs them", "[pool][lifecycle]") {
    auto r = test::run_program("static_pool");
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    std::vector<pid_t> workers;
    std::string rest;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("worker ", 0) == 0)
            workers.push_back(std::stoi(line.substr(7)));
        else
            rest += line + "\n";
    }
    CHECK(workers.size() == 2);
    CHECK(rest == "invokers registered before the pool was made: 0, after: some\n1 4 9 16 \n42\n25 36 \ndone\n");
    for (pid_t w : workers) CHECK(test::wait_exit(w)); // gone with the program
}
