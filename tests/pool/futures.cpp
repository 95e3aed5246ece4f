// Executor-style calls (issue 17): submit returns an async_result that can be cancelled,
// asked whether it runs, given done callbacks; a task past its timeout is stopped (its worker
// killed and replaced) and fails with timeout_error. Under every start method; tasks that
// must block wait on a named pipe, so that the test decides when they end.
#include "pool/helpers.hpp"

#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {
using pooltest::pool_of;
using pooltest::square;

using pooltest::started_then_blocked;

/// As started_then_blocked, with its arguments in one tuple (an imap element).
int started_then_blocked_tuple(std::tuple<std::string, std::string, int> a) {
    return started_then_blocked(std::get<0>(a), std::get<1>(a), std::get<2>(a));
}

/// Never returns: blocked in read(2) on a pipe nobody writes to.
int blocked_forever(int) {
    int fds[2];
    if (::pipe(fds) != 0) std::_Exit(3);
    char c;
    for (;;) (void)::read(fds[0], &c, 1);
}

/// Never returns: spins without a system call.
int spins_forever(int) {
    volatile unsigned long n = 0;
    for (;;) n = n + 1;
}

std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

int throws_runtime(int) { throw std::runtime_error("failed on purpose"); }

/// x * x, except for 5, which blocks forever.
int square_but_5_blocks(int x) { return x == 5 ? blocked_forever(x) : x * x; }

/// Blocks forever the first time (it leaves a file at `marker` first), returns v after.
int blocks_once(std::string marker, int v) {
    int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return v; // the file is there: a second attempt
    ::close(fd);
    return blocked_forever(v);
}

/// A coroutine that starts at once and is never awaited (the test waits on a promise).
struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

/// Awaits `ready` (complete already: no suspension), then a chain of calls, each on the
/// result of the one before, then a call that throws; reports what it saw and the threads.
template <class Pool>
detached chain(Pool& p, async_result<int> ready, std::promise<std::vector<int>>& out, std::thread::id& first_thread,
               std::thread::id& resumed_in) {
    std::vector<int> got;
    const int first = co_await ready;
    got.push_back(first);
    first_thread = std::this_thread::get_id();
    int x = 2;
    for (int i = 0; i < 3; ++i) {
        x = co_await p.submit(fn<&square>, x);
        got.push_back(x);
    }
    resumed_in = std::this_thread::get_id();
    try {
        const int never = co_await p.submit(fn<&throws_runtime>, 0);
        got.push_back(never);
    } catch (const remote_error& e) {
        got.push_back(e.message() == "failed on purpose" ? -1 : -2);
    }
    out.set_value(std::move(got));
}

bool readable(int fd, int timeout_ms) {
    pollfd pfd{fd, POLLIN, 0};
    return ::poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN) != 0;
}

template <class R>
error_ptr failure_of(R& r) {
    auto e = r.exception(120s);
    REQUIRE(e);
    return e;
}
} // namespace

TEMPLATE_TEST_CASE("submit: the result, done(), exception() and done callbacks", "[pool][futures]", START_METHODS) {
    pool_of<TestType> p(2);
    auto r = p.submit(fn<&square>, 7);
    std::promise<int> seen;
    r.add_done_callback([&](const async_result<int>& done) { seen.set_value(done.get()); });
    CHECK(r.get() == 49);
    CHECK(r.done());
    CHECK_FALSE(r.running());
    CHECK_FALSE(r.cancelled());
    CHECK_FALSE(r.exception());
    auto f = seen.get_future();
    REQUIRE(f.wait_for(120s) == std::future_status::ready);
    CHECK(f.get() == 49);
    // On a result that is ready already, the callback runs at once, in this thread.
    std::thread::id ran_in;
    r.add_done_callback([&](const async_result<int>&) { ran_in = std::this_thread::get_id(); });
    CHECK(ran_in == std::this_thread::get_id());
    // A callback that throws is reported and ignored; the pool goes on.
    auto q = p.submit(fn<&square>, 2);
    q.wait();
    q.add_done_callback([](const async_result<int>&) { throw std::runtime_error("from a done callback"); });
    CHECK(p.apply(fn<&square>, 3) == 9);
}

