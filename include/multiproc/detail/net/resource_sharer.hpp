// Not part of the API: hands descriptors of this process to another process that asks for
// them (Python: multiprocessing.resource_sharer), for objects with descriptors put in a
// queue, or sent through a connection whose transport cannot carry descriptors (a kernel
// pipe, shared memory). Those carry bytes, never descriptors, so the sender keeps duplicates of the
// object's descriptors here under a random 128-bit ticket and puts the ticket in the
// message; the receiver connects to this process's sharer socket (a random name in the
// abstract namespace, accepting only the same uid, as listeners do by default) and takes
// them with SCM_RIGHTS, once. A thread started by the first share serves the socket. A
// child made by fork starts with no sharer of its own (the thread is not copied); it makes
// one on its first share. As in Python, the descriptors live in the sender until they are
// taken: a sender that ends first takes them with it, and the receiver's get says so.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/crossing.hpp> // send_datagram, recv_datagram
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
#include <new>
#include <span>
#include <string>
#include <system_error>
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
    if (bytes.size() < 12 + t.token.size()) detail::raise(serialization_error("multiproc: a message of an object with descriptors is too short for its ticket"));
    std::memcpy(&t.pid, bytes.data(), 4);
    std::memcpy(&t.count, bytes.data() + 4, 4);
    std::memcpy(&len, bytes.data() + 8, 4);
    std::memcpy(t.token.data(), bytes.data() + 12, t.token.size());
    bytes.remove_prefix(12 + t.token.size());
    if (len > 107 || len > bytes.size()) detail::raise(serialization_error("multiproc: a message of an object with descriptors has a bad sharer name"));
    t.name.assign(bytes.substr(0, len));
    bytes.remove_prefix(len);
    return t;
}

/// The sharer of this process: a socket, a thread serving it, and the descriptors kept.
/// It runs only while it keeps something: whoever takes or withdraws the last share stops
/// it, and the receiver's claim waits (at most 1 s once it has the descriptors) for the end
/// of file that follows, so a process that has handed everything over holds no socket,
/// thread or duplicate of its own any more. Around fork
/// (pthread_atfork) the state is locked, and a child closes what it inherited of it (the
/// socket, the duplicates, a connection being answered): the thread is not in the child,
/// and the shares are the parent's to hand over.
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
            if (!dups.back()) sys::fail("dup of a descriptor to share through a queue or a connection");
        }
        if (sys::getrandom_all(t.token.data(), t.token.size()) != 0) sys::fail("getrandom for a share ticket");
        state& s = here();
        std::unique_lock<std::mutex> g(s.m);
        if (s.sock < 0) start(s);
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
        s.stopping.push_back(sock); // (a fork meanwhile closes the child's copy)
        std::thread th = std::move(s.thread);
        (void)::shutdown(sock, SHUT_RDWR);
        g.unlock();
        if (th.joinable()) th.join();
        g.lock();
        std::erase(s.stopping, sock);
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
        int sock = -1;      // listening (SOCK_SEQPACKET) while the sharer runs, else -1
        int answering = -1; // the connection the thread is answering, else -1
        std::vector<int> stopping; // sockets withdraw() has stopped and not yet closed
        std::string name;   // the socket's abstract name
        std::thread thread; // serving it
        std::map<std::array<std::byte, 16>, std::vector<sys::unique_fd>> kept;
    };

    /// This process's state (never destroyed: the thread may serve until the process ends).
    static state& here() {
        static state* const s = new state; // (reachable: not a leak)
        return *s;
    }

    // Around fork: the state's lock is held, so no thread is inside it when the child is
    // copied; the child closes its copies of the parent's socket, duplicates and answering
    // connection and forgets the thread (its handle is left as it was copied: the thread
    // is not in this process, so neither join nor detach may touch it).
    static void before_fork() noexcept { here().m.lock(); }
    static void after_fork_in_parent() noexcept { here().m.unlock(); }
    static void after_fork_in_child() noexcept {
        state& s = here();
        if (s.sock >= 0) sys::close(std::exchange(s.sock, -1));
        if (s.answering >= 0) sys::close(std::exchange(s.answering, -1));
        for (int fd : s.stopping) sys::close(fd);
        s.stopping.clear();
        s.kept.clear();
        new (&s.thread) std::thread(); // (the copied handle names no thread here)
        s.m.unlock();
    }

public:
    /// Registered once per program (see the fork handlers above).
    static inline const int fork_handlers = sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child);

