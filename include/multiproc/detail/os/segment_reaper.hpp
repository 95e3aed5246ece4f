// The reaper of a process's named shared memory segments (design §5.5: no segment outlives
// the processes using it, even after SIGKILL). Internal.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN
#include <multiproc/detail/os/sys.hpp>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What segment_reaper keeps of this process's reaper: constant-initialised, never
/// destroyed (see sys::never_destroyed).
struct segment_reaper_state {
    std::mutex mu;
    int fd = -1;               // the pipe's write end, while a reaper runs
    std::size_t live = 0;      // segments made here and not removed
    pid_t pid = 0;             // the reaper's
    int pidfd = -1;            // the reaper's, where the kernel gives one (CLONE_PIDFD, Linux 5.2)
    std::uint64_t number = 0;  // the reaper's number (counted up, per process)
};
inline constinit sys::never_destroyed<segment_reaper_state> segment_reaper_storage;

/// Removes the names of the segments this process made (shared_memory, shared_heap,
/// shareable_list, a shared_memory_manager's) if the process ends without removing them:
/// killed, or gone by exec. CPython's resource tracker does this job for a program.
///
/// A process of its own, started at the first segment this process makes and ended when it
/// owns none any more (so a program that owns no segment has no reaper and no descriptor
/// for it). It holds nothing but the read end of a pipe whose write end only this process
/// holds (close-on-exec, and closed in a forked child, which has a reaper of its own): this
/// process writes "+" with the segment's inode and name once it has made a segment, and "-"
/// with the name once it has removed it; at end of file the reaper removes each name still
/// made, if the segment of that name is still the one made (its inode: not a newer segment
/// someone else made under a name removed meanwhile), and ends. It is a child of the process
/// (named "multiproc-reap" in ps), which waits for it when it ends it; one whose process was
/// killed is an orphan for the moment it works. It uses no allocator and takes no lock (the
/// program may have threads when it forks it): its lines live in an anonymous mapping it
/// grows with mremap. It ignores the terminal's SIGINT, SIGHUP and SIGTERM, which are meant
/// for the program; only SIGKILL ends it early. Without a process or pipe to spare, or for
/// a name with a line break in it, segments are removed at an orderly end only.
class segment_reaper {
public:
    /// Which reaper knows a name: 0 none (a name too long, no process or pipe to spare),
    /// else the number of the reaper that does (a killed reaper is followed by another).
    using ticket = std::uint64_t;

    /// Tells the reaper that this process made the segment `path` ("/name"), whose inode is
    /// `ino`; starts the reaper first if none runs. Unless it returns 0, the caller calls
    /// removed() with what it returned once it removes the name.
    static ticket made(std::string_view path, ino_t ino) noexcept {
        char line[line_max];
        if (path.empty() || path.size() > name_max || path.front() != '/' ||
            path.find('\n') != std::string_view::npos) // (the reaper's lines end there)
            return 0;
        line[0] = '+';
        static constexpr char hex[] = "0123456789abcdef";
        auto v = static_cast<std::uint64_t>(ino);
        for (int k = ino_digits; k >= 1; --k, v >>= 4) line[k] = hex[v & 15];
        std::memcpy(line + 1 + ino_digits, path.data(), path.size());
        const std::size_t n = 1 + ino_digits + path.size();
        line[n] = '\n';
        state& s = here();
        std::lock_guard<std::mutex> lk(s.mu);
        if (s.fd < 0 && !start(s)) return 0;
        // One write of a short line to a pipe is atomic; the reaper only reads.
        if (sys::write_all_nosigpipe(s.fd, line, n + 1) != 0) { // (EPIPE: someone killed the reaper)
            // The names the killed one knew are not reaped (their owners' removed() go to
            // it, and are dropped); this one goes to a new reaper.
            stop(s, true);
            if (!start(s)) return 0;
            if (sys::write_all_nosigpipe(s.fd, line, n + 1) != 0) {
                stop(s, true);
                return 0;
            }
        }
        ++s.live;
        return s.number;
    }

