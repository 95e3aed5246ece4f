// Lazy imap as range-v3 adaptors: a bounded window of input read ahead, infinite input,
// ordered and unordered results, the ordering policy, early exit.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/range/conversion.hpp>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>

#include <atomic>
#include <poll.h>
#include <sys/wait.h>
#include <chrono>
#include <ranges>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

using namespace multiproc;
using pooltest::pool_of;
using namespace std::chrono_literals;
using pooltest::square;

namespace {
// Task 0 waits for a token; the others report that they ran.
int slow_first(int report_fd, int token_fd, int i) {
    if (i == 0)
        pooltest::take_token(token_fd);
    else
        pooltest::say(report_fd, std::to_string(i));
    return i;
}
int slow_first_packed(std::tuple<int, int, int> a) { return slow_first(std::get<0>(a), std::get<1>(a), std::get<2>(a)); }
int report_then_wait_packed(std::tuple<int, int, int> a) {
    return pooltest::report_then_wait(std::get<0>(a), std::get<1>(a), std::get<2>(a));
}
} // namespace

TEMPLATE_TEST_CASE("design 5.3: imap is lazy: infinite input, and at most the window is read ahead",
                   "[pool][imap][design5]", START_METHODS) {
    pool_of<TestType> p(2);
    std::atomic<long> read{0};
    auto counted = ranges::views::iota(0) | ranges::views::transform([&](int i) {
                       ++read;
                       return i;
                   });
    std::vector<int> first;
    for (int y : counted | views::imap(p, fn<&square>, imap_options{1, 8}) | ranges::views::take(5)) first.push_back(y);
    CHECK(first == std::vector<int>{0, 1, 4, 9, 16});
    CHECK(read <= 5 + 8); // what was yielded, plus at most the window (an eager read never ends)

    // The default window: two chunks per worker, at least 64 tasks per worker.
    read = 0;
    auto v = counted | views::imap_unordered(p, fn<&square>, imap_options{4, {}});
    auto it = v.begin();
    (void)*it;
    CHECK(read <= 2 * 64 + 4);
    CHECK(read >= 4);
    // The pool is usable while a view is alive and after it is dropped half-way.
    CHECK(p.apply(fn<&square>, 9) == 81);
}

TEMPLATE_TEST_CASE("design 5.3: an infinite input through views::imap | take returns promptly",
                   "[pool][imap][design5]", START_METHODS) {
    pool_of<TestType> p(2);
    auto five = ranges::views::iota(0) | views::imap(p, fn<&square>) | ranges::views::take(5) | ranges::to<std::vector>();
    CHECK(five == std::vector<int>{0, 1, 4, 9, 16});
    auto also = views::imap(ranges::views::iota(10), p, fn<&square>) | ranges::views::take(2) | ranges::to<std::vector>();
    CHECK(also == std::vector<int>{100, 121});
}