TEMPLATE_TEST_CASE("cancel drops a queued task at once, a running one goes on unless killed",
                   "[pool][futures][cancel]", START_METHODS) {
    for (bool warmed : {false, true}) {
        INFO((warmed ? "after short tasks (queued in the worker's ring)" : "fresh pool (queued in the pool)"));
        pooltest::named_pipe reports, tokens;
        pool_of<TestType> p(1);
        if (warmed) CHECK(p.map(fn<&square>, std::vector<int>(200, 3), 1).size() == 200);
        auto first = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1);
        (void)reports.line(); // it runs
        auto second = p.submit(fn<&square>, 5);
        CHECK(first.running());
        CHECK_FALSE(second.running());
        CHECK(second.cancel());
        CHECK(second.cancelled());
        CHECK(second.done());
        CHECK(second.cancel()); // again: still cancelled
        CHECK(failure_of(second).code() == errc::cancelled_error);
        CHECK_THROWS_AS(second.get(), cancelled_error);
        // Running, and not to be killed: not cancelled.
        CHECK_FALSE(first.cancel());
        CHECK_FALSE(first.cancelled());
        tokens.release();
        CHECK(first.get() == 1);
        CHECK_FALSE(first.cancel()); // complete
        CHECK(p.apply(fn<&square>, 4) == 16);
    }
}

TEMPLATE_TEST_CASE("cancel(kill_running) kills the worker of a running task, which fails alone",
                   "[pool][futures][cancel]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(2);
    auto r = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1);
    const pid_t pid = std::stoi(reports.line());
    auto other = p.submit(fn<&square>, 6);
    CHECK(other.get() == 36);
    CHECK(r.cancel(cancel_mode::kill_running));
    CHECK(r.cancelled());
    auto e = failure_of(r);
    CHECK(e.code() == errc::cancelled_error);
    CHECK_THAT(std::string(e.what()), Contains("cancelled while it ran in") && Contains(std::to_string(pid)));
    CHECK(test::wait_exit(pid));
    // The pool goes on without it.
    CHECK(p.apply(fn<&square>, 9) == 81);
    CHECK(pooltest::worker_pids().count(pid) == 0);
}

TEMPLATE_TEST_CASE("a task past the pool's task_timeout fails with timeout_error, and its worker is replaced",
                   "[pool][futures][timeout]", START_METHODS) {
    pool_of<TestType> p(pool_options{.processes = 1, .task_timeout = 200ms});
    for (auto task : {&blocked_forever, &spins_forever}) {
        INFO((task == &blocked_forever ? "blocked in a system call" : "spinning"));
        auto r = task == &blocked_forever ? p.submit(fn<&blocked_forever>, 1) : p.submit(fn<&spins_forever>, 1);
        auto e = failure_of(r);
        CHECK(e.code() == errc::timeout_error);
        CHECK_THAT(std::string(e.what()), Contains("task 0 ran longer than its timeout of 200 ms in ") && Contains("PoolWorker-") &&
                                 Contains("which was killed; a new worker takes its place"));
        CHECK_THROWS_AS(r.get(), timeout_error);
        CHECK(p.apply(fn<&square>, 4) == 16); // within its time
    }
}

TEMPLATE_TEST_CASE("a per-call timeout, and map's element past it fails alone, the rest of its chunk runs",
                   "[pool][futures][timeout]", START_METHODS) {
    pool_of<TestType> p(2);
    auto r = p.submit(task_options{.timeout = 200ms}, fn<&blocked_forever>, 1);
    CHECK(failure_of(r).code() == errc::timeout_error);
    CHECK(p.submit(task_options{.timeout = 60s}, fn<&square>, 3).get() == 9);
    CHECK_THROWS_AS(p.submit(task_options{.timeout = -1s}, fn<&square>, 3), value_error);

    pool_of<TestType> q(pool_options{.processes = 2, .task_timeout = 300ms});
    std::vector<int> xs{0, 1, 2, 3, 4, 5, 6, 7};
    std::vector<std::string> got;
    auto ys = q.imap(fn<&square_but_5_blocks>, xs, 8); // one chunk
    for (auto it = ys.begin(); it != ys.end(); ++it) {
        try {
            got.push_back(std::to_string(*it));
        } catch (const timeout_error& e) {
            CHECK_THAT(std::string(e.what()), Contains("task 5 ran longer than its timeout of 300 ms"));
            got.push_back("timeout");
        }
    }
    CHECK(got == std::vector<std::string>{"0", "1", "4", "9", "16", "timeout", "36", "49"});
    CHECK_THROWS_AS(q.map(fn<&square_but_5_blocks>, xs, 3), timeout_error);
}

