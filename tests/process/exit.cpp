// What happens when processes end: output written once, a child never runs its parent's
// exit handlers, the main process waits for its children. Under every start method: each
// helper program takes the method as its argument.
#include "support/support.hpp"

#include <string>

using namespace std::chrono_literals;

namespace {
template <class Ctx>
std::vector<std::string> method() {
    return {std::string(Ctx::start_method())};
}
} // namespace

TEMPLATE_TEST_CASE("output buffered before start() is printed once", "[process][exit][output]", START_METHODS) {
    auto r = test::run_program("buffered_output", method<TestType>());
    CHECK(r.code == 0);
    CHECK(r.out == "stdio-before iostream-before child after\n");
}

TEMPLATE_TEST_CASE("a child runs its own atexit handlers, whether its target returns, throws or calls std::exit, "
                   "and never its parent's atexit handlers or static destructors",
                   "[process][exit]", START_METHODS) {
    auto r = test::run_program("child_exit", method<TestType>());
    CHECK(r.code == 0);
    std::string main_pid = r.out.substr(5, r.out.find('\n') - 5);
    INFO(r.out);
    CHECK(r.out == "main " + main_pid + "\nchild returns\nchild atexit in Process-1\nexitcode 0\n" +
                       "child atexit in Process-2\nexitcode 1\nchild exits\nchild atexit in Process-3\nexitcode 3\n" +
                       "atexit in " + main_pid + "\nstatic-destructor in " + main_pid + "\n");
    CHECK(r.err == "Process Process-2:\nstd::runtime_error: boom\n");
}

TEMPLATE_TEST_CASE("the main process joins its children at exit, even unjoined and destroyed ones",
                   "[process][exit]", START_METHODS) {
    auto r = test::run_program("exit_joins_children", method<TestType>());
    CHECK(r.code == 0);
    INFO(r.out);
    // The children's lines all come before the line printed after the exit function.
    auto last = r.out.rfind("main ends\n");
    REQUIRE(last != std::string::npos);
    CHECK(last + 10 == r.out.size());
    for (int i = 0; i < 3; ++i) CHECK(test::count(r.out.substr(0, last), "child " + std::to_string(i) + " done\n") == 1);
    CHECK(test::count(r.err, "[INFO/MainProcess] process shutting down\n") == 1);
}
