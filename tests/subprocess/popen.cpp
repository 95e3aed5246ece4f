// subprocess::popen: communicate without deadlocks, timeouts that leave the child running
// and resume, signals, poll and wait, what the destructor does, and system calls that are
// interrupted or fail.
#include "support/support.hpp"

#include <multiproc/subprocess.hpp>

using namespace multiproc;
namespace sp = multiproc::subprocess;
using namespace std::chrono_literals;
using detail::sys::call;

namespace {

const sp::options all_pipes{.in = sp::pipe, .out = sp::pipe, .err = sp::pipe};

std::string fd_str(int fd) { return std::to_string(fd); }

} // namespace

TEST_CASE("communicate writes the input, reads both streams and sets returncode", "[subprocess][popen]") {
    test::baseline before;
    sp::popen p({"sort"}, all_pipes);
    CHECK(p.pid() > 0);
    CHECK(p.in_fd() >= 0);
    CHECK(p.out_fd() >= 0);
    CHECK(p.err_fd() >= 0);
    auto [out, err] = p.communicate("c\nb\na\n");
    CHECK(out == "a\nb\nc\n");
    CHECK(err.empty());
    CHECK(p.returncode() == 0);
    CHECK(p.poll() == 0);
    CHECK(p.wait() == 0);
    CHECK(p.in_fd() == -1); // communicate closed the pipes
    CHECK(p.out_fd() == -1);
    CHECK_THROWS_WITH(p.communicate("more"), "Cannot send input after starting communication");
    before.check();
}

TEST_CASE("a communicate after one that completed returns the same output again", "[subprocess][popen]") {
    test::baseline before;
    sp::options o = all_pipes;
    o.text = true;
    sp::popen p({"sh", "-c", "printf 'out\\r\\n'; printf 'err' >&2"}, o);
    auto first = p.communicate();
    CHECK(first.out == "out\n");
    CHECK(first.err == "err");
    for (int i = 0; i < 2; ++i) { // as CPython's Popen: the output is kept, not handed out once
        auto again = p.communicate();
        CHECK(again.out == "out\n");
        CHECK(again.err == "err");
    }
    CHECK(p.communicate(std::chrono::seconds(0)).out == "out\n"); // nothing left to wait for
    CHECK_THROWS_WITH(p.communicate("late input"), "Cannot send input after starting communication");
    CHECK(p.returncode() == 0);
    before.check();
}

TEST_CASE("communicate never deadlocks, whatever the child writes to both streams", "[subprocess][popen]") {
    test::baseline before;
    std::string big(8 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4093);
    sp::popen p({"tee", "/dev/stderr"}, all_pipes);
    auto [out, err] = p.communicate(big);
    CHECK(out == big);
    CHECK(err == big);
    CHECK(p.returncode() == 0);
    before.check();
}

TEST_CASE("communicate with a timeout leaves the child running, a later call continues",
          "[subprocess][popen][timeout]") {
    test::baseline before;
    test::pipe_pair ready, gate;
    sp::popen p({"sh", "-c", "echo one; echo ready >&" + fd_str(ready.w) + "; read x <&" + fd_str(gate.r) + "; echo two"},
                {.out = sp::pipe, .pass_fds = {ready.w, gate.r}});
    ready.close_w();
    REQUIRE(test::read_line(ready.r) == "ready"); // "one" is in the pipe by now
    try {
        p.communicate(50ms);
        FAIL("communicate should have timed out");
    } catch (const sp::timeout_expired& e) {
        CHECK(e.out() == "one\n"); // CPython gives nothing here; run() needs it
        CHECK(std::abs(e.timeout().count() - 0.05) < 1e-12);
        CHECK(std::string(e.what()).find("timed out after 0.05 seconds") != std::string::npos);
    }
    CHECK_FALSE(p.poll().has_value());
    CHECK(test::running(p.pid()));
    gate.close_w(); // the child's read sees end-of-file
    auto [out, err] = p.communicate();
    CHECK(out == "one\ntwo\n"); // what the first call read is kept
    CHECK(err.empty());
    CHECK(p.returncode() == 0);
    ready.close_r();
    gate.close_r();
    before.check();
}