TEMPLATE_TEST_CASE("under worker_death::retry<N>, a task past its timeout runs again", "[pool][futures][timeout]",
                   START_METHODS) {
    pooltest::named_pipe scratch; // (its directory holds the marker)
    pool_of<TestType, worker_death::retry<1>> p(pool_options{.processes = 1, .task_timeout = 200ms});
    CHECK(p.apply(fn<&blocks_once>, scratch.dir + "/marker", 11) == 11);
    ::unlink((scratch.dir + "/marker").c_str());
    // Past its time on every attempt: fails after 1 + 1.
    auto r = p.submit(fn<&blocked_forever>, 1);
    auto e = failure_of(r);
    CHECK(e.code() == errc::timeout_error);
    CHECK_THAT(std::string(e.what()), Contains("(on each of 2 attempts)"));
}

TEMPLATE_TEST_CASE("cancel(kill_running) of a chunk: the rest of the chunk is not run again, the call fails at once",
                   "[pool][futures][cancel]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(1);
    std::vector<std::tuple<std::string, std::string, int>> args(4, {reports.path(), tokens.path(), 0});
    auto r = p.starmap_async(fn<&started_then_blocked>, args, 4); // one chunk: each element would block
    const pid_t pid = std::stoi(reports.line());
    CHECK(r.running());
    CHECK(r.cancel(cancel_mode::kill_running));
    CHECK(failure_of(r).code() == errc::cancelled_error);
    CHECK(test::wait_exit(pid));
    CHECK(p.apply(fn<&square>, 5) == 25); // no element of the chunk holds the new worker
}

TEMPLATE_TEST_CASE("a timed task submitted from a done callback (the engine's thread) is still stopped in time",
                   "[pool][futures][timeout]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(2);
    auto first = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1);
    (void)reports.line();
    std::promise<async_result<int>> inner;
    first.add_done_callback([&](const async_result<int>&) {
        inner.set_value(p.submit(task_options{.timeout = 200ms}, fn<&blocked_forever>, 1));
    });
    tokens.release(); // first completes; its callback runs in the engine thread
    auto f = inner.get_future();
    REQUIRE(f.wait_for(120s) == std::future_status::ready);
    auto r = f.get();
    CHECK(failure_of(r).code() == errc::timeout_error);
}

TEMPLATE_TEST_CASE("wait: first_completed, first_exception, all_completed, and a timeout", "[pool][futures][wait]",
                   START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(3);
    std::vector<async_result<int>> rs{p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1)};
    (void)reports.line(); // it runs, and waits for a token
    rs.push_back(p.submit(fn<&square>, 3));

    auto first = wait(rs, return_when::first_completed);
    REQUIRE(first.done.size() == 1);
    CHECK(first.done[0].get() == 9);
    REQUIRE(first.not_done.size() == 1);
    CHECK_FALSE(first.not_done[0].ready());

    auto timed_out = wait(rs, 50ms); // all_completed, which cannot happen yet: not an error
    CHECK(timed_out.done.size() == 1);
    CHECK(timed_out.not_done.size() == 1);

    rs.push_back(p.submit(fn<&throws_runtime>, 0));
    auto failed = wait(rs, return_when::first_exception);
    CHECK(failed.done.size() == 2);
    REQUIRE(failed.not_done.size() == 1);
    CHECK(failed.not_done[0].running());

    tokens.release();
    auto all = wait(rs, 120s);
    CHECK(all.done.size() == 3);
    CHECK(all.not_done.empty());
    CHECK(rs[0].get() == 1);
    CHECK(wait(std::vector<async_result<int>>{}, return_when::first_completed).done.empty());
}

