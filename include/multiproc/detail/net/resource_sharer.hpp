// Not part of the API: hands descriptors of this process to another process that asks for
// them (Python: multiprocessing.resource_sharer), for objects with descriptors put in a
// queue. A queue carries bytes, never descriptors, so the sender keeps duplicates of the
// object's descriptors here under a random 128-bit ticket and puts the ticket in the
// message; the receiver connects to this process's sharer socket (a random name in the
// abstract namespace, accepting only the same uid, as listeners do by default) and takes
// them with SCM_RIGHTS, once. A thread started by the first share serves the socket. A
// child made by fork starts with no sharer of its own (the thread is not copied); it makes
// one on its first share. As in Python, the descriptors live in the sender until they are
// taken: a sender that ends first takes them with it, and the receiver's get says so.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/fd_passing.hpp>
#include <multiproc/detail/os/futex.hpp> // steady
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/chrono.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What a receiver needs to take shared descriptors: who keeps them, where to ask, and the
/// ticket that names them. Written into the message as bytes (ticket_bytes).
struct share_ticket {
    std::uint32_t pid = 0;   // the process that keeps them (for messages)
    std::uint32_t count = 0; // how many
    std::array<std::byte, 16> token{};
    std::string name; // the sharer's abstract socket name (without the leading '\0')
};

/// The ticket as bytes, and back; `serialization_error` for bytes that are not one.
inline std::string ticket_bytes(const share_ticket& t) {
    std::string out(12 + t.token.size(), '\0');
    const std::uint32_t len = static_cast<std::uint32_t>(t.name.size());
    std::memcpy(out.data(), &t.pid, 4);
    std::memcpy(out.data() + 4, &t.count, 4);
    std::memcpy(out.data() + 8, &len, 4);
    std::memcpy(out.data() + 12, t.token.data(), t.token.size());
    return out + t.name;
}
/// Reads a ticket from the front of `bytes`, which then holds what follows it.
inline share_ticket read_ticket(std::string_view& bytes) {
    share_ticket t;
    std::uint32_t len = 0;
    if (bytes.size() < 12 + t.token.size()) detail::raise(serialization_error("multiproc: a queue message of an object with descriptors is too short for its ticket"));
    std::memcpy(&t.pid, bytes.data(), 4);
    std::memcpy(&t.count, bytes.data() + 4, 4);
    std::memcpy(&len, bytes.data() + 8, 4);
    std::memcpy(t.token.data(), bytes.data() + 12, t.token.size());
    bytes.remove_prefix(12 + t.token.size());
    if (len > 107 || len > bytes.size()) detail::raise(serialization_error("multiproc: a queue message of an object with descriptors has a bad sharer name"));
    t.name.assign(bytes.substr(0, len));
    bytes.remove_prefix(len);
    return t;
}

/// Sends (or receives) one whole message of `n` bytes on a SOCK_SEQPACKET socket.
inline bool seqpacket_exchange(int fd, void* p, std::size_t n, bool send) noexcept {
    iovec iov{p, n};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    const ssize_t r = send ? sys::sendmsg(fd, &m, 0) : sys::recvmsg(fd, &m, 0);
    return r == static_cast<ssize_t>(n) && !(m.msg_flags & MSG_TRUNC);
}

/// The sharer of this process: a socket, a thread serving it, and the descriptors kept.
/// It runs only while it keeps something: whoever takes or withdraws the last share stops
/// it, and the receiver's claim returns only after that, so a process that has handed
/// everything over holds no socket, thread or duplicate of its own any more.
class resource_sharer {
public:
    /// Keeps duplicates of `fds` (the caller keeps its own) until a receiver takes them;
    /// the ticket names them. Starts this process's sharer if it is not running.
    static share_ticket share(std::span<const int> fds) {
        share_ticket t;
        t.count = static_cast<std::uint32_t>(fds.size());
        if (fds.empty()) return t;
        std::vector<sys::unique_fd> dups;
        for (int fd : fds) {
            dups.emplace_back(sys::fcntl(fd, F_DUPFD_CLOEXEC, 0));
            if (!dups.back()) sys::fail("dup of a descriptor to share through a queue");
        }
        if (sys::getrandom_all(t.token.data(), t.token.size()) != 0) sys::fail("getrandom for a share ticket");
        state& s = here();
        std::unique_lock<std::mutex> g(s.m);
        if (s.sock < 0) start(s, g);
        t.pid = static_cast<std::uint32_t>(::getpid());
        t.name = s.name;
        s.kept.emplace(t.token, std::move(dups));
        return t;
    }

