// Not part of the API: one end of a connection on kernel byte streams (transport::pipe,
// transport::socketpair, user stream transports). A frame is a 16-byte header (magic,
// length) and the payload, padded to at least 128 bytes, written with as few writes as the
// kernel allows. A reader takes a frame's first 128 bytes with one read (a small message
// whole), then exactly the rest: it never reads past the frame it wants, so that a message
// it has not received stays in the stream for whichever process reads next (a child that
// polls, or receives one message, and exits takes nothing more with it, as in CPython).
// A length is checked before anything is allocated for it: a corrupt header closes the
// end for reading, and a long message is received into memory that grows as it arrives.
// As with CPython's Connection, one end is not meant to be used by two processes at once.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/transport/stream/stream_policies.hpp>
#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/util/function_ref.hpp>
#include <multiproc/detail/os/fd_passing.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/stream/stream.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/transport.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What a wait for a frame found.
enum class frame_status { ready, timeout, eof };

template <class Stream>
class stream_link {
public:
    /// `reserved` of a frame whose first byte carries descriptors (send_fds).
    static constexpr std::uint32_t fd_frame = 1;
    /// `reserved` of a frame of the authentication exchange (listener/client).
    static constexpr std::uint32_t auth_frame = 2;
    /// `reserved` of a frame holding an object that crosses by itself: its bytes, and its
    /// descriptors with the frame's first byte (send_crossing).
    static constexpr std::uint32_t crossing_frame = 3;
    /// The most descriptors one send_fds passes (the kernel's SCM_MAX_FD is 253).
    static constexpr std::size_t max_fds = 64;
    /// Two connected ends. Duplex: each sends and receives; otherwise the first receives
    /// and the second sends (Python: Pipe(duplex)).
    static std::array<stream_link, 2> open_pair(bool duplex, std::size_t buffer) {
        std::array<stream_link, 2> e;
        auto take = [](stream_ends s, stream_link& rx, stream_link& tx) {
            rx.rx_.reset(s.receive);
            tx.tx_.reset(s.send);
            tx.tx_fd_ = s.send;
        };
        if (!duplex) {
            take(Stream::open_stream(buffer), e[0], e[1]);
        } else if constexpr (requires { Stream::open_duplex(buffer); }) {
            std::array<int, 2> fds = Stream::open_duplex(buffer);
            for (int i = 0; i < 2; ++i) {
                e[i].rx_.reset(fds[i]);
                e[i].tx_fd_ = fds[i];
            }
        } else {
            take(Stream::open_stream(buffer), e[1], e[0]);
            take(Stream::open_stream(buffer), e[0], e[1]);
        }
        return e;
    }

    /// An end on one connected stream socket of its own (from listener::accept or client),
    /// which it sends and receives on.
    static stream_link adopt_socket(sys::unique_fd fd) {
        stream_link e;
        e.rx_ = std::move(fd);
        e.tx_fd_ = e.rx_.get();
        e.socket_ = 1;
        return e;
    }

    /// For a spawn or forkserver child: the end's descriptors.
    void cross_out(crossing_writer& w) const {
        const std::uint8_t shape = (can_recv() ? 1 : 0) | (tx_ ? 2 : 0) | (can_send() && !tx_ ? 4 : 0);
        w.put(shape);
        if (can_recv()) w.put_fd(rx_.get());
        if (tx_) w.put_fd(tx_.get());
    }
    /// In the child: the end cross_out sent.
    static stream_link cross_in(crossing_reader& r) {
        stream_link e;
        const auto shape = r.get<std::uint8_t>();
        if (shape & 1) e.rx_ = r.take_fd();
        if (shape & 2) {
            e.tx_ = r.take_fd();
            e.tx_fd_ = e.tx_.get();
        } else if (shape & 4) {
            e.tx_fd_ = e.rx_.get(); // a duplex socket sends on the descriptor it receives on
        }
        return e;
    }

    [[nodiscard]] bool can_recv() const noexcept { return rx_.get() >= 0; }
    [[nodiscard]] bool can_send() const noexcept { return tx_fd_ >= 0; }
    [[nodiscard]] int fileno() const noexcept { return can_recv() ? rx_.get() : tx_fd_; }