TEMPLATE_TEST_CASE("as_completed yields results as they complete, and times out", "[pool][futures][as_completed]",
                   START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(2);
    std::vector<async_result<int>> rs{p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1)};
    (void)reports.line();
    rs.push_back(p.submit(fn<&square>, 4));
    std::vector<int> order;
    for (const auto& r : as_completed(rs)) {
        order.push_back(r.get());
        if (order.size() == 1) tokens.release(); // the blocked one may finish only now
    }
    CHECK(order == std::vector<int>{16, 1});

    std::vector<async_result<int>> more{p.submit(fn<&square>, 5),
                                        p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 2)};
    (void)reports.line();
    more[0].wait(); // complete before the clock starts: the first step cannot time out
    auto view = as_completed(more, 100ms);
    auto it = view.begin();
    CHECK((*it).get() == 25);
    try {
        ++it;
        FAIL("no timeout_error");
    } catch (const timeout_error& e) {
        CHECK(std::string(e.what()) == "multiproc: 1 (of 2) results unfinished");
    }
    tokens.release();
    CHECK(more[1].get() == 2);
}

TEST_CASE("wait and as_completed take a result given twice once, as Python's sets, and == tells the same result",
          "[pool][futures][wait]") {
    pool_of<by_fork> p(1);
    auto a = p.submit(fn<&square>, 3);
    auto b = p.submit(fn<&square>, 4);
    const auto copy = a;
    CHECK(copy == a);
    CHECK_FALSE(a == b);
    CHECK(async_result<int>() == async_result<int>());
    const std::vector<async_result<int>> rs{a, copy, b, a};
    auto all = wait(rs);
    REQUIRE(all.done.size() == 2); // (before: 4)
    CHECK(all.done[0] == a);
    CHECK(all.done[1] == b);
    CHECK(all.not_done.empty());
    std::vector<int> got;
    for (const auto& r : as_completed(rs)) got.push_back(r.get());
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<int>{9, 16});
}

TEMPLATE_TEST_CASE("shutdown(wait, cancel_futures): queued tasks cancelled, running ones complete",
                   "[pool][futures][shutdown]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(1);
    auto running = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 7);
    (void)reports.line();
    auto queued = p.submit(fn<&square>, 2);
    auto mapped = p.map_async(fn<&square>, std::vector<int>{1, 2, 3}, 1);
    p.shutdown(/*wait=*/false, /*cancel_futures=*/true);
    CHECK(queued.cancelled());
    CHECK(queued.done()); // at once, as Python's
    CHECK_THROWS_AS(queued.get(), cancelled_error);
    CHECK(failure_of(mapped).code() == errc::cancelled_error);
    CHECK(mapped.cancelled());
    CHECK_THROWS_AS(p.submit(fn<&square>, 2), value_error); // no new work after shutdown
    CHECK_FALSE(running.done());
    tokens.release();
    p.shutdown(); // waits for the running one and the worker
    CHECK(running.get() == 7);
}

TEMPLATE_TEST_CASE("sentinel: a descriptor that polls readable once the call is complete", "[pool][futures][async]",
                   START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(2);
    auto r = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 3);
    (void)reports.line();
    const int fd = r.sentinel();
    CHECK(fd >= 0);
    CHECK(r.sentinel() == fd); // one per result, shared by its copies
    CHECK_FALSE(readable(fd, 0));
    tokens.release();
    CHECK(readable(fd, 120000));
    CHECK(r.ready());
    CHECK(r.get() == 3);
    auto done = p.submit(fn<&square>, 2);
    done.wait();
    CHECK(readable(done.sentinel(), 0)); // made after completion: readable at once
}

TEMPLATE_TEST_CASE("co_await: a coroutine drives a chain of pool calls, and gets their errors",
                   "[pool][futures][async]", START_METHODS) {
    pool_of<TestType> p(2);
    auto ready = p.submit(fn<&square>, 7);
    ready.wait();
    std::promise<std::vector<int>> out;
    std::thread::id first, resumed;
    chain(p, ready, out, first, resumed);
    auto f = out.get_future();
    REQUIRE(f.wait_for(120s) == std::future_status::ready);
    CHECK(f.get() == std::vector<int>{49, 4, 16, 256, -1});
    CHECK(first == std::this_thread::get_id()); // a complete result: no suspension
    CHECK(resumed != std::this_thread::get_id()); // resumed by the pool's engine thread
}

