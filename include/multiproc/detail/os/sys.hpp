// Not part of the API: every system call multiproc makes goes through here, so that
// EINTR is retried in one place and tests can inject failures (MULTIPROC_FAULT_INJECTION).
#pragma once

#include <multiproc/config.hpp>
#include <multiproc/error.hpp>

#include <atomic>
#include <cerrno>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include <fcntl.h>
#include <sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::sys {

/// The system calls that can be made to fail in tests.
enum class call : unsigned char {
    fork, waitpid, pidfd_open, pidfd_send_signal, poll, kill, close, pipe2, read, write, open, dup, dup2,
    prctl, socketpair, sendmsg, recvmsg, mmap, ftruncate, memfd_create, shm_open, futex, execve,
    posix_spawn, fcntl, access, stat, ioctl, shm_unlink, fstat, munmap, getrandom, writev, sockopt,
    eventfd, sigaction, socket, bind, listen, accept, connect, // the start methods spawn and forkserver
    other,
    step, // not a system call: a step of bookkeeping in shared memory (sys::step), where tests kill
    atfork,
    // Not system calls: points where a pool's engine asks the hook, so that tests can make
    // its timing-driven choices deterministic.
    pacing, // answered nonzero: every worker may hold the most units at once, and none counts as
            // running long (so units queue behind a blocked worker, and stay there until answered 0)
    zeros,  // passed when the borrowed elements of a unit taken back are sent as zeros (answer ignored)
};

/// A fault hook's answer that lets the call happen and then kills the process with
/// SIGKILL: tests use it to kill a process exactly after a system call returned.
inline constexpr int die_after_call = -1;

#if defined(MULTIPROC_FAULT_INJECTION)
/// Returns the errno with which `c` must fail, `die_after_call`, or 0 to make the real call.
using fault_hook_fn = int (*)(call c);
inline std::atomic<fault_hook_fn> fault_hook{nullptr};
inline int injected(call c) noexcept {
    auto h = fault_hook.load(std::memory_order_relaxed);
    return h ? h(c) : 0;
}
#else
constexpr int injected(call) noexcept { return 0; }
#endif

/// A point between two steps of an update of shared memory that other processes must be
/// able to repair if this one dies there. A fault hook that answers anything but 0 for
/// call::step kills the process here with SIGKILL: tests prove crash-consistency so.
inline void step() noexcept {
    if (injected(call::step)) ::kill(::getpid(), SIGKILL);
}

/// Runs `f` (a raw call returning -1 and setting errno on failure) unless a fault is injected.
template <class F>
inline auto invoke(call c, F f) noexcept -> decltype(f()) {
    if (int e = injected(c)) {
        if (e == die_after_call) {
            auto r = f();
            ::kill(::getpid(), SIGKILL);
            return r;
        }
        errno = e;
        return -1;
    }
    return f();
}

/// As `invoke`, retrying while the call is interrupted by a signal.
template <class F>
inline auto retry(call c, F f) noexcept -> decltype(f()) {
    for (;;) {
        auto r = invoke(c, f);
        if (r != -1 || errno != EINTR) return r;
    }
}

/// Throws `os_error` naming the call, the object and errno: "multiproc: <what>: <strerror>".
[[noreturn]] inline void fail(const std::string& what, int errnum = errno) {
    detail::raise(os_error("multiproc: " + what, errnum));
}

inline pid_t fork() noexcept { return invoke(call::fork, [] { return ::fork(); }); }

/// pthread_atfork: registers handlers to run around every fork of this process; 0, or -1
/// with errno (ENOMEM).
inline int at_fork(void (*prepare)(), void (*parent)(), void (*child)()) noexcept {
    return invoke(call::atfork, [&] {
        int e = ::pthread_atfork(prepare, parent, child);
        if (e == 0) return 0;
        errno = e;
        return -1;
    });
}

