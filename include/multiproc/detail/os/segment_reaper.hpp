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
/// grows with mremap. It ignores the terminal's
/// SIGINT, SIGHUP and SIGTERM, which are meant for the program; only SIGKILL ends it early.
/// Without a process or pipe to spare, segments are removed at an orderly end only.
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
        if (path.empty() || path.size() > name_max || path.front() != '/') return 0;
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
            stop(s); // (the next segment starts another; the names this one knew are not reaped)
            return 0;
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

    using state = segment_reaper_state;
    static state& here() noexcept { return segment_reaper_storage.value; }

    // Around fork: the lock is held, so no thread is inside it when the child is copied; the
    // child closes its copy of the pipe (its parent's reaper ends with its parent, not with
    // the child) and starts a reaper of its own at its first segment. The fork that makes
    // the reaper is made with the lock held already (start): the handlers leave it be, and
    // the reaper, which never comes back, does nothing of the child's.
    static inline thread_local bool forking_reaper = false;
    static void before_fork() noexcept {
        if (!forking_reaper) here().mu.lock();
    }
    static void after_fork_in_parent() noexcept {
        if (!forking_reaper) here().mu.unlock();
    }
    static void after_fork_in_child() noexcept {
        if (forking_reaper) return;
        state& s = here();
        if (s.fd >= 0) (void)sys::close(s.fd);
        s.fd = -1;
        s.live = 0;
        s.pid = 0;
        s.mu.unlock();
    }

public:
    /// Registered during static initialisation, before main and any thread.
    static inline const int fork_handlers = sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child);

private:
    // Called with s.mu held.
    static bool start(state& s) noexcept {
        (void)fork_handlers;
        int p[2];
        if (sys::pipe2(p, O_CLOEXEC) != 0) return false;
        forking_reaper = true;
        const pid_t pid = sys::fork();
        if (pid == 0) reap(p[0]);
        forking_reaper = false;
        (void)sys::close(p[0]);
        if (pid < 0) {
            (void)sys::close(p[1]);
            return false;
        }
        s.fd = p[1];
        s.pid = pid;
        ++s.number;
        return true;
    }

    // Called with s.mu held: at end of file the reaper, which has nothing to remove, ends,
    // and is waited for here (unless something else of the program's waited for it first).
    static void stop(state& s) noexcept {
        (void)sys::close(s.fd);
        int status = 0;
        if (s.pid > 0) (void)sys::waitpid(s.pid, &status, 0);
        s.fd = -1;
        s.pid = 0;
        s.live = 0;
    }

    /// The reaper's life: only system calls, no allocation, no lock.
    [[noreturn]] static void reap(int in) noexcept {
        // Nothing of the program's but the pipe (a program's pipes and sockets must see end
        // of file when the program closes them); the signals of a terminal's Ctrl-C or
        // hang-up, meant for the program, must not end it before it has done its work.
        if (in != 0) (void)::dup2(in, 0);
        (void)::syscall(SYS_close_range, 1U, ~0U, 0U);
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) (void)::signal(sig, SIG_IGN);
        (void)!::chdir("/"); // (holds no directory of the program's busy)
        (void)::prctl(PR_SET_NAME, "multiproc-reap", 0, 0, 0);
        std::size_t cap = 1 << 16, used = 0;
        void* m = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) ::_exit(1);
        char* lines = static_cast<char*>(m); // "+<inode><path>\n" and "-<path>\n", as they came
        for (;;) {
            if (used + 4096 > cap) {
                void* grown = ::mremap(lines, cap, cap * 2, MREMAP_MAYMOVE);
                if (grown == MAP_FAILED) break; // (removes what it knows of)
                lines = static_cast<char*>(grown);
                cap *= 2;
            }
            const ssize_t r = ::read(0, lines + used, 4096);
            if (r == 0) break;
            if (r < 0) {
                if (errno == EINTR) continue;
                break;
            }
            used += static_cast<std::size_t>(r);
        }
        // A path made and not removed since: its last line is a '+'.
        for (std::size_t i = 0; i < used;) {
            std::size_t end = i;
            while (end < used && lines[end] != '\n') ++end;
            if (end == used) break; // (a line cut short: the process died writing it)
            const std::size_t at = i + 1 + ino_digits;
            if (lines[i] == '+' && end > at && end - at <= name_max && !removed_later(lines, used, at, end))
                remove_if_same(lines + i + 1, lines + at, end - at);
            i = end + 1;
        }
        ::_exit(0);
    }

    /// Removes the path [p, p + n) if it names the segment of inode `hex` (16 digits).
    static void remove_if_same(const char* hex, const char* p, std::size_t n) noexcept {
        std::uint64_t ino = 0;
        for (int k = 0; k < ino_digits; ++k) {
            const char c = hex[k];
            ino = ino << 4 | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        char path[name_max + 1];
        std::memcpy(path, p, n);
        path[n] = '\0';
        const int fd = ::shm_open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
        if (fd < 0) return; // (removed by another process)
        struct stat st {};
        const bool same = ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == ino;
        (void)::close(fd);
        if (same) (void)::shm_unlink(path);
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
