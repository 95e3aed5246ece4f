// async_result (Python: AsyncResult): get, get(timeout), wait, ready, successful; callbacks
// and error callbacks, and callbacks that throw.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;
using pooltest::square;

namespace {
int fail_with(int code) {
    if (code == 1) throw std::invalid_argument("bad input");
    return code;
}
} // namespace

TEST_CASE("get(timeout) throws timeout_error while the task runs, wait(timeout) returns", "[pool][async]") {
    pooltest::tokens tokens;
    pool p(1);
    auto r = p.apply_async(pooltest::report_then_wait, -1, tokens.fd(), 5);
    CHECK_FALSE(r.ready());
    CHECK_THROWS_AS(r.get(10ms), timeout_error);
    r.wait(10ms);
    CHECK_FALSE(r.ready());
    CHECK_THROWS_AS(r.successful(), value_error);
    CHECK_THROWS_WITH(r.successful(), "<multiproc::async_result> not ready");
    tokens.release();
    CHECK(r.get(1h) == 5);
    r.wait();
    CHECK(r.ready());
    CHECK(r.successful());
}

TEST_CASE("get() on a temporary returns the value itself: a reference bound to it does not dangle",
          "[pool][async]") {
    pool p(2);
    std::vector<int> xs(1000), squares(1000);
    for (int i = 0; i < 1000; ++i) xs[static_cast<std::size_t>(i)] = i, squares[static_cast<std::size_t>(i)] = i * i;
    CHECK_FALSE(std::is_reference_v<decltype(p.map_async(square, xs).get())>);
    CHECK_FALSE(std::is_reference_v<decltype(p.map_async(square, xs).get(1h))>);
    CHECK_FALSE(std::is_reference_v<decltype(p.apply_async(square, 1).get())>);
    const auto& v = p.map_async(square, xs).get();
    const auto& w = p.map_async(square, xs).get(1h);
    const auto& s = p.apply_async([](int n) { return std::string(static_cast<std::size_t>(n), 's'); }, 100).get();
    // The temporaries are gone; had v, w and s referred into them, this would reuse their memory
    // (glibc hands a freed block of the same size back first).
    std::vector<std::vector<int>> churn;
    for (int i = 0; i < 8; ++i) churn.emplace_back(1000, -1);
    std::vector<std::string> churn_text(8, std::string(100, '!'));
    CHECK(v == squares);
    CHECK(w == squares);
    CHECK(s == std::string(100, 's'));
    p.map_async([](int) {}, xs).get(); // void: nothing to return

    // An lvalue's get() still refers to the one value its copies share, which a temporary's
    // get() copies rather than takes while another copy may read it.
    auto r = p.map_async(square, xs);
    auto copy = r;
    CHECK(&r.get() == &copy.get());
    auto taken = std::move(r).get();
    CHECK(taken == squares);
    CHECK(copy.get() == squares);
}

TEST_CASE("a failed call is ready, not successful, and get rethrows", "[pool][async]") {
    pool p(1);
    auto r = p.apply_async(fail_with, 1);
    r.wait();
    CHECK(r.ready());
    CHECK_FALSE(r.successful());
    CHECK_THROWS_AS(r.get(), remote_error);
    CHECK_THROWS_AS(r.get(), remote_error); // every time
}

TEST_CASE("callback gets the result and error_callback the error, before the result is ready",
          "[pool][async][callbacks]") {
    pool p(2);
    std::mutex mu;
    std::vector<int> seen;
    std::vector<std::string> errors;
    auto ok = p.apply_async(callbacks{[&](int v) {
                                          std::lock_guard lk(mu);
                                          seen.push_back(v);
                                      },
                                      [&](const error& e) {
                                          std::lock_guard lk(mu);
                                          errors.push_back(e.what());
                                      }},
                            fail_with, 7);
    auto bad = p.apply_async(callbacks{nullptr, [&](const error& e) {
                                 std::lock_guard lk(mu);
                                 errors.push_back(e.what());
                             }},
                             fail_with, 1);
    auto m = p.map_async(callbacks{[&](const std::vector<int>& v) {
                             std::lock_guard lk(mu);
                             seen.push_back(static_cast<int>(v.size()));
                         }},
                         square, std::vector<int>{1, 2, 3});
    CHECK(ok.get() == 7);
    CHECK_THROWS_AS(bad.get(), remote_error);
    m.wait();
    std::lock_guard lk(mu); // the callbacks ran before get() returned
    CHECK(seen.size() == 2);
    CHECK(std::count(seen.begin(), seen.end(), 7) == 1);
    CHECK(std::count(seen.begin(), seen.end(), 3) == 1);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], Catch::Matchers::Contains("std::invalid_argument") && Catch::Matchers::Contains("bad input"));
}

