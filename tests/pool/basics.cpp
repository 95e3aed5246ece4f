// The pool's calls with CPython's semantics: apply, map, starmap, imap and their async
// forms; what may be a task and what may travel; chunk sizes; worker names.
#include "pool/helpers.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <algorithm>
#include <list>
#include <map>
#include <optional>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace multiproc;
using pooltest::pool_of;
using pooltest::square;

namespace {
int add(int a, int b) { return a + b; }
std::string shout(const std::string& s) { return s + "!"; }
struct twice { // a stateless function object
    long operator()(long x) const { return 2 * x; }
};
struct point {
    int x, y;
};
point swap_xy(point p) { return {p.y, p.x}; }
std::vector<int> upto(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}
int counter = 0;
void bump(int) { ++counter; } // in the worker's copy of `counter`, not ours

struct reading { // an aggregate: serialize::binary sends it member by member
    std::string sensor;
    std::vector<double> values;
    std::optional<int> flag;
};
std::map<std::string, double> means(const std::vector<reading>& rs) {
    std::map<std::string, double> out;
    for (const auto& r : rs) out[r.sensor] = std::accumulate(r.values.begin(), r.values.end(), 0.0) / r.values.size();
    return out;
}
struct raw_block { // trivially copyable, with padding: serialize::bitwise sends its bytes
    char tag;
    long value;
};
raw_block bump_block(raw_block b) { return {b.tag, b.value + 1}; }
} // namespace

TEMPLATE_TEST_CASE("apply runs the task in a worker and returns its result", "[pool][apply]", START_METHODS) {
    pool_of<TestType> p(2);
    CHECK(p.apply(fn<&square>, 7) == 49);
    CHECK(p.apply(fn<&add>, 2, 3) == 5);
    CHECK(p.apply(fn<&pooltest::worker_pid>) != ::getpid());
    CHECK(p.apply([] { return 42; }) == 42); // no arguments
    p.apply(fn<&bump>, 1);                   // void
    CHECK(counter == 0);                     // the worker changed its own copy
}

TEST_CASE("any stateless callable is a task: functions, pointers, lambdas, function objects",
          "[pool][callables]") {
    pool p(2);
    int (*fp)(int) = square;
    CHECK(p.apply(fp, 5) == 25);
    CHECK(p.apply(&add, 1, 1) == 2);
    CHECK(p.apply(twice{}, 21L) == 42);
    CHECK(p.apply([](int a, int b) { return a * b; }, 6, 7) == 42);
    auto generic = [](auto x) { return x + x; };
    CHECK(p.apply(generic, std::string("ab")) == "abab");
    CHECK(p.map(twice{}, std::vector<long>{1, 2, 3}) == std::vector<long>{2, 4, 6});
}

TEMPLATE_TEST_CASE("arguments and results may be text, vectors, tuples, optionals and plain structs",
                   "[pool][types]", START_METHODS) {
    pool_of<TestType> p(2);
    CHECK(p.apply(fn<&shout>, "hi") == "hi!"); // a string literal travels as std::string
    CHECK(p.apply(fn<&upto>, 4) == std::vector<int>{0, 1, 2, 3});
    auto pt = p.apply(fn<&swap_xy>, point{1, 2});
    CHECK(pt.x == 2);
    CHECK(pt.y == 1);
    auto t = p.apply([](std::tuple<int, std::string> a) { return std::get<1>(a) + std::to_string(std::get<0>(a)); },
                     std::tuple<int, std::string>{3, "x"});
    CHECK(t == "x3");
    auto o = p.apply([](std::optional<int> a) { return a ? std::optional<std::string>("some") : std::nullopt; },
                     std::optional<int>{});
    CHECK_FALSE(o.has_value());
    auto big = p.apply([](std::string s) { return s.size(); }, std::string(3 << 20, 'x')); // bigger than a ring
    CHECK(big == (3u << 20));
    auto back = p.apply([](int n) { return std::string(static_cast<std::size_t>(n), 'y'); }, 2 << 20);
    CHECK(back.size() == (2u << 20));
}

TEMPLATE_TEST_CASE("map returns the results in input order, for any input range", "[pool][map]", START_METHODS) {
    pool_of<TestType> p(2);
    auto xs = upto(1000);
    auto ys = p.map(fn<&square>, xs);
    REQUIRE(ys.size() == 1000);
    for (int i = 0; i < 1000; ++i) CHECK(ys[static_cast<std::size_t>(i)] == i * i);
    std::list<int> l{3, 1, 2}; // not random access
    CHECK(p.map(fn<&square>, l) == std::vector<int>{9, 1, 4});
    CHECK(p.map(fn<&shout>, std::vector<std::string>{"a", "b"}) == std::vector<std::string>{"a!", "b!"});
    CHECK(p.map(fn<&square>, std::vector<int>{}).empty());
    for (int cs : {1, 3, 7, 1000, 5000}) CHECK(p.map(fn<&square>, xs, cs) == ys);
    p.map(fn<&bump>, xs); // void: nothing to return
    CHECK(p.map([](int x) { return x % 2 == 0; }, upto(5)) == std::vector<bool>{true, false, true, false, true});
}

TEST_CASE("map's default chunksize is CPython's: about four chunks per worker", "[pool][map]") {
    CHECK(detail::default_chunksize(0, 4) == 0);
    CHECK(detail::default_chunksize(1, 4) == 1);
    CHECK(detail::default_chunksize(16, 4) == 1);
    CHECK(detail::default_chunksize(17, 4) == 2);
    CHECK(detail::default_chunksize(1000000, 2) == 125000);
    CHECK(detail::default_chunksize(1000001, 2) == 125001);
}