/// This process's id as last read by self_pid(); 0 until then, and again in a child from the
/// moment fork() returns there (an atfork handler).
inline std::atomic<pid_t> cached_pid{0};
inline void forget_cached_pid() noexcept { cached_pid.store(0, std::memory_order_relaxed); }
/// Registered during static initialisation, before main and any thread.
inline const int forget_cached_pid_at_fork = at_fork(nullptr, nullptr, &forget_cached_pid);

/// getpid() without a system call after the first (glibc caches nothing since 2.25): for a
/// check made on every call, such as a pool's "only the process that made it". A child made
/// by fork() reads its own id anew; one made by a raw clone() or syscall(SYS_fork) runs no
/// atfork handler and reads its parent's, so what must be right there (a destructor telling
/// an inherited copy) asks getpid() itself.
inline pid_t self_pid() noexcept {
    pid_t p = cached_pid.load(std::memory_order_relaxed);
    if (p == 0) {
        p = ::getpid();
        cached_pid.store(p, std::memory_order_relaxed);
    }
    return p;
}

/// Storage for a process-wide object that a forked child can always use: constant-initialised
/// (no code runs, so no guard is left "in progress" by a thread that a child does not have)
/// and never destroyed (objects may use it during static destruction). A function-local
/// static is initialised on first use under a guard; a child forked while another thread
/// is inside that initialisation waits on the guard forever. `T` needs a constexpr default
/// constructor.
template <class T>
union never_destroyed {
    T value;
    constexpr never_destroyed() : value() {}
    never_destroyed(const never_destroyed&) = delete;
    never_destroyed& operator=(const never_destroyed&) = delete;
    ~never_destroyed() {}
};

/// The lock of the code registries (runtime/code_registry.hpp), held across fork: a pool
/// made during static initialisation forks its workers while the main thread may still be
/// registering code, and a worker that inherited the lock held, or the table half-changed,
/// would wait for ever at its first lookup. Here, because every header that registers fork
/// handlers includes this one first, so these are registered before all the others, and
/// prepare handlers run in reverse order: fork takes this lock last, after every lock under
/// which a thread may ask the registry (it is a leaf: nothing is taken under it).
/// (A pthread mutex, constant-initialised and trivially destroyed, so that this header does
/// not include <mutex> for it: a Lockable, for std::lock_guard.)
struct static_mutex {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    void lock() noexcept { (void)::pthread_mutex_lock(&m); }
    void unlock() noexcept { (void)::pthread_mutex_unlock(&m); }
};
inline constinit static_mutex code_registry_mutex_storage;
inline static_mutex& code_registry_mutex() noexcept { return code_registry_mutex_storage; }
inline void lock_code_registry() noexcept { code_registry_mutex().lock(); }
inline void unlock_code_registry() noexcept { code_registry_mutex().unlock(); }
inline const int code_registry_fork_handlers = at_fork(lock_code_registry, unlock_code_registry, unlock_code_registry);

/// The kernel's id of the calling thread (what ps -L, gdb and /proc/<pid>/task show); the
/// process's initial thread has the pid. Cannot fail.
inline pid_t gettid() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

inline pid_t waitpid(pid_t pid, int* status, int options) noexcept {
    return retry(call::waitpid, [&] { return ::waitpid(pid, status, options); });
}

/// waitid(P_PIDFD): waits for (or with WNOHANG, polls) the child a pidfd refers to. Unlike
/// waitpid(pid), it can never collect another process that took the pid after a foreign
/// reaper freed it. Returns 0 (info->si_pid is 0 if WNOHANG found it running) or -1 with
/// errno: ECHILD once the child has been reaped by something else. Faults as call::waitpid.
inline int waitid_pidfd(int pidfd, siginfo_t* info, int options) noexcept {
    return retry(call::waitpid, [&] {
        *info = siginfo_t{};
        return static_cast<int>(::syscall(SYS_waitid, P_PIDFD, pidfd, info, options | WEXITED, nullptr));
    });
}