TEST_CASE("imap yields in input order, waiting for a slow first task", "[pool][imap]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    pool p(2);
    std::vector<std::tuple<int, int, int>> args;
    for (int i = 0; i < 6; ++i) args.emplace_back(reports.fd(), tokens.fd(), i);
    // Task 0 is released only once task 1 has run on the other worker: result 1 is ready
    // first, yet comes after result 0.
    std::thread releaser([&] {
        (void)reports.line();
        tokens.release();
    });
    std::vector<int> got;
    for (int y : args | views::imap(p, slow_first_packed, imap_options{1, 2})) got.push_back(y);
    releaser.join();
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("imap_unordered yields results as they are ready", "[pool][imap]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    pool p(2);
    std::vector<std::tuple<int, int, int>> args{{reports.fd(), tokens.fd(), 0}, {reports.fd(), tokens.fd(), 1}};
    auto v = args | views::imap_unordered(p, slow_first_packed);
    auto it = v.begin(); // task 1 finishes first, while task 0 waits
    CHECK(*it == 1);
    CHECK(reports.line() == "1");
    tokens.release();
    ++it;
    CHECK(*it == 0);
    ++it;
    CHECK(it == v.end());
}

TEST_CASE("imap reads standard input ranges whose iterators are move-only (std::views::istream)", "[pool][imap][ranges]") {
    // range-v3 0.12's concepts want copyable iterators: these were refused at compile time.
    static_assert(!ranges::input_range<std::ranges::istream_view<int>>);
    static_assert(std::ranges::input_range<std::ranges::istream_view<int>>);
    pool p(2);
    std::istringstream piped("1 2 3 4 5");
    CHECK((std::views::istream<int>(piped) | views::imap(p, square) | ranges::to<std::vector>()) ==
          std::vector<int>{1, 4, 9, 16, 25});
    std::istringstream named("6 7 8");
    auto lvalue = std::views::istream<int>(named); // referred to by the view, as an lvalue container is
    CHECK((lvalue | views::imap(p, square) | ranges::to<std::vector>()) == std::vector<int>{36, 49, 64});
    std::istringstream unordered("1 2 3");
    auto u = views::imap_unordered(std::views::istream<int>(unordered), p, square) | ranges::to<std::vector>();
    CHECK(std::multiset<int>(u.begin(), u.end()) == std::multiset<int>{1, 4, 9});
    std::istringstream method("2 3");
    std::vector<int> got;
    for (int y : p.imap(square, std::views::istream<int>(method), 2)) got.push_back(y);
    CHECK(got == std::vector<int>{4, 9});
    std::istringstream endless("1 2 3 4 5 6 7 8 9");
    CHECK((std::views::istream<int>(endless) | views::imap(p, square) | ranges::views::take(2) |
           ranges::to<std::vector>()) == std::vector<int>{1, 4});
    std::istringstream bad("1 2 x 4"); // the stream's end, as for any loop over it
    CHECK((std::views::istream<int>(bad) | views::imap(p, square) | ranges::to<std::vector>()) == std::vector<int>{1, 4});
}

TEST_CASE("the ordering policy chooses what plain imap yields", "[pool][imap][policy]") {
    basic_pool<order::unordered> p(2);
    std::vector<int> xs{1, 2, 3};
    using unordered_view = decltype(p.imap(square, xs));
    using explicit_unordered = decltype(p.imap_unordered(square, xs));
    static_assert(std::is_same_v<unordered_view, explicit_unordered>);
    static_assert(std::is_same_v<decltype(xs | views::imap(p, square)), explicit_unordered>);
    pool q(1);
    static_assert(!std::is_same_v<decltype(q.imap(square, xs)), decltype(q.imap_unordered(square, xs))>);
    std::multiset<int> got;
    for (int y : p.imap(square, xs)) got.insert(y);
    CHECK(got == std::multiset<int>{1, 4, 9});
}

TEMPLATE_TEST_CASE("an imap view left early leaves the pool usable, and results of its tasks are dropped",
                   "[pool][imap]", START_METHODS) {
    pool_of<TestType> p(2);
    for (int round = 0; round < 20; ++round) {
        auto v = ranges::views::iota(0) | views::imap(p, fn<&square>, imap_options{3, 30});
        auto it = v.begin();
        CHECK(*it == 0);
    }
    CHECK(p.map(fn<&square>, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 4, 9});
    p.close();
    p.join(); // nothing is outstanding: the dropped views' tasks were cancelled or finished
}

TEST_CASE("an imap view dropped part-way cancels the tasks no worker has started: later calls and the pool's end "
          "do not wait behind them", "[pool][imap]") {
    // (They ran, all of the window read ahead: 128 tasks for two workers by default, which
    // a later apply() and the pool's drain waited for; an outside trial timed 6.3 s.)
    pooltest::tokens tokens;
    pooltest::reports reports;
    pool_progress seen;
    {
        pool p(pool_options{.processes = 2, .observer = std::ref(seen)});
        {
            auto v = ranges::views::iota(0) | ranges::views::transform([&](int i) {
                         return std::tuple<int, int, int>(reports.fd(), tokens.fd(), i);
                     }) |
                     views::imap_unordered(p, report_then_wait_packed, imap_options{1, {}});
            tokens.release(); // one task may end
            auto it = v.begin(); // reads the window ahead, queues it, and waits for that one
            CHECK(*it >= 0);
            for (int i = 0; i < 3; ++i) (void)reports.line(); // it, and both workers now in a task
            CHECK(seen.queued() >= 6);
        } // dropped
        CHECK(seen.cancelled() == seen.queued() - 3); // all but the three that ran
        tokens.release(static_cast<int>(seen.queued())); // as many as would let every task run
        CHECK(p.apply(square, 7) == 49);
        p.close();
        p.join();
    }
    CHECK(seen.finished() == 3 + 1);
    CHECK(seen.started() == 3 + 1);
    CHECK(seen.done() == seen.queued());
}

TEMPLATE_TEST_CASE("an imap started before close() goes on after it", "[pool][imap][lifecycle]", START_METHODS) {
    pool_of<TestType> p(2);
    auto v = ranges::views::iota(0, 300) | views::imap(p, fn<&square>, imap_options{5, 20});
    auto it = v.begin();
    p.close();
    long sum = 0;
    for (; it != v.end(); ++it) sum += *it;
    long want = 0;
    for (long i = 0; i < 300; ++i) want += i * i;
    CHECK(sum == want);
    p.join();
}

// Python: `it = pool.imap(f, xs)` is its own iterator, so a second `for x in it` goes on
// where the first stopped, after `islice(it, 2)` too. (A second begin() started the
// iteration over, submitting every task again: an outside trial.)
TEST_CASE("a view read twice, through a copy and with next(), is one iteration: each task is submitted once",
          "[pool][imap]") {
    pool_progress seen;
    std::vector<int> xs(10);
    for (int i = 0; i < 10; ++i) xs[static_cast<std::size_t>(i)] = i + 1;
    {
        pool p(pool_options{.processes = 2, .observer = std::ref(seen)});
        auto v = p.imap(square, xs, 1);
        std::vector<int> got;
        for (int y : v | ranges::views::take(2)) got.push_back(y); // (take adapts a copy of v)
        for (int y : v) {
            got.push_back(y);
            if (got.size() == 3) break;
        }
        got.push_back(v.next().value()); // the fourth
        auto it = v.begin();
        it = v.begin(); // standing on the fifth, unread: a second begin() stays there
        CHECK(*it == 25);
        for (; it != v.end(); ++it) got.push_back(*it);
        CHECK(got == std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64, 81, 100});
        CHECK(v.begin() == v.end()); // all given
        CHECK(v.next() == std::nullopt);
        p.close();
        p.join();
    }
    CHECK(seen.queued() == 10);
    CHECK(seen.finished() == 10);
}

