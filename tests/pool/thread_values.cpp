// start::thread passes values in memory (issue 17 item 6, "it skips serialization where it
// can"): arguments and results are moved between the caller and the worker threads, so any
// movable type crosses (no serialization policy needed), a large value crosses without its
// bytes being copied, and values no task takes (cancelled, withdrawn, unwanted, terminated)
// go with their job: none leaks, and none is freed while a thread may still read it.
#include "pool/helpers.hpp"

#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>

#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
using pooltest::started_then_blocked;

/// A value that counts its live instances and its copies; no serialization policy knows it.
struct counted {
    static inline std::atomic<long> live{0}, copies{0};
    int v = 0;
    std::unique_ptr<int> guard = std::make_unique<int>(7); // (move-only members are fine)
    explicit counted(int x = 0) : v(x) { live.fetch_add(1); }
    counted(const counted& o) : v(o.v), guard(std::make_unique<int>(*o.guard)) {
        live.fetch_add(1);
        copies.fetch_add(1);
    }
    counted(counted&& o) noexcept : v(o.v), guard(std::move(o.guard)) { live.fetch_add(1); }
    counted& operator=(counted&& o) noexcept {
        v = o.v;
        guard = std::move(o.guard);
        return *this;
    }
    counted& operator=(const counted& o) {
        v = o.v;
        guard = std::make_unique<int>(*o.guard);
        copies.fetch_add(1);
        return *this;
    }
    ~counted() { live.fetch_sub(1); }
};

counted twice(counted& c) { return counted(c.v * 2); }
int value_of(counted& c) { return c.v; }
int blocked_then_value(std::string reports, std::string tokens, counted& c) {
    pooltest::report_pid_then_wait_at(std::move(reports), std::move(tokens));
    return c.v;
}
/// The pipes of wait_at_zero (the worker threads share this memory).
std::string zero_reports, zero_tokens;
int wait_at_zero(counted& c) {
    if (c.v == 0) pooltest::report_pid_then_wait_at(zero_reports, zero_tokens);
    return c.v;
}

std::unique_ptr<int> boxed(int x) { return std::make_unique<int>(x); }
int unbox(std::unique_ptr<int>& p) { return *p; }
long sum_of(const std::vector<int>* v) { return std::accumulate(v->begin(), v->end(), 0L); }

/// Where the task saw its vector's bytes: the same address as the caller's means no copy.
std::atomic<const void*> seen{nullptr};
std::vector<double> keep_bytes(std::vector<double>& v) {
    seen.store(v.data());
    v[0] = 42;
    return std::move(v);
}

using thread_pool = basic_pool<start::thread>;
} // namespace

TEST_CASE("start::thread: a task takes and returns types no serialization policy knows", "[pool][threads]") {
    thread_pool p(2);
    // A move-only result, a raw pointer argument, a type of the test's own.
    CHECK(*p.apply(fn<&boxed>, 5) == 5);
    CHECK(p.apply(fn<&unbox>, std::make_unique<int>(9)) == 9);
    const std::vector<int> data{1, 2, 3, 4};
    CHECK(p.apply(fn<&sum_of>, &data) == 10);
    auto doubled = p.map(fn<&twice>, std::vector<counted>{counted(1), counted(2), counted(3)});
    REQUIRE(doubled.size() == 3);
    CHECK(doubled[2].v == 6);
    std::vector<int> seen_values;
    for (int v : p.imap(fn<&value_of>, std::vector<counted>{counted(4), counted(5)})) seen_values.push_back(v);
    CHECK(seen_values == std::vector<int>{4, 5});
    // The same task in a process pool would not compile: counted has no serializer.
    STATIC_REQUIRE_FALSE((serializer_for<serialize::binary, counted>));
}

TEST_CASE("start::thread: a large value crosses to the worker and back without a copy", "[pool][threads]") {
    thread_pool p(1);
    std::vector<double> v(std::size_t{1} << 20, 1.0);
    const void* original = v.data();
    std::vector<double> back = p.apply(fn<&keep_bytes>, std::move(v));
    CHECK(seen.load() == original); // the worker saw the caller's buffer
    CHECK(back.data() == original); // and the caller got it back
    CHECK(back[0] == 42);

    // Copies: one per element from a range the caller keeps, none from one it gives up.
    counted::copies = 0;
    std::vector<counted> mine;
    for (int i = 0; i < 100; ++i) mine.emplace_back(i);
    auto r1 = p.map(fn<&value_of>, mine, 7);
    CHECK(r1[99] == 99);
    CHECK(counted::copies.load() == 100);
    counted::copies = 0;
    auto r2 = p.map(fn<&value_of>, std::move(mine), 7);
    CHECK(r2[99] == 99);
    CHECK(counted::copies.load() == 0);
    counted::copies = 0;
    std::list<counted> listed; // (sized, not random access)
    listed.emplace_back(3);
    CHECK(p.map(fn<&value_of>, std::move(listed)) == std::vector<int>{3});
    CHECK(p.apply(fn<&value_of>, counted(8)) == 8);
    CHECK(counted::copies.load() == 0);
}

TEST_CASE("start::thread: values no task takes go with their job, and none is freed while a thread reads it",
          "[pool][threads]") {
    const long before = counted::live.load();
    {
        thread_pool p(1);
        pooltest::named_pipe reports, tokens;
        // Cancelled before they ran (queued in the pool, or withdrawn from the worker's ring).
        auto running = p.submit(fn<&blocked_then_value>, reports.path(), tokens.path(), counted(1));
        (void)reports.line();
        std::vector<async_result<int>> queued;
        for (int i = 0; i < 20; ++i) queued.push_back(p.submit(fn<&value_of>, counted(i)));
        for (auto& q : queued) CHECK(q.cancel());
        queued.clear();
        tokens.release();
        CHECK(running.get() == 1);

        // Results nobody wants: an imap view dropped after its first element.
        {
            auto view = ranges::views::iota(0, 1000) | ranges::views::transform([](int i) { return counted(i); }) |
                        views::imap(p, fn<&twice>, imap_options{4, 64});
            auto it = view.begin();
            CHECK((*it).v == 0);
        }
        // Over endless input, the values alive stay within the window.
        long most = 0;
        for (const counted& c : ranges::views::iota(0) | ranges::views::transform([](int i) { return counted(i); }) |
                                    views::imap(p, fn<&twice>, imap_options{4, 64}) | ranges::views::take(2000)) {
            (void)c;
            most = std::max(most, counted::live.load() - before);
        }
        CHECK(most <= 2 * 64 + 8); // inputs and results of one window, and the element in hand

        // terminate(): the values of the unit a thread runs stay valid until it has left,
        // though their job is failed (and let go by the caller) at once: the thread takes the
        // second element of its chunk, and makes both results, after that.
        zero_reports = reports.path();
        zero_tokens = tokens.path();
        std::vector<counted> pair;
        pair.emplace_back(0);
        pair.emplace_back(5);
        auto again = p.map_async(fn<&wait_at_zero>, std::move(pair), 2);
        (void)reports.line();
        auto behind = p.map_async(fn<&value_of>, std::vector<counted>(50));
        std::thread releaser([&] {
            (void)behind.exception(120s); // failed by terminate(), which then waits for `again`
            again = {};                   // the caller lets the job go while its task still runs
            tokens.release();
        });
        p.terminate();
        releaser.join();
        CHECK(behind.exception().code() == errc::broken_pool);
        p.join();
    }
    CHECK(counted::live.load() == before);
}