TEMPLATE_TEST_CASE("terminate_workers and kill_workers stop every worker, and calls not complete fail",
                   "[pool][futures][terminate]", START_METHODS) {
    for (bool kill : {false, true}) {
        INFO((kill ? "kill_workers" : "terminate_workers"));
        pooltest::named_pipe reports, tokens;
        pool_of<TestType> p(2);
        auto r = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1);
        const pid_t pid = std::stoi(reports.line());
        if (kill)
            p.kill_workers();
        else
            p.terminate_workers();
        CHECK(test::wait_exit(pid));
        CHECK(pooltest::worker_pids().empty());
        CHECK(failure_of(r).code() == errc::broken_pool);
        CHECK_THROWS_AS(p.submit(fn<&square>, 2), value_error);
        p.join();
    }
}

TEMPLATE_TEST_CASE("imap's next(timeout): timeout_error while the next result is not ready, then the results",
                   "[pool][futures][imap]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(2);
    std::vector<std::tuple<std::string, std::string, int>> args{{reports.path(), tokens.path(), 10},
                                                                {reports.path(), tokens.path(), 20}};
    auto it = p.imap(fn<&started_then_blocked_tuple>, args);
    CHECK_THROWS_AS(it.next(50ms), timeout_error); // nothing can be ready: the tasks wait for tokens
    (void)reports.line();
    (void)reports.line();
    CHECK_THROWS_WITH(it.next(0ms), "multiproc: the next imap result was not ready within the timeout");
    tokens.release(2);
    CHECK(it.next(120s) == std::optional<int>(10));
    CHECK(it.next() == std::optional<int>(20));
    CHECK(it.next() == std::nullopt);
    CHECK(it.next(1s) == std::nullopt);
}

TEMPLATE_TEST_CASE("map over several ranges: f(a, b) up to the end of the shortest", "[pool][futures][map]",
                   START_METHODS) {
    pool_of<TestType> p(2);
    const std::vector<std::string> words{"ab", "c", "", "xyz"};
    const std::vector<int> times{2, 3, 4};
    CHECK(p.map(fn<&repeat>, words, times) == std::vector<std::string>{"abab", "ccc", ""});
    CHECK(p.map(fn<&repeat>, words, std::vector<int>{}).empty());
}

TEMPLATE_TEST_CASE("map with a timeout (Executor.map): timeout_error once it passes, what has not started is cancelled",
                   "[pool][futures][map][timeout]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_progress progress;
    pool_of<TestType> p(1);
    p.observe(std::ref(progress));
    // In time: the results, as map gives them, over one range or several.
    CHECK(p.map(60s, fn<&square>, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 4, 9});
    CHECK(p.map(60s, fn<&repeat>, std::vector<std::string>{"a", "b"}, std::vector<int>{2, 3, 4}) ==
          std::vector<std::string>{"aa", "bbb"});
    // The first of four tasks blocks its worker, the only one: the call times out.
    std::vector<std::string> r(4, reports.path()), t(4, tokens.path());
    std::vector<int> v{1, 2, 3, 4};
    try {
        (void)p.map(200ms, fn<&started_then_blocked>, r, t, v);
        FAIL("the first task blocks until the test releases it: map cannot have returned");
    } catch (const timeout_error& e) {
        CHECK_THAT(std::string(e.what()), Contains("within its timeout of 200 ms") &&
                                              Contains("the tasks no worker had started are cancelled"));
    }
    (void)reports.line(); // the first task ran
    CHECK(progress.cancelled() == 3); // the other three never will
    tokens.release(); // the first completes; its result is dropped
    CHECK(p.apply(fn<&square>, 5) == 25);
    p.close();
    p.join();
    CHECK(progress.finished() == 3 + 2 + 1 + 1);
    CHECK(progress.queued() == progress.done());
}

TEMPLATE_TEST_CASE("shutdown(cancel_futures) with a map chunk running: that chunk completes, the rest is cancelled",
                   "[pool][futures][shutdown]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    pool_of<TestType> p(1);
    std::vector<std::tuple<std::string, std::string, int>> args{{reports.path(), tokens.path(), 10},
                                                                {reports.path(), tokens.path(), 20}};
    auto mapped = p.starmap_async(fn<&started_then_blocked>, args, 1);
    (void)reports.line(); // the first chunk runs
    p.shutdown(false, true);
    CHECK_FALSE(mapped.cancelled()); // not wholly: a chunk of it runs
    tokens.release();
    CHECK(failure_of(mapped).code() == errc::cancelled_error); // the second chunk's
    p.join();
}
