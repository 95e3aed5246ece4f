// Not part of the API: one end of a connection over shared-memory rings (transport::shm),
// one ring per direction. Messages travel as chunks (see chunk.hpp), so a sender that dies
// mid-message leaves a message that the receiver drops when the next one starts.
//
// Who holds an end is counted by the kernel, not by us: each direction has a "liveness"
// pipe whose read end the receiving end holds and whose write end the sending end holds.
// When every holder of the sending end has closed it (or died), the read end reports
// POLLHUP: end of file. Waits sleep on the ring's futex in slices of liveness_slice and
// look at the liveness pipe between slices; close() wakes the other side at once.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/util/function_ref.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/ring/ring.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/transport/stream/stream_link.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/transport.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <fcntl.h>
#include <poll.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

class ring_link {
public:
    static std::array<ring_link, 2> open_pair(bool duplex, std::size_t buffer) {
        std::array<ring_link, 2> e;
        std::size_t cap = ring::round_capacity(buffer ? buffer : transport::shm::default_capacity);
        auto connect = [&](ring_link& tx, ring_link& rx) {
            auto region = std::make_shared<shared_region>(shared_region::create(ring::bytes_for(cap), "multiproc-pipe"));
            ring r = ring::create(region->data(), cap);
            int fds[2];
            if (sys::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) sys::fail("pipe2 for a shared-memory connection");
            rx.in_ = direction{region, r};
            rx.in_live_.reset(fds[0]);
            tx.out_ = direction{region, r};
            tx.out_live_.reset(fds[1]);
        };
        connect(e[1], e[0]);
        if (duplex) connect(e[0], e[1]);
        return e;
    }

    /// For a spawn or forkserver child: each direction's ring (its region's descriptor) and
    /// liveness pipe end.
    void cross_out(crossing_writer& w) const {
        w.put<std::uint8_t>((in_ ? 1 : 0) | (out_ ? 2 : 0));
        if (in_) {
            w.put_fd(in_->region->fd());
            w.put_fd(in_live_.get());
        }
        if (out_) {
            w.put_fd(out_->region->fd());
            w.put_fd(out_live_.get());
        }
    }
    /// In the child: the end cross_out sent.
    static ring_link cross_in(crossing_reader& r) {
        ring_link e;
        const auto shape = r.get<std::uint8_t>();
        auto direction_in = [&] {
            auto fd = r.take_fd();
            auto region = std::make_shared<shared_region>(shared_region::attach(fd.release()));
            ring rg = ring::attach(region->data(), region->size());
            return direction{std::move(region), rg};
        };
        if (shape & 1) {
            e.in_ = direction_in();
            e.in_live_ = r.take_fd();
        }
        if (shape & 2) {
            e.out_ = direction_in();
            e.out_live_ = r.take_fd();
        }
        return e;
    }

    [[nodiscard]] bool can_recv() const noexcept { return in_.has_value(); }
    [[nodiscard]] bool can_send() const noexcept { return out_.has_value(); }
    int fileno() const {
        detail::raise(value_error("multiproc: a transport::shm connection has no descriptor to poll for data; use poll(timeout)"));
    }

    void close() noexcept {
        in_live_.reset();
        out_live_.reset();
        // Wake whoever waits on the other side, so that it sees the end of file (or the
        // vanished receiver) now rather than at its next liveness check.
        if (out_) out_->r.shared().data.notify_all();
        if (in_) in_->r.shared().space.notify_all();
        in_.reset();
        out_.reset();
    }

    /// Sends one message, in chunks if it is larger than a chunk; waits while the ring is
    /// full. EPIPE (`os_error`) when no process holds the receiving end any more.
    void send(std::span<const std::byte> bytes) { send(byte_pieces(&bytes, 1)); }
    /// Sends one message holding `parts` one after the other, copied into the ring chunk by
    /// chunk from where they are.
    void send(byte_pieces parts) {
        ring& r = out_->r;
        std::uint64_t seq = r.shared().next_seq.fetch_add(1, std::memory_order_relaxed) + 1;
        const std::size_t maxp = r.max_payload();
        const std::size_t total = total_size(parts);
        pieces_cursor from(parts);
        std::size_t off = 0;
        std::uint32_t index = 0;
        do {
            std::size_t len = std::min(total - off, maxp);
            chunk_header h = make_chunk(chunk_data, seq, index, static_cast<std::uint32_t>(len), total);
            auto fill = [&](std::span<std::byte> dst) { from.copy_to(dst.data(), len); };
            while (!r.try_put(h, fill)) {
                if (!r.shared().space.wait_until([&] { return r.has_room(h); }, steady::now() + liveness_slice) &&
                    (poll_now(out_live_.get()) & POLLERR))
                    detail::raise(os_error("multiproc: send on a connection whose other end is closed", EPIPE));
            }
            off += len;
            ++index;
        } while (off < total);
    }

