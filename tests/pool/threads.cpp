// start::thread (issue 17 item 6; Python: multiprocessing.pool.ThreadPool): a pool whose
// workers are threads of this process has the whole pool API, so a template written over
// the start method runs unchanged; what a thread cannot do (be killed) is refused or
// documented, never pretended.
#include "pool/helpers.hpp"

#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {
using pooltest::square;
using by_thread = context<start::thread>;

int add(int a, int b) { return a + b; }
int throws_on_3(int x) {
    if (x == 3) throw std::out_of_range("three");
    return x;
}
pid_t process_of(int) { return ::getpid(); }
pid_t thread_of(int) { return static_cast<pid_t>(::syscall(SYS_gettid)); }

using pooltest::started_then_blocked;

/// Tasks this thread has run (each worker thread counts its own).
int tasks_of_this_thread(int) {
    thread_local int n = 0;
    return ++n;
}

std::atomic<int> initialized{0};
void count_initializer() { initialized.fetch_add(1); }
void failing_initializer() { throw std::runtime_error("no database"); }

/// A user's template over the start method: the same code for processes and threads.
template <class Start>
std::vector<std::string> user_job() {
    basic_pool<Start> p(2);
    std::vector<std::string> out;
    for (int v : p.map(fn<&square>, std::vector<int>{1, 2, 3})) out.push_back(std::to_string(v));
    out.push_back(std::to_string(p.apply(fn<&add>, 2, 3)));
    for (int v : p.starmap(fn<&add>, std::vector<std::pair<int, int>>{{1, 1}, {2, 2}})) out.push_back(std::to_string(v));
    for (int v : p.imap(fn<&square>, std::vector<int>{4, 5})) out.push_back(std::to_string(v));
    auto r = p.submit(fn<&square>, 6);
    out.push_back(std::to_string(r.get()));
    try {
        (void)p.map(fn<&throws_on_3>, std::vector<int>{1, 2, 3});
    } catch (const remote_error& e) {
        out.push_back(e.type_name() + ": " + e.message());
    }
    auto as = p.map(1s * 60, fn<&add>, std::vector<int>{1, 2}, std::vector<int>{10, 20});
    for (int v : as) out.push_back(std::to_string(v));
    return out;
}
} // namespace

TEST_CASE("a template written over the start method gives the same results with start::thread", "[pool][threads]") {
    const auto by_threads = user_job<start::thread>();
    CHECK(by_threads == user_job<start::fork>());
    CHECK(by_threads == std::vector<std::string>{"1", "4", "9", "5", "2", "4", "16", "25", "36",
                                                 "std::out_of_range: three", "11", "22"});
    CHECK(user_job<start::spawn>() == by_threads);
}

TEST_CASE("start::thread workers are threads of this process, named as CPython's ThreadPool names them",
          "[pool][threads]") {
    pool_progress progress;
    basic_pool<start::thread> p(3);
    p.observe(std::ref(progress));
    std::vector<int> xs(300, 0);
    for (pid_t pid : p.map(fn<&process_of>, xs, 1)) CHECK(pid == ::getpid());
    const auto tids = p.map(fn<&thread_of>, xs, 1);
    const std::set<pid_t> distinct(tids.begin(), tids.end());
    CHECK(distinct.size() <= 3);
    CHECK(distinct.count(static_cast<pid_t>(::syscall(SYS_gettid))) == 0); // not the caller's thread
    std::set<std::string> names;
    auto counter = [&](const pool_event& e) { // (calls never overlap: no lock needed)
        if (e.worker) names.insert(std::string(e.worker_name));
    };
    p.observe(counter);
    (void)p.map(fn<&square>, xs, 1);
    p.observe({});
    for (const auto& n : names) {
        INFO(n);
        CHECK(n.rfind("Thread-", 0) == 0);
        CHECK(n.size() > 9);
        CHECK(n.substr(n.size() - 9) == " (worker)");
    }
    CHECK_FALSE(names.empty());
    CHECK(active_children().empty()); // no process was made
    CHECK(progress.finished() == 600);
}

