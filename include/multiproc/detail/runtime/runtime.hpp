// Not part of the API: the state multiproc keeps per process (Python: the module globals of
// multiprocessing.process and multiprocessing.util) and the life of a child from fork to _exit.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/util/format.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// Logging levels, with multiprocessing's SUBDEBUG and SUBWARNING (Python: logging.DEBUG, ...).
enum class log_level : int {
    notset = 0,
    subdebug = 5,
    debug = 10,
    info = 20,
    subwarning = 25,
    warning = 30,
    error = 40,
    critical = 50,
};

/// Where a logger sends each formatted line `[LEVEL/ProcessName] message\n`.
using log_handler = void (*)(log_level level, std::string_view line, void* context);

MULTIPROC_ABI_END } // namespace multiproc

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

// ---------------------------------------------------------------------------------------
// Log core. The public face is multiproc::logger (logging.hpp); lifecycle lines come from here.

using log_sink_fn = log_handler;

inline void stderr_sink(log_level, std::string_view line, void*) {
    (void)sys::write_all_nosigpipe(2, line.data(), line.size());
}

inline std::string level_name(int level) {
    switch (level) {
    case 0: return "NOTSET";
    case 5: return "SUBDEBUG";
    case 10: return "DEBUG";
    case 20: return "INFO";
    case 25: return "SUBWARNING";
    case 30: return "WARNING";
    case 40: return "ERROR";
    case 50: return "CRITICAL";
    default: return "Level " + std::to_string(level);
    }
}

struct log_core {
    std::atomic<int> level{0};            // 0 (NOTSET) means WARNING, as for Python's root logger
    std::atomic<log_sink_fn> sink{nullptr};
    std::atomic<void*> sink_ctx{nullptr};

    [[nodiscard]] int effective_level() const noexcept {
        int l = level.load(std::memory_order_relaxed);
        return l == 0 ? 30 : l;
    }
    /// Whether the level lets `l` through (Python: Logger.isEnabledFor).
    [[nodiscard]] bool passes(int l) const noexcept { return l >= effective_level(); }
    /// With no handler, messages from this level up go to stderr (Python: logging.lastResort).
    static constexpr int last_resort_level = 30;
};

// ---------------------------------------------------------------------------------------
// Child records: what a parent knows of one child. Shared by the process object that
// created the child and by the runtime's list of children not yet reaped.

struct child_record;

/// A finalizer: runs at exit (Python: multiprocessing.util.Finalize with an exitpriority).
struct finalizer {
    int priority;
    unsigned long id;
    void (*fn)(void*);
    void* ctx;
};

/// The identity of the running process (Python: current_process() and parent_process()).
struct self_info {
    std::string name = "MainProcess";
    std::vector<int> identity;
    bool daemon = false;
    bool may_have_children = false; // a daemon under nested::allow: start() lets it have children
    pid_t pid = ::getpid();
    pid_t parent_pid = 0; // 0 in the main process
    std::string parent_name;
    int parent_sentinel = -1; // a pidfd of the parent when it is not the OS parent (forkserver)
    std::string authkey;      // 32 random bytes in a main process; a child gets its parent's
};

/// Guards runtime::manager_keys. Every spawn or forkserver start takes it, so it is held
/// across fork (a child forked while another thread held it would wait on it for ever):
/// constant-initialised, with fork handlers registered before main.
inline constinit sys::never_destroyed<std::mutex> manager_keys_mutex_storage;
inline std::mutex& manager_keys_mutex() noexcept { return manager_keys_mutex_storage.value; }
inline void lock_manager_keys() noexcept { manager_keys_mutex().lock(); }
inline void unlock_manager_keys() noexcept { manager_keys_mutex().unlock(); }
inline const int manager_keys_fork_handlers = sys::at_fork(lock_manager_keys, unlock_manager_keys, unlock_manager_keys);

