// Remote exceptions: whatever a task throws comes back as remote_error with its type name,
// what(), the worker's pid and the task's index; the pool stays usable.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

using namespace multiproc;

namespace {
struct not_std {}; // not derived from std::exception
struct custom_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int throws_for(int x) {
    switch (x) {
    case 1: throw std::out_of_range("index 1 out of range");
    case 2: throw not_std{};
    case 3: throw 3;
    case 4: throw custom_error("custom");
    case 5: throw std::string("a string");
    default: return x;
    }
}

template <class Pool>
remote_error caught(Pool& p, int x) {
    try {
        (void)p.apply(fn<&throws_for>, x);
    } catch (const remote_error& e) {
        return e;
    }
    FAIL("no remote_error");
    throw;
}
} // namespace

TEMPLATE_TEST_CASE("design 5.2: an exception of any type in a task comes back as remote_error",
                   "[pool][errors][design5]", START_METHODS) {
    basic_pool<typename TestType::policies::start> p(2);
    auto e1 = caught(p, 1);
    CHECK(e1.type_name() == "std::out_of_range");
    CHECK(e1.message() == "index 1 out of range");
    CHECK(e1.task() == 0u); // apply's one task is task 0, as in CPython
    CHECK(e1.pid() != ::getpid());
    CHECK(e1.pid() > 0);
    CHECK(std::string(e1.what()) ==
          "multiproc: task 0 raised std::out_of_range in process " + std::to_string(e1.pid()) + ": index 1 out of range");
    CHECK(caught(p, 2).type_name() == "(anonymous namespace)::not_std");
    CHECK(caught(p, 2).message().empty());
    CHECK(caught(p, 3).type_name() == "int");
    CHECK(caught(p, 4).type_name() == "(anonymous namespace)::custom_error");
    CHECK(caught(p, 4).message() == "custom");
    CHECK(caught(p, 5).type_name() == "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >");
    CHECK(p.apply(fn<&throws_for>, 9) == 9); // the pool is still usable
}

TEST_CASE("a failing element of map names its index, the first error wins", "[pool][errors][map]") {
    pool p(2);
    std::vector<int> xs{0, 6, 7, 8, 1, 9, 10};
    try {
        (void)p.map(throws_for, xs, 2);
        FAIL("map should have thrown");
    } catch (const remote_error& e) {
        CHECK(e.task() == 4u); // its position in the input
        CHECK(e.type_name() == "std::out_of_range");
    }
    CHECK(p.map(throws_for, std::vector<int>{6, 7}) == std::vector<int>{6, 7});
}

TEST_CASE("imap yields the other results and throws at each failed element", "[pool][errors][imap]") {
    pool p(2);
    std::vector<int> xs{6, 1, 7, 2, 8};
    std::vector<std::string> got;
    auto v = p.imap(throws_for, xs);
    for (auto it = v.begin(); it != v.end(); ++it) {
        try {
            got.push_back(std::to_string(*it));
        } catch (const remote_error& e) {
            got.push_back("error at " + std::to_string(*e.task()));
        }
    }
    CHECK(got == std::vector<std::string>{"6", "error at 1", "7", "error at 3", "8"});
}

TEST_CASE("in a large chunk each element that throws fails alone, and the others keep their places",
          "[pool][errors][imap]") {
    // One chunk of ints, run in place: the results after a failed element move up in the
    // reply and must still land at their own indices.
    pool p(2);
    std::vector<int> xs(3000, 6);
    const std::vector<std::size_t> failing{0, 1, 2, 700, 701, 1500, 2998, 2999};
    for (std::size_t f : failing) xs[f] = 1 + static_cast<int>(f % 5);
    for (std::size_t i = 0; i < xs.size(); ++i)
        if (xs[i] == 6) xs[i] = 6 + static_cast<int>(i); // (throws_for returns anything >= 6)
    std::vector<std::size_t> failed;
    std::size_t right = 0, i = 0;
    auto v = p.imap(throws_for, xs, xs.size());
    for (auto it = v.begin(); it != v.end(); ++it, ++i) {
        try {
            if (*it == xs[i]) ++right;
        } catch (const remote_error& e) {
            CHECK(*e.task() == i);
            failed.push_back(i);
        }
    }
    CHECK(failed == failing);
    CHECK(right == xs.size() - failing.size());
    try {
        (void)p.map(throws_for, xs, xs.size());
        FAIL("map should have thrown");
    } catch (const remote_error& e) {
        CHECK(e.task() == 0u);
    }
}

namespace {
/// An input that throws std::length_error("input ran dry") when it reaches `at`.
struct throwing_input {
    int at;
    int operator()(int i) const {
        if (i == at) throw std::length_error("input ran dry");
        return i;
    }
};
auto input_throwing_at(int at) { return ranges::views::iota(0) | ranges::views::transform(throwing_input{at}); }

/// What an imap view yields: the results, whether the input's exception came, and whether
/// anything came after it.
struct yielded {
    std::vector<int> results;
    bool threw = false, more_after = false;
};
template <class View>
yielded iterate(View&& v) {
    yielded out;
    for (auto it = v.begin(); it != v.end(); ++it) {
        try {
            int r = *it;
            out.results.push_back(r);
            out.more_after |= out.threw;
        } catch (const std::length_error& e) {
            out.threw = std::string(e.what()) == "input ran dry";
        }
    }
    return out;
}
std::vector<int> sorted(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
}
} // namespace

TEST_CASE("an exception from the input itself ends imap after the results before it", "[pool][errors][imap]") {
    pool p(2);
    auto got = iterate(p.imap(pooltest::square, input_throwing_at(3)));
    CHECK(got.results == std::vector<int>{0, 1, 4});
    CHECK(got.threw);
    CHECK_FALSE(got.more_after);
}

TEMPLATE_TEST_CASE("with chunksize > 1 an exception from the input replaces the chunk it broke, as in CPython",
                   "[pool][errors][imap]", START_METHODS) {
    // CPython builds each chunk whole (tuple(islice(it, chunksize))): the chunk the input
    // breaks is never sent, and its exception comes where that chunk's results would.
    pooltest::pool_of<TestType> p(2);
    auto in_chunk = iterate(p.imap(fn<&pooltest::square>, input_throwing_at(6), 4)); // chunks [0, 4), [4, 8)
    CHECK(in_chunk.results == std::vector<int>{0, 1, 4, 9});
    CHECK(in_chunk.threw);
    CHECK_FALSE(in_chunk.more_after);
    auto at_boundary = iterate(p.imap(fn<&pooltest::square>, input_throwing_at(6), 3)); // chunk [6, 9) is the broken one
    CHECK(at_boundary.results == std::vector<int>{0, 1, 4, 9, 16, 25});
    CHECK(at_boundary.threw);
    auto unordered = iterate(p.imap_unordered(fn<&pooltest::square>, input_throwing_at(6), 4));
    CHECK(sorted(unordered.results) == std::vector<int>{0, 1, 4, 9});
    CHECK(unordered.threw);
    CHECK_FALSE(unordered.more_after); // after every result of the chunks before it
    // A window of one chunk: the input breaks in a later fill, after results were yielded.
    auto narrow = iterate(input_throwing_at(10) | views::imap(p, fn<&pooltest::square>, imap_options{4, 4}));
    CHECK(narrow.results == std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49});
    CHECK(narrow.threw);
    CHECK_FALSE(narrow.more_after);
    CHECK(p.apply(fn<&pooltest::square>, 5) == 25); // and the pool is fine
}
