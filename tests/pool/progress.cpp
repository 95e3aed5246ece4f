// The pool's observer (issue 17 item 4): every task is counted once queued and once ended
// (finished, failed or cancelled), with the worker that ran it; it is called under the pool's
// lock, so one that calls into its pool gets state_error instead of a deadlock; views::imap
// drives a progress display with it. Under every start method.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {
using pooltest::pool_of;
using pooltest::square;
using ev = pool_event::kind;

/// Every event, as told: tasks per kind and worker pid.
struct recorder {
    std::mutex mu; // (read by the test while the pool may still call)
    std::map<std::pair<ev, pid_t>, std::uint64_t> tasks;
    std::map<pid_t, std::string> names;
    bool overlapped = false;
    int inside = 0;

    void operator()(const pool_event& e) {
        std::lock_guard lk(mu);
        overlapped |= inside++ != 0;
        tasks[{e.what, e.worker}] += e.tasks;
        if (e.worker) names[e.worker] = std::string(e.worker_name);
        --inside;
    }
    std::uint64_t total(ev k) {
        std::lock_guard lk(mu);
        std::uint64_t n = 0;
        for (auto& [key, v] : tasks)
            if (key.first == k) n += v;
        return n;
    }
    std::uint64_t on(ev k, pid_t worker) {
        std::lock_guard lk(mu);
        auto it = tasks.find({k, worker});
        return it == tasks.end() ? 0 : it->second;
    }
};

int throws_on_3(int x) {
    if (x == 3) throw std::runtime_error("three");
    return x;
}

[[noreturn]] int dies(int code) { ::_exit(code); }

pid_t worker_pid_of(int) { return ::getpid(); }

using pooltest::started_then_blocked;
} // namespace

TEMPLATE_TEST_CASE("an observer sees each task queued once and ended once, on the worker that ran it",
                   "[pool][progress]", START_METHODS) {
    recorder rec;
    pool_progress progress;
    {
        pool_of<TestType> p(pool_options{.processes = 2, .observer = std::ref(rec)});
        p.observe([&](const pool_event& e) { // both: the recorder, and the ready-made counter
            rec(e);
            progress(e);
        });
        // chunks of one: each result names its worker, and each event is one task
        std::vector<int> xs(60);
        for (int i = 0; i < 60; ++i) xs[static_cast<std::size_t>(i)] = i;
        const auto pids = p.map(fn<&worker_pid_of>, xs, 1);
        std::map<pid_t, std::uint64_t> ran;
        for (pid_t pid : pids) ++ran[pid];
        // ... and chunks of 7, with a failing element, through map_async, apply and imap
        auto failing = p.map_async(fn<&throws_on_3>, xs, 7);
        CHECK_THROWS_AS(failing.get(), remote_error);
        CHECK(p.apply(fn<&square>, 4) == 16);
        int sum = 0;
        for (int v : p.imap(fn<&square>, std::vector<int>{1, 2, 3})) sum += v;
        CHECK(sum == 14);
        p.close();
        p.join();
        for (auto [pid, n] : ran) {
            INFO("worker " << pid);
            CHECK(rec.on(ev::finished, pid) >= n); // (it may also have run chunks of the other calls)
            CHECK(test::pool_worker_prefix(rec.names[pid]) != 0);
        }
    }
    const std::uint64_t queued = 60 + 60 + 1 + 3;
    CHECK(rec.total(ev::queued) == queued);
    CHECK(rec.on(ev::queued, 0) == queued); // queued: no worker yet
    CHECK(rec.total(ev::finished) == queued - 1);
    CHECK(rec.total(ev::failed) == 1);
    CHECK(rec.total(ev::cancelled) == 0);
    CHECK(rec.total(ev::started) >= queued);
    CHECK(rec.on(ev::started, 0) == 0);
    CHECK(rec.on(ev::finished, 0) == 0);
    CHECK_FALSE(rec.overlapped);
    CHECK(progress.queued() == queued);
    CHECK(progress.finished() == queued - 1);
    CHECK(progress.failed() == 1);
    CHECK(progress.done() == queued);
    CHECK(progress.started() == rec.total(ev::started));
}

