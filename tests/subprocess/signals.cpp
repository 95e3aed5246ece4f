// subprocess and the program's signals: a program that ignores SIGCHLD or reaps children in
// a handler of its own still gets its runs through (return code 0 where the status is gone,
// as CPython's Popen, whose test_subprocess checks it), a popen never signals by pid (which
// another process may hold once something else reaped the child), and a program run from a
// pool task gets SIGINT's default action back, which the worker itself ignores.
#include "support/support.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/subprocess.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

using namespace multiproc;
namespace sp = multiproc::subprocess;
using namespace std::chrono_literals;
using detail::sys::call;

namespace {

extern "C" void reap_every_child(int) {
    const int saved = errno;
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    errno = saved;
}

/// In a forked child with SIGCHLD set to `handler`: runs programs and reports through the
/// exit code which checks failed (0: none). `exact`: the status is surely gone (SIG_IGN),
/// so the return code must be 0; a handler may or may not take it first.
int runs_with_sigchld(void (*handler)(int), bool exact) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    ::sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGCHLD, &sa, nullptr) != 0) return 64;
    int failed = 0;
    try {
        auto r = sp::run({"sh", "-c", "echo hi; exit 3"}, {.capture_output = true});
        if (exact ? r.returncode != 0 : (r.returncode != 0 && r.returncode != 3)) failed |= 1;
        if (r.out != "hi\n") failed |= 2;
        sp::popen p({"true"});
        if (p.wait() != 0) failed |= 4;
        if (p.poll() != 0) failed |= 8;
        if (sp::call({"sh", "-c", "exit 0"}) != 0) failed |= 16;
    } catch (...) {
        failed |= 32; // (before: os_error ECHILD from waitpid)
    }
    return failed;
}

/// The SigIgn mask of the calling process, from /proc.
unsigned long long ignored_signals(const std::string& status_text) {
    const auto at = status_text.find("SigIgn:");
    if (at == std::string::npos) return ~0ULL;
    return std::strtoull(status_text.c_str() + at + 7, nullptr, 16);
}

std::string own_status() {
    std::ifstream f("/proc/self/status");
    return std::string(std::istreambuf_iterator<char>(f), {});
}

constexpr unsigned long long bit(int sig) { return 1ULL << (sig - 1); }

} // namespace

TEST_CASE("with SIGCHLD ignored or reaped by a handler, run, wait, poll and call go through, as CPython's",
          "[subprocess][signals]") {
    test::baseline before;
    for (bool ignored : {true, false}) {
        INFO((ignored ? "SIG_IGN" : "a handler that reaps every child"));
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) ::_exit(runs_with_sigchld(ignored ? SIG_IGN : reap_every_child, ignored));
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(test::decode(status) == 0);
    }
    before.check();
}

TEST_CASE("a popen destroyed with its child running kills it through the pidfd, never by pid",
          "[subprocess][signals]") {
    test::baseline before;
    pid_t pid = 0;
    {
        test::inject by_pid(call::kill, EPERM); // (before: the destructor's kill(pid) took it, and hung in waitpid)
        {
            sp::popen p({"sleep", "1000"});
            pid = p.pid();
            REQUIRE(test::running(pid));
        }
        CHECK(by_pid.left() == 1);
    }
    CHECK_FALSE(test::running(pid));
    before.check();
}

TEST_CASE("a program a pool task runs gets SIGINT's default action, which the worker ignores",
          "[subprocess][signals][pool]") {
    basic_pool<start::fork> pool(1);
    const auto [worker, program] = pool.apply(+[] {
        auto r = sp::run({"cat", "/proc/self/status"}, {.capture_output = true});
        return std::pair<std::string, std::string>(own_status(), r.out);
    });
    CHECK((ignored_signals(worker) & bit(SIGINT)) != 0); // Ctrl-C is for the pool's parent
    CHECK((ignored_signals(program) & bit(SIGINT)) == 0); // (before: inherited, so Ctrl-C left it running)
    CHECK((ignored_signals(program) & bit(SIGPIPE)) == 0);
}