inline int pidfd_open(pid_t pid) noexcept {
    // glibc 2.36 declares pidfd_open without extern "C", so call the kernel directly.
    return invoke(call::pidfd_open, [&] { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)); });
}

inline int pidfd_send_signal(int pidfd, int sig) noexcept {
    return invoke(call::pidfd_send_signal,
                  [&] { return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0U)); });
}

inline int kill(pid_t pid, int sig) noexcept {
    return invoke(call::kill, [&] { return ::kill(pid, sig); });
}

/// close() is never retried: on Linux the descriptor is gone even when it reports EINTR.
inline int close(int fd) noexcept {
    return invoke(call::close, [&] { return ::close(fd); });
}

inline int pipe2(int fds[2], int flags) noexcept {
    return invoke(call::pipe2, [&] { return ::pipe2(fds, flags); });
}

inline ssize_t read(int fd, void* buf, std::size_t n) noexcept {
    return retry(call::read, [&] { return ::read(fd, buf, n); });
}

inline ssize_t write(int fd, const void* buf, std::size_t n) noexcept {
    return retry(call::write, [&] { return ::write(fd, buf, n); });
}

inline ssize_t writev(int fd, const iovec* iov, int n) noexcept {
    return retry(call::writev, [&] { return ::writev(fd, iov, n); });
}

inline int socketpair(int domain, int type, int fds[2]) noexcept {
    return invoke(call::socketpair, [&] { return ::socketpair(domain, type, 0, fds); });
}

/// sendmsg() with MSG_NOSIGNAL: a peer that has gone away is EPIPE, never SIGPIPE.
inline ssize_t sendmsg(int fd, const msghdr* m, int flags) noexcept {
    return retry(call::sendmsg, [&] { return ::sendmsg(fd, m, flags | MSG_NOSIGNAL); });
}

inline int setsockopt_int(int fd, int level, int name, int value) noexcept {
    return invoke(call::sockopt, [&] { return ::setsockopt(fd, level, name, &value, sizeof value); });
}

/// getsockopt() of an int option; returns -1 with errno on failure.
inline int getsockopt_int(int fd, int level, int name, int& value) noexcept {
    socklen_t len = sizeof value;
    return invoke(call::sockopt, [&] { return ::getsockopt(fd, level, name, &value, &len); });
}

inline int open(const char* path, int flags, mode_t mode = 0) noexcept {
    return retry(call::open, [&] { return ::open(path, flags, mode); });
}

inline int dup2(int from, int to) noexcept {
    return retry(call::dup2, [&] { return ::dup2(from, to); });
}

/// fcntl with an integer argument (F_GETFD, F_SETFL, F_DUPFD_CLOEXEC, ...).
inline int fcntl(int fd, int cmd, int arg = 0) noexcept {
    return retry(call::fcntl, [&] { return ::fcntl(fd, cmd, arg); });
}

inline int access(const char* path, int mode) noexcept {
    return invoke(call::access, [&] { return ::access(path, mode); });
}

inline int stat(const char* path, struct stat* st) noexcept {
    return invoke(call::stat, [&] { return ::stat(path, st); });
}

/// ioctl with an int out-parameter (FIONREAD, ...).
inline int ioctl(int fd, unsigned long request, int* out) noexcept {
    return retry(call::ioctl, [&] { return ::ioctl(fd, request, out); });
}

/// posix_spawn, with glibc's errno-as-result turned into -1 and errno. glibc runs the
/// child with CLONE_VFORK, reports a failed file action or exec as the errno of the call,
/// and reaps the failed child itself.
inline int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                       const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept {
    return invoke(call::posix_spawn, [&] {
        int e = ::posix_spawn(pid, path, actions, attr, argv, envp);
        if (e == 0) return 0;
        errno = e;
        return -1;
    });
}

inline int prctl(int option, unsigned long arg) noexcept {
    return invoke(call::prctl, [&] { return ::prctl(option, arg, 0UL, 0UL, 0UL); });
}