TEST_CASE("input not yet written when communicate times out is written by the next call",
          "[subprocess][popen][timeout]") {
    test::baseline before;
    test::pipe_pair gate;
    std::string big(1 << 20, 'x');
    for (std::size_t i = 0; i < big.size(); i += 1000) big[i] = '\n';
    // The child reads nothing until the gate opens, so at most a pipe's worth goes in.
    sp::popen p({"sh", "-c", "read x <&" + fd_str(gate.r) + "; exec cat"}, {.in = sp::pipe, .out = sp::pipe, .pass_fds = {gate.r}});
    CHECK_THROWS_AS(p.communicate(big, 50ms), sp::timeout_expired);
    CHECK_THROWS_WITH(p.communicate("again"), "Cannot send input after starting communication");
    gate.close_w();
    auto [out, err] = p.communicate();
    CHECK(out.size() == big.size());
    CHECK(out == big);
    gate.close_r();
    before.check();
}

TEST_CASE("a timeout in communicate's final wait keeps the output for the next call",
          "[subprocess][popen][timeout]") {
    test::baseline before;
    test::pipe_pair ready, gate;
    // The child closes its output, then waits: the pipes end, the child does not.
    sp::popen p({"sh", "-c",
                 "echo done; exec >&- 2>&-; echo ready >&" + fd_str(ready.w) + "; read x <&" + fd_str(gate.r)},
                {.out = sp::pipe, .err = sp::pipe, .pass_fds = {ready.w, gate.r}});
    ready.close_w();
    REQUIRE(test::read_line(ready.r) == "ready");
    try {
        p.communicate(50ms);
        FAIL("communicate should have timed out");
    } catch (const sp::timeout_expired& e) {
        CHECK(e.out() == "done\n");
    }
    gate.close_w();
    CHECK(p.communicate().out == "done\n");
    CHECK(p.returncode() == 1); // the status of the read that met end-of-file
    ready.close_r();
    gate.close_r();
    before.check();
}

TEST_CASE("wait with a timeout leaves the child running, kill and terminate give -9 and -15",
          "[subprocess][popen][signals]") {
    test::baseline before;
    sp::popen p({"sleep", "1000"});
    CHECK_THROWS_WITH(p.wait(20ms), "Command '['sleep', '1000']' timed out after 0.02 seconds");
    CHECK_FALSE(p.poll().has_value());
    CHECK_FALSE(p.returncode().has_value());
    p.kill();
    CHECK(p.wait() == -SIGKILL);
    CHECK(p.returncode() == -SIGKILL);
    CHECK_NOTHROW(p.terminate()); // known to have ended: nothing is sent
    CHECK(p.wait(0s) == -SIGKILL);

    sp::popen t({"sleep", "1000"});
    t.terminate();
    CHECK(t.wait(30s) == -SIGTERM);
    sp::popen u({"sleep", "1000"});
    u.send_signal(SIGUSR1);
    CHECK(u.wait() == -SIGUSR1);
    before.check();
}

TEST_CASE("poll says nothing while the child runs and its status once it has ended", "[subprocess][popen]") {
    test::baseline before;
    sp::popen p({"sh", "-c", "read x; exit 7"}, {.in = sp::pipe});
    CHECK_FALSE(p.poll().has_value());
    auto r = p.communicate(); // closes stdin: the read ends
    CHECK(r.out.empty());
    CHECK(p.returncode() == 7);
    CHECK(p.poll() == 7);
    before.check();
}

// Python: `p.stdin.write(...); p.stdin.close()`, then read. There was no way to close the
// pipe but communicate(), and closing in_fd() by hand closed it twice (an outside trial).
TEST_CASE("close_in() sends the child end of file, and communicate() goes on without input",
          "[subprocess][popen]") {
    test::baseline before;
    sp::popen p({"cat"}, {.in = sp::pipe, .out = sp::pipe});
    test::write_str(p.in_fd(), "line\n");
    p.close_in();
    CHECK(p.in_fd() == -1);
    p.close_in(); // (again: nothing)
    CHECK_THROWS_WITH(p.communicate("more"), "communicate() was given input, but the child's stdin was closed (close_in())");
    CHECK(p.communicate().out == "line\n"); // (cat ended: it read end of file)
    CHECK(p.returncode() == 0);
    before.check();
}

// Python's send_signal polls first: a child that has ended is reaped, and not signalled.
TEST_CASE("a signal to a child that has ended but is not reaped yet reaps it instead", "[subprocess][popen]") {
    test::baseline before;
    for (const int sig : {SIGTERM, SIGKILL, SIGUSR1}) {
        sp::popen p({"true"});
        siginfo_t info{};
        REQUIRE(::waitid(P_PID, static_cast<id_t>(p.pid()), &info, WEXITED | WNOWAIT) == 0); // (ended, not reaped)
        CHECK_FALSE(p.returncode().has_value());
        p.send_signal(sig);
        CHECK(p.returncode() == 0);
    }
    sp::popen q({"true"});
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(q.pid()), &info, WEXITED | WNOWAIT) == 0);
    q.terminate();
    CHECK(q.returncode() == 0);
    before.check();
}