    void close() noexcept {
        rx_.reset();
        tx_.reset();
        tx_fd_ = -1;
        head_got_ = 0;
        skip_ = 0;
        rights_cut_ = false;
        body_.clear();
        broken_.reset();
        passed_.clear();
    }

    /// Sends one frame; waits while the stream is full. EPIPE (`os_error`) when no
    /// process holds the other end any more. `kind`: auth_frame for the messages of the
    /// authentication exchange, which an ordinary receive refuses.
    void send(std::span<const std::byte> bytes, std::uint32_t kind = 0) { send(byte_pieces(&bytes, 1), kind); }
    /// Sends one frame holding `parts` one after the other, gathered from where they are.
    void send(byte_pieces parts, std::uint32_t kind = 0) {
        write_frame(kind, parts, [this](iovec* iov, int n) {
            write_all([this](int fd, const iovec* v, int k) { return send_some(fd, v, k); }, tx_fd_, iov, n,
                      std::nullopt, "a connection");
        });
    }

    /// Sends descriptors (SCM_RIGHTS) in a frame of their own, which only recv_fds takes
    /// (Python: multiprocessing.reduction.sendfds). The end must be a Unix-domain socket.
    void send_fds(std::span<const int> fds) {
        if (fds.empty() || fds.size() > max_fds)
            detail::raise(value_error("multiproc: send_handle: between 1 and " + std::to_string(max_fds) +
                                      " descriptors go in one message, not " + std::to_string(fds.size())));
        require_unix_socket("send_handle: descriptors pass");
        std::byte frame[min_frame] = {};
        const header h{magic, fd_frame, sizeof(std::uint32_t)};
        const auto count = static_cast<std::uint32_t>(fds.size());
        std::memcpy(frame, &h, sizeof h);
        std::memcpy(frame + sizeof h, &count, sizeof count);
        iovec iov{frame, min_frame};
        send_with_rights(&iov, 1, fds);
    }

    /// Sends an object that crosses by itself: `bytes` as a crossing frame, `fds` with its
    /// first byte (at most max_fds_per_message). The end must be a Unix-domain socket if
    /// there are descriptors.
    void send_crossing(std::span<const std::byte> bytes, std::span<const int> fds) {
        if (fds.empty()) return send(bytes, crossing_frame);
        if (fds.size() > max_fds_per_message)
            detail::raise(value_error("multiproc: an object of " + std::to_string(fds.size()) + " descriptors is more than " +
                                      std::to_string(max_fds_per_message) + " can cross in one message"));
        require_unix_socket("objects with descriptors (connections, queues, locks, shared memory) cross");
        write_frame(crossing_frame, byte_pieces(&bytes, 1), [&](iovec* iov, int n) { send_with_rights(iov, n, fds); });
    }

    /// Whether this end is on a kernel pipe, which cannot carry descriptors (an object with
    /// descriptors then crosses through the sender's resource sharer).
    [[nodiscard]] bool on_pipe() { return !is_socket(rx_ ? rx_.get() : tx_fd_); }

    /// The descriptors that came with the crossing frame just received (recv with kind
    /// crossing_frame), in order.
    std::vector<sys::unique_fd> take_passed() noexcept {
        std::vector<sys::unique_fd> out = std::move(passed_);
        passed_.clear();
        return out;
    }

