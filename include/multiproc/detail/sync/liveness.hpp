// Not part of the API: naming the process that holds a lock in shared memory, and telling
// whether it has died. A process is named by its pid and the low 32 bits of its start time
// (from /proc), so that a pid reused by a new process is not taken for the one that died.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/os/sys.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <multiproc/detail/util/chrono.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A process as shared memory records it: bits 0-29 the pid (Linux pids stay below 2^22),
/// bit 31 free for a waiters flag, bits 32-63 the low bits of its start time. 0 is nobody.
using holder_id = std::uint64_t;

inline constexpr holder_id holder_pid_mask = (holder_id{1} << 30) - 1;

[[nodiscard]] constexpr pid_t holder_pid(holder_id h) noexcept { return static_cast<pid_t>(h & holder_pid_mask); }
[[nodiscard]] constexpr std::uint32_t holder_start(holder_id h) noexcept { return static_cast<std::uint32_t>(h >> 32); }
[[nodiscard]] constexpr holder_id make_holder_id(pid_t pid, std::uint32_t start) noexcept {
    return (holder_id{start} << 32) | (static_cast<holder_id>(pid) & holder_pid_mask);
}

/// What /proc/<pid>/stat says of a process: its state letter and its start time (field 22,
/// in clock ticks since boot).
struct proc_stat {
    char state;
    std::uint64_t start;
};

/// Parses the text of /proc/<pid>/stat; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last ')'.
inline std::optional<proc_stat> parse_proc_stat(std::string_view text) noexcept {
    auto rp = text.rfind(')');
    if (rp == std::string_view::npos) return std::nullopt;
    text.remove_prefix(rp + 1);
    proc_stat out{};
    for (int field = 3; field <= 22; ++field) {
        auto b = text.find_first_not_of(' ');
        if (b == std::string_view::npos) return std::nullopt;
        text.remove_prefix(b);
        auto e = std::min(text.find(' '), text.size());
        std::string_view tok = text.substr(0, e);
        if (field == 3) out.state = tok.empty() ? '?' : tok.front();
        if (field == 22 && std::from_chars(tok.data(), tok.data() + tok.size(), out.start).ec != std::errc{})
            return std::nullopt;
        text.remove_prefix(e);
    }
    return out;
}

/// Reads /proc/<pid>/stat ("self" for pid 0); nothing if it cannot be read (errno set).
inline std::optional<proc_stat> read_proc_stat(pid_t pid) noexcept {
    char path[40] = "/proc/self/stat";
    if (pid != 0) {
        std::string_view pre = "/proc/";
        std::copy(pre.begin(), pre.end(), path);
        auto r = std::to_chars(path + pre.size(), path + sizeof path - 6, pid);
        std::string_view post = "/stat";
        *std::copy(post.begin(), post.end(), r.ptr) = '\0';
    }
    sys::unique_fd fd(sys::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    char buf[1024];
    ssize_t n = sys::read(fd.get(), buf, sizeof buf);
    if (n <= 0) {
        if (n == 0) errno = EIO;
        return std::nullopt;
    }
    auto st = parse_proc_stat(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!st) errno = EIO;
    return st;
}

inline std::atomic<holder_id> cached_self_id{0};

/// Forgets this process's id; registered with pthread_atfork to run in every new child.
inline void forget_self_holder_id() noexcept { cached_self_id.store(0, std::memory_order_relaxed); }

/// Makes every child forget its parent's id. Registered during static initialisation, before
/// main and any thread: a lazily initialised static in compute_self_holder_id() would leave a
/// child forked while another thread initialised it waiting on its guard forever.
inline const int forget_self_holder_id_at_fork = sys::at_fork(nullptr, nullptr, &forget_self_holder_id);

/// Works out this process's id (pid and start time); start time 0 if /proc cannot tell.
inline holder_id compute_self_holder_id() noexcept {
    auto st = read_proc_stat(0);
    holder_id id = make_holder_id(::getpid(), st ? static_cast<std::uint32_t>(st->start) : 0);
    cached_self_id.store(id, std::memory_order_relaxed);
    return id;
}

/// This process's id, cached: no system call after the first (the cache is reset in a child
/// by fork, through pthread_atfork).
inline holder_id self_holder_id() noexcept {
    holder_id id = cached_self_id.load(std::memory_order_relaxed);
    return id != 0 ? id : compute_self_holder_id();
}

/// This thread, among the threads of this process (stable across fork for the forking thread).
inline std::uint64_t self_thread_id() noexcept { return static_cast<std::uint64_t>(::pthread_self()); }

/// How a lock's repr names the calling thread after the process's name, as CPython adds
/// `|<thread name>` for any thread but the main one: nothing for the process's initial
/// thread (its thread id is the pid; in a forked child, the thread that forked), else
/// `|Thread-<tid>`, its kernel thread id (stable for its life, as ps -L and gdb show it).
inline std::string thread_suffix() {
    pid_t tid = sys::gettid();
    return tid == ::getpid() ? std::string() : "|Thread-" + std::to_string(tid);
}

/// Whether the process `h` names has ended: gone, a zombie not yet reaped, or its pid now
/// names another process (a different start time). Without /proc, asks kill(pid, 0), which
/// cannot tell a zombie or a reused pid from a live process.
inline bool process_gone(holder_id h) noexcept {
    pid_t pid = holder_pid(h);
    if (pid <= 0) return false;
    if (auto st = read_proc_stat(pid)) {
        if (st->state == 'Z' || st->state == 'X' || st->state == 'x') return true;
        return holder_start(h) != 0 && static_cast<std::uint32_t>(st->start) != holder_start(h);
    }
    if (errno == ENOENT || errno == ESRCH) return true;
    return sys::kill(pid, 0) != 0 && errno == ESRCH;
}

/// When a waiter next looks for a dead holder: first after 1 ms of waiting, then at
/// doubling intervals up to 64 ms, so a long wait costs a /proc read now and then only.
class check_schedule {
public:
    static constexpr steady::duration first = std::chrono::milliseconds(1);
    static constexpr steady::duration longest = std::chrono::milliseconds(64);

    /// When to wake up: the next check, or `deadline` if sooner.
    [[nodiscard]] steady::time_point wake_at(std::optional<steady::time_point> deadline) const noexcept {
        return deadline && *deadline < next_ ? *deadline : next_;
    }
    /// Whether a check is due at `now`; if so, schedules the next one.
    bool due(steady::time_point now) noexcept {
        if (now < next_) return false;
        period_ = std::min(period_ * 2, longest);
        next_ = now + period_;
        return true;
    }

private:
    steady::duration period_ = first;
    steady::time_point next_ = steady::now() + first;
};

/// Lets one waiter at a time, at most once per `spacing`, look for dead holders of an
/// object, so that many waiters (or a loop of non-blocking attempts) do not flood /proc.
inline bool claim_check(std::atomic<std::int64_t>& next_ns, steady::time_point now,
                        steady::duration spacing = std::chrono::milliseconds(1)) noexcept {
    auto t = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    auto n = next_ns.load(std::memory_order_relaxed);
    if (t < n) return false;
    auto s = std::chrono::duration_cast<std::chrono::nanoseconds>(spacing).count();
    return next_ns.compare_exchange_strong(n, t + s, std::memory_order_relaxed);
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
