// Ctrl-C and the parent's death: whole programs, so that the pool's workers are children of
// a process the test can signal or kill.
#include "pool/helpers.hpp"

#include <cstdio>
#include <iostream>
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

namespace term_before_start {
// In the scenario's process: a SIGTERM handler of its own, and a fork hook that sends the
// first forked child (the pool's worker) SIGTERM before the worker has reset its handlers.
int report_fd = -1;
bool armed = false, fire = false;
void prepare() {
    fire = armed;
    armed = false;
}
void in_child() {
    if (fire) ::raise(SIGTERM);
}
void on_term(int) {
    const std::string line = std::to_string(::getpid()) + "\n";
    (void)!::write(report_fd, line.data(), line.size());
}
} // namespace term_before_start

TEST_CASE("a fork worker sent SIGTERM before it starts dies of it, never running the parent's handler",
          "[pool][signals]") {
    test::pipe_pair handled;
    std::cout.flush(); // (what Catch2 buffered is not the scenario's to print)
    std::fflush(nullptr);
    const pid_t scenario = ::fork();
    REQUIRE(scenario >= 0);
    if (scenario == 0) { // never returns into Catch2
        namespace t = term_before_start;
        t::report_fd = handled.w;
        struct sigaction sa {};
        sa.sa_handler = &t::on_term;
        ::sigaction(SIGTERM, &sa, nullptr);
        ::pthread_atfork(&t::prepare, nullptr, &t::in_child);
        t::armed = true;
        int code = 3;
        {
            multiproc::basic_pool<multiproc::start::fork> pool(1); // its first worker dies of the SIGTERM
            code = pool.apply(pooltest::square, 3) == 9 ? 0 : 2;   // and is replaced
        }
        ::_exit(code);
    }
    handled.close_w();
    REQUIRE(test::wait_exit(scenario, std::chrono::seconds(60)));
    int status = 0;
    REQUIRE(::waitpid(scenario, &status, 0) == scenario);
    CHECK(test::decode(status) == 0);
    // Nobody ran the handler: not the worker (it died of the signal), not the scenario.
    CHECK(test::read_all(handled.r).empty());
}