    /// Receives the descriptors of a frame send_fds sent: each close-on-exec, owned by the
    /// caller. eof_error at end of file; value_error, with the message taken, if the next
    /// message is an ordinary one.
    std::vector<sys::unique_fd> recv_fds() {
        check_open();
        if (!is_socket(rx_.get()))
            detail::raise(value_error("multiproc: recv_handle: descriptors pass only over Unix-domain sockets (a "
                                      "connection from listener/client, or of transport::socketpair); this one is a pipe"));
        if (skip_ != 0 && !discard(true)) detail::raise(eof_error("multiproc: got end of file during message"));
        if (head_got_ == 0) { // (descriptors of no frame being read: stale)
            passed_.clear();
            rights_cut_ = false;
        }
        if (!fill_head()) detail::raise(eof_error(eof_text()));
        if (!head_is_frame()) not_a_frame(fd_frame);
        header h;
        std::memcpy(&h, head_, sizeof h);
        if (h.length > max_message_bytes)
            close_reading("received a frame header claiming " + std::to_string(h.length) +
                          " bytes, more than any message can have");
        head_got_ = 0;
        refuse_if_rights_cut(std::max<std::uint64_t>(sizeof h + h.length, min_frame));
        skip_ = std::max<std::uint64_t>(sizeof h + h.length, min_frame) - min_frame;
        std::vector<sys::unique_fd> out = std::move(passed_);
        passed_.clear();
        if (h.reserved != fd_frame)
            detail::raise(value_error("multiproc: recv_handle: the next message is an ordinary one, not descriptors "
                                      "sent with send_handle (it was dropped)"));
        std::uint32_t count = 0;
        std::memcpy(&count, head_ + sizeof h, sizeof count);
        if (h.length != sizeof count || out.size() != count)
            detail::raise(value_error("multiproc: recv_handle: the message announced " + std::to_string(count) +
                                      " descriptors and " + std::to_string(out.size()) +
                                      " came (is the process out of descriptors?)"));
        return out;
    }

    /// Bounds every wait of the receives from now on, inside a frame too: a wait that would
    /// go past `d` raises timeout_error and closes the end for reading. For the server's side
    /// of the authentication exchange, so that a peer that starts a frame and stops is
    /// dropped instead of holding a thread. nullopt: no bound (the default).
    void read_deadline(std::optional<steady::time_point> d) noexcept { read_deadline_ = d; }

    /// Waits until bytes of a message (or end of file) are there to read, at most until
    /// `deadline`. Reads nothing that belongs to a message, as CPython's poll: another
    /// process may receive the message after this one polled and exited.
    frame_status wait(std::optional<steady::time_point> deadline) {
        check_open();
        for (;;) {
            if (skip_ != 0 && !discard(false)) return frame_status::eof;
            if (!wait_fd(rx_.get(), POLLIN, deadline, "a connection")) return frame_status::timeout;
            if (skip_ == 0) return frame_status::ready; // (else: the bytes may all be the refused frame's)
        }
    }

