// Every pool call that takes "any input range" (map, map_async, starmap, starmap_async,
// imap, imap_unordered, views::imap, views::imap_unordered) over standard and range-v3 views
// whose elements are values (prvalues: iota, transform), references, and proxies (zip's
// tuple of references, vector<bool>'s bit reference), sized or not, under every start method.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/view/enumerate.hpp>
#include <range/v3/view/filter.hpp>
#include <range/v3/view/generate_n.hpp>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>
#include <range/v3/view/zip.hpp>

#include <algorithm>
#include <cstddef>
#include <ranges>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace multiproc;
using pooltest::pool_of;

namespace {
using pooltest::square;
int add(int a, int b) { return a + b; }
std::string shout(const std::string& s) { return s + "!"; }
int from_bit(bool b) { return b ? 10 : 20; }
std::string label(const std::string& s, int n) { return s + std::to_string(n); }
long with_index(std::size_t i, int x) { return static_cast<long>(i) * 100 + x; }

const std::vector<int> five{0, 1, 2, 3, 4};
const std::vector<int> squares{0, 1, 4, 9, 16};

template <class R, class View>
std::vector<R> collect(View&& v) {
    std::vector<R> out;
    for (auto&& y : v) out.push_back(y);
    return out;
}
template <class R>
std::vector<R> sorted(std::vector<R> v) {
    std::sort(v.begin(), v.end());
    return v;
}

/// Every single-argument call over the range `make()` makes (a fresh one each time, as
/// some are single-pass), given as an rvalue and, where it can be one, as an lvalue.
template <class R, class Pool, class F, class Make>
void every_map_call(Pool& p, F f, Make make, const std::vector<R>& expected) {
    CHECK(p.map(f, make()) == expected);
    CHECK(p.map(f, make(), 1) == expected);
    CHECK(p.map(f, make(), 2) == expected);
    CHECK(p.map_async(f, make()).get() == expected);
    CHECK(p.map_async(f, make(), 3).get() == expected);
    {
        auto xs = make();
        CHECK(p.map(f, xs) == expected);
    }
    CHECK(collect<R>(p.imap(f, make())) == expected);
    CHECK(collect<R>(p.imap(f, make(), 2)) == expected);
    CHECK(sorted(collect<R>(p.imap_unordered(f, make()))) == sorted(expected));
    CHECK(sorted(collect<R>(p.imap_unordered(f, make(), 3))) == sorted(expected));
    CHECK(collect<R>(make() | views::imap(p, f)) == expected);
    CHECK(collect<R>(views::imap(make(), p, f, imap_options{2, {}})) == expected);
    CHECK(sorted(collect<R>(make() | views::imap_unordered(p, f))) == sorted(expected));
    {
        auto xs = make();
        CHECK(collect<R>(xs | views::imap(p, f)) == expected);
    }
}

/// Every call that unpacks each element into the arguments.
template <class R, class Pool, class F, class Make>
void every_starmap_call(Pool& p, F f, Make make, const std::vector<R>& expected) {
    CHECK(p.starmap(f, make()) == expected);
    CHECK(p.starmap(f, make(), 1) == expected);
    CHECK(p.starmap_async(f, make()).get() == expected);
    CHECK(p.starmap_async(f, make(), 2).get() == expected);
    auto xs = make();
    CHECK(p.starmap(f, xs) == expected);
}
} // namespace

TEMPLATE_TEST_CASE("map, map_async, imap and views::imap take std views that yield values",
                   "[pool][ranges][map][imap]", START_METHODS) {
    pool_of<TestType> p(2);
    SECTION("std::views::iota: prvalues, sized") {
        every_map_call<int>(p, fn<&square>, [] { return std::views::iota(0, 5); }, squares);
    }
    SECTION("std::views::transform: prvalues computed in the caller") {
        every_map_call<int>(p, fn<&square>, [] { return five | std::views::transform([](int x) { return x + 1; }); },
                            {1, 4, 9, 16, 25});
    }
    SECTION("std::views::transform yielding std::string and const char*") {
        every_map_call<std::string>(
            p, fn<&shout>, [] { return five | std::views::transform([](int x) { return std::to_string(x); }); },
            {"0!", "1!", "2!", "3!", "4!"});
        every_map_call<std::string>(
            p, fn<&shout>, [] { return five | std::views::transform([](int x) { return x % 2 ? "odd" : "even"; }); },
            {"even!", "odd!", "even!", "odd!", "even!"});
    }
    SECTION("std::views::filter over prvalues: no size, copied first") {
        every_map_call<int>(p, fn<&square>, [] {
            return std::views::iota(0, 10) | std::views::filter([](int x) { return x % 2 == 0; });
        }, {0, 4, 16, 36, 64});
    }
}