struct runtime {
    std::mutex mu;                                       // guards children, records, finalizers
    self_info self;
    int counter = 1;                                     // next Process-N number
    std::vector<std::shared_ptr<child_record>> children; // started here, not yet reaped
    // Every live record in this process, linked through the records (child_record::prev,
    // next). Not a std::set: a forked child walks it first thing, and a set's iteration is
    // a libstdc++ call the parent may never have made, bound lazily in each child (see
    // child_exits).
    child_record* records = nullptr;
    std::vector<finalizer> finalizers;
    unsigned long next_finalizer = 1;
    log_core log;
    // The authkeys this process was given for manager addresses (manager.hpp: by making or
    // connecting a manager), address first, under manager_keys_mutex(); a spawn or
    // forkserver child gets a copy, as a child made by fork has one (CPython sends a proxy's
    // key with it into such a child).
    std::vector<std::pair<std::string, std::string>> manager_keys;
    bool exiting = false;
    bool in_child = false; // running a target under child_main
    // Room for a forked child's name, parent name and identity, made before the fork under
    // `mu` (make_room_for_child) and touched only there and in the child (become_child).
    std::string spare_name, spare_parent_name;
    std::vector<int> spare_identity;
};

inline void exit_function();

inline void at_exit_handler() { exit_function(); }

/// The runtime of this process. Never destroyed, so it outlives every static object
/// whose destructor might still use it; its exit function is registered with atexit when
/// it is first made, as CPython registers util._exit_function on import.
inline runtime& rt() {
    static runtime* r = [] {
        auto* p = new runtime();
        // As CPython's main process: a key of 32 random bytes, made before any child can be
        // started, so that children made by fork have it too (spawned ones are sent it).
        p->self.authkey.resize(32);
        if (sys::getrandom_all(p->self.authkey.data(), p->self.authkey.size()) != 0) p->self.authkey.clear();
        std::atexit(at_exit_handler);
        return p;
    }();
    return *r;
}

template <class... Args>
void log(int level, std::string_view fmt, const Args&... args) {
    auto& lc = rt().log;
    if (!lc.passes(level)) return;
    if (auto s = lc.sink.load(std::memory_order_relaxed)) { // (read once: another thread may change it)
        std::string line = "[" + level_name(level) + "/" + rt().self.name + "] " + format(fmt, args...) + "\n";
        s(static_cast<log_level>(level), line, lc.sink_ctx.load(std::memory_order_relaxed));
    } else if (level >= log_core::last_resort_level) { // (Python's last resort: the bare message)
        const std::string line = format(fmt, args...) + "\n";
        (void)sys::write_all_nosigpipe(2, line.data(), line.size());
    }
}

/// Flushes C++ and C standard streams, so that output buffered before a fork is written
/// once, and output of a child is written before it leaves with _exit.
inline void flush_std_streams() noexcept {
    MULTIPROC_TRY {
        std::cout.flush();
        std::cerr.flush();
        std::clog.flush();
    } MULTIPROC_CATCH_ALL {
    }
    std::fflush(nullptr);
}

struct child_record {
    std::string class_name = "Process"; // what Python's repr shows: Process, or the subclass's name
    std::string name;
    std::vector<int> identity;
    bool daemon = false;
    bool may_have_children = false; // the nesting policy's `allowed`: see self_info
    pid_t parent_pid = ::getpid(); // the process that created the object (Python: _parent_pid)
    pid_t pid = 0;                 // 0 until started
    int pidfd = -1;                // readable once the child has exited: the sentinel
    int status_fd = -1;            // forkserver: where the server reports the exit status
    std::optional<int> exitcode;
    // Non-empty once the child has ended but its exit status went to someone else (SIGCHLD
    // ignored, or another handler reaped it): the sentence exitcode() reports then.
    std::string status_lost;
    bool closed = false;
    // Held while the child's end is polled for or recorded (exitcode, and the status
    // descriptor's reads): a start() in one thread reaps the children that have ended while
    // another thread may be joining the same child (a pool's engine, its worker).
    std::mutex reap_mu;