    /// Tells the reaper that this process removed the segment `path` ("/name"; "name" with
    /// `slash`), of which made() returned `t`; the reaper ends once no such segment is left.
    static void removed(ticket t, std::string_view path, bool slash = false) noexcept {
        char line[line_max];
        const std::size_t n = path.size() + (slash ? 1 : 0);
        if (n > name_max) return;
        line[0] = '-';
        line[1] = '/';
        std::memcpy(line + (slash ? 2 : 1), path.data(), path.size());
        line[1 + n] = '\n';
        state& s = here();
        std::lock_guard<std::mutex> lk(s.mu);
        if (s.fd < 0 || t != s.number) return; // (told to a reaper that has ended)
        (void)sys::write_all_nosigpipe(s.fd, line, n + 2);
        if (s.live > 0 && --s.live == 0) stop(s);
    }

    /// Removes the segment `path` ("/name"; "name" with `slash`) unless that name is now
    /// another segment than the one whose inode is `ino`: one someone else made under it
    /// after it was removed. With `ino` 0 (not known), or a name that cannot be examined
    /// (stat fails but for ENOENT), the name is removed whatever it is.
    /// Whether it removed it. For an owner's orderly end as for the reaper's (raw system
    /// calls only, but for fstatat, which takes no lock). No system call removes a name only
    /// if it is a given file: a removal and a new segment by others between the check and
    /// the removal would still lose the new one.
    static bool remove_if_same(std::string_view path, std::uint64_t ino, bool slash = false) noexcept {
        static constexpr char dir[] = "/dev/shm/"; // (where shm_open makes its files)
        if (!slash && !path.empty() && path.front() == '/') path.remove_prefix(1);
        char file[sizeof dir + name_max + 1];
        if (path.empty() || path.size() > name_max) return false; // (no such name: shm_open refuses it)
        std::memcpy(file, dir, sizeof dir - 1);
        std::memcpy(file + sizeof dir - 1, path.data(), path.size());
        file[sizeof dir - 1 + path.size()] = '\0';
        struct stat st {};
        if (ino != 0) {
            if (::fstatat(AT_FDCWD, file, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (static_cast<std::uint64_t>(st.st_ino) != ino) return false; // (another segment)
            } else if (errno == ENOENT) {
                return false; // (removed by another process)
            }
        }
        return ::syscall(SYS_unlinkat, AT_FDCWD, file, 0) == 0;
    }

    /// The reaper's pid while one runs for this process, else 0 (for tests).
    [[nodiscard]] static pid_t pid() noexcept {
        state& s = here();
        std::lock_guard<std::mutex> lk(s.mu);
        return s.pid;
    }

private:
    static constexpr std::size_t name_max = 255; // (NAME_MAX, and the slash)
    static constexpr int ino_digits = 16;
    static constexpr std::size_t line_max = 1 + ino_digits + name_max + 1;
    static constexpr unsigned long clone_pidfd = 0x1000; // CLONE_PIDFD (Linux 5.2; glibc headers from 2.31)

    using state = segment_reaper_state;
    static state& here() noexcept { return segment_reaper_storage.value; }

    // Around fork: the lock is held, so no thread is inside it when the child is copied; the
    // child closes its copy of the pipe (its parent's reaper ends with its parent, not with
    // the child) and starts a reaper of its own at its first segment. (The reaper itself is
    // made by a raw clone, which runs no fork handler: see start.)
    static void before_fork() noexcept { here().mu.lock(); }
    static void after_fork_in_parent() noexcept { here().mu.unlock(); }
    static void after_fork_in_child() noexcept {
        state& s = here();
        if (s.fd >= 0) (void)::syscall(SYS_close, s.fd);
        if (s.pidfd >= 0) (void)::syscall(SYS_close, s.pidfd);
        s.fd = -1;
        s.pidfd = -1;
        s.live = 0;
        s.pid = 0;
        s.mu.unlock();
    }

public:
    /// Registered during static initialisation, before main and any thread.
    static inline const int fork_handlers = sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child);

private:
    // Called with s.mu held. The reaper is cloned without fork handlers (a fork() would run
    // every handler of the program with this lock held, in the parent, where a handler
    // that takes a lock another forking thread holds would wait on it, and in the child),
    // and from then on makes nothing but raw system calls: it shares no lock, allocator or
    // interceptor state with the threads it was copied from.
    static bool start(state& s) noexcept {
        (void)fork_handlers;
        int p[2];
        if (sys::pipe2(p, O_CLOEXEC) != 0) return false;
        // With a pidfd (close-on-exec), so that it is killed and waited for exactly, even
        // after something else of the program's collected it and its pid went to another.
        int pidfd = -1;
        auto pid = static_cast<pid_t>(::syscall(SYS_clone, clone_pidfd | SIGCHLD, nullptr, &pidfd, nullptr, nullptr));
        if (pid < 0) { // (a kernel that knows no CLONE_PIDFD, or a filter that refuses it: by pid alone)
            pidfd = -1;
            pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
        }
        if (pid == 0) reap(p[0]);
        (void)::syscall(SYS_close, p[0]);
        if (pid < 0) {
            (void)::syscall(SYS_close, p[1]);
            return false;
        }
        s.fd = p[1];
        s.pid = pid;
        s.pidfd = pidfd;
        ++s.number;
        return true;
    }

