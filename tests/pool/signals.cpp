// Ctrl-C and the parent's death: whole programs, so that the pool's workers are children of
// a process the test can signal or kill.
#include "pool/helpers.hpp"

#include <string>
#include <vector>

namespace {
template <class Ctx>
std::string method() {
    return std::string(Ctx::start_method());
}

/// Reads worker pids, one per line, up to "ready".
std::vector<pid_t> pids_until_ready(int fd) {
    std::vector<pid_t> pids;
    for (std::string line = test::read_line(fd); line != "ready" && !line.empty(); line = test::read_line(fd))
        pids.push_back(std::stoi(line));
    return pids;
}
} // namespace

TEMPLATE_TEST_CASE("design 5.7: Ctrl-C stops a busy pool cleanly, with no storm of worker tracebacks",
                   "[pool][signals][design5]", START_METHODS) {
    test::running_program prog("pool_sigint", {method<TestType>()}); // it makes itself a process group
    auto workers = pids_until_ready(prog.out);
    REQUIRE(workers.size() == 2);
    REQUIRE(::kill(-prog.pid, SIGINT) == 0); // the whole group, as a terminal does
    std::string out, err;
    CHECK(prog.finish(out, err) == -SIGINT);
    CHECK(err.empty());
    for (pid_t w : workers) CHECK(test::wait_exit(w)); // gone with their parent
}

TEMPLATE_TEST_CASE("design 5.7: a program that catches Ctrl-C terminates its pool and exits normally",
                   "[pool][signals][design5]", START_METHODS) {
    test::running_program prog("pool_sigint", {method<TestType>(), "handle"});
    auto workers = pids_until_ready(prog.out);
    REQUIRE(workers.size() == 2);
    REQUIRE(::kill(-prog.pid, SIGINT) == 0);
    std::string out, err;
    CHECK(prog.finish(out, err) == 0);
    CHECK(out == "terminated: both tasks failed\n");
    CHECK(err.empty());
    for (pid_t w : workers) CHECK_FALSE(test::running(w));
}

TEMPLATE_TEST_CASE("design 5.5: pool workers die with their parent, even when it is killed",
                   "[pool][signals][design5]", START_METHODS) {
    test::running_program prog("pool_orphan", {method<TestType>()});
    auto workers = pids_until_ready(prog.out);
    REQUIRE(workers.size() == 2);
    for (pid_t w : workers) CHECK(test::running(w));
    REQUIRE(::kill(prog.pid, SIGKILL) == 0);
    std::string out, err;
    CHECK(prog.finish(out, err) == -SIGKILL);
    for (pid_t w : workers) CHECK(test::wait_exit(w)); // no orphans
}