/// Whether a file may be `size` bytes long under the process's file-size limit
/// (RLIMIT_FSIZE, `ulimit -f`). Past it, ftruncate raises SIGXFSZ, whose default action
/// kills the process: CPython ignores that signal at start-up and gets EFBIG, but a library
/// may not change a program's signals, so it checks first.
inline bool within_file_size_limit(std::uint64_t size) noexcept {
    rlimit r{};
    return ::getrlimit(RLIMIT_FSIZE, &r) != 0 || r.rlim_cur == RLIM_INFINITY || size <= r.rlim_cur;
}

/// ftruncate; EFBIG (as with SIGXFSZ ignored) for a size over the file-size limit.
inline int ftruncate(int fd, off_t size) noexcept {
    if (size > 0 && !within_file_size_limit(static_cast<std::uint64_t>(size))) {
        errno = EFBIG;
        return -1;
    }
    return retry(call::ftruncate, [&] { return ::ftruncate(fd, size); });
}

inline int memfd_create(const char* name, unsigned flags) noexcept {
    return invoke(call::memfd_create, [&] { return ::memfd_create(name, flags); });
}

inline int socket(int domain, int type, int protocol) noexcept {
    return invoke(call::socket, [&] { return ::socket(domain, type, protocol); });
}

inline int socketpair(int domain, int type, int protocol, int fds[2]) noexcept {
    return invoke(call::socketpair, [&] { return ::socketpair(domain, type, protocol, fds); });
}

inline int bind(int fd, const sockaddr* addr, socklen_t len) noexcept {
    return invoke(call::bind, [&] { return ::bind(fd, addr, len); });
}

inline int listen(int fd, int backlog) noexcept {
    return invoke(call::listen, [&] { return ::listen(fd, backlog); });
}

inline int accept4(int fd, int flags) noexcept {
    return retry(call::accept, [&] { return ::accept4(fd, nullptr, nullptr, flags); });
}

/// connect() is not retried: after EINTR the connection goes on being made.
inline int connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
    return invoke(call::connect, [&] { return ::connect(fd, addr, len); });
}

inline ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept {
    return retry(call::recvmsg, [&] { return ::recvmsg(fd, msg, flags); });
}

/// The credentials of the process at the other end of a unix socket (SO_PEERCRED).
inline int peer_credentials(int fd, ucred* out) noexcept {
    return invoke(call::other, [&] {
        socklen_t len = sizeof *out;
        return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, &len);
    });
}

inline int getsockname(int fd, sockaddr* addr, socklen_t* len) noexcept {
    return invoke(call::other, [&] { return ::getsockname(fd, addr, len); });
}

inline int getpeername(int fd, sockaddr* addr, socklen_t* len) noexcept {
    return invoke(call::other, [&] { return ::getpeername(fd, addr, len); });
}


/// Closes every descriptor from `first` on (close_range(2)).
inline int close_from(unsigned first) noexcept {
    return invoke(call::close, [&] { return static_cast<int>(::syscall(SYS_close_range, first, ~0U, 0U)); });
}

/// mmap reports failure with MAP_FAILED; this returns nullptr instead.
inline void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) noexcept {
    if (int e = injected(call::mmap)) {
        errno = e;
        return nullptr;
    }
    void* p = ::mmap(addr, len, prot, flags, fd, off);
    return p == MAP_FAILED ? nullptr : p;
}

/// mremap with MREMAP_MAYMOVE (faults are injected as for mmap); nullptr on failure.
inline void* mremap(void* addr, std::size_t old_len, std::size_t new_len) noexcept {
    if (int e = injected(call::mmap)) {
        errno = e;
        return nullptr;
    }
    void* p = ::mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? nullptr : p;
}

/// munmap; returns 0 or -1.
inline int munmap(void* addr, std::size_t len) noexcept {
    return invoke(call::munmap, [&] { return ::munmap(addr, len); });
}

