// Exhaustion (issue 15 item 7): with the descriptor limit (RLIMIT_NOFILE) lowered and every
// descriptor under it taken, then freed one at a time, starting a process, making a pipe, a
// queue or a pool either works or fails with an os_error (EMFILE) that says so, and leaves
// no descriptor, child or /dev/shm entry behind; with the limit raised again, everything
// works. The limit is lowered in a forked child that reports on a pipe and leaves with _exit,
// never in the test process. Process limits (RLIMIT_NPROC) bind no root process, so the
// EAGAIN that fork and posix_spawn then fail with is injected through detail::sys.
#include "support/limits.hpp"
#include "support/support.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/shared_memory.hpp>

#include <set>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>

using namespace multiproc;

namespace {

int twice(int x) { return 2 * x; }

/// The descriptors open in this process below 4096, found without opening one.
std::set<int> open_set() {
    std::set<int> out;
    for (int fd = 0; fd < 4096; ++fd)
        if (::fcntl(fd, F_GETFD) >= 0) out.insert(fd);
    return out;
}

std::string describe(const std::set<int>& s) {
    std::string out;
    for (int fd : s) out += std::to_string(fd) + " ";
    return out;
}

/// Any child of this process, running or a zombie: its pid, or 0 if there is none. Needs
/// no descriptor.
pid_t any_child() {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0) return 0; // ECHILD: none
    return info.si_pid != 0 ? info.si_pid : -1; // -1: one runs
}

/// In a forked child: runs `op` with 0, 1, 2, ... descriptors free under a lowered limit
/// until it works, then once more with the limit as it was. Every failure must be an
/// os_error EMFILE whose sentence starts "multiproc: "; nothing may be left behind. Writes
/// a line per problem to `report`; returns how many attempts failed as they should.
template <class Op>
int under_descriptor_pressure(int report, Op op) {
    auto problem = [&](const std::string& s) { test::write_str(report, s + "\n"); };
    auto shm_before = test::shm_entries();
    rlimit old{};
    std::vector<int> hog = test::fill_descriptor_table(128, old);
    if (errno != EMFILE) problem("filling the descriptor table did not end with EMFILE");
    int refused = 0;
    bool worked = false;
    while (!worked) {
        auto before = open_set();
        try {
            op();
            worked = true;
        } catch (const os_error& e) {
            std::string what = e.what();
            if (e.code().value() != EMFILE || what.rfind("multiproc: ", 0) != 0 ||
                what.find("Too many open files") == std::string::npos)
                problem("with " + std::to_string(refused) + " descriptors free: unexpected os_error: " + what);
            ++refused;
        } catch (const std::exception& e) {
            problem("with " + std::to_string(refused) + " descriptors free: not an os_error EMFILE: " + e.what());
            ++refused;
        }
        if (auto after = open_set(); after != before)
            problem("with " + std::to_string(refused) + " descriptors free: descriptors before " + describe(before) +
                    ", after " + describe(after));
        if (pid_t c = any_child()) problem("a child is left behind (" + std::to_string(c) + ")");
        if (hog.empty()) break;
        ::close(hog.back());
        hog.pop_back();
    }
    if (!worked) problem("it never worked under the lowered limit");
    for (int fd : hog) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
    try {
        op();
    } catch (const std::exception& e) {
        problem(std::string("with the limit raised again it fails: ") + e.what());
    }
    if (pid_t c = any_child()) problem("a child is left behind (" + std::to_string(c) + ")");
    if (test::shm_entries() != shm_before) problem("/dev/shm has changed");
    return refused;
}

/// Runs `body(report_fd)` in a forked child, which leaves with _exit; checks that it reported
/// no problem and that `op` failed at least once with too few descriptors.
template <class Op>
void check_in_child(Op op) {
    test::pipe_pair out;
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        out.close_r();
        int refused = 0;
        try {
            refused = under_descriptor_pressure(out.w, op);
        } catch (...) {
            test::write_str(out.w, "uncaught exception\n");
        }
        test::write_str(out.w, "refused " + std::to_string(refused) + "\n");
        ::_exit(0);
    }
    out.close_w();
    std::string report = test::read_all(out.r);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(test::decode(status) == 0);
    INFO(report);
    REQUIRE(report.rfind("refused ", 0) == 0); // no problem line before the count
    CHECK(std::stoi(report.substr(8)) > 0);    // it did run out of descriptors
}

} // namespace