    // Called with s.mu held: at end of file the reaper, which has nothing to remove, ends,
    // and is waited for here (unless something else of the program's waited for it first).
    // `failed`: the pipe failed while the reaper may still run, and the segments it knows are
    // still in use: it is killed first, so that it removes none of them.
    static void stop(state& s, bool failed = false) noexcept {
        if (failed && s.pidfd >= 0) (void)::syscall(SYS_pidfd_send_signal, s.pidfd, SIGKILL, nullptr, 0U);
        else if (failed && s.pid > 0) (void)::kill(s.pid, SIGKILL);
        (void)::syscall(SYS_close, s.fd);
        bool waited = false;
        if (s.pidfd >= 0) { // (ECHILD: collected already, by a wait() of the program's)
            siginfo_t info{};
            long r = 0;
            while ((r = ::syscall(SYS_waitid, P_PIDFD, s.pidfd, &info, WEXITED, nullptr)) < 0 && errno == EINTR) {
            }
            waited = r == 0 || errno == ECHILD; // (else no P_PIDFD, Linux 5.2 and 5.3: by pid, which a zombie keeps)
            (void)::syscall(SYS_close, s.pidfd);
        }
        if (!waited && s.pid > 0) {
            int status = 0;
            while (::waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        s.fd = -1;
        s.pid = 0;
        s.pidfd = -1;
        s.live = 0;
    }

    /// The reaper's life: raw system calls only (no allocation, no lock), but for fstat and
    /// the mem* functions, which take no lock either.
    [[noreturn]] static void reap(int in) noexcept {
        // Nothing of the program's but the pipe (a program's pipes and sockets must see end
        // of file when the program closes them); the signals of a terminal's Ctrl-C or
        // hang-up, meant for the program, must not end it before it has done its work: they
        // stay blocked (pending for ever, never delivered).
        if (in != 0) (void)::syscall(SYS_dup3, in, 0, 0);
        if (::syscall(SYS_close_range, 1U, ~0U, 0U) != 0) { // (Linux before 5.9: one by one)
            rlimit lim{};
            const long top = ::syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, nullptr, &lim) == 0 && lim.rlim_cur < (1U << 20)
                                 ? static_cast<long>(lim.rlim_cur)
                                 : long{1} << 20;
            for (long fd = 1; fd < top; ++fd) (void)::syscall(SYS_close, fd);
        }
        std::uint64_t blocked = 0;
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) blocked |= std::uint64_t{1} << (sig - 1);
        (void)::syscall(SYS_rt_sigprocmask, SIG_BLOCK, &blocked, nullptr, sizeof blocked);
        (void)::syscall(SYS_chdir, "/"); // (holds no directory of the program's busy)
        (void)::syscall(SYS_prctl, PR_SET_NAME, "multiproc-reap", 0, 0, 0);
        std::size_t cap = 1 << 16, used = 0;
        auto* lines = static_cast<char*>(raw_mmap(cap)); // "+<inode><path>\n" and "-<path>\n", as they came
        if (!lines) done();
        char spill[4096]; // (where lines go that there is no room for: those names are not reaped)
        for (;;) {
            if (used + 4096 > cap) {
                used = compact(lines, used);
                if (used + 4096 > cap) {
                    void* grown = reinterpret_cast<void*>(::syscall(SYS_mremap, lines, cap, cap * 2, MREMAP_MAYMOVE));
                    if (grown != MAP_FAILED) {
                        lines = static_cast<char*>(grown);
                        cap *= 2;
                    }
                }
            }
            const bool room = used + 4096 <= cap;
            const long r = ::syscall(SYS_read, 0, room ? lines + used : spill, std::size_t{4096});
            if (r == 0) break;
            if (r < 0) {
                if (errno == EINTR) continue;
                break;
            }
            if (room) used += static_cast<std::size_t>(r);
        }
        // A path made and not removed since: its last line is a '+'.
        for (std::size_t i = 0; i < used;) {
            std::size_t end = i;
            while (end < used && lines[end] != '\n') ++end;
            if (end == used) break; // (a line cut short: the process died writing it)
            const std::size_t at = i + 1 + ino_digits;
            if (lines[i] == '+' && end > at && end - at <= name_max && !removed_later(lines, used, at, end))
                (void)remove_if_same(std::string_view(lines + at, end - at), inode_of(lines + i + 1));
            i = end + 1;
        }
        done();
    }