/// An eventfd (a counter that polls readable while non-zero), close-on-exec.
inline int eventfd(unsigned initial, int flags) noexcept {
    return invoke(call::eventfd, [&] { return ::eventfd(initial, flags | EFD_CLOEXEC); });
}

/// Adds 1 to an eventfd's counter (wakes whoever polls it); 0 or -1. EAGAIN (the counter
/// is saturated, so it is readable anyway) counts as success.
inline int eventfd_signal(int fd) noexcept {
    std::uint64_t one = 1;
    ssize_t n = retry(call::write, [&] { return ::write(fd, &one, sizeof one); });
    return n == static_cast<ssize_t>(sizeof one) || (n < 0 && errno == EAGAIN) ? 0 : -1;
}

/// Reads and resets a non-blocking eventfd's counter; returns the count, 0 if it was zero.
inline std::uint64_t eventfd_drain(int fd) noexcept {
    std::uint64_t n = 0;
    return retry(call::read, [&] { return ::read(fd, &n, sizeof n); }) == static_cast<ssize_t>(sizeof n) ? n : 0;
}

/// Sets the disposition of `sig` (SIG_IGN, SIG_DFL or a handler); 0 or -1.
inline int set_signal_disposition(int sig, void (*handler)(int)) noexcept {
    struct sigaction sa {};
    sa.sa_handler = handler;
    ::sigemptyset(&sa.sa_mask);
    return invoke(call::sigaction, [&] { return ::sigaction(sig, &sa, nullptr); });
}

/// Whether this process ignores SIGINT because the library set it so: a pool worker's (or an
/// MPI rank's worker's), whose Ctrl-C is for the parent to act on. Programs such a process
/// runs (subprocess) get SIGINT's default action back, as from a process that never
/// ignored it, so that Ctrl-C reaches them too.
inline bool& sigint_ignored_by_library() noexcept {
    static bool ignored = false;
    return ignored;
}

/// Ignores SIGINT in a worker of the library (see sigint_ignored_by_library); 0 or -1.
inline int ignore_sigint_in_worker() noexcept {
    const int r = set_signal_disposition(SIGINT, SIG_IGN);
    if (r == 0) sigint_ignored_by_library() = true;
    return r;
}

/// The current action for `sig` (disposition and flags); 0 or -1.
inline int signal_action(int sig, struct sigaction* out) noexcept {
    return invoke(call::sigaction, [&] { return ::sigaction(sig, nullptr, out); });
}

/// Gives the CPU to another runnable thread, if any (for spin loops on busy machines).
inline void yield() noexcept { (void)::sched_yield(); }

/// pread(): `n` bytes at `offset`, the descriptor's position unmoved. Faults as call::read.
inline ssize_t pread(int fd, void* buf, std::size_t n, off_t offset) noexcept {
    return retry(call::read, [&] { return ::pread(fd, buf, n, offset); });
}

inline int fstat(int fd, struct stat* st) noexcept {
    return invoke(call::fstat, [&] { return ::fstat(fd, st); });
}

/// shm_open: a name in /dev/shm (only for shared_memory, which users name on purpose).
inline int shm_open(const char* name, int flags, mode_t mode) noexcept {
    return retry(call::shm_open, [&] { return ::shm_open(name, flags, mode); });
}

inline int shm_unlink(const char* name) noexcept {
    return invoke(call::shm_unlink, [&] { return ::shm_unlink(name); });
}