TEST_CASE("start::thread: the initializer runs once in each thread, maxtasksperchild replaces threads",
          "[pool][threads]") {
    initialized = 0;
    {
        basic_pool<start::thread> p(3, fn<&count_initializer>);
        CHECK(p.map(fn<&square>, std::vector<int>{1, 2, 3, 4, 5, 6}) == std::vector<int>{1, 4, 9, 16, 25, 36});
        p.close();
        p.join();
    }
    CHECK(initialized == 3);
    basic_pool<start::thread> q(pool_options{.processes = 2, .maxtasksperchild = 1});
    for (int n : q.map(fn<&tasks_of_this_thread>, std::vector<int>(20, 0), 1)) CHECK(n == 1); // a new thread each time

    basic_pool<start::thread> broken(2, fn<&failing_initializer>);
    try {
        (void)broken.apply(fn<&square>, 2);
        FAIL("the initializer throws: no task can run");
    } catch (const broken_pool& e) {
        CHECK_THAT(std::string(e.what()), Contains("the pool's initializer raised std::runtime_error: no database") &&
                                              Contains("(thread "));
    }
}

TEST_CASE("start::thread: a task timeout is refused, cancel leaves a running task to finish, terminate waits for it",
          "[pool][threads]") {
    CHECK_THROWS_WITH(basic_pool<start::thread>(pool_options{.processes = 1, .task_timeout = 1s}),
                      Contains("a pool of start::thread cannot stop a task that runs too long"));
    basic_pool<start::thread> p(1);
    CHECK_THROWS_AS(p.submit(task_options{.timeout = 1s}, fn<&square>, 2), value_error);
    CHECK(p.submit(task_options{.timeout = 0s}, fn<&square>, 2).get() == 4); // zero: none

    pooltest::named_pipe reports, tokens;
    auto running = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 7);
    (void)reports.line();
    auto queued = p.submit(fn<&square>, 3);
    CHECK(queued.cancel());
    CHECK_FALSE(running.cancel(cancel_mode::kill_running)); // a thread cannot be killed
    CHECK_FALSE(running.cancelled());
    tokens.release();
    CHECK(running.get() == 7);

    // terminate(): queued tasks fail at once; the one running is waited for.
    auto again = p.submit(fn<&started_then_blocked>, reports.path(), tokens.path(), 8);
    (void)reports.line();
    auto behind = p.submit(fn<&square>, 4);
    std::thread releaser([&] {
        (void)behind.exception(120s); // failed by terminate(), which then waits for `again`
        tokens.release();
    });
    p.terminate();
    releaser.join();
    CHECK(behind.exception().code() == errc::broken_pool);
    CHECK(again.exception().code() == errc::broken_pool); // its result came after the pool stopped
    p.join();
}

TEST_CASE("context<start::thread> makes thread pools", "[pool][threads]") {
    by_thread ctx;
    auto p = ctx.pool(2);
    CHECK(p.apply(fn<&process_of>, 0) == ::getpid());
}

namespace {
/// A task argument bigger than a one-worker ring (1 MiB) that a thread pool still sends as
/// bytes (an array of chars: its object representation), so the thread gathers it in pieces.
/// (A std::vector would be moved, not sent: start::thread passes only such values as bytes.)
using block = std::array<char, std::size_t{5} << 18>;
std::size_t size_of(const block& b) { return b.size(); }
static_assert(detail::thread_codec<serialize::binary>::bare<block>);
} // namespace

// Review of issue 17 item 6: a thread worker that has read part of a task bigger than its
// ring waits for the rest (worker_main's gather loop) without looking at worker_stop_now;
// terminate() fails the task and stops sending it, so the thread waits for ever and
// terminate() (and the destructor, and exit) with it. A process worker is killed instead.
// Whether terminate() comes before the task completes is a race (two pieces): either way
// it returns, and the task has its one right outcome for that order.
TEST_CASE("start::thread: terminate() returns while a worker is still receiving a task bigger than its ring",
          "[pool][threads]") {
    CHECK(pooltest::true_in_child_within(
        [] {
            basic_pool<start::thread> p(1); // (a ring of 1 MiB: the task crosses in two pieces)
            auto data = std::make_unique<block>();
            auto big = p.submit(fn<&size_of>, *data);
            p.terminate();
            const error_ptr e = big.exception();
            return e ? e.code() == errc::broken_pool : big.get() == data->size();
        },
        30s));
}