    /// Drops what `share` kept under `t` (the message carrying it was not put); stops the
    /// sharer if that was the last.
    static void withdraw(const share_ticket& t) noexcept {
        if (t.count == 0) return;
        state& s = here();
        std::unique_lock<std::mutex> g(s.m);
        if (s.kept.erase(t.token) == 0 || !s.kept.empty() || s.sock < 0) return;
        // The thread may sleep in accept(): shutdown() wakes it (EINVAL), it sees that it
        // was stopped and ends; the socket is closed after, so its number is never reused
        // under it.
        const int sock = std::exchange(s.sock, -1);
        std::thread th = std::move(s.thread);
        (void)::shutdown(sock, SHUT_RDWR);
        g.unlock();
        if (th.joinable()) th.join();
        sys::close(sock);
    }

    /// How many shares this process keeps that no receiver has taken yet.
    static std::size_t kept() noexcept {
        state& s = here();
        std::lock_guard<std::mutex> g(s.m);
        return s.kept.size();
    }

private:
    struct state {
        std::mutex m;
        int sock = -1;       // listening (SOCK_SEQPACKET) while the sharer runs, else -1
        std::string name;    // its abstract name
        std::thread thread;  // serving it
        std::map<std::array<std::byte, 16>, std::vector<sys::unique_fd>> kept;
        state* inherited = nullptr; // the parent's, copied by fork (kept reachable, unused)
    };

    /// This process's state. (Never destroyed: the thread may serve until the process
    /// ends.) A state copied by fork belongs to the parent (its mutex may have been held by
    /// a thread that is not here, and that thread is not here): a fresh one replaces it,
    /// and the copy is left alone, its descriptors inherited as all others are.
    static state& here() {
        static std::atomic<state*> current{nullptr};
        static std::atomic<pid_t> owner{0};
        static std::mutex swap;
        const pid_t me = ::getpid();
        state* s = current.load(std::memory_order_acquire);
        if (s && owner.load(std::memory_order_acquire) == me) return *s;
        std::lock_guard<std::mutex> g(swap); // (in a forked child: only this thread is here)
        s = current.load(std::memory_order_acquire);
        if (s && owner.load(std::memory_order_acquire) == me) return *s;
        state* fresh = new state;
        fresh->inherited = s;
        s = fresh;
        current.store(s, std::memory_order_release);
        owner.store(me, std::memory_order_release);
        return *s;
    }

    /// Starts the sharer (the caller holds `g`, the state's lock).
    static void start(state& s, std::unique_lock<std::mutex>&) {
        if (s.thread.joinable()) s.thread.detach(); // a thread that stopped itself, ending
        sys::unique_fd fd(sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (!fd) sys::fail("socket for the resource sharer");
        std::string name = "multiproc-sharer-" + std::to_string(::getpid()) + "-" + sys::random_hex("the resource sharer's name");
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path + 1, name.data(), name.size());
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        if (sys::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) sys::fail("bind of the resource sharer");
        if (sys::listen(fd.get(), 64) != 0) sys::fail("listen of the resource sharer");
        s.thread = std::thread(serve, &s, fd.get()); // (std::system_error without a thread)
        s.sock = fd.release();
        s.name = std::move(name);
    }

    /// The thread: one request per connection, answered at once, until the sharer is
    /// stopped (its socket is no longer `sock`).
    static void serve(state* s, int sock) noexcept {
        for (;;) {
            sys::unique_fd c(sys::accept4(sock, SOCK_CLOEXEC));
            const int e = errno;
            {
                std::lock_guard<std::mutex> g(s->m);
                if (s->sock != sock) return; // stopped by withdraw()
            }
            if (!c) {
                if (e == EBADF || e == ENOTSOCK) return;
                pollfd none{-1, 0, 0};
                (void)sys::poll_for(&none, 1, 10'000'000); // out of descriptors or memory: later
                continue;
            }
            ucred who{};
            if (sys::peer_credentials(c.get(), &who) != 0 || who.uid != ::geteuid()) continue;
            const timeval limit{5, 0}; // a receiver that stalls does not hold up the others
            (void)::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            (void)::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
            std::array<std::byte, 16> token{};
            if (!seqpacket_exchange(c.get(), token.data(), token.size(), false)) continue;
            std::vector<sys::unique_fd> fds;
            bool found = false, stop = false;
            {
                std::lock_guard<std::mutex> g(s->m);
                if (auto it = s->kept.find(token); it != s->kept.end()) {
                    fds = std::move(it->second);
                    s->kept.erase(it);
                    found = true;
                    // The last one: the sharer stops here, before the receiver sees the end.
                    if (s->kept.empty()) {
                        s->sock = -1;
                        sys::close(sock);
                        stop = true;
                    }
                }
            }
            send_kept(c.get(), found, fds);
            // The end is said by closing the connection, after the duplicates: whoever
            // waits for it sees this process hold nothing more of the share.
            fds.clear();
            c.reset();
            if (stop) return;
        }
    }