    /// Takes the next frame and hands its payload to `take`, having shown its length to
    /// `check` first (which may refuse it by throwing: the rest of the frame is then skipped
    /// unread); false at end of file between frames (eof_error within one). It reads the
    /// frame and no byte past it. A payload that fits in `direct` is read straight into it.
    /// `kind`: the frames wanted (0 ordinary, auth_frame); another kind is skipped and
    /// refused with the error that names it.
    [[nodiscard]] bool recv(function_ref<void(std::span<const std::byte>)> take, function_ref<void(std::uint64_t)> check,
              std::span<std::byte> direct = {}, std::uint32_t kind = 0) {
        check_open();
        if (skip_ != 0 && !discard(true)) detail::raise(eof_error("multiproc: got end of file during message"));
        if (head_got_ == 0) { // (descriptors of no frame being read: stale)
            passed_.clear();
            rights_cut_ = false;
        }
        if (!fill_head()) {
            if (head_got_) detail::raise(eof_error(eof_text()));
            return false;
        }
        if (!head_is_frame()) not_a_frame(kind);
        header h;
        std::memcpy(&h, head_, sizeof h);
        if (kind != crossing_frame) passed_.clear(); // (descriptors come only with send_handle and crossing frames)
        if (h.length > max_message_bytes)
            close_reading("received a frame header claiming " + std::to_string(h.length) +
                          " bytes, more than any message can have");
        const std::uint64_t frame = std::max<std::uint64_t>(sizeof h + h.length, min_frame);
        head_got_ = 0; // the head is taken; what follows is read below or skipped
        refuse_if_rights_cut(frame);
        if (h.reserved != kind) {
            skip_ = frame - min_frame;
            passed_.clear();
            if (h.reserved == fd_frame)
                detail::raise(value_error("multiproc: received descriptors sent with send_handle where a message was "
                                          "expected: take them with recv_handle (they were closed)"));
            if (h.reserved == crossing_frame || kind == crossing_frame)
                detail::raise(value_error("multiproc: the two ends of a connection disagree on whether its messages "
                                          "carry descriptors (do they have the same T?)"));
            if (h.reserved == auth_frame)
                detail::raise(authentication_error(
                    "multiproc: the peer asks this end to authenticate (its listener or client was given an authkey): "
                    "give this side the same authkey"));
            detail::raise(authentication_error("multiproc: authentication failed: the peer sent a message where the "
                                               "authentication exchange was expected (was it given no authkey?)"));
        }
        MULTIPROC_TRY {
            check(h.length);
        } MULTIPROC_CATCH_ALL {
            skip_ = frame - min_frame;
            MULTIPROC_RETHROW;
        }
        const auto len = static_cast<std::size_t>(h.length);
        const std::size_t in_head = std::min(len, min_frame - sizeof h);
        if (len == in_head) {
            take(std::span<const std::byte>(head_ + sizeof h, len));
            return true;
        }
        std::span<const std::byte> payload;
        MULTIPROC_TRY {
            if (len <= direct.size()) {
                std::memcpy(direct.data(), head_ + sizeof h, in_head);
                read_exact(direct.data() + in_head, len - in_head);
                payload = direct.first(len);
            } else {
                body_.clear();
                body_.append(head_ + sizeof h, in_head, len);
                while (body_.size() < len) {
                    auto room = body_.room(len);
                    body_.commit(read_some_blocking(room.data(), room.size()));
                }
                payload = body_.bytes();
            }
        } MULTIPROC_CATCH(const eof_error&, unnamed_) {
            body_.clear();
            MULTIPROC_RETHROW;
        } MULTIPROC_CATCH(const std::exception&, e) {
            body_.clear();
            close_reading(std::string("failed in the middle of a message: ") + e.what());
        }
        const cleared_after after{body_};
        take(payload);
        return true;
    }

private:
    struct header {
        std::uint32_t magic;
        std::uint32_t reserved;
        std::uint64_t length;
    };
    static constexpr std::uint32_t magic = 0x464d504dU; // "MPMF"
    /// No frame is shorter (a short payload is padded): a reader can take this many bytes at
    /// once, header and a small payload in one read, and never read past the frame.
    static constexpr std::size_t min_frame = 128;

    void check_open() const {
        if (broken_) detail::raise(serialization_error(*broken_));
    }

    /// The end reads no more: `why` leaves it mid-frame, so later reads would see garbage.
    [[noreturn]] void close_reading(const std::string& why) {
        stop_reading(why);
        detail::raise(serialization_error(*broken_));
    }
    void stop_reading(const std::string& why) {
        broken_ = "multiproc: this connection was closed for reading: it " + why;
        head_got_ = 0;
        skip_ = 0;
        passed_.clear();
    }

    /// Whether the bytes of the head read so far can begin a frame: its magic, then its
    /// kind, judged as soon as their bytes are in, so that a peer that wrote fewer bytes than
    /// a frame has (a program that is not multiproc's other end) is found out at once
    /// instead of waited for.
    [[nodiscard]] bool head_is_frame() const noexcept {
        const std::size_t n = std::min(head_got_, sizeof magic);
        if (std::memcmp(head_, &magic, n) != 0) return false;
        if (head_got_ < offsetof(header, reserved) + sizeof(std::uint32_t)) return true;
        std::uint32_t kind = 0;
        std::memcpy(&kind, head_ + offsetof(header, reserved), sizeof kind);
        return kind <= crossing_frame;
    }

    /// Closes the end for reading on bytes that are not a frame; in the authentication
    /// exchange (`kind` auth_frame) that is a peer that does not speak it.
    [[noreturn]] void not_a_frame(std::uint32_t kind) {
        if (kind == auth_frame) {
            stop_reading("received bytes that are not multiproc's authentication exchange");
            detail::raise(authentication_error(
                "multiproc: authentication failed: the peer sent bytes that are not multiproc's authentication "
                "exchange (is it another kind of program, such as a Python multiprocessing Listener or Client? the "
                "two cannot talk to each other)"));
        }
        close_reading("received bytes that are not a frame (was one end used by two processes at once, or did "
                      "something else write to its descriptor?)");
    }