/// Fills `buf` with `n` random bytes from the kernel; returns 0 or -1.
inline int getrandom_all(void* buf, std::size_t n) noexcept {
    auto p = static_cast<unsigned char*>(buf);
    while (n > 0) {
        ssize_t r = retry(call::getrandom, [&] { return ::getrandom(p, n, 0); });
        if (r < 0) return -1;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return 0;
}

/// 16 hex digits of fresh random bits, for names no other process picks; os_error naming
/// `what` if the kernel gives none.
inline std::string random_hex(const char* what) {
    std::uint64_t r = 0;
    if (getrandom_all(&r, sizeof r) != 0) fail(std::string("getrandom for ") + what);
    static constexpr char hex[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 0; i < 16; ++i) s[static_cast<std::size_t>(i)] = hex[(r >> (4 * i)) & 15];
    return s;
}

/// Makes `fd` non-blocking; os_error naming `what` otherwise.
inline void set_nonblocking(int fd, const char* what) {
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail(std::string("fcntl(O_NONBLOCK) on ") + what);
}

/// FUTEX_WAIT on a word shared between processes: returns 0 when woken (or spuriously),
/// -1 with errno EAGAIN (value changed), ETIMEDOUT or EINTR. `rel` null waits forever.
inline int futex_wait(const void* word, std::uint32_t expected, const timespec* rel) noexcept {
    return invoke(call::futex,
                  [&] { return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAIT, expected, rel, nullptr, 0)); });
}

/// FUTEX_WAKE: wakes up to `n` waiters; returns how many were woken.
inline int futex_wake(const void* word, int n) noexcept {
    return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0));
}

