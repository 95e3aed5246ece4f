// Helpers shared by the tests: counting descriptors and children, running whole
// programs, reporting from forked children, injecting system-call failures.
#pragma once

#include "catch.hpp"
#include "crossing_fd.hpp"

#include <multiproc/context.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/subprocess.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

// The start methods, for TEMPLATE_TEST_CASE(name, tags, START_METHODS): each case runs once
// per method, named "<name> - by_fork", "... - by_spawn", "... - by_forkserver" (so that
// `ctest -R 'by_spawn$'` runs the suite under one method).
//
// A test file too heavy to build for all three methods in one program is built once per
// method instead (multiproc_test_per_start in tests/CMakeLists.txt), with
// MULTIPROC_TEST_START naming that program's method: START_METHODS and for_each_start
// then hold that method alone, and ctest names every case "<name> - by_<method>" (or
// "<name> - <transport> - by_<method>" where the file is split by transport as well:
// MULTIPROC_TEST_PART, tests/ipc/combos.hpp).
using by_fork = multiproc::context<multiproc::start::fork>;
using by_spawn = multiproc::context<multiproc::start::spawn>;
using by_forkserver = multiproc::context<multiproc::start::forkserver>;
#if defined(MULTIPROC_TEST_START)
#define START_METHODS MULTIPROC_TEST_START
#define MULTIPROC_TEST_STRINGIZE(x) #x
#define MULTIPROC_TEST_START_NAME_OF(x) MULTIPROC_TEST_STRINGIZE(x)
#define MULTIPROC_TEST_START_NAME MULTIPROC_TEST_START_NAME_OF(MULTIPROC_TEST_START)
#else
#define START_METHODS by_fork, by_spawn, by_forkserver
#endif
// In such a file, a case that starts no process is built into the fork program only:
// `#if MULTIPROC_TEST_ONCE` around it.
#if !defined(MULTIPROC_TEST_START) || defined(MULTIPROC_TEST_START_FIRST)
#define MULTIPROC_TEST_ONCE 1
#else
#define MULTIPROC_TEST_ONCE 0
#endif

namespace test {

/// The length of a pool worker's name prefix at `at` in `s` ("ForkPoolWorker-",
/// "SpawnPoolWorker-" or "ForkServerPoolWorker-", as CPython names them), or 0 if none is.
inline std::size_t pool_worker_prefix(const std::string& s, std::size_t at = 0) {
    for (const char* kind : {"ForkServerPoolWorker-", "ForkPoolWorker-", "SpawnPoolWorker-"}) {
        const std::string k = kind;
        if (s.compare(at, k.size(), k) == 0) return k.size();
    }
    return 0;
}

using namespace std::chrono_literals;

template <class Ctx>
struct process_of;
template <class... Ps>
struct process_of<multiproc::context<Ps...>> {
    using type = multiproc::basic_process<Ps...>;
};
/// The process class of a context: `test::process_t<TestType> p(target, args...)`.
template <class Ctx>
using process_t = typename process_of<Ctx>::type;

/// Starts `p`, joins it, and returns its exit code.
template <class P>
int exit_of(P& p) {
    p.start();
    p.join();
    REQUIRE(p.exitcode().has_value());
    return *p.exitcode();
}

/// Whether the context's children are forked from the caller, sharing its memory.
template <class Ctx>
constexpr bool inherits_memory = Ctx::policies::start::inherits_memory;

/// Starts the context's forkserver now, if it has one, so that a test that counts this
/// process's descriptors or children sees the same before and after.
template <class Ctx>
void warm_up() {
    if constexpr (std::is_same_v<typename Ctx::policies::start, multiproc::start::forkserver>)
        multiproc::detail::forkserver::ensure_running();
}

/// Runs `f.template operator()<Ctx>()` under each start method's context in START_METHODS,
/// the method named in INFO. The forkserver is started first, so that a leak_check taken
/// inside `f` sees the same descriptors and children before and after.
template <class F>
void for_each_start(F&& f) {
    auto under = [&]<class Ctx>(const char* name) {
        INFO("start method: " << name);
        warm_up<Ctx>();
        f.template operator()<Ctx>();
    };
#if defined(MULTIPROC_TEST_START)
    under.template operator()<MULTIPROC_TEST_START>(MULTIPROC_TEST_START_NAME);
#else
    under.template operator()<by_fork>("by_fork");
    under.template operator()<by_spawn>("by_spawn");
    under.template operator()<by_forkserver>("by_forkserver");
#endif
}

/// The pid of this process's own forkserver, or 0: it is a child of the test process.
inline pid_t forkserver_pid() {
    auto& s = multiproc::detail::forkserver::client();
    return s.owned ? s.pid : 0;
}

/// A pipe whose ends are closed when it goes out of scope; close-on-exec.
struct pipe_pair {
    int r = -1, w = -1;
    pipe_pair() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        r = fds[0];
        w = fds[1];
    }
    pipe_pair(const pipe_pair&) = delete;
    pipe_pair& operator=(const pipe_pair&) = delete;
    ~pipe_pair() {
        close_r();
        close_w();
    }
    void close_r() {
        if (r >= 0) ::close(r);
        r = -1;
    }
    void close_w() {
        if (w >= 0) ::close(w);
        w = -1;
    }
};