TEMPLATE_TEST_CASE("out of descriptors, starting a process fails with EMFILE and leaks nothing, then it works",
                   "[hostile][exhaustion]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline before;
    check_in_child([] {
        test::process_t<TestType> p([] {});
        p.start();
        p.join();
        if (p.exitcode() != 0) throw std::runtime_error("the process did not end with 0");
    });
    before.check();
}

TEMPLATE_TEST_CASE("out of descriptors, making a pool fails with EMFILE and leaks nothing, then it works",
                   "[hostile][exhaustion]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline before;
    check_in_child([] {
        auto p = TestType{}.pool(2);
        if (p.map(fn<&twice>, std::vector<int>{1, 2, 3}) != std::vector<int>{2, 4, 6})
            throw std::runtime_error("wrong results");
    });
    before.check();
}

TEST_CASE("out of descriptors, making a pipe or a queue fails with EMFILE and leaks nothing, then it works",
          "[hostile][exhaustion]") {
    test::baseline before;
    check_in_child([] {
        auto [a, b] = pipe<int>();
        b.send(5);
        if (a.recv() != 5) throw std::runtime_error("the pipe lost a message");
    });
    check_in_child([] {
        queue<int> q;
        q.put(5);
        if (q.get() != 5) throw std::runtime_error("the queue lost a message");
    });
    check_in_child([] {
        simple_queue<int> q;
        q.put(5);
        if (q.get() != 5) throw std::runtime_error("the queue lost a message");
    });
    before.check();
}

TEMPLATE_TEST_CASE("out of processes (EAGAIN), starting a process or a pool fails with an os_error and leaks "
                   "nothing, then it works",
                   "[hostile][exhaustion]", by_fork, by_spawn) {
    using detail::sys::call;
    const call c = test::inherits_memory<TestType> ? call::fork : call::posix_spawn;
    test::baseline before;
    test::process_t<TestType> p([] {});
    {
        test::inject fail(c, EAGAIN);
        try {
            p.start();
            FAIL("start() should have failed");
        } catch (const os_error& e) {
            CHECK(e.code().value() == EAGAIN);
            CHECK(std::string(e.what()).rfind("multiproc: ", 0) == 0);
            CHECK(std::string(e.what()).find("process " + p.name()) != std::string::npos);
        }
    }
    CHECK_FALSE(p.pid().has_value());
    {
        test::inject fail(c, EAGAIN);
        try {
            auto pl = TestType{}.pool(2);
            FAIL("the pool should not have started");
        } catch (const os_error& e) {
            CHECK(e.code().value() == EAGAIN);
            CHECK(std::string(e.what()).rfind("multiproc: ", 0) == 0);
        }
    }
    before.check();
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    auto pl = TestType{}.pool(2);
    CHECK(pl.map(fn<&twice>, std::vector<int>{1, 2}) == std::vector<int>{2, 4});
}

// From an outside trial: a socketpair's receiver out of descriptors said the message was
// dropped; one taking them from the sender's sharer (a pipe, a ring) said only which call failed.
TEST_CASE("a receiver out of descriptors is told that the page_buffer's message is dropped",
          "[hostile][exhaustion][page_buffer]") {
    // In a forked child (the descriptor limit is lowered there), which reports by exit code.
    test::pipe_pair out;
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        out.close_r();
        int code = 0;
        try {
            auto [r, w] = multiproc::pipe<page_buffer, transport::pipe>(false);
            w.send(page_buffer(4096)); // (this process's sharer holds the memfd)
            rlimit old{};
            std::vector<int> hog = test::fill_descriptor_table(64, old);
            try {
                (void)r.recv();
                code = 2;
            } catch (const os_error& e) {
                const std::string what = e.what();
                test::write_str(out.w, what);
                code = e.code().value() == EMFILE && what.find("the message is dropped") != std::string::npos &&
                               what.find("Too many open files") != std::string::npos
                           ? 0
                           : 3;
            }
            for (int fd : hog) ::close(fd);
            ::setrlimit(RLIMIT_NOFILE, &old);
        } catch (...) {
            code = 4;
        }
        ::_exit(code);
    }
    out.close_w();
    const std::string said = test::read_all(out.r);
    INFO(said);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