TEMPLATE_TEST_CASE("an observer counts a task whose worker died as failed there, and cancelled ones as cancelled",
                   "[pool][progress]", START_METHODS) {
    pooltest::named_pipe reports, tokens;
    recorder rec;
    pool_of<TestType> p(pool_options{.processes = 1, .observer = std::ref(rec)});
    auto lost = p.apply_async(fn<&dies>, 7);
    try {
        lost.get(120s);
        FAIL("the task's worker died: it cannot have a result");
    } catch (const broken_pool& e) {
        REQUIRE(e.pid() != 0);
        CHECK(rec.on(ev::failed, e.pid()) == 1);
        CHECK(rec.on(ev::started, e.pid()) == 1);
    }
    auto running = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 1);
    const pid_t pid = std::stoi(reports.line());
    auto queued = p.map_async(fn<&square>, std::vector<int>{1, 2, 3, 4}, 2);
    CHECK(queued.cancel()); // nothing of it has started
    CHECK(rec.on(ev::cancelled, 0) == 4);
    CHECK(running.cancel(cancel_mode::kill_running));
    CHECK_THROWS_AS(running.get(120s), cancelled_error);
    CHECK(p.apply(fn<&square>, 5) == 25);
    p.close();
    p.join(); // (the cancelled task ends once the engine has settled its killed worker)
    CHECK(rec.on(ev::cancelled, pid) == 1);
    CHECK(rec.total(ev::queued) == 1 + 1 + 4 + 1);
    CHECK(rec.total(ev::finished) == 1);
    CHECK(rec.total(ev::failed) == 1);
    CHECK(rec.total(ev::cancelled) == 5);
}

TEMPLATE_TEST_CASE("views::imap drives a progress display: over endless input it stays within the window",
                   "[pool][progress][imap]", START_METHODS) {
    pool_progress progress;
    std::vector<std::string> lines;
    {
        pool_of<TestType> p(2);
        p.observe(std::ref(progress));
        std::uint64_t seen = 0;
        for (int v : ranges::views::iota(0) | views::imap(p, fn<&square>) | ranges::views::take(300)) {
            ++seen;
            CHECK(v == static_cast<int>((seen - 1) * (seen - 1)));
            // What a progress line shows: ended tasks trail nothing yielded, and what is
            // queued is bounded by the view's window, however long the input.
            REQUIRE(progress.done() >= seen);
            REQUIRE(progress.queued() - seen <= 4096);
            if (seen % 100 == 0)
                lines.push_back(std::to_string(progress.done()) + " done of " + std::to_string(progress.queued()) +
                                " queued");
        }
        CHECK(seen == 300);
        p.close();
        p.join();
    }
    CHECK(lines.size() == 3);
    // Once the pool has stopped, every task queued has ended.
    CHECK(progress.queued() == progress.done());
    CHECK(progress.failed() == 0);
}

TEMPLATE_TEST_CASE("an observer that calls into its pool gets state_error, one that throws is reported, the pool goes on",
                   "[pool][progress]", START_METHODS) {
    pooltest::stderr_capture err;
    std::string caught;
    {
        pool_of<TestType> p(2);
        bool tried = false;
        p.observe([&](const pool_event&) {
            if (tried) throw std::runtime_error("observer failed on purpose");
            tried = true;
            try {
                (void)p.apply_async(fn<&square>, 2);
            } catch (const state_error& e) {
                caught = e.what();
            }
        });
        CHECK(p.map(fn<&square>, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 4, 9});
        p.observe({}); // none any more
        CHECK(p.apply(fn<&square>, 6) == 36);
        p.close();
        p.join();
    }
    const std::string out = err.finish();
    CHECK_THAT(caught, Contains("a pool observer cannot call into its pool"));
    CHECK_THAT(out, Contains("exception in a pool observer") && Contains("observer failed on purpose"));
}

// Review of issue 17 item 4: observe() marks the thread as running this pool's observer and
// then clears the mark instead of restoring the one before, so an observer that submits to
// another pool with an observer (which runs in this thread, under that pool's lock) loses
// its mark, and a later call into its own pool relocks the pool's std::mutex: a deadlock
// instead of state_error.
TEST_CASE("an observer that submitted to another observed pool still gets state_error from its own",
          "[pool][progress]") {
    CHECK(pooltest::true_in_child_within(
        [] {
            basic_pool<start::thread> other(1);
            other.observe([](const pool_event&) {});
            basic_pool<start::thread> p(1);
            bool tried = false, caught = false;
            p.observe([&](const pool_event& e) {
                if (tried || e.what != ev::queued) return;
                tried = true;
                (void)other.apply_async(fn<&square>, 1); // other's observer runs here, in this thread
                try {
                    (void)p.apply_async(fn<&square>, 2);
                } catch (const state_error&) {
                    caught = true;
                }
            });
            (void)p.apply(fn<&square>, 3);
            return caught;
        },
        30s));
}