/// Children block in wait() until the parent calls release() or dies: EOF on a pipe.
/// (A forked child inherits the write end too, so wait() closes the child's copy first.)
struct gate {
    pipe_pair p;
    /// In a child: blocks until release(); true if released (EOF), false on stray data.
    bool wait() {
        p.close_w();
        char c;
        ssize_t n;
        do n = ::read(p.r, &c, 1); while (n < 0 && errno == EINTR);
        return n == 0;
    }
    /// In the parent: lets every waiting child go.
    void release() { p.close_w(); }
    /// What a child of any start method takes as an argument, and waits on with wait_eof().
    [[nodiscard]] fd_arg end() const { return {p.r, p.w}; }
};

/// A pipe whose write end children of any start method take as an argument (out.w_arg()),
/// and whose read end the parent reads to EOF once it has closed its own write end.
struct report_pipe : pipe_pair {
    [[nodiscard]] fd_arg w_arg() const { return {w, -1}; }
    /// Closes this process's write end and reads everything the children wrote.
    std::string collect() {
        close_w();
        std::string out;
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(r, buf, sizeof buf);
            if (n > 0) out.append(buf, static_cast<std::size_t>(n));
            else if (n < 0 && errno == EINTR) continue;
            else return out;
        }
    }
};

/// Writes a whole string (for children reporting to the test).
inline void write_str(int fd, const std::string& s) { (void)multiproc::detail::sys::write_all(fd, s.data(), s.size()); }

/// A log handler writing each line to the descriptor `*static_cast<int*>(ctx)`: it works in
/// forked children too (a manager's server, a process), which inherit both.
inline void log_to_fd(multiproc::log_level, std::string_view line, void* ctx) {
    write_str(*static_cast<int*>(ctx), std::string(line));
}

/// Reads until EOF.
inline std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return out;
    }
}

/// Reads one line (without the newline), or returns what is there at EOF.
inline std::string read_line(int fd) {
    std::string out;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') out += c;
    return out;
}

/// Descriptors open in this process, as "fd -> target".
inline std::map<int, std::string> open_fds() {
    std::map<int, std::string> out;
    DIR* d = ::opendir("/proc/self/fd");
    int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int fd = std::atoi(e->d_name);
        if (fd == self) continue;
        char buf[512] = {};
        std::string p = std::string("/proc/self/fd/") + e->d_name;
        ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
        out[fd] = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
    }
    ::closedir(d);
    return out;
}

inline std::string describe_fds(const std::map<int, std::string>& fds) {
    std::string s;
    for (auto& [fd, t] : fds) s += std::to_string(fd) + "->" + t + " ";
    return s;
}

/// The processes whose parent is `parent` (zombies included), from /proc; this process's
/// own forkserver is left out.
inline std::vector<pid_t> children_of(pid_t parent = ::getpid()) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    while (dirent* e = ::readdir(d)) {
        pid_t pid = std::atoi(e->d_name);
        if (pid <= 0) continue;
        std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
        std::string stat;
        std::getline(in, stat);
        auto rp = stat.rfind(')');
        if (rp == std::string::npos) continue;
        std::istringstream rest(stat.substr(rp + 2));
        char state;
        pid_t ppid;
        if (rest >> state >> ppid && ppid == parent && pid != forkserver_pid()) out.push_back(pid);
    }
    ::closedir(d);
    return out;
}