    [[noreturn]] static void done() noexcept {
        for (;;) (void)::syscall(SYS_exit_group, 0);
    }

    static void* raw_mmap(std::size_t n) noexcept {
        void* m = reinterpret_cast<void*>(
            ::syscall(SYS_mmap, nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        return m == MAP_FAILED ? nullptr : m;
    }

    /// Drops from the first `used` bytes each "+" line with a "-" line of its path after it,
    /// and every "-" line; returns how many bytes are left (whole lines, in order, and an
    /// unfinished last line, kept as it is).
    static std::size_t compact(char* lines, std::size_t used) noexcept {
        std::size_t out = 0;
        std::size_t i = 0;
        while (i < used) {
            std::size_t end = i;
            while (end < used && lines[end] != '\n') ++end;
            if (end == used) break; // (unfinished: kept below)
            const std::size_t at = i + 1 + ino_digits;
            const bool keep = lines[i] == '+' && !(end > at && removed_later(lines, used, at, end));
            if (keep) {
                std::memmove(lines + out, lines + i, end + 1 - i);
                out += end + 1 - i;
            }
            i = end + 1;
        }
        std::memmove(lines + out, lines + i, used - i);
        return out + (used - i);
    }

    /// The inode of a "+" line's 16 hex digits.
    static std::uint64_t inode_of(const char* hex) noexcept {
        std::uint64_t ino = 0;
        for (int k = 0; k < ino_digits; ++k) {
            const char c = hex[k];
            ino = ino << 4 | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        return ino;
    }

    /// Whether the path [at, end) of a "+" line has a "-" line after it.
    static bool removed_later(const char* lines, std::size_t used, std::size_t at, std::size_t end) noexcept {
        const std::size_t n = end - at;
        for (std::size_t j = end + 1; j < used;) {
            std::size_t e = j;
            while (e < used && lines[e] != '\n') ++e;
            if (e < used && lines[j] == '-' && e - j - 1 == n && std::memcmp(lines + j + 1, lines + at, n) == 0)
                return true;
            j = e + 1;
        }
        return false;
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