private:
    /// Starts the sharer (the caller holds the state's lock).
    static void start(state& s) {
        (void)fork_handlers;
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
        MULTIPROC_TRY {
            s.thread = std::thread(serve, &s, fd.get());
        } MULTIPROC_CATCH(const std::system_error&, e) {
            detail::raise(os_error(std::string("multiproc: cannot start the resource sharer's thread: ") + e.what(),
                                   e.code().value()));
        }
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
                if (c) s->answering = c.get();
            }
            if (!c) {
                if (e == EBADF || e == ENOTSOCK) return;
                pollfd none{-1, 0, 0};
                (void)sys::poll_for(&none, 1, 10'000'000); // out of descriptors or memory: later
                continue;
            }
            if (answer(*s, c, sock)) return;
        }
    }

    /// Answers one connection and closes it: the descriptors of the ticket it sends, then
    /// end of file (or ~0u for a ticket it does not know). The share stays in `kept` while
    /// it is sent, so that a fork meanwhile finds it there; it is erased (its duplicates
    /// closed), then the connection closed, then the receiver sees the end. True if that
    /// was the last share: the sharer has stopped (its socket is closed).
    static bool answer(state& s, sys::unique_fd& conn, int sock) noexcept {
        const int c = conn.get();
        std::array<std::byte, 16> token{};
        std::vector<int> raw;
        bool found = false;
        ucred who{};
        if (sys::peer_credentials(c, &who) == 0 && who.uid == ::geteuid()) {
            const timeval limit{5, 0}; // a receiver that stalls does not hold up the others
            (void)::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            (void)::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
            std::vector<sys::unique_fd> none;
            if (recv_datagram(c, token.data(), token.size(), none) == static_cast<ssize_t>(token.size())) {
                std::lock_guard<std::mutex> g(s.m);
                if (auto it = s.kept.find(token); it != s.kept.end()) {
                    found = true;
                    for (const auto& fd : it->second) raw.push_back(fd.get());
                }
            }
            send_kept(c, found, raw);
        }
        std::lock_guard<std::mutex> g(s.m);
        bool stop = false;
        if (found && s.kept.erase(token) != 0 && s.kept.empty() && s.sock == sock) { // the last one
            s.sock = -1;
            (void)::shutdown(sock, SHUT_RDWR); // (a copy a fork made would keep it listening)
            sys::close(sock);
            stop = true;
        }
        if (s.answering == c) s.answering = -1; // (a stopped sharer's thread may overlap a new one's)
        conn.reset();
        return stop;
    }

    /// Sends `fds` in messages of at most max_fds_per_message, each saying how many it has;
    /// one message of count ~0u if the ticket was unknown.
    static void send_kept(int c, bool found, const std::vector<int>& fds) noexcept {
        std::size_t at = 0;
        do {
            const std::size_t k = found ? std::min(fds.size() - at, max_fds_per_datagram) : 0;
            const std::uint32_t said = found ? static_cast<std::uint32_t>(k) : ~0u;
            if (send_datagram(c, &said, sizeof said, std::span<const int>(fds).subspan(at, k)) < 0) return;
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
            detail::raise(os_error("multiproc: cannot take the descriptors of a message: " + who +
                                       " has ended, and they ended with it",
                                   ESRCH));
        if (steady::now() >= deadline)
            detail::raise(os_error("multiproc: cannot take the descriptors of a message: " + who + " does not answer",
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
    const std::string who = "the process (pid " + std::to_string(t.pid) + ") that sent an object with descriptors (through a queue or a connection)";
    sys::unique_fd c(sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!c) {
        const int e = errno;
        detail::raise(os_error("multiproc: cannot take the descriptors of a message from " + who +
                                   ": no socket to take them with" +
                                   (e == EMFILE   ? std::string(" (this process is out of descriptors: RLIMIT_NOFILE)")
                                    : e == ENFILE ? std::string(" (the system is out of descriptors)")
                                                  : std::string()) +
                                   "; the message is dropped",
                               e));
    }
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, t.name.data(), t.name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + t.name.size());
    // (A connect waits while the sharer's backlog is full: at most until the deadline.)
    const auto left = std::max<std::chrono::microseconds>(
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - steady::now()), std::chrono::milliseconds(1));
    const timeval limit{static_cast<time_t>(left.count() / 1'000'000), static_cast<suseconds_t>(left.count() % 1'000'000)};
    (void)::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    int rc;
    do // (with a send timeout, a signal makes connect fail with EINTR instead of restarting it)
        rc = sys::connect(c.get(), reinterpret_cast<const sockaddr*>(&a), len);
    while (rc != 0 && errno == EINTR && steady::now() < deadline);
    if (rc != 0) {
        const int e = errno;
        detail::raise(os_error("multiproc: cannot take the descriptors of a message: " + who +
                                   (e == ECONNREFUSED ? " has ended, and they ended with it" : " does not answer"),
                               e));
    }
    // Abstract names have no permissions: once the sender has ended, any process could
    // bind its name. The socket must be the sender's own (who called listen() on it).
    ucred peer{};
    if (sys::peer_credentials(c.get(), &peer) != 0) sys::fail("SO_PEERCRED of the sharer of " + who);
    if (peer.uid != ::geteuid() || peer.pid != static_cast<pid_t>(t.pid))
        detail::raise(os_error("multiproc: cannot take the descriptors of a message: " + who +
                                   " has ended, and another process (pid " + std::to_string(peer.pid) + ", uid " +
                                   std::to_string(peer.uid) + ") answers at its sharer's name",
                               ECONNREFUSED));
    if (send_datagram(c.get(), t.token.data(), t.token.size(), {}) < 0) sys::fail("send of a share ticket to " + who);
    while (out.size() < t.count) {
        wait_for_sharer(c.get(), t.pid, deadline, who);
        std::uint32_t said = 0;
        const std::size_t before = out.size();
        const ssize_t r = recv_datagram(c.get(), &said, sizeof said, out);
        if (r < 0 && errno == EMSGSIZE)
            detail::raise(os_error("multiproc: cannot take the descriptors of a message from " + who +
                                       ": they were cut off (is this process out of descriptors, RLIMIT_NOFILE?)",
                                   EMSGSIZE));
        if (r <= 0) { // the sharer's socket went away: with its process, or (ECONNRESET) before it accepted
            const int e = r < 0 ? errno : EPIPE;
            if (r < 0 && e != ECONNRESET) sys::fail("recvmsg of descriptors from " + who);
            const bool ended = ::kill(static_cast<pid_t>(t.pid), 0) != 0 && errno == ESRCH;
            detail::raise(os_error("multiproc: cannot take the descriptors of a message: " + who +
                                       (ended ? " has ended, and they ended with it" : " stopped answering"),
                                   e));
        }
        if (said == ~0u) detail::raise(value_error("multiproc: " + who + " does not hold its descriptors any more (taken already)"));
        if (r != sizeof said || out.size() - before != said || said == 0)
            detail::raise(serialization_error("multiproc: " + who + " sent descriptors other than it said"));
    }
    if (out.size() != t.count) detail::raise(serialization_error("multiproc: " + who + " sent more descriptors than the message names"));
    // Its end of file: by then the sender has closed its duplicates (and stopped its sharer
    // if nothing else is kept), so what it holds is settled when this returns. The
    // descriptors are here already: the wait is bounded, and never fails the claim (a
    // process that copied the connection without fork() -- so without the fork handlers
    // that close it -- would hold the end back).
    pollfd p{c.get(), POLLIN, 0};
    if (sys::poll_until(&p, 1, std::min(deadline, steady::now() + std::chrono::seconds(1)), false) > 0) {
        std::uint32_t extra = 0;
        std::vector<sys::unique_fd> more;
        if (recv_datagram(c.get(), &extra, sizeof extra, more) > 0)
            detail::raise(serialization_error("multiproc: " + who + " sent more than the descriptors it said"));
    }
    return out;
}

/// The bytes of a message of an object with descriptors (`w`: the object's crossing), the
/// descriptors kept by this process's sharer under the ticket the bytes start with. The
/// share is withdrawn when this is destroyed unless sent() was called: the message is in
/// the channel.
class shared_message {
public:
    explicit shared_message(const crossing_writer& w)
        : t_(resource_sharer::share(w.fds())), bytes_(ticket_bytes(t_) + w.bytes()) {}
    shared_message(const shared_message&) = delete;
    shared_message& operator=(const shared_message&) = delete;
    ~shared_message() {
        if (!sent_) resource_sharer::withdraw(t_);
    }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return std::as_bytes(std::span<const char>(bytes_)); }
    void sent() noexcept { sent_ = true; }

private:
    share_ticket t_;
    std::string bytes_;
    bool sent_ = false;
};

/// The crossing a shared_message's bytes carry, with its descriptors taken from the sender
/// (waiting at most 30 s for it: by then the message is taken, and giving up would lose it).
inline crossing_reader claim_message(std::string_view raw) {
    const share_ticket t = read_ticket(raw);
    auto fds = claim_shared(t, steady::now() + std::chrono::seconds(30));
    return crossing_reader{std::string(raw), std::move(fds)};
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