/// Waits until `pid` (any process, not only a child) has exited, for at most `guard`
/// (a failure bound for the test, never a means of synchronisation). True if it exited.
inline bool wait_exit(pid_t pid, std::chrono::milliseconds guard = 10s) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
    if (fd < 0) return errno == ESRCH; // already gone
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(guard.count()));
    ::close(fd);
    return n == 1;
}

/// Whether `pid` names a live (not zombie) process.
inline bool running(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return false;
    auto rp = stat.rfind(')');
    return rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] != 'Z' && stat[rp + 2] != 'X';
}

/// The state letter (R, S, D, ...) of thread `tid` of this process, or 0 if it is gone.
inline char thread_state(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return 0;
    auto rp = stat.rfind(')');
    return rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : 0;
}

/// Decodes a wait status as Python does: exit code, or -signal.
inline int decode(int status) { return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status); }

inline std::string program_path(const std::string& name) { return std::string(MULTIPROC_TEST_PROGRAMS) + "/" + name; }

/// A helper program running with its stdout and stderr on pipes (a subprocess::popen);
/// killed and reaped if the test ends before finish().
struct running_program {
    multiproc::subprocess::popen proc;
    pid_t pid;
    int out, err;

    explicit running_program(const std::string& name, std::vector<std::string> args = {})
        : proc(with_program(name, std::move(args)),
               {.out = multiproc::subprocess::pipe, .err = multiproc::subprocess::pipe}),
          pid(proc.pid()), out(proc.out_fd()), err(proc.err_fd()) {}

    /// Reads stdout and stderr to EOF (both at once, so neither pipe can fill up) and
    /// reaps the program; returns its exit code or -signal. A program still running after
    /// 30 s fails the test (a guard, never a means of synchronisation).
    int finish(std::string& o, std::string& e) {
        auto r = proc.communicate(30s);
        o = std::move(r.out);
        e = std::move(r.err);
        return *proc.returncode();
    }

private:
    static std::vector<std::string> with_program(const std::string& name, std::vector<std::string> args) {
        args.insert(args.begin(), program_path(name));
        return args;
    }
};

struct program_result {
    int code;
    std::string out, err;
};

/// Runs a helper program to completion, capturing both streams.
inline program_result run_program(const std::string& name, std::vector<std::string> args = {}) {
    running_program p(name, std::move(args));
    program_result r{};
    r.code = p.finish(r.out, r.err);
    return r;
}

/// What a test must leave as it found it: the same descriptors open, and no children
/// (running or zombie). Take one at the start, call check() at the end.
struct baseline {
    std::map<int, std::string> fds = open_fds();
    void check() const {
        CHECK(describe_fds(open_fds()) == describe_fds(fds));
        CHECK(children_of(::getpid()).empty());
    }
};

/// Counts the occurrences of `needle` in `hay`.
inline std::size_t count(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto i = hay.find(needle); i != std::string::npos; i = hay.find(needle, i + needle.size())) ++n;
    return n;
}

// ---- fault injection (MULTIPROC_FAULT_INJECTION is defined for every test) ----

namespace fault {
inline std::atomic<int> call{-1}, err{0}, remaining{0};
inline std::atomic<pid_t> owner{0};
inline int hook(multiproc::detail::sys::call c) {
    if (::getpid() != owner.load() || static_cast<int>(c) != call.load()) return 0;
    if (remaining.fetch_sub(1) > 0) return err.load();
    remaining.store(0);
    return 0;
}
} // namespace fault

/// While alive, makes the next `times` calls of `c` in this process (not in its children)
/// fail with `errnum`.
struct inject {
    inject(multiproc::detail::sys::call c, int errnum, int times = 1) {
        fault::call = static_cast<int>(c);
        fault::err = errnum;
        fault::remaining = times;
        fault::owner = ::getpid();
        multiproc::detail::sys::fault_hook = &fault::hook;
    }
    inject(const inject&) = delete;
    inject& operator=(const inject&) = delete;
    ~inject() {
        multiproc::detail::sys::fault_hook = nullptr;
        fault::call = -1;
    }
    /// How many of the planned failures have not happened yet.
    [[nodiscard]] int left() const { return std::max(0, fault::remaining.load()); }
};

} // namespace test
