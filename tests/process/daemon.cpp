// Daemons: the default from the policy, no children of their own, terminated at their
// parent's exit and killed with it when it dies.
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/process.hpp>

#include <sys/prctl.h>

using namespace multiproc;

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
}

TEST_CASE("a daemon knows it is one and may not have children", "[process][daemon]") {
    test::pipe_pair out;
    basic_process<daemon::yes> d([&] {
        std::string msg = current_process().daemon() ? "daemon " : "not-daemon ";
        process child([] {});
        try {
            child.start();
            msg += "started";
        } catch (const state_error& e) {
            msg += e.what();
        }
        test::write_str(out.w, msg);
    });
    d.start();
    out.close_w();
    CHECK(test::read_all(out.r) == "daemon daemonic processes are not allowed to have children");
    d.join();
    CHECK(d.exitcode() == 0);
}

TEST_CASE("at normal exit daemons are terminated and every child joined, with CPython's log lines",
          "[process][daemon][exit]") {
    test::running_program prog("daemon_at_exit");
    std::string out, err;
    int code = prog.finish(out, err);
    CHECK(code == 0);
    INFO(out << err);
    auto pos = out.find("daemon ");
    REQUIRE(pos != std::string::npos);
    pid_t daemon = std::stoi(out.substr(pos + 7));
    CHECK(test::count(out, "worker done\n") == 1);
    CHECK_FALSE(test::running(daemon)); // terminated and reaped by its parent
    CHECK(test::count(err, "[INFO/MainProcess] process shutting down\n") == 1);
    CHECK(test::count(err, "[INFO/MainProcess] calling terminate() for daemon forever\n") == 1);
    // As in CPython, the daemon is joined (and that logged) only if it has not already died
    // of the SIGTERM by the time the exit function scans the children again.
    auto joined = err.find("[INFO/MainProcess] calling join() for process forever\n");
    if (joined != std::string::npos) CHECK(err.find("calling terminate() for daemon forever") < joined);
    CHECK(test::count(err, "calling join() for process forever") <= 1);
}

TEST_CASE("a daemon is killed when its parent dies without exiting normally", "[process][daemon][orphans]") {
    // Orphans are re-parented to this test process, so it can reap them.
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    test::running_program prog("daemon_orphan");
    pid_t daemon = std::stoi(test::read_line(prog.out));
    REQUIRE(test::running(daemon));
    ::kill(prog.pid, SIGKILL);
    CHECK(test::wait_exit(daemon, std::chrono::seconds(10)));
    int status = 0;
    std::string o, e;
    CHECK(prog.finish(o, e) == -SIGKILL);
    CHECK(::waitpid(daemon, &status, 0) == daemon);
    CHECK(test::decode(status) == -SIGKILL);
}