    /// Waits until the end is readable, at most until read_deadline_ (then the end reads no
    /// more, and timeout_error).
    void wait_readable() {
        if (wait_fd(rx_.get(), POLLIN, read_deadline_, "a connection")) return;
        stop_reading("missed its deadline: the peer did not send a whole message in time");
        detail::raise(timeout_error("multiproc: the peer did not send a whole message in time"));
    }

    [[nodiscard]] const char* eof_text() const noexcept {
        return head_got_ ? "multiproc: got end of file during message"
                         : "multiproc: end of file: every other holder of the connection has closed it";
    }

    /// Whether the end is a socket (cached: the two descriptors of an end are of one kind).
    /// `fd` is the one to ask; where it is -1 (a direction the end does not have), the
    /// other is asked, so that what is cached is the end's kind whichever call asks first.
    bool is_socket(int fd) {
        if (socket_ < 0) {
            if (fd < 0) fd = rx_ ? rx_.get() : tx_fd_;
            if (fd < 0) return false; // (a closed end: nothing cached)
            struct stat st {};
            socket_ = sys::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? 1 : 0;
        }
        return socket_ == 1;
    }

    /// value_error unless the end sends on a Unix-domain socket (`what` ... "only over ...").
    void require_unix_socket(const char* what) {
        int domain = AF_UNIX;
        const bool socket = is_socket(tx_fd_);
        if (!socket || (sys::getsockopt_int(tx_fd_, SOL_SOCKET, SO_DOMAIN, domain) == 0 && domain != AF_UNIX))
            detail::raise(value_error(std::string("multiproc: ") + what +
                                      " only over Unix-domain sockets (a connection of transport::socketpair, or from "
                                      "listener/client on a Unix address); this one is " +
                                      (socket ? "a TCP connection" : "a pipe")));
    }

    /// Hands `write(iov, n)` a frame of `kind` holding `parts`: the header, each non-empty
    /// part where it is, and padding up to min_frame.
    template <class Write>
    static void write_frame(std::uint32_t kind, byte_pieces parts, Write&& write) {
        static constexpr std::byte padding[min_frame] = {};
        const std::size_t length = total_size(parts);
        header h{magic, kind, length};
        constexpr std::size_t inline_iov = 8;
        iovec local[inline_iov];
        std::vector<iovec> many; // (a value of many large blocks)
        iovec* iov = local;
        if (parts.size() + 2 > inline_iov) {
            many.resize(parts.size() + 2);
            iov = many.data();
        }
        int n = 0;
        iov[n++] = {&h, sizeof h};
        for (auto p : parts)
            if (!p.empty()) iov[n++] = {const_cast<std::byte*>(p.data()), p.size()};
        if (length < min_frame - sizeof h) iov[n++] = {const_cast<std::byte*>(padding), min_frame - sizeof h - length};
        write(iov, n);
    }

    /// Writes all of `iov`, the descriptors `fds` attached to the first bytes that leave.
    void send_with_rights(iovec* iov, int n, std::span<const int> fds) {
        bool attached = false;
        write_all(
            [&](int fd, const iovec* v, int k) -> ssize_t {
                if (attached) return send_some(fd, v, k);
                msghdr m{};
                m.msg_iov = const_cast<iovec*>(v);
                m.msg_iovlen = static_cast<std::size_t>(k);
                rights_buffer control;
                attach_rights(m, control, fds);
                const ssize_t w = sys::sendmsg(fd, &m, 0);
                if (w >= 0) attached = true;
                return w;
            },
            tx_fd_, iov, n, std::nullopt, "a connection");
    }

