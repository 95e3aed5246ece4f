// Helpers of the pool tests: tasks that block until the test releases them and that report
// to the test through pipes (pool tasks are stateless, so descriptors travel as arguments;
// the pipes are made before the pool, so that every worker inherits them).
#pragma once

#include "support/support.hpp"

#include <multiproc/pool.hpp>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

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

inline void take_token(int fd) {
    char c;
    while (::read(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

inline void say(int fd, const std::string& s) { test::write_str(fd, s + "\n"); }

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

/// The pids of this process's pool workers that are running.
inline std::set<pid_t> worker_pids() {
    std::set<pid_t> out;
    for (auto& c : multiproc::active_children())
        if (c.name().rfind("PoolWorker-", 0) == 0) out.insert(*c.pid());
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

} // namespace pooltest