    child_record* prev = nullptr; // in runtime::records
    child_record* next = nullptr;

    child_record() {
        auto& r = rt();
        std::lock_guard lk(r.mu);
        next = r.records;
        if (next) next->prev = this;
        r.records = this;
    }
    child_record(const child_record&) = delete;
    child_record& operator=(const child_record&) = delete;
    ~child_record() {
        auto& r = rt();
        {
            std::lock_guard lk(r.mu);
            (prev ? prev->next : r.records) = next;
            if (next) next->prev = prev;
        }
        if (pidfd >= 0) sys::close(pidfd);
        if (status_fd >= 0) sys::close(status_fd);
    }

    [[nodiscard]] bool started() const noexcept { return pid != 0; }
    /// Whether the child is known to have ended, with or without its exit code.
    [[nodiscard]] bool ended() const noexcept { return exitcode.has_value() || !status_lost.empty(); }
    /// Readable once the exit code can be had without blocking; the same descriptor from
    /// start() until close(), whoever reaps the child.
    [[nodiscard]] int sentinel() const noexcept { return status_fd >= 0 ? status_fd : pidfd; }
};

/// What a forkserver sends the requester of a child once it has reaped it: the exit code
/// as Python reports it (n, or -signal).
struct reported_status {
    static constexpr std::uint32_t tag = 0x5453504d; // "MPST"
    std::uint32_t magic = tag;
    std::int32_t code = 0;
};

/// Reads the exit status a forkserver reported for `c`, if it has; true once it has. If the
/// server died first, the status is lost: the child is then watched through its pidfd,
/// which takes the sentinel's number, and reported as 255 once it ends, as CPython does,
/// with a warning.
inline bool poll_reported_child(child_record& c) {
    pollfd p{c.status_fd, POLLIN, 0};
    int n = sys::poll_until(&p, 1, std::chrono::steady_clock::now(), false);
    if (n < 0) sys::fail("poll on the status of process " + c.name);
    if (n == 0) return false;
    reported_status msg{};
    ssize_t got = sys::read(c.status_fd, &msg, sizeof msg);
    if (got == 0) { // end of stream: the server is gone; the child may still run
        log(30, "the forkserver ended before reporting how process {} ended; its exit code will be unknown (255)",
            c.name);
        if (sys::dup2(c.pidfd, c.status_fd) >= 0) { // a pidfd: readable at the child's end, read() fails
            (void)sys::fcntl(c.status_fd, F_SETFD, FD_CLOEXEC);
            return poll_reported_child(c);
        }
    }
    // The descriptor stays open: it is the sentinel, which must stay the same descriptor for
    // the object's life (Python's does). The server has closed its end, so it stays readable.
    c.exitcode = got == static_cast<ssize_t>(sizeof msg) && msg.magic == reported_status::tag ? msg.code : 255;
    return true;
}

inline int decode_wait_status(int status) {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

/// The exit code in what waitid() reported, as Python reports it (n, or -signal).
inline int decode_wait_info(const siginfo_t& info) {
    return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

/// Why the exit status of a child of ours went to someone else, judged from how SIGCHLD is
/// handled now: the end of the sentence that exitcode() reports for it.
inline std::string lost_status_cause() {
    struct sigaction sa {};
    if (sys::signal_action(SIGCHLD, &sa) == 0) {
        if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN)
            return "SIGCHLD is ignored (SIG_IGN), so the kernel reaped it as it ended";
        if (sa.sa_flags & SA_NOCLDWAIT) return "SIGCHLD has SA_NOCLDWAIT, so the kernel reaped it as it ended";
        if ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL)
            return "its exit status was taken by another SIGCHLD handler";
    }
    return "its exit status was taken by a wait for any child elsewhere in this process";
}

/// The sentence for a child that has ended with its exit status taken by someone else.
inline std::string lost_status_sentence(const std::string& name, pid_t pid) {
    return "multiproc: process " + name + " (pid " + std::to_string(pid) + ") has ended, but " +
           lost_status_cause() + ", so its exit code is unknown";
}

