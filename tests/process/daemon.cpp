// Daemons: the default from the policy, no children of their own, terminated at their
// parent's exit and killed with it when it dies; under every start method (under
// forkserver the requesting process is the daemon's parent, though the server forked it).
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/process.hpp>

#include <sys/prctl.h>

using namespace multiproc;

namespace {
template <class Ctx>
std::vector<std::string> method() {
    return {std::string(Ctx::start_method())};
}
} // namespace

TEST_CASE("the daemon policy sets the default, options and the setter override it", "[process][daemon]") {
    process a([] {});
    CHECK_FALSE(a.daemon());
    basic_process<daemon::yes> b([] {});
    CHECK(b.daemon());
    basic_process<daemon::yes> c(process_options{.daemon = false}, [] {});
    CHECK_FALSE(c.daemon());
    process d([] {});
    d.daemon(true);
    CHECK(d.daemon());
    basic_process<daemon::yes, start::spawn> e([] {});
    CHECK(e.daemon());
}

TEMPLATE_TEST_CASE("a daemon knows it is one and may not have children", "[process][daemon]", START_METHODS) {
    test::report_pipe out;
    test::process_t<TestType> d(
        process_options{.name = {}, .daemon = true},
        [](test::fd_arg o) {
            std::string msg = current_process().daemon() ? "daemon " : "not-daemon ";
            test::process_t<TestType> child([] {});
            try {
                child.start();
                msg += "started";
            } catch (const state_error& e) {
                msg += e.what();
            }
            o.write(msg);
        },
        out.w_arg());
    d.start();
    CHECK(out.collect() == "daemon daemonic processes are not allowed to have children");
    d.join();
    CHECK(d.exitcode() == 0);
}

TEMPLATE_TEST_CASE("a process made in a daemon is a daemon unless told otherwise (CPython: inherited)",
                   "[process][daemon]", START_METHODS) {
    test::report_pipe out;
    basic_process<typename TestType::policies::start, daemon::yes, nested::allow> d(
        [](test::fd_arg o) {
            test::process_t<TestType> inherits([] {});
            test::process_t<TestType> told(process_options{.name = {}, .daemon = false}, [] {});
            basic_process<typename TestType::policies::start, daemon::no> by_policy([] {});
            o.write(std::string(inherits.daemon() ? "daemon" : "not-daemon") + (told.daemon() ? " daemon" : " not-daemon") +
                    (by_policy.daemon() ? " daemon" : " not-daemon"));
        },
        out.w_arg());
    d.start();
    // (Before: "not-daemon not-daemon not-daemon": under nested::allow such a child outlived
    // its daemon parent's end.)
    CHECK(out.collect() == "daemon not-daemon daemon");
    d.join();
    CHECK(d.exitcode() == 0);
    process here([] {});
    CHECK_FALSE(here.daemon()); // the main process is no daemon
}

TEMPLATE_TEST_CASE("at normal exit daemons are terminated and every child joined, with CPython's log lines",
                   "[process][daemon][exit]", START_METHODS) {
    test::running_program prog("daemon_at_exit", method<TestType>());
    std::string out, err;
    int code = prog.finish(out, err);
    CHECK(code == 0);
    INFO(out << err);
    auto pos = out.find("daemon ");
    REQUIRE(pos != std::string::npos);
    pid_t daemon = std::stoi(out.substr(pos + 7));
    CHECK(test::count(out, "worker done\n") == 1);
    CHECK_FALSE(test::running(daemon)); // terminated and reaped (by its parent, or its forkserver)
    CHECK(test::count(err, "[INFO/MainProcess] process shutting down\n") == 1);
    CHECK(test::count(err, "[INFO/MainProcess] calling terminate() for daemon forever\n") == 1);
    // As in CPython, the daemon is joined (and that logged) only if it has not already died
    // of the SIGTERM by the time the exit function scans the children again.
    auto joined = err.find("[INFO/MainProcess] calling join() for process forever\n");
    if (joined != std::string::npos) CHECK(err.find("calling terminate() for daemon forever") < joined);
    CHECK(test::count(err, "calling join() for process forever") <= 1);
}

TEMPLATE_TEST_CASE("a daemon is killed when its parent dies without exiting normally",
                   "[process][daemon][orphans]", START_METHODS) {
    // Orphans are re-parented to this test process, so it can reap them.
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    test::running_program prog("daemon_orphan", method<TestType>());
    std::string line = test::read_line(prog.out);
    pid_t daemon = 0, server = 0;
    REQUIRE(std::sscanf(line.c_str(), "%d %d", &daemon, &server) == 2);
    REQUIRE(test::running(daemon));
    ::kill(prog.pid, SIGKILL);
    CHECK(test::wait_exit(daemon, std::chrono::seconds(10)));
    std::string o, e;
    CHECK(prog.finish(o, e) == -SIGKILL);
    if (server) {
        // The forkserver killed the daemon when its requester's connection hung up, and
        // exits with the process that started it. Either may now be a zombie of ours.
        CHECK(test::wait_exit(server, std::chrono::seconds(10)));
        for (pid_t pid : {daemon, server}) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid && pid == daemon) CHECK(test::decode(status) == -SIGKILL);
        }
    } else {
        int status = 0;
        CHECK(::waitpid(daemon, &status, 0) == daemon);
        CHECK(test::decode(status) == -SIGKILL);
    }
}