TEST_CASE("text mode in communicate, and input without a stdin pipe is an error", "[subprocess][popen][text]") {
    test::baseline before;
    sp::popen p({"printf", "x\\r\\ny\\r"}, {.out = sp::pipe, .text = true});
    CHECK_THROWS_WITH(p.communicate("input"), "communicate() was given input, but the child's stdin is not a pipe "
                                              "(start it with .in = subprocess::pipe)");
    CHECK(p.communicate().out == "x\ny\n");
    before.check();
}

TEST_CASE("the destructor kills and reaps a child still running, and closes its pipes", "[subprocess][popen]") {
    test::baseline before;
    pid_t pid = 0;
    {
        sp::popen p({"sleep", "1000"}, all_pipes);
        pid = p.pid();
        REQUIRE(test::running(pid));
    }
    CHECK_FALSE(test::running(pid));
    {
        sp::popen done({"true"});
        done.wait(); // reaped already: the destructor has nothing to do
    }
    before.check();
}

TEST_CASE("moving a popen moves the child, assigning over one disposes of the old child", "[subprocess][popen]") {
    test::baseline before;
    sp::popen a({"sleep", "1000"});
    pid_t first = a.pid();
    sp::popen b(std::move(a));
    CHECK(b.pid() == first);
    CHECK(a.pid() == 0); // NOLINT(bugprone-use-after-move): moved-from state is specified
    CHECK_THROWS_WITH(a.wait(), "popen object was moved from"); // never waitpid(0): any child
    CHECK_THROWS_AS(a.communicate(), state_error);
    CHECK_THROWS_AS(a.kill(), state_error);
    sp::popen c({"true"});
    c = std::move(b); // c's own child (true) is reaped
    CHECK(c.pid() == first);
    CHECK(test::running(first));
    c.kill();
    CHECK(c.wait() == -SIGKILL);
    before.check();
}

TEST_CASE("interrupted reads, writes, polls and waits in communicate are retried", "[subprocess][popen][eintr]") {
    test::baseline before;
    std::string big(1 << 20, 'q');
    for (auto c : {call::read, call::write, call::poll, call::waitpid}) {
        sp::popen p({"cat"}, all_pipes);
        test::inject eintr(c, EINTR, 3);
        auto r = p.communicate(big);
        CHECK(eintr.left() == 0);
        CHECK(r.out == big);
        CHECK(p.returncode() == 0);
    }
    before.check();
}

TEST_CASE("failed system calls at launch are os_errors that leave no child and no descriptor",
          "[subprocess][popen][errors]") {
    test::baseline before;
    {
        test::inject fail(call::pipe2, EMFILE);
        CHECK_THROWS_WITH(sp::popen({"cat"}, all_pipes),
                          "multiproc: creating a pipe for the stdin of ['cat']: Too many open files");
    }
    {
        test::inject fail(call::open, ENFILE);
        CHECK_THROWS_WITH(sp::popen({"cat"}, {.in = sp::devnull}),
                          "multiproc: opening /dev/null for the stdin of ['cat']: Too many open files in system");
    }
    {
        test::inject fail(call::posix_spawn, EAGAIN);
        CHECK_THROWS_WITH(sp::popen({"cat"}, all_pipes), "multiproc: cannot run 'cat': Resource temporarily unavailable");
    }
    {
        test::inject fail(call::pidfd_open, EMFILE);
        try {
            sp::popen p({"sleep", "1000"}, all_pipes);
            FAIL("popen should have thrown");
        } catch (const os_error& e) {
            std::string what = e.what();
            CHECK(what.rfind("multiproc: pidfd_open for ['sleep', '1000'] (pid ", 0) == 0);
            CHECK(what.find("): Too many open files") != std::string::npos);
        }
    }
    before.check(); // the child of the failed pidfd_open was killed and reaped
}

TEST_CASE("a failed read in communicate is an os_error, and the child is killed with the popen",
          "[subprocess][popen][errors]") {
    test::baseline before;
    {
        sp::popen p({"sh", "-c", "echo data; exec sleep 1000"}, {.out = sp::pipe});
        test::inject fail(call::read, EIO);
        try {
            p.communicate();
            FAIL("communicate should have thrown");
        } catch (const os_error& e) {
            CHECK(std::string(e.what()) == "multiproc: reading the stdout of ['sh', '-c', 'echo data; exec sleep 1000'] "
                                           "(pid " + std::to_string(p.pid()) + "): Input/output error");
        }
    }
    before.check();
}