/// Collects the exit status of our own child `pidfd` refers to, if it has ended; without
/// waiting unless `block`. Returns the code; nothing if it runs, or if something else
/// reaped it (then `lost` is set). Throws os_error for any other failure.
inline std::optional<int> collect_child(int pidfd, const std::string& name, bool& lost, bool block = false) {
    siginfo_t info;
    lost = false;
    if (sys::waitid_pidfd(pidfd, &info, block ? 0 : WNOHANG) == 0) {
        if (info.si_pid != 0) return decode_wait_info(info);
        return std::nullopt;
    }
    if (errno != ECHILD) sys::fail("waitid for process " + name);
    lost = true; // ECHILD: it is our child, so it has ended and been reaped
    return std::nullopt;
}

/// Reaps the child if it has exited, without waiting; true once it is known to have ended
/// (its exit code in c.exitcode, or c.status_lost saying why it is unknown); c.reap_mu held.
inline bool poll_child_locked(child_record& c) {
    if (c.ended() || !c.started()) return c.ended();
    if (c.status_fd >= 0) return poll_reported_child(c); // not our child: its server reaps it
    bool lost = false;
    c.exitcode = collect_child(c.pidfd, c.name, lost);
    if (lost) c.status_lost = lost_status_sentence(c.name, c.pid);
    return c.ended();
}

/// Reaps the child once it has exited, waiting for that until `deadline` (forever if
/// none); true once it has ended, false if the deadline came first. Safe against other
/// threads polling or signalling the same child: c.reap_mu is held only to look, never
/// while waiting; one thread reaps the child, and all of them see its exit code. Waiting is
/// polling the pidfd, so it works whoever reaps the child.
inline bool wait_child(child_record& c, std::optional<std::chrono::steady_clock::time_point> deadline) {
    for (;;) {
        int fd = -1;
        {
            std::lock_guard lk(c.reap_mu);
            if (poll_child_locked(c) || !c.started()) return c.ended();
            fd = c.sentinel(); // (the pidfd, once a dead forkserver left the child to it)
        }
        pollfd p{fd, POLLIN, 0};
        int n = sys::poll_until(&p, 1, deadline.value_or(std::chrono::steady_clock::time_point{}), !deadline);
        if (n < 0) sys::fail("poll on the sentinel of process " + c.name);
        if (n == 0) return false;
    }
}

/// Reaps the child if it has exited (waiting for that if `block`); true once it has ended.
inline bool poll_child(child_record& c, bool block = false) {
    if (block) return wait_child(c, std::nullopt);
    std::lock_guard lk(c.reap_mu);
    return poll_child_locked(c);
}

/// Drops reaped children from the runtime's list (Python: process._cleanup); a child
/// another thread is polling now stays until next time.
inline void forget_finished(runtime& r) {
    std::lock_guard lk(r.mu);
    std::erase_if(r.children, [](const std::shared_ptr<child_record>& c) {
        std::unique_lock polled(c->reap_mu, std::try_to_lock);
        return polled && c->ended();
    });
}

/// Polls every child and forgets those that have exited; returns the living ones.
inline std::vector<std::shared_ptr<child_record>> reap_children() {
    auto& r = rt();
    std::vector<std::shared_ptr<child_record>> all;
    {
        std::lock_guard lk(r.mu);
        all = r.children;
    }
    std::vector<std::shared_ptr<child_record>> alive, lost;
    for (auto& c : all) {
        if (c->parent_pid != ::getpid()) continue;
        std::unique_lock busy(c->reap_mu, std::try_to_lock);
        if (!busy) { // another thread is reaping it: left to that thread
            alive.push_back(c);
            continue;
        }
        MULTIPROC_TRY {
            if (!poll_child_locked(*c)) alive.push_back(c);
        } MULTIPROC_CATCH(const os_error&, unnamed_) {
            lost.push_back(c); // reaped by something else: nothing more to learn or wait for
        }
    }
    forget_finished(r);
    if (!lost.empty()) {
        std::lock_guard lk(r.mu);
        std::erase_if(r.children, [&](const auto& c) { return std::find(lost.begin(), lost.end(), c) != lost.end(); });
    }
    return alive;
}

