// Not part of the API: kernel byte streams (pipes, Unix socket pairs) as the stream
// transports use them: non-blocking, close-on-exec, with buffers as large as allowed, and
// waits done with poll() so that every wait can have a deadline.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// /proc/sys/fs/pipe-max-size: the largest buffer an unprivileged process may give a pipe.
/// Read once and kept in an atomic, not in a lazily initialised static, whose guard a child
/// forked while another thread read it would wait on forever.
inline std::size_t pipe_max_size() {
    static constinit std::atomic<std::size_t> known{0};
    if (std::size_t n = known.load(std::memory_order_relaxed)) return n;
    std::size_t n = 1 << 20;
    sys::unique_fd fd(sys::open("/proc/sys/fs/pipe-max-size", O_RDONLY | O_CLOEXEC));
    if (fd) {
        char buf[32] = {};
        if (sys::read(fd.get(), buf, sizeof buf - 1) > 0) {
            long v = std::strtol(buf, nullptr, 10);
            if (v >= 4096) n = static_cast<std::size_t>(v);
        }
    }
    known.store(n, std::memory_order_relaxed);
    return n;
}

/// Gives a pipe the buffer asked for (0: pipe-max-size), halving the request while the
/// kernel refuses (a user over /proc/sys/fs/pipe-user-pages-soft gets small pipes).
/// Returns the buffer size it ended with: the most bytes the pipe can hold.
inline std::size_t grow_pipe(int fd, std::size_t want) {
    std::size_t n = want ? want : pipe_max_size();
    for (n = std::min(n, pipe_max_size()); n > 4096; n /= 2)
        if (sys::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(n)) >= 0) break;
    int got = sys::fcntl(fd, F_GETPIPE_SZ);
    if (got < 0) sys::fail("fcntl(F_GETPIPE_SZ) on a new pipe");
    return static_cast<std::size_t>(got);
}

/// A non-blocking, close-on-exec pipe with the buffer asked for: {read end, write end}.
inline std::pair<sys::unique_fd, sys::unique_fd> make_pipe(std::size_t want, std::size_t& capacity) {
    int fds[2];
    if (sys::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) sys::fail("pipe2");
    sys::unique_fd r(fds[0]), w(fds[1]);
    capacity = grow_pipe(w.get(), want);
    return {std::move(r), std::move(w)};
}

/// A non-blocking, close-on-exec AF_UNIX stream socket pair with send buffers as large as
/// asked for (0: as large as allowed), and at least 16 KiB: the kernel cuts a write into
/// segments of at most half the send buffer, and a write of PIPE_BUF bytes must stay one
/// segment (a reader could otherwise see half of it). `capacity` is a bound on the bytes
/// in flight one way: a Unix stream socket queues what its sender's buffer accounts for,
/// at most one segment more.
inline std::pair<sys::unique_fd, sys::unique_fd> make_socketpair(std::size_t want, std::size_t& capacity) {
    int fds[2];
    if (sys::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, fds) != 0) sys::fail("socketpair");
    sys::unique_fd a(fds[0]), b(fds[1]);
    int ask = static_cast<int>(
        std::clamp<std::size_t>(want ? want : std::size_t{64} << 20, std::size_t{16} << 10, INT_MAX / 2));
    int sndbuf = 0;
    for (int fd : {a.get(), b.get()}) {
        (void)sys::setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, ask); // capped by net.core.wmem_max
        (void)sys::setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, ask);
        int got = 0;
        if (sys::getsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, got) != 0) sys::fail("getsockopt(SO_SNDBUF)");
        sndbuf = std::max(sndbuf, got);
    }
    capacity = static_cast<std::size_t>(sndbuf) * 2;
    return {std::move(a), std::move(b)};
}

/// Bytes waiting in a socket's receive queue (FIONREAD). A read from a Unix stream socket
/// does not stop at what was there when it began: it goes on taking what writers add while
/// it copies. A reader that must not end inside a write reads exactly this many bytes,
/// which are the writes queued when it looked, whole.
inline std::size_t socket_readable(int fd) {
    int n = 0;
    if (sys::ioctl(fd, FIONREAD, &n) != 0) sys::fail("ioctl(FIONREAD) on a socket");
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

/// Copies up to `n` bytes from the front of a socket's receive queue without taking them:
/// the bytes copied, or -1 with errno (EAGAIN: nothing is there).
inline ssize_t socket_peek(int fd, void* buf, std::size_t n) noexcept {
    iovec v{buf, n};
    msghdr m{};
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    return sys::recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT);
}

/// Waits until `fd` reports one of `events` (or an error or hang-up); false on timeout.
inline bool wait_fd(int fd, short events, std::optional<steady::time_point> deadline, const char* what) {
    pollfd p{fd, events, 0};
    int n = sys::poll_until(&p, 1, deadline.value_or(steady::time_point{}), !deadline.has_value());
    if (n < 0) sys::fail(std::string("poll on ") + what);
    return n > 0;
}

/// One non-blocking read: bytes read (> 0), 0 at end of file, -1 if nothing is there now.
inline ssize_t read_some(int fd, void* buf, std::size_t n, const char* what) {
    ssize_t r = sys::read(fd, buf, n);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    sys::fail(std::string("read from ") + what);
}

#ifdef IOV_MAX
inline constexpr int max_iov = IOV_MAX;
#else
inline constexpr int max_iov = 1024; // (Linux's UIO_MAXIOV)
#endif

/// Writes every byte of `iov` to a non-blocking descriptor with `send` (the transport's
/// writev), waiting for room until `deadline`. Returns false if the deadline passed before
/// the first byte went out; once some bytes are out it finishes regardless (a stream must
/// not be left mid-frame). Throws os_error on other errors (EPIPE: no reader is left).
template <class Send>
bool write_all(Send&& send, int fd, iovec* iov, int n, std::optional<steady::time_point> deadline, const char* what) {
    bool started = false;
    while (n > 0) {
        ssize_t w = send(fd, iov, std::min(n, max_iov)); // (the kernel takes at most IOV_MAX at once)
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) sys::fail(std::string("write to ") + what);
            if (!wait_fd(fd, POLLOUT, started ? std::nullopt : deadline, what)) return false;
            continue;
        }
        started = true;
        auto left = static_cast<std::size_t>(w);
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            ++iov;
            --n;
        }
        if (n > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
    return true;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
