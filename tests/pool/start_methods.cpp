// The pool under each start method: workers forked from the caller (fork), started as fresh
// copies of the program (spawn), or forked by the server (forkserver). The same calls give
// the same results, dying workers are replaced, and what cannot reach a fresh worker is
// refused with a sentence.
#include "pool/helpers.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace multiproc;
using pooltest::pool_of;

namespace {
int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
std::string shout(const std::string& s) { return s + "!"; }
pid_t my_pid(int) { return ::getpid(); }
int die_on_seven(int x) {
    if (x == 7) ::_exit(3);
    return x;
}
int throw_on_two(int x) {
    if (x == 2) throw std::out_of_range("two is out of range");
    return x;
}
int global_mark = 0;
int read_mark(int) { return global_mark; }
std::string text_mark;
void set_mark(int n, std::string s) { text_mark = std::to_string(n) + " " + s; }
std::string read_text_mark(int) { return text_mark; }
void failing_init(int n) { throw std::runtime_error("init " + std::to_string(n) + " failed"); }
std::vector<int> upto(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}
} // namespace

TEMPLATE_TEST_CASE("apply, map, starmap, imap and imap_unordered give the same results under every start method",
                   "[pool][start_methods]", START_METHODS) {
    pool_of<TestType> p(2);
    CHECK(p.apply(fn<&square>, 7) == 49);
    CHECK(p.apply(fn<&shout>, "hi") == "hi!");
    auto squares = p.map(fn<&square>, upto(1000));
    REQUIRE(squares.size() == 1000);
    CHECK(squares[999] == 999 * 999);
    CHECK(p.starmap(fn<&add>, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}}) == std::vector<int>{3, 7});
    std::vector<int> ordered;
    for (int r : p.imap(fn<&square>, upto(50), 3)) ordered.push_back(r);
    CHECK(ordered == std::vector<int>(squares.begin(), squares.begin() + 50));
    long total = 0;
    for (int r : p.imap_unordered(fn<&square>, upto(50))) total += r;
    CHECK(total == std::accumulate(squares.begin(), squares.begin() + 50, 0L));
    auto pids = p.map(fn<&my_pid>, upto(200), 1);
    std::set<pid_t> distinct(pids.begin(), pids.end());
    CHECK(distinct.size() >= 1);
    CHECK(distinct.count(::getpid()) == 0); // the work ran in workers, not here
}

TEMPLATE_TEST_CASE("a worker that dies mid-task fails that task with broken_pool and is replaced",
                   "[pool][start_methods][death]", START_METHODS) {
    pool_of<TestType> p(2);
    CHECK_THROWS_WITH(p.apply(fn<&die_on_seven>, 7), Catch::Contains("exited with code 3"));
    CHECK(p.apply(fn<&die_on_seven>, 8) == 8);
    CHECK(p.map(fn<&square>, upto(20)).size() == 20);
}

TEMPLATE_TEST_CASE("an exception in a task comes back as remote_error under every start method",
                   "[pool][start_methods][errors]", START_METHODS) {
    pool_of<TestType> p(1);
    try {
        (void)p.apply(fn<&throw_on_two>, 2);
        FAIL("no exception");
    } catch (const remote_error& e) {
        CHECK(e.type_name() == "std::out_of_range");
        CHECK(e.message() == "two is out of range");
    }
    CHECK(p.apply(fn<&throw_on_two>, 3) == 3);
}

TEMPLATE_TEST_CASE("maxtasksperchild recycles workers under every start method", "[pool][start_methods]",
                   START_METHODS) {
    pool_of<TestType> p(pool_options{.processes = 1, .maxtasksperchild = 1});
    std::set<pid_t> pids;
    for (int i = 0; i < 3; ++i) pids.insert(p.apply(fn<&my_pid>, i));
    CHECK(pids.size() == 3);
}

TEMPLATE_TEST_CASE("the initializer runs with its initargs in every worker, replacements included",
                   "[pool][start_methods][initializer]", START_METHODS) {
    pool_of<TestType> p(2, fn<&set_mark>, std::tuple<int, std::string>{7, "seven"}, 1);
    for (int i = 0; i < 6; ++i) CHECK(p.apply(fn<&read_text_mark>, i) == "7 seven"); // each on a new worker
}

TEMPLATE_TEST_CASE("an initializer that throws breaks the pool with its error, under every start method",
                   "[pool][start_methods][initializer]", START_METHODS) {
    pool_of<TestType> p(1, fn<&failing_init>, std::tuple<int>{3});
    CHECK_THROWS_WITH(p.apply(fn<&square>, 2), Catch::Contains("initializer") && Catch::Contains("init 3 failed"));
}

TEMPLATE_TEST_CASE("a pool whose workers do not share memory refuses a std::function initializer, saying why",
                   "[pool][start_methods][errors]", by_spawn, by_forkserver) {
    using P = pool_of<TestType>;
    CHECK_THROWS_WITH(P(pool_options{.processes = 1, .initializer = [] {}}),
                      Catch::Contains("initializer cannot reach start::") && Catch::Contains("initargs"));
}

TEMPLATE_TEST_CASE("fork workers see the parent's globals as they were at the fork, spawn workers a fresh program",
                   "[pool][start_methods]", START_METHODS) {
    global_mark = 42;
    pool_of<TestType> p(1);
    global_mark = 0;
    const int seen = p.apply(fn<&read_mark>, 0);
    CHECK(seen == (TestType::policies::start::inherits_memory ? 42 : 0));
}