/// Writes all of `n` bytes with `write_some(p, k)`, which writes some of the `k` bytes at
/// `p` and returns how many, or -1; returns 0, or -1 at the first error.
template <class WriteSome>
int write_fully(const void* buf, std::size_t n, WriteSome write_some) noexcept {
    auto p = static_cast<const char*>(buf);
    while (n > 0) {
        const ssize_t w = write_some(p, n);
        if (w < 0) return -1;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return 0;
}

/// Writes all of `n` bytes unless an error other than EINTR occurs; returns 0 or -1.
inline int write_all(int fd, const void* buf, std::size_t n) noexcept {
    return write_fully(buf, n, [fd](const char* p, std::size_t k) { return write(fd, p, k); });
}

/// poll() until `deadline`; EINTR restarts it with the time that is left. Returns poll's
/// result: 0 on timeout. `forever` blocks without a deadline.
inline int poll_until(pollfd* fds, nfds_t n, std::chrono::steady_clock::time_point deadline, bool forever) noexcept {
    for (;;) {
        int ms = -1;
        if (!forever) {
            auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            ms = left.count() < 0 ? 0 : (left.count() > 0x7fffffff ? 0x7fffffff : static_cast<int>(left.count()));
        }
        int r = invoke(call::poll, [&] { return ::poll(fds, n, ms); });
        if (r != -1 || errno != EINTR) return r;
    }
}

/// poll() for at most `ns` nanoseconds (ppoll, finer than poll's milliseconds); a signal
/// ends the wait early, as a wake-up would. Returns poll's result: 0 on timeout.
inline int poll_for(pollfd* fds, nfds_t n, std::uint64_t ns) noexcept {
    const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    const int r = invoke(call::poll, [&] { return ::ppoll(fds, n, &ts, nullptr); });
    return r == -1 && errno == EINTR ? 0 : r;
}

/// While alive, `sig` is blocked in the calling thread, so a child forked meanwhile starts
/// with it blocked (and held pending) until it unblocks it itself (unblock_signal).
class signal_block {
public:
    explicit signal_block(int sig) noexcept {
        sigset_t s;
        ::sigemptyset(&s);
        ::sigaddset(&s, sig);
        ::pthread_sigmask(SIG_BLOCK, &s, &old_);
    }
    signal_block(const signal_block&) = delete;
    signal_block& operator=(const signal_block&) = delete;
    ~signal_block() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

private:
    sigset_t old_{};
};

/// Unblocks `sig` in the calling thread: one pending is delivered now.
inline void unblock_signal(int sig) noexcept {
    sigset_t s;
    ::sigemptyset(&s);
    ::sigaddset(&s, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
}

/// While alive, a write to a pipe whose reader is gone fails with EPIPE in this thread
/// instead of raising SIGPIPE (which kills a process that does not ignore it). SIGPIPE is
/// blocked in the calling thread, and one it raised meanwhile is consumed on the way out;
/// one that was pending before is left pending. Costs two system calls (the mask, and the
/// mask back) where the thread did not block SIGPIPE and no write under it may have raised
/// one (see `wrote`); up to two more otherwise.
class sigpipe_guard {
public:
    sigpipe_guard() noexcept {
        ::sigemptyset(&pipe_);
        ::sigaddset(&pipe_, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
        // A SIGPIPE pending for a thread that did not block it would have been delivered to
        // it already (the kernel directs a process-wide one to a thread that does not block
        // it): only a thread that blocked it can have one pending from before.
        if (::sigismember(&old_, SIGPIPE) == 1) was_pending_ = pending();
    }
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;
    ~sigpipe_guard() {
        int saved = errno;
        if (may_have_raised_ && !was_pending_ && pending()) {
            timespec zero{};
            while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
        errno = saved;
    }

    /// Tells the guard what the one write under it returned, of `wanted` bytes: a pipe
    /// raises SIGPIPE only in a write that fails with EPIPE or stops short (bytes written,
    /// then the reader gone). Until told, the guard assumes a SIGPIPE may have been raised.
    void wrote(ssize_t r, std::size_t wanted) noexcept {
        may_have_raised_ = r < 0 ? errno == EPIPE : static_cast<std::size_t>(r) < wanted;
    }

private:
    static bool pending() noexcept {
        sigset_t set;
        ::sigemptyset(&set);
        ::sigpending(&set);
        return ::sigismember(&set, SIGPIPE) == 1;
    }

    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
    bool may_have_raised_ = true;
};

/// pwritev2's RWF_NOSIGNAL (Linux 6.18; glibc 2.36's headers do not have it): a write to a
/// pipe whose reader is gone fails with EPIPE and raises no SIGPIPE. Older kernels refuse
/// the flag with EOPNOTSUPP.
inline constexpr int rwf_nosignal = 0x100;

/// Whether this kernel takes `rwf_nosignal`: until a write finds that it does not, it is
/// tried (-1 once refused; tests set it to -1 to take the other way, and back to 0).
inline std::atomic<int> nosignal_writes{0};

/// writev() to a pipe that reports a reader-less pipe as EPIPE instead of killing the
/// process with SIGPIPE. (Sockets use MSG_NOSIGNAL instead, which costs nothing.) One
/// system call where the kernel takes RWF_NOSIGNAL; else the write under a sigpipe_guard,
/// two or more calls more.
inline ssize_t writev_nosigpipe(int fd, const iovec* iov, int n) noexcept {
    if (nosignal_writes.load(std::memory_order_relaxed) == 0) {
        ssize_t r = retry(call::writev, [&] { return ::pwritev2(fd, iov, n, -1, rwf_nosignal); });
        if (r >= 0 || errno != EOPNOTSUPP) return r;
        nosignal_writes.store(-1, std::memory_order_relaxed);
    }
    std::size_t wanted = 0;
    for (int i = 0; i < n; ++i) wanted += iov[i].iov_len;
    sigpipe_guard guard;
    ssize_t r = sys::writev(fd, iov, n);
    guard.wrote(r, wanted);
    return r;
}

/// write_all() to a descriptor that may be a pipe nobody reads any more (stderr piped into a
/// program that has ended; a reaper killed): -1 with EPIPE, never SIGPIPE.
inline int write_all_nosigpipe(int fd, const void* buf, std::size_t n) noexcept {
    return write_fully(buf, n, [fd](const char* p, std::size_t k) {
        iovec v{const_cast<char*>(p), k};
        return writev_nosigpipe(fd, &v, 1);
    });
}

/// An owned file descriptor: closed on destruction, movable, never copied.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    ~unique_fd() { reset(); }
    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { int f = fd_; fd_ = -1; return f; }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail::sys