TEMPLATE_TEST_CASE("map, map_async, imap and views::imap take std views that yield references",
                   "[pool][ranges][map][imap]", START_METHODS) {
    pool_of<TestType> p(2);
    SECTION("std::views::all and take: lvalue references") {
        every_map_call<int>(p, fn<&square>, [] { return std::views::all(five); }, squares);
        every_map_call<int>(p, fn<&square>, [] { return five | std::views::take(3); }, {0, 1, 4});
    }
    SECTION("std::views::filter over references: no size, copied first") {
        every_map_call<int>(p, fn<&square>, [] { return five | std::views::filter([](int x) { return x > 2; }); },
                            {9, 16});
    }
}

TEMPLATE_TEST_CASE("map, map_async, imap and views::imap take range-v3 views", "[pool][ranges][map][imap]",
                   START_METHODS) {
    pool_of<TestType> p(2);
    SECTION("ranges::views::iota: prvalues") {
        every_map_call<int>(p, fn<&square>, [] { return ranges::views::iota(0, 5); }, squares);
    }
    SECTION("ranges::views::transform: prvalues") {
        every_map_call<int>(p, fn<&square>, [] { return five | ranges::views::transform([](int x) { return 4 - x; }); },
                            {16, 9, 4, 1, 0});
    }
    SECTION("ranges::views::filter: references, no size") {
        every_map_call<int>(p, fn<&square>, [] { return five | ranges::views::filter([](int x) { return x < 2; }); },
                            {0, 1});
    }
    SECTION("ranges::views::generate_n: single-pass, prvalues") {
        every_map_call<int>(p, fn<&square>, [] { return ranges::views::generate_n([n = 0]() mutable { return n++; }, 5); },
                            squares);
    }
}

TEMPLATE_TEST_CASE("map, map_async, imap and views::imap take vector<bool>, whose elements are proxies",
                   "[pool][ranges][map][imap]", START_METHODS) {
    pool_of<TestType> p(2);
    const std::vector<bool> bits{true, false, false, true};
    every_map_call<int>(p, fn<&from_bit>, [&] { return std::views::all(bits); }, {10, 20, 20, 10});
    CHECK(p.map(fn<&from_bit>, bits) == std::vector<int>{10, 20, 20, 10});
    CHECK(p.map(fn<&from_bit>, std::vector<bool>{false}) == std::vector<int>{20});
    CHECK(collect<int>(p.imap(fn<&from_bit>, std::vector<bool>{true, true})) == std::vector<int>{10, 10});
}

TEMPLATE_TEST_CASE("starmap and starmap_async take zips of references, enumerate and views of prvalue tuples",
                   "[pool][ranges][starmap]", START_METHODS) {
    pool_of<TestType> p(2);
    const std::vector<int> tens{10, 20, 30, 40, 50};
    const std::vector<int> sums{10, 21, 32, 43, 54};
    SECTION("ranges::views::zip: a tuple of references") {
        every_starmap_call<int>(p, fn<&add>, [&] { return ranges::views::zip(five, tens); }, sums);
    }
    SECTION("ranges::views::zip of a view of prvalues and references") {
        every_starmap_call<int>(p, fn<&add>, [&] { return ranges::views::zip(ranges::views::iota(0, 5), tens); }, sums);
    }
    SECTION("ranges::views::enumerate: a pair of an index and a reference") {
        every_starmap_call<long>(p, fn<&with_index>, [&] { return ranges::views::enumerate(tens); },
                                 {10, 120, 230, 340, 450});
    }
    SECTION("std::views::transform yielding pairs and tuples") {
        every_starmap_call<int>(p, fn<&add>, [&] {
            return five | std::views::transform([](int x) { return std::pair{x, 10 * (x + 1)}; });
        }, sums);
        every_starmap_call<std::string>(p, fn<&label>, [&] {
            return five | std::views::take(2) | std::views::transform([](int x) {
                       return std::tuple<std::string, int>{"n", x};
                   });
        }, {"n0", "n1"});
    }
    SECTION("a filtered zip: no size, copied first") {
        every_starmap_call<int>(p, fn<&add>, [&] {
            return ranges::views::zip(five, tens) | ranges::views::filter([](auto t) { return std::get<0>(t) % 2 == 0; });
        }, {10, 32, 54});
    }
}

TEMPLATE_TEST_CASE("an infinite standard view piped into views::imap is read lazily", "[pool][ranges][imap]",
                   START_METHODS) {
    pool_of<TestType> p(2);
    CHECK(collect<int>(std::views::iota(0) | views::imap(p, fn<&square>) | ranges::views::take(5)) ==
          std::vector<int>{0, 1, 4, 9, 16});
    // Values made on the fly, in any order: three squares of positive numbers, all different.
    auto plus_one = std::views::iota(0) | std::views::transform([](int x) { return x + 1; });
    auto three = sorted(collect<int>(plus_one | views::imap_unordered(p, fn<&square>, imap_options{1, 4}) |
                                     ranges::views::take(3)));
    REQUIRE(three.size() == 3);
    CHECK(std::adjacent_find(three.begin(), three.end()) == three.end());
    for (int v : three) {
        int r = 1;
        while (r * r < v) ++r;
        CHECK(r * r == v);
    }
}