    /// Waits until a chunk is here (or end of file), at most until `deadline`.
    frame_status wait(std::optional<steady::time_point> deadline) {
        ring& r = in_->r;
        // A spin first; then, before sleeping, whether every sender has gone already.
        if (r.shared().data.wait_until([&] { return available(); }, steady::now())) return frame_status::ready;
        if ((poll_now(in_live_.get()) & POLLHUP) && !available()) return frame_status::eof;
        if (deadline && steady::now() >= *deadline) return frame_status::timeout;
        for (;;) {
            auto slice = steady::now() + liveness_slice;
            bool last_slice = deadline && *deadline <= slice;
            if (r.shared().data.wait_until([&] { return available(); }, last_slice ? deadline : slice))
                return frame_status::ready;
            if ((poll_now(in_live_.get()) & POLLHUP) && !available()) return frame_status::eof;
            if (last_slice) return frame_status::timeout;
        }
    }

    /// Takes the next message and hands its payload to `take`, having shown its length to
    /// `check` first (which may refuse it by throwing: its chunks are then dropped as they
    /// come); false at end of file between messages (eof_error within one). A message of several chunks is gathered in `direct`
    /// when it fits there (one copy, out of the ring: recv_bytes_into passes its buffer),
    /// else in memory that grows as its chunks arrive.
    [[nodiscard]] bool recv(function_ref<void(std::span<const std::byte>)> take, function_ref<void(std::uint64_t)> check,
              std::span<std::byte> direct = {}) {
        ring& r = in_->r;
        ring_shared& s = r.shared();
        bool assembling = false, into_direct = false;
        std::size_t gathered = 0;
        body_.clear();
        for (;;) {
            auto it = r.try_peek(s.head.load(std::memory_order_relaxed));
            if (!it) {
                if (wait(std::nullopt) == frame_status::eof) {
                    if (assembling) detail::raise(eof_error("multiproc: got end of file during message"));
                    return false;
                }
                continue;
            }
            const chunk_header& h = it->h;
            bool fits = follows(s.reader_last, h) && h.magic == chunk_data;
            bool final = fits && advance(s.reader_last, h).final;
            auto consume = [&] {
                if (follows(s.reader_last, h)) s.reader_last = advance(s.reader_last, h);
                r.release(it->next);
            };
            if (fits && h.index == 0) {
                assembling = false;
                body_.clear();
                MULTIPROC_TRY {
                    check(h.total);
                } MULTIPROC_CATCH_ALL {
                    consume(); // the rest of its chunks are dropped as they come
                    MULTIPROC_RETHROW;
                }
                if (final) { // the whole message in one chunk: decode it in place
                    MULTIPROC_TRY {
                        take(std::span<const std::byte>(it->payload, h.length));
                        consume();
                        return true;
                    } MULTIPROC_CATCH_ALL {
                        consume();
                        MULTIPROC_RETHROW;
                    }
                }
                assembling = true;
                gathered = 0;
                into_direct = h.total <= direct.size();
            } else if (!fits || !assembling) { // a marker, or the rest of a message whose sender died
                consume();
                continue;
            }
            // (`follows` keeps the chunks of a message within its total.)
            if (into_direct)
                std::memcpy(direct.data() + gathered, it->payload, h.length);
            else
                body_.append(it->payload, h.length, h.total);
            gathered += h.length;
            consume();
            if (final) {
                const cleared_after after{body_};
                take(into_direct ? std::span<const std::byte>(direct.data(), gathered) : body_.bytes());
                return true;
            }
        }
    }

private:
    struct direction {
        std::shared_ptr<shared_region> region; // shared by both ends in the creating process
        ring r;
    };

    [[nodiscard]] bool available() const noexcept {
        const ring_shared& s = in_->r.shared();
        return s.tail.load(std::memory_order_acquire) != s.head.load(std::memory_order_relaxed);
    }

    static short poll_now(int fd) {
        pollfd p{fd, 0, 0};
        int n = sys::poll_until(&p, 1, steady::now(), false);
        if (n < 0) sys::fail("poll on a shared-memory connection's liveness pipe");
        return n > 0 ? p.revents : 0;
    }

    std::optional<direction> in_, out_;
    message_buffer body_; // a message of several chunks, as they come
    sys::unique_fd in_live_;  // read end of the incoming direction's liveness pipe
    sys::unique_fd out_live_; // write end of the outgoing direction's liveness pipe
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