/// Waits for the child to exit, until `deadline` if given (detail::deadline_in makes one from
/// any timeout, saturating); reaps it when it has.
inline void join_child(child_record& c, std::optional<std::chrono::steady_clock::time_point> deadline) {
    if (wait_child(c, deadline)) forget_finished(rt());
}

/// Sends `sig` to the child unless it has already been reaped (Python: Popen.terminate).
inline void signal_child(child_record& c, int sig) {
    std::lock_guard lk(c.reap_mu);
    if (c.ended() || c.pidfd < 0) return;
    if (sys::pidfd_send_signal(c.pidfd, sig) < 0 && errno != ESRCH)
        sys::fail("sending signal " + std::to_string(sig) + " to process " + c.name);
}

// ---------------------------------------------------------------------------------------
// Finalizers and the exit function.

/// Registers `fn(ctx)` to run at exit, highest priority first; returns an id for unregister.
inline unsigned long register_finalizer(int priority, void (*fn)(void*), void* ctx) {
    auto& r = rt();
    std::lock_guard lk(r.mu);
    r.finalizers.push_back({priority, r.next_finalizer, fn, ctx});
    return r.next_finalizer++;
}

inline void unregister_finalizer(unsigned long id) {
    auto& r = rt();
    std::lock_guard lk(r.mu);
    std::erase_if(r.finalizers, [id](const finalizer& f) { return f.id == id; });
}

/// Runs and removes finalizers with priority >= `min_priority`: higher priority first,
/// later registrations first among equals (Python: util._run_finalizers).
inline void run_finalizers(std::optional<int> min_priority) {
    auto& r = rt();
    for (;;) {
        finalizer f{};
        {
            std::lock_guard lk(r.mu);
            auto best = r.finalizers.end();
            for (auto it = r.finalizers.begin(); it != r.finalizers.end(); ++it) {
                if (min_priority && it->priority < *min_priority) continue;
                if (best == r.finalizers.end() || it->priority > best->priority ||
                    (it->priority == best->priority && it->id > best->id))
                    best = it;
            }
            if (best == r.finalizers.end()) return;
            f = *best;
            r.finalizers.erase(best);
        }
        MULTIPROC_TRY {
            f.fn(f.ctx);
        } MULTIPROC_CATCH_ALL {
        }
    }
}

/// What a process does when it ends normally (Python: util._exit_function): terminate its
/// daemonic children, join all its children, run finalizers; each step logged as CPython does.
inline void exit_function() {
    auto& r = rt();
    if (r.exiting || r.self.pid != ::getpid()) return;
    r.exiting = true;
    log(20, "process shutting down");
    log(10, "running all \"atexit\" finalizers with priority >= 0");
    run_finalizers(0);
    for (auto& c : reap_children()) {
        if (c->daemon) {
            log(20, "calling terminate() for daemon {}", c->name);
            signal_child(*c, SIGTERM);
        }
    }
    for (auto& c : reap_children()) {
        log(20, "calling join() for process {}", c->name);
        MULTIPROC_TRY {
            join_child(*c, std::nullopt);
        } MULTIPROC_CATCH(const error&, unnamed_) {
        }
    }
    log(10, "running the remaining \"atexit\" finalizers");
    run_finalizers(std::nullopt);
}

// ---------------------------------------------------------------------------------------
// The child's side.

/// Writes "Process <name>:" and the failure to stderr, after what the child had buffered.
inline void report_child_failure(const std::string& failure) noexcept {
    if (failure.empty()) return;
    flush_std_streams();
    MULTIPROC_TRY {
        std::string msg = "Process " + rt().self.name + ":\n" + failure + "\n";
        (void)sys::write_all(2, msg.data(), msg.size());
    } MULTIPROC_CATCH_ALL {
    }
}

