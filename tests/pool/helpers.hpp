// Helpers of the pool tests: tasks that block until the test releases them and that report
// to the test through pipes (pool tasks are stateless, so descriptors travel as arguments;
// the pipes are made before the pool, so that every worker inherits them).
#pragma once

#include "support/support.hpp"

#include <multiproc/pool.hpp>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pooltest {

/// Tasks block reading one byte each from `fd()`; release(n) lets n of them go.
struct tokens {
    test::pipe_pair p;
    [[nodiscard]] int fd() const { return p.r; }
    void release(int n = 1) { test::write_str(p.w, std::string(static_cast<std::size_t>(n), 't')); }
};

/// Lines that tasks write, one write(2) each (atomic for a pipe), read by the test.
struct reports {
    test::pipe_pair p;
    [[nodiscard]] int fd() const { return p.w; }
    std::string line() { return test::read_line(p.r); }
};

/// A named pipe in a fresh directory under /tmp, for tasks under every start method: a
/// spawned worker inherits no descriptor of the test, but reaches the pipe by its path. The
/// test holds it open for reading and writing, so that a task's open() never blocks and a
/// reader never sees EOF. As `tokens`: release(n); as `reports`: line().
struct named_pipe {
    std::string dir, file;
    int fd = -1;
    named_pipe() {
        char tmpl[] = "/tmp/multiproc-pooltest-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        file = dir + "/pipe";
        if (::mkfifo(file.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
        fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    }
    named_pipe(const named_pipe&) = delete;
    named_pipe& operator=(const named_pipe&) = delete;
    ~named_pipe() {
        ::close(fd);
        ::unlink(file.c_str());
        ::rmdir(dir.c_str());
    }
    [[nodiscard]] const std::string& path() const { return file; }
    void release(int n = 1) { test::write_str(fd, std::string(static_cast<std::size_t>(n), 't')); }
    std::string line() { return test::read_line(fd); }
};

inline void take_token(int fd) {
    char c;
    while (::read(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

inline void say(int fd, const std::string& s) { test::write_str(fd, s + "\n"); }

/// In a task: writes a line to the named pipe at `path`.
inline void say_to(const std::string& path, const std::string& s) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    say(fd, s);
    ::close(fd);
}

/// In a task: waits for a token from the named pipe at `path`.
inline void take_token_from(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    take_token(fd);
    ::close(fd);
}

/// Captures what this process writes to stderr while alive. A worker started meanwhile
/// writes there too, and holds the pipe open: finish() reads to EOF, so only once such
/// workers are gone.
struct stderr_capture {
    test::pipe_pair p;
    int saved = ::dup(2);
    stderr_capture() { ::dup2(p.w, 2); }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;
    ~stderr_capture() {
        if (saved >= 0) (void)finish();
    }
    /// Puts stderr back and returns what was written.
    std::string finish() {
        ::dup2(saved, 2);
        ::close(saved);
        saved = -1;
        p.close_w();
        return test::read_all(p.r);
    }
};

/// The pool of a start method's context: `pool_of<TestType> p(2);`, with more policies after.
template <class Ctx, class... Ps>
using pool_of = multiproc::basic_pool<typename Ctx::policies::start, Ps...>;

inline int square(int x) { return x * x; }

/// Reports "<pid>", then waits for a token, then returns v.
inline int report_then_wait(int report_fd, int token_fd, int v) {
    say(report_fd, std::to_string(::getpid()));
    take_token(token_fd);
    return v;
}

inline pid_t worker_pid() { return ::getpid(); }

/// Reports "<pid>" to the named pipe `reports`, then waits for a token from `tokens`.
inline int report_pid_then_wait_at(std::string reports, std::string tokens) {
    say_to(reports, std::to_string(::getpid()));
    take_token_from(tokens);
    return 0;
}

/// A task: reports its process's pid to the named pipe `reports`, then blocks until
/// `tokens` gives it one, then returns v.
inline int started_then_blocked(std::string reports, std::string tokens, int v) {
    report_pid_then_wait_at(std::move(reports), std::move(tokens));
    return v;
}

/// The pids of this process's pool workers that are running.
inline std::set<pid_t> worker_pids() {
    std::set<pid_t> out;
    for (auto& c : multiproc::active_children())
        if (test::pool_worker_prefix(c.name()) != 0) out.insert(*c.pid());
    return out;
}

/// Proves that `n` workers are alive at once: n tasks that wait for tokens all start.
/// Returns their pids.
template <class Pool>
std::set<pid_t> busy_workers(Pool& p, int n, tokens& t, reports& r) {
    std::vector<multiproc::async_result<int>> rs;
    for (int i = 0; i < n; ++i) rs.push_back(p.apply_async(report_then_wait, r.fd(), t.fd(), i));
    std::set<pid_t> pids;
    for (int i = 0; i < n; ++i) pids.insert(std::stoi(r.line()));
    t.release(n);
    for (auto& x : rs) (void)x.get();
    return pids;
}

/// Runs `body` (returning bool) in a forked child that never returns into Catch2; true if
/// the child ended within `guard` with body() true. A child still there at `guard` (a
/// failure bound, not synchronisation) is killed: a hang fails the test instead of stalling it.
template <class F>
bool true_in_child_within(F body, std::chrono::milliseconds guard) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        int code = 3;
        try {
            code = body() ? 0 : 2;
        } catch (...) {
        }
        ::_exit(code);
    }
    if (pid < 0) return false;
    const bool ended = test::wait_exit(pid, guard);
    if (!ended) (void)::kill(pid, SIGKILL);
    int status = 0;
    (void)::waitpid(pid, &status, 0);
    return ended && test::decode(status) == 0;
}

} // namespace pooltest
