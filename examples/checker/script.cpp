// checker_script: a program whose behaviour is given on its command line, for the
// self-tests of check_output. Each argument is one step, done in order:
//
//   out=TEXT    writes TEXT and a newline to stdout      err=TEXT   the same to stderr
//   tail=TEXT   writes TEXT to stdout with no newline
//   many=N      writes N numbered lines to stdout and to stderr, alternately: more than
//               a pipe holds, so a checker that reads one stream at a time deadlocks
//   hang        waits forever                            exit=N     exits with N
//   signal=N    raises signal N
//   orphan      starts a child that outlives this program, holding stdout and stderr
//   zombie      starts a child that exits at once, never reaped by this program

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

#include <sys/wait.h>
#include <unistd.h>

namespace {

void put(int fd, std::string s) {
    for (std::string_view rest = s; !rest.empty();) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0) std::_Exit(99);
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

} // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](std::string_view key) { return std::string(a.substr(key.size())); };
        if (a.starts_with("out="))
            put(1, value("out=") + "\n");
        else if (a.starts_with("err="))
            put(2, value("err=") + "\n");
        else if (a.starts_with("tail="))
            put(1, value("tail="));
        else if (a.starts_with("many=")) {
            int n = std::atoi(value("many=").c_str());
            for (int k = 1; k <= n; ++k) {
                put(1, "out " + std::to_string(k) + "\n");
                put(2, "err " + std::to_string(k) + "\n");
            }
        } else if (a == "hang") {
            for (;;) ::pause();
        } else if (a.starts_with("exit=")) {
            return std::atoi(value("exit=").c_str());
        } else if (a.starts_with("signal=")) {
            int sig = std::atoi(value("signal=").c_str());
            std::signal(sig, SIG_DFL);
            ::raise(sig);
        } else if (a == "orphan") {
            if (::fork() == 0)
                for (;;) ::pause();
        } else if (a == "zombie") {
            pid_t pid = ::fork();
            if (pid == 0) ::_exit(0);
            siginfo_t info;
            ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT); // ended, not reaped
        } else {
            put(2, "checker_script: unknown step " + std::string(a) + "\n");
            return 98;
        }
    }
    return 0;
}