TEST_CASE("callbacks run in the pool's thread, a callback waiting on the pool is an error, not a hang",
          "[pool][async][callbacks]") {
    pool p(1);
    std::atomic<bool> other_thread{false}, refused{false};
    auto main_id = std::this_thread::get_id();
    auto r = p.apply_async(callbacks{[&](int) {
                               other_thread = std::this_thread::get_id() != main_id;
                               try {
                                   (void)p.apply(square, 2);
                               } catch (const state_error&) {
                                   refused = true;
                               }
                           }},
                           square, 3);
    CHECK(r.get() == 9);
    CHECK(other_thread);
    CHECK(refused);
    CHECK(p.apply(square, 4) == 16);
}

namespace {
std::int64_t three_mod_seven(std::int64_t x) {
    if (x % 7 != 3) throw std::invalid_argument("not one of the inputs: " + std::to_string(x));
    return x;
}
} // namespace

TEST_CASE("a blocking map that leaves before its results are in has its input copied for the chunks still to be sent",
          "[pool][async][callbacks]") {
    // map() sends a vector of plain values from the caller's memory. Called from a callback,
    // it throws state_error at once (a callback cannot wait for a pool result) while its
    // chunks are still being sent: they must then come from a copy, not from the vector the
    // callback frees (zeroed first here, so that reading it would fail the tasks).
    pool p(2);
    pool_progress progress;
    p.observe(std::ref(progress));
    constexpr std::size_t n = 400000; // 3.2 MB: more than the workers' task rings hold at once
    bool refused = false;
    std::atomic<int> callback_done{0};
    auto r = p.apply_async(callbacks{[&](int) {
                               std::vector<std::int64_t> xs(n);
                               for (std::size_t i = 0; i < n; ++i) xs[i] = 7 * static_cast<std::int64_t>(i) + 3;
                               try {
                                   (void)p.map(three_mod_seven, xs, 1000);
                               } catch (const state_error&) {
                                   refused = true;
                               }
                               std::fill(xs.begin(), xs.end(), 0);
                               callback_done.store(1);
                               callback_done.notify_all();
                           }},
                           square, 2);
    CHECK(r.get() == 4);
    callback_done.wait(0);
    p.close();
    p.join(); // (the map's tasks, queued before close, are done first)
    CHECK(refused);
    CHECK(progress.failed() == 0);
    CHECK(progress.finished() == n + 1);
}

TEST_CASE("design 5.2: an exception in a callback is reported and never wedges the pool",
          "[pool][async][callbacks][design5]") {
    pool p(2);
    pooltest::stderr_capture err;
    auto r = p.apply_async(callbacks{[](int) { throw std::runtime_error("callback broke"); }}, square, 3);
    auto e = p.apply_async(callbacks{nullptr, [](const error&) { throw 42; }}, fail_with, 1);
    CHECK(r.get() == 9);             // still ready, with its value
    CHECK_THROWS_AS(e.get(), remote_error);
    CHECK(p.apply(square, 5) == 25); // and the pool carries on
    auto more = p.map(square, std::vector<int>{1, 2, 3});
    CHECK(more == std::vector<int>{1, 4, 9});
    std::string text = err.finish();
    CHECK(test::count(text, "multiproc: exception in a pool callback (ignored; the pool carries on): "
                            "std::runtime_error: callback broke\n") == 1);
    CHECK(test::count(text, "multiproc: exception in a pool callback (ignored; the pool carries on): int\n") == 1);
}