namespace {
int sixth_token_fd = -1, sixth_report_fd = -1; // (set before the pool forks its workers)
// Task 5, the sixth, waits for a token (30 s at most: so that a take(5) that waits for it
// ends, and fails), then says so; the others return at once.
int sixth_waits(int i) {
    if (i == 5) {
        pollfd p{sixth_token_fd, POLLIN, 0};
        (void)::poll(&p, 1, 30'000);
        pooltest::say(sixth_report_fd, "5 ended");
    }
    return i;
}
} // namespace

// Python: `islice(pool.imap(f, count()), 5)` calls next() five times and waits for five
// results. An iterator's ++ moved to the next result, waiting for it, so take(5) waited for
// the sixth too, and a loop cut there hung on a task that never ends.
TEST_CASE("take(n) over an imap view waits for n results, not for the one after them", "[pool][imap]") {
    test::pipe_pair token, report;
    sixth_token_fd = token.r;
    sixth_report_fd = report.w;
    pool p(2);
    auto v = ranges::views::iota(0) | views::imap(p, sixth_waits, imap_options{1, 8});
    std::vector<int> got;
    for (int y : v | ranges::views::take(5)) got.push_back(y);
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
    pollfd ended{report.r, POLLIN, 0};
    CHECK(::poll(&ended, 1, 0) == 0); // task 5 still waits for its token: nobody waited for it
    test::write_str(token.w, "x");
    CHECK(v.next() == 5); // the sixth comes next, once done
    CHECK(*v.begin() == 6);
    auto it = v.begin(); // (the seventh, 6, was read: a new begin() moves past it)
    CHECK(*it == 7);
    ++it;
    ++it; // past the eighth, never read
    CHECK(*it == 9);
    CHECK(*it == 9); // read twice: the same
}

namespace {
int first_token_fd = -1; // (set before the pool forks its workers)
// Task 0 waits for a token (30 s at most); the others return at once.
int first_waits(int i) {
    if (i == 0) {
        pollfd p{first_token_fd, POLLIN, 0};
        (void)::poll(&p, 1, 30'000);
    }
    return i;
}
} // namespace

// From a review: a wait that threw had marked the iteration settled on the result before
// (none yet here), so asking again read it: a value already given, or an empty optional.
TEST_CASE("an imap iterator whose wait threw stands where it stood: asking again throws again", "[pool][imap]") {
    test::pipe_pair token;
    first_token_fd = token.r;
    pool p(1);
    auto v = ranges::views::iota(0) | views::imap(p, first_waits, imap_options{1, 2});
    auto it = v.begin(); // (task 0 waits for its token: no result can be there yet)
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // A copy of this process: the pool is not its own, so each read throws.
        int thrown = 0;
        for (int k = 0; k < 2; ++k) {
            try {
                (void)*it;
            } catch (const state_error&) {
                ++thrown;
            } catch (...) {
            }
        }
        ::_exit(thrown);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    test::write_str(token.w, "x");
    CHECK(*it == 0); // (here the first result)
    ++it;
    CHECK(*it == 1);
}
