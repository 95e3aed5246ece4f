// Remote exceptions: whatever a task throws comes back as remote_error with its type name,
// what(), the worker's pid and the task's index; the pool stays usable.
#include "pool/helpers.hpp"

#include <multiproc/pool.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

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

TEST_CASE("an exception from the input itself ends imap after the results before it", "[pool][errors][imap]") {
    pool p(2);
    struct throwing_input {
        int operator()(int i) const {
            if (i == 3) throw std::length_error("input ran dry");
            return i;
        }
    };
    auto input = ranges::views::iota(0) | ranges::views::transform(throwing_input{});
    std::vector<int> got;
    bool threw = false;
    auto v = p.imap(pooltest::square, input);
    for (auto it = v.begin(); it != v.end(); ++it) {
        try {
            got.push_back(*it);
        } catch (const std::length_error& e) {
            threw = std::string(e.what()) == "input ran dry";
        }
    }
    CHECK(got == std::vector<int>{0, 1, 4});
    CHECK(threw);
}