TEST_CASE("a chunksize below 1 is CPython's ValueError, with the value given", "[pool][map][errors]") {
    pool p(1);
    auto xs = upto(3);
    CHECK_THROWS_AS(p.map(square, xs, 0), value_error);
    CHECK_THROWS_WITH(p.map(square, xs, 0), "Chunksize must be 1+, not 0");
    CHECK_THROWS_WITH(p.imap(square, xs, 0), "Chunksize must be 1+, not 0");
    CHECK_THROWS_WITH(p.imap_unordered(square, xs, -2), "Chunksize must be 1+, not -2");
    CHECK_THROWS_WITH(p.map_async(square, xs, -1), "Chunksize must be 1+, not -1");
    CHECK_THROWS_WITH(xs | views::imap(p, square, imap_options{1, 0}), "multiproc: an imap window must be at least 1, not 0");
    CHECK(p.map(square, xs) == std::vector<int>{0, 1, 4}); // and the pool is fine
}

TEMPLATE_TEST_CASE("starmap unpacks each element into the arguments", "[pool][starmap]", START_METHODS) {
    pool_of<TestType> p(2);
    std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
    CHECK(p.starmap(fn<&add>, pairs) == std::vector<int>{3, 7, 11});
    std::vector<std::tuple<std::string, int>> ts{{"a", 1}, {"b", 2}};
    auto r = p.starmap([](const std::string& s, int n) { return s + std::to_string(n); }, ts, 1);
    CHECK(r == std::vector<std::string>{"a1", "b2"});
    CHECK(p.starmap_async(fn<&add>, pairs).get() == std::vector<int>{3, 7, 11});
}

TEMPLATE_TEST_CASE("the async forms return at once and deliver later", "[pool][async]", START_METHODS) {
    pool_of<TestType> p(2);
    auto a = p.apply_async(fn<&add>, 20, 22);
    auto m = p.map_async(fn<&square>, upto(10));
    CHECK(a.get() == 42);
    CHECK(a.get() == 42); // again: the same value
    CHECK(m.get()[9] == 81);
    CHECK(a.ready());
    CHECK(a.successful());
    auto v = p.apply_async(fn<&bump>, 1);
    v.get(); // void
    CHECK(v.successful());
}

TEMPLATE_TEST_CASE("imap and imap_unordered yield every result, imap in order", "[pool][imap]", START_METHODS) {
    pool_of<TestType> p(2);
    auto xs = upto(200);
    std::vector<int> in_order;
    for (int y : p.imap(fn<&square>, xs)) in_order.push_back(y);
    CHECK(in_order == p.map(fn<&square>, xs));
    std::multiset<int> any_order;
    for (int y : p.imap_unordered(fn<&square>, xs, 7)) any_order.insert(y);
    CHECK(any_order == std::multiset<int>(in_order.begin(), in_order.end()));
    std::vector<int> chunked;
    for (int y : p.imap(fn<&square>, xs, 16)) chunked.push_back(y);
    CHECK(chunked == in_order);
}

TEMPLATE_TEST_CASE("workers are daemons named as CPython names them (ForkPoolWorker-N, ...), numbered with the "
                   "process counter",
                   "[pool][names]", START_METHODS) {
    pool_of<TestType> p(2);
    const std::string kind = std::is_same_v<TestType, by_fork>    ? "ForkPoolWorker-"
                             : std::is_same_v<TestType, by_spawn> ? "SpawnPoolWorker-"
                                                                        : "ForkServerPoolWorker-";
    std::set<std::string> names;
    for (int i = 0; i < 40; ++i) names.insert(p.apply([] { return current_process().name(); }));
    for (auto& n : names) CHECK(n.rfind(kind, 0) == 0);
    CHECK(p.apply([] { return current_process().daemon(); }));
    CHECK(p.apply([] { return parent_process()->pid(); }) == ::getpid());
    bool saw_worker = false;
    for (auto& c : active_children()) saw_worker |= c.name().rfind(kind, 0) == 0;
    CHECK(saw_worker);
}

TEST_CASE("a context makes pools with its policies", "[pool][context]") {
    context<order::unordered, pool_exit::terminate> ctx;
    auto p = ctx.pool(2);
    static_assert(std::is_same_v<decltype(p), basic_pool<order::unordered, pool_exit::terminate>>);
    CHECK(p.apply(square, 3) == 9);
    CHECK(p.processes() == 2);
}

TEST_CASE("pool() has cpu_count() workers", "[pool]") {
    pool p;
    CHECK(p.processes() == cpu_count());
    CHECK(p.apply(square, 2) == 4);
}

TEST_CASE("arguments and results travel with the pool's serialization policy", "[pool][serialize]") {
    SECTION("serialize::binary, the default: aggregates, maps, optionals, nested") {
        pool p(2);
        std::vector<reading> rs{{"a", {1.0, 3.0}, std::nullopt}, {"b", {2.0, 4.0, 6.0}, 7}};
        auto m = p.apply(means, rs);
        CHECK(m == std::map<std::string, double>{{"a", 2.0}, {"b", 4.0}});
        auto all = p.map(means, std::vector<std::vector<reading>>(5, rs), 2);
        CHECK(all.size() == 5);
        CHECK(all[4] == m);
    }
    SECTION("serialize::bitwise: a trivially copyable struct as its bytes") {
        basic_pool<serialize::bitwise> p(2);
        auto out = p.map(bump_block, std::vector<raw_block>(100, raw_block{'x', 41}));
        CHECK(std::all_of(out.begin(), out.end(), [](const raw_block& b) { return b.tag == 'x' && b.value == 42; }));
    }
}
