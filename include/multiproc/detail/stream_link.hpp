// Not part of the API: one end of a connection on kernel byte streams (transport::pipe,
// transport::socketpair, user stream transports). A frame is a 16-byte header (magic,
// length) and the payload, written with as few writes as the kernel allows; a reader keeps
// what it read past the frame it wanted, so that many small frames cost one read. As with
// CPython's Connection, one end is not meant to be used by two processes at once.
#pragma once

#include <multiproc/detail/bytes.hpp>
#include <multiproc/detail/crossing_io.hpp>
#include <multiproc/detail/function_ref.hpp>
#include <multiproc/detail/futex.hpp>
#include <multiproc/detail/stream.hpp>
#include <multiproc/detail/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/transport.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include <poll.h>
#include <sys/uio.h>

namespace multiproc::detail {

/// What a wait for a frame found.
enum class frame_status { ready, timeout, eof };

template <class Stream>
class stream_link {
public:
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

    /// For a spawn or forkserver child: the end's descriptors (bytes already read stay here).
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
        in_ = recv_window();
    }

    /// Sends one frame; waits while the stream is full. EPIPE (`os_error`) when no
    /// process holds the other end any more.
    void send(std::span<const std::byte> bytes) {
        header h{magic, 0, bytes.size()};
        iovec iov[2] = {{&h, sizeof h}, {const_cast<std::byte*>(bytes.data()), bytes.size()}};
        write_all([](int fd, const iovec* v, int n) { return Stream::send(fd, v, n, true); }, tx_fd_, iov,
                  bytes.empty() ? 1 : 2, std::nullopt, "a connection");
    }

    /// Waits until a whole frame is here (or end of file), at most until `deadline`.
    frame_status wait(std::optional<steady::time_point> deadline) {
        for (;;) {
            std::size_t need = missing();
            if (need == 0) return frame_status::ready;
            auto room = in_.prepare(std::clamp<std::size_t>(need, 64 << 10, 64 << 20));
            ssize_t r = read_some(rx_.get(), room.data(), room.size(), "a connection");
            if (r > 0) {
                in_.commit(static_cast<std::size_t>(r));
                continue;
            }
            if (r == 0) return frame_status::eof;
            if (!wait_fd(rx_.get(), POLLIN, deadline, "a connection")) return frame_status::timeout;
        }
    }

    /// Takes the next frame and hands its payload to `take`; eof_error at end of file.
    /// (`direct` is for the shm transport's gathering; a stream reads into its own window.)
    void recv(function_ref<void(std::span<const std::byte>)> take, std::span<std::byte> /*direct*/ = {}) {
        if (wait(std::nullopt) == frame_status::eof)
            throw eof_error(in_.size() ? "multiproc: got end of file during message" : "multiproc: end of file: every "
                                                                                       "other holder of the connection "
                                                                                       "has closed it");
        header h;
        std::memcpy(&h, in_.data(), sizeof h);
        std::span<const std::byte> payload(in_.data() + sizeof h, h.length);
        struct consume_after {
            recv_window& in;
            std::size_t n;
            ~consume_after() { in.consume(n); }
        } after{in_, sizeof h + h.length};
        take(payload);
    }

private:
    struct header {
        std::uint32_t magic;
        std::uint32_t reserved;
        std::uint64_t length;
    };
    static constexpr std::uint32_t magic = 0x464d504dU; // "MPMF"

    /// Bytes still missing for the next whole frame (0: it is here).
    [[nodiscard]] std::size_t missing() const {
        if (in_.size() < sizeof(header)) return sizeof(header) - in_.size();
        header h;
        std::memcpy(&h, in_.data(), sizeof h);
        if (h.magic != magic || h.reserved != 0)
            throw serialization_error("multiproc: a connection received bytes that are not a frame (was one end "
                                      "used by two processes at once?)");
        std::uint64_t want = sizeof h + h.length;
        return in_.size() >= want ? 0 : static_cast<std::size_t>(want - in_.size());
    }

    sys::unique_fd rx_; // receives (and sends too for a duplex socket)
    sys::unique_fd tx_; // sends, if it is a descriptor of its own
    int tx_fd_ = -1;
    recv_window in_;
};

} // namespace multiproc::detail