/// The end of a child: its shutdown (children joined, finalizers run), then _exit(code).
/// The child's shutdown, in CPython's order: "process shutting down" (children joined,
/// finalizers run), then the failure report, then "process exiting with exitcode".
inline void finish_child_steps(int code, const std::string& failure) noexcept {
    MULTIPROC_TRY {
        exit_function();
    } MULTIPROC_CATCH_ALL {
    }
    flush_std_streams();
    report_child_failure(failure);
    MULTIPROC_TRY {
        log(20, "process exiting with exitcode {}", code);
    } MULTIPROC_CATCH_ALL {
    }
    flush_std_streams();
}

inline bool child_finished = false; // finish_child_steps ran: the exit hook only leaves

/// The libc calls of a child's way out, made through pointers, which the dynamic linker
/// fills when the program loads. A call through the program's PLT is bound on its first
/// call, and a parent never leaves this way: every child would bind them anew, about 8 µs
/// each here (the linker's lookup and the pages it touches), 40 of a fork start's 263 µs
/// (issue 20; the same start measured 221 µs with LD_BIND_NOW=1).
struct exit_calls {
    void (*exit)(int);
    void (*exit_now)(int); // _exit
    int (*on_exit)(void (*)(int, void*), void*);
};
inline exit_calls child_exits{&std::exit, &::_exit, &::on_exit};

[[noreturn]] inline void finish_child(int code, const std::string& failure) noexcept {
    finish_child_steps(code, failure);
    child_exits.exit_now(code);
    __builtin_unreachable();
}

/// Registered with on_exit in each child before its target runs, so that std::exit(n), which
/// the target may call and child_main calls when it returns or throws, runs the atexit
/// handlers the child registered itself (they come later, so they run first), then the
/// child's shutdown, and leaves with n: never the parent's handlers or static destructors,
/// which come earlier (Python 3.12: gh-83856).
inline void child_exit_hook(int status, void*) {
    auto& r = rt();
    if (!r.in_child || r.self.pid != ::getpid()) return;
    if (child_finished) {
        flush_std_streams(); // what the child's own atexit handlers printed
        child_exits.exit_now(status);
    }
    finish_child(status, {});
}

/// The fallback error handler of a child of this library (detail/error.hpp): a child whose
/// target raised an error leaves as it would with exceptions, with "Process <name>:" and the
/// error on stderr and exit code 1. A handler the program set is used instead, as it was
/// inherited.
inline bool child_exit_hooked = false; // child_exit_hook is registered in this child

inline void child_error_handler(const error& e) noexcept {
    std::string failure;
    MULTIPROC_TRY {
        failure = error_class_name(e) + ": " + e.what();
    } MULTIPROC_CATCH_ALL {
    }
    if (!child_exit_hooked) finish_child(1, failure);
    finish_child_steps(1, failure); // then the child's own atexit handlers, as for an exception
    child_finished = true;
    child_exits.exit(1);
}

/// In a parent about to fork: gives spare strings and a spare vector the room the child's
/// name, its parent's name and its identity will need, so that become_child() in the child
/// fills them and swaps them in without allocating or freeing. A child's first allocation
/// costs it about five page faults (malloc's code, its arena's data copied on write), ~6 µs
/// of a start here. Spares, not r.self's own strings: other threads read those without the
/// lock (log lines, process names), and a reserve would free their buffer under them.
inline void make_room_for_child(const child_record& c) {
    auto& r = rt();
    std::lock_guard lk(r.mu);
    if (r.spare_identity.capacity() < c.identity.size()) r.spare_identity.reserve(c.identity.size() + 2);
    if (r.spare_name.capacity() < c.name.size()) r.spare_name.reserve(c.name.size());
    if (r.spare_parent_name.capacity() < r.self.name.size()) r.spare_parent_name.reserve(r.self.name.size());
}