    /// Sends `fds` in messages of at most max_fds_per_message, each saying how many it has;
    /// one message of count ~0u if the ticket was unknown.
    static void send_kept(int c, bool found, const std::vector<sys::unique_fd>& fds) noexcept {
        std::size_t at = 0;
        do {
            const std::size_t k = found ? std::min(fds.size() - at, max_fds_per_message) : 0;
            std::uint32_t said = found ? static_cast<std::uint32_t>(k) : ~0u;
            std::vector<int> raw;
            for (std::size_t i = 0; i < k; ++i) raw.push_back(fds[at + i].get());
            iovec iov{&said, sizeof said};
            msghdr m{};
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            rights_buffer room;
            attach_rights(m, room, raw);
            if (sys::sendmsg(c, &m, 0) < 0) return;
            at += k;
        } while (found && at < fds.size());
    }
};

/// Waits until the sharer's answer on `c` can be read. A connection can be accepted by the
/// kernel on behalf of a sharer socket that a child made by fork still holds after the
/// sharer's process ended: its pid is looked at every 100 ms, so that case is named at once
/// instead of after the deadline.
inline void wait_for_sharer(int c, std::uint32_t pid, steady::time_point deadline, const std::string& who) {
    for (;;) {
        pollfd p{c, POLLIN, 0};
        const auto slice = std::min(deadline, steady::now() + std::chrono::milliseconds(100));
        if (sys::poll_until(&p, 1, slice, false) > 0) return;
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
            detail::raise(os_error("multiproc: cannot take the descriptors of a queue message: " + who +
                                       " has ended, and they ended with it",
                                   ESRCH));
        if (steady::now() >= deadline)
            detail::raise(os_error("multiproc: cannot take the descriptors of a queue message: " + who + " does not answer",
                                   ETIMEDOUT));
    }
}

/// Takes the descriptors `t` names from the process that shared them, waiting at most
/// until `deadline` for its answer. `os_error` naming the process if it has ended (its
/// descriptors ended with it) or does not answer; `value_error` if it does not know the
/// ticket (taken already).
inline std::vector<sys::unique_fd> claim_shared(const share_ticket& t, steady::time_point deadline) {
    std::vector<sys::unique_fd> out;
    if (t.count == 0) return out;
    const std::string who = "the process (pid " + std::to_string(t.pid) + ") that put an object with descriptors in the queue";
    sys::unique_fd c(sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!c) sys::fail("socket to take descriptors shared through a queue");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, t.name.data(), t.name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + t.name.size());
    if (sys::connect(c.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) {
        const int e = errno;
        detail::raise(os_error("multiproc: cannot take the descriptors of a queue message: " + who +
                                   (e == ECONNREFUSED ? " has ended, and they ended with it" : " does not answer"),
                               e));
    }
    if (!seqpacket_exchange(c.get(), const_cast<std::byte*>(t.token.data()), t.token.size(), true))
        sys::fail("send of a share ticket to " + who);
    while (out.size() < t.count) {
        wait_for_sharer(c.get(), t.pid, deadline, who);
        std::uint32_t said = 0;
        iovec iov{&said, sizeof said};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        rights_buffer room;
        expect_rights(m, room);
        const ssize_t r = sys::recvmsg(c.get(), &m, MSG_CMSG_CLOEXEC);
        const std::size_t before = out.size();
        if (r > 0) take_rights(m, out);
        if (r < 0) sys::fail("recvmsg of descriptors from " + who);
        if (r == 0) detail::raise(os_error("multiproc: cannot take the descriptors of a queue message: " + who + " ended while sending them", EPIPE));
        if (said == ~0u) detail::raise(value_error("multiproc: " + who + " does not hold its descriptors any more (taken already)"));
        if (r != sizeof said || (m.msg_flags & MSG_CTRUNC) || out.size() - before != said || said == 0)
            detail::raise(serialization_error("multiproc: " + who + " sent descriptors other than it said"));
    }
    if (out.size() != t.count) detail::raise(serialization_error("multiproc: " + who + " sent more descriptors than the message names"));
    // Its end: by then the sender has closed its duplicates (and stopped its sharer if
    // nothing else is kept), so what it holds is settled when this returns.
    wait_for_sharer(c.get(), t.pid, deadline, who);
    std::uint32_t extra = 0;
    if (seqpacket_exchange(c.get(), &extra, sizeof extra, false))
        detail::raise(serialization_error("multiproc: " + who + " sent more than the descriptors it said"));
    return out;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