    /// One send on the end's descriptor: sendmsg on a socket (MSG_NOSIGNAL costs nothing),
    /// else the transport's own.
    ssize_t send_some(int fd, const iovec* v, int k) noexcept {
        if (socket_ == 1) {
            msghdr m{};
            m.msg_iov = const_cast<iovec*>(v);
            m.msg_iovlen = static_cast<std::size_t>(k);
            return sys::sendmsg(fd, &m, 0);
        }
        return Stream::send(fd, v, k, true);
    }

    /// One read of the frame's head: on a socket with recvmsg, keeping descriptors that
    /// come with the bytes (a plain read would drop them).
    ssize_t read_head(std::size_t n) {
        if (!is_socket(rx_.get())) return read_some(rx_.get(), head_ + head_got_, n, "a connection");
        iovec v{head_ + head_got_, n};
        msghdr m{};
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        rights_buffer control;
        expect_rights(m, control);
        ssize_t r = sys::recvmsg(rx_.get(), &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
            sys::fail("read from a connection");
        }
        take_rights(m, passed_);
        if (m.msg_flags & MSG_CTRUNC) rights_cut_ = true; // (the kernel closed those that did not fit)
        return r;
    }

    /// Drops the frame just taken if descriptors that came with it were cut off on arrival:
    /// what it says cannot be read without them.
    void refuse_if_rights_cut(std::uint64_t frame) {
        if (!std::exchange(rights_cut_, false)) return;
        skip_ = frame - min_frame;
        passed_.clear();
        detail::raise(os_error("multiproc: the descriptors sent with a message over a connection were cut off as they "
                               "arrived (this process had no descriptor free for them); the message is dropped",
                               EMFILE));
    }

    /// Reads the frame's first min_frame bytes (every frame has them); false at end of file.
    /// Stops early at bytes that cannot begin a frame (head_is_frame), for the caller to refuse.
    bool fill_head() {
        while (head_got_ < min_frame) {
            ssize_t r = read_head(min_frame - head_got_);
            if (r == 0) return false;
            if (r > 0) {
                head_got_ += static_cast<std::size_t>(r);
                if (!head_is_frame()) return true;
            } else {
                wait_readable();
            }
        }
        return true;
    }

    /// One read of at most `n` bytes, waiting for some; eof_error at end of file.
    std::size_t read_some_blocking(std::byte* p, std::size_t n) {
        for (;;) {
            ssize_t r = read_some(rx_.get(), p, n, "a connection");
            if (r > 0) return static_cast<std::size_t>(r);
            if (r == 0) detail::raise(eof_error("multiproc: got end of file during message"));
            wait_readable();
        }
    }

    void read_exact(std::byte* p, std::size_t n) {
        while (n > 0) {
            std::size_t k = read_some_blocking(p, n);
            p += k;
            n -= k;
        }
    }

    /// Reads and drops the rest of a refused frame, waiting for it if `block`; false at end
    /// of file.
    bool discard(bool block) {
        std::byte sink[16 << 10];
        while (skip_ != 0) {
            ssize_t r = read_some(rx_.get(), sink, static_cast<std::size_t>(std::min<std::uint64_t>(skip_, sizeof sink)),
                                  "a connection");
            if (r == 0) return false;
            if (r > 0)
                skip_ -= static_cast<std::uint64_t>(r);
            else if (!block)
                return true;
            else
                wait_readable();
        }
        return true;
    }

    sys::unique_fd rx_; // receives (and sends too for a duplex socket)
    sys::unique_fd tx_; // sends, if it is a descriptor of its own
    int tx_fd_ = -1;
    std::byte head_[min_frame];    // the first bytes of the frame being read
    std::size_t head_got_ = 0;     // ... how many are here
    std::uint64_t skip_ = 0;       // bytes of a refused frame still to drop
    message_buffer body_;          // the payload of a frame longer than the head
    std::optional<std::string> broken_; // why the end reads no more
    std::vector<sys::unique_fd> passed_; // descriptors that came with the head being read
    bool rights_cut_ = false;            // ... some of which the kernel cut off (MSG_CTRUNC)
    int socket_ = -1;                    // whether the end is a socket: 1, 0, or -1 not known yet
    std::optional<steady::time_point> read_deadline_; // bounds every wait of a receive (read_deadline)
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