/// Makes the runtime describe the new child: called first thing after fork in the child.
/// Descriptors of the parent's other children are closed: they mean nothing here.
inline void become_child(const child_record& c) {
    auto& r = rt();
    r.self.parent_pid = c.parent_pid;
    r.spare_parent_name.assign(r.self.name);
    r.spare_name.assign(c.name);
    r.spare_identity.assign(c.identity.begin(), c.identity.end());
    r.self.parent_name.swap(r.spare_parent_name);
    r.self.name.swap(r.spare_name);
    r.self.identity.swap(r.spare_identity);
    r.self.daemon = c.daemon;
    r.self.may_have_children = c.may_have_children;
    r.self.pid = ::getpid();
    r.counter = 1;
    r.exiting = false;
    r.finalizers.clear();
    for (child_record* rec = r.records; rec; rec = rec->next) {
        for (int* fd : {&rec->pidfd, &rec->status_fd}) {
            if (*fd >= 0) sys::close(*fd);
            *fd = -1;
        }
        // Another thread of the parent may have held it at the fork; that thread is not here.
        new (&rec->reap_mu) std::mutex;
    }
    // After the loop over records (a record's destructor unlinks it). clear() keeps the
    // buffer: freeing it would be the child's first free, page faults on malloc's code and
    // data (see make_room_for_child).
    r.children.clear();
}

/// A child's standard input reads /dev/null (CPython's util._close_stdin, in every child's
/// _bootstrap): a child must not take the program's input from under it, nor read again
/// what the parent's `stdin` had read ahead before a fork (dropped, without the stream's
/// lock, which another thread of the parent may have held). CPython replaces `sys.stdin`
/// and leaves descriptor 0; C++'s streams read descriptor 0, so it is /dev/null here.
inline void stdin_from_devnull() noexcept {
    const int fd = sys::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return; // (as CPython: the child keeps its stdin)
    if (fd == 0) {
        (void)sys::fcntl(0, F_SETFD, 0);
    } else {
        (void)sys::dup2(fd, 0); // (0 without close-on-exec, as a stdin is)
        (void)sys::close(fd);
    }
    ::__fpurge(stdin);
}

/// Runs `entry(ctx)` as the body of a new child and leaves: 0 when it returns, 1 with
/// "Process <name>:" and the exception on stderr when it throws, by way of std::exit so that
/// the child's own atexit handlers run (see child_exit_hook). `os_parent` says whether the
/// creator is also the OS parent (not so under forkserver, whose server kills a daemon
/// whose creator dies).
[[noreturn]] inline void child_main(const child_record& c, void (*entry)(void*), void* ctx,
                                    bool os_parent = true) noexcept {
    auto& r = rt();
    std::string failure;
    int code = 0;
    MULTIPROC_TRY {
        become_child(c);
        if (c.daemon && os_parent) {
            // A daemon dies with its parent: killed if the parent dies without the chance to
            // terminate it. If the parent is already gone, follow it at once.
            (void)sys::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != c.parent_pid) ::raise(SIGKILL);
        }
        stdin_from_devnull();
        child_exit_hooked = child_exits.on_exit(child_exit_hook, nullptr) == 0;
        fallback_error_handler().store(&child_error_handler, std::memory_order_release);
        r.in_child = true;
        log(20, "child process calling self.run()");
        entry(ctx);
    } MULTIPROC_CATCH_ALL {
        code = 1;
        auto [type, what] = describe_current_exception();
        failure = what.empty() ? type : type + ": " + what;
    }
    if (!child_exit_hooked) finish_child(code, failure); // std::exit would run the parent's handlers
    // CPython (3.12+): the shutdown, the traceback and "process exiting" in _bootstrap, then
    // the child's atexit handlers as the process leaves.
    finish_child_steps(code, failure);
    child_finished = true;
    child_exits.exit(code);
    __builtin_unreachable();
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
