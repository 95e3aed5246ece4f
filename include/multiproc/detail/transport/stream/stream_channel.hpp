// Not part of the API: the queue channel on a kernel byte stream (transport::pipe,
// transport::socketpair and user stream transports).
//
// Writers put each chunk with one write of at most `atomic_write` bytes, so a chunk is in
// the stream whole or not at all, and never interleaved with another. Readers never keep
// stream bytes in private memory: a read goes straight into a staging area in the queue's
// shared region, as large as everything the stream can hold, so one read takes all that
// is there. No read ends inside a chunk: a pipe's read takes only what the pipe held when
// it began; a socket's read would go on taking what writers add while it copies, so it
// asks for exactly what the socket held when the reader looked (`read_size`). A consumer
// killed after a read but before committing it leaves the bytes in staging; the next
// consumer finds them by scanning for chunks that follow the last one consumed (older
// bytes in staging never do), which is exact because the read ended at a chunk's end.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/transport/stream/stream_policies.hpp>
#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/stream/stream.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/policies/transport.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

template <class Stream>
class stream_channel {
public:
    static constexpr const char* what = "kernel buffer";

    static stream_channel open(std::size_t buffer) {
        stream_ends e = Stream::open_stream(buffer);
        stream_channel c;
        c.r_.reset(e.receive);
        c.w_.reset(e.send);
        c.capacity_ = e.capacity;
        c.unit_ = std::min<std::size_t>(Stream::atomic_write, 1 << 16);
        c.wake_.reset(sys::eventfd(0, EFD_NONBLOCK));
        if (!c.wake_) sys::fail("eventfd for a queue");
        return c;
    }

    /// For a spawn or forkserver child: both ends of the stream, the wake-up eventfd and
    /// the sizes.
    void cross_out(crossing_writer& w) const {
        w.put_fd(r_.get());
        w.put_fd(w_.get());
        w.put_fd(wake_.get());
        w.put<std::uint64_t>(capacity_);
        w.put<std::uint64_t>(unit_);
    }
    /// In the child: the channel cross_out sent (bind() gives it the staging area).
    static stream_channel cross_in(crossing_reader& r) {
        stream_channel c;
        c.r_ = r.take_fd();
        c.w_ = r.take_fd();
        c.wake_ = r.take_fd();
        c.capacity_ = static_cast<std::size_t>(r.get<std::uint64_t>());
        c.unit_ = static_cast<std::size_t>(r.get<std::uint64_t>());
        if (c.unit_ <= sizeof(chunk_header) || c.unit_ > (1 << 16))
            detail::raise(serialization_error("multiproc: a queue sent to the child has a bad chunk size"));
        return c;
    }

    /// Staging: everything the stream can hold, plus one chunk.
    [[nodiscard]] std::size_t shared_bytes() const noexcept { return capacity_ + unit_; }
    void bind(std::byte* area, bool) noexcept { staging_ = area; }
    [[nodiscard]] std::size_t max_payload() const noexcept { return unit_ - sizeof(chunk_header); }
    [[nodiscard]] int read_fd() const noexcept { return r_.get(); }
    [[nodiscard]] int write_fd() const noexcept { return w_.get(); }

    // ---- writer ----

    [[nodiscard]] std::uint64_t mark() const noexcept { return 0; }
    /// Whether a write that was in flight happened cannot be told from the writer's side.
    [[nodiscard]] fate published_since(std::uint64_t) const noexcept { return fate::unknown; }

    template <class Fill>
    bool try_put(const chunk_header& h, Fill&& fill) {
        if (!prepared_ || std::memcmp(&prepared_h_, &h, sizeof h) != 0) {
            out_.resize(sizeof h + h.length);
            std::memcpy(out_.data(), &h, sizeof h);
            fill(std::span<std::byte>(out_.data() + sizeof h, h.length));
            prepared_h_ = h;
            prepared_ = true;
        }
        if (!write_out()) return false;
        prepared_ = false;
        return true;
    }

    /// How many of one-chunk messages of these payload lengths (each at most max_payload())
    /// one atomic write carries: at least one.
    [[nodiscard]] std::size_t batch_fit(std::span<const std::uint32_t> lens) const noexcept {
        std::size_t k = 0, bytes = 0;
        while (k < lens.size() && bytes + sizeof(chunk_header) + lens[k] <= unit_) bytes += sizeof(chunk_header) + lens[k++];
        return k;
    }

    /// Writes one-chunk messages `first`, `first + 1`, ... of these payload lengths (as
    /// batch_fit allows) in one atomic write, `fill(i, span)` writing message i's payload;
    /// false if the stream has no room now. Called again with `fresh` false, it writes the
    /// same bytes without filling them again.
    template <class Fill>
    bool try_put_batch(std::uint64_t first, std::span<const std::uint32_t> lens, Fill&& fill, bool fresh) {
        if (fresh) {
            prepared_ = false; // (out_ no longer holds try_put's chunk, even if a fill fails)
            std::size_t bytes = 0;
            for (std::uint32_t n : lens) bytes += sizeof(chunk_header) + n;
            out_.resize(bytes);
            std::byte* p = out_.data();
            for (std::size_t i = 0; i < lens.size(); ++i) {
                const chunk_header h = make_chunk(chunk_data, first + i, 0, lens[i], lens[i]);
                std::memcpy(p, &h, sizeof h);
                fill(i, std::span<std::byte>(p + sizeof h, lens[i]));
                p += sizeof h + lens[i];
            }
        }
        return write_out();
    }

    /// Waits for room in the stream; true early once interrupt() was called (in any process).
    template <class Chunk>
    bool wait_room(const Chunk&, std::optional<steady::time_point> deadline, const std::atomic<std::uint32_t>&) {
        return wait_or_woken(w_.get(), POLLOUT, deadline);
    }

    /// Wakes every process waiting in wait_room or wait_data, now and from now on: the
    /// queue was shut down, and those waits are to look at its state.
    void interrupt() {
        if (sys::eventfd_signal(wake_.get()) != 0) sys::fail("write to a queue's wake-up eventfd");
    }

    // ---- reader ----

    /// The next whole chunk in staging, reading from the stream (one read) if staging has
    /// none; nothing if the stream is empty. `commit(f)` records staging changes.
    template <class Commit>
    std::optional<chunk_ref> try_peek(const reader_state& rs, Commit&& commit) {
        std::uint64_t pos = rs.pos, end = rs.end;
        const chunk_position last = rs.last; // `rs` is a journal slot: copy before committing
        if (pos > end || end > shared_bytes())
            detail::raise(serialization_error("multiproc: a queue's shared state is corrupt (its staging offsets " +
                                      std::to_string(pos) + ".." + std::to_string(end) + " are outside its " +
                                      std::to_string(shared_bytes()) + " bytes)"));
        for (;;) {
            if (end - pos >= sizeof(chunk_header)) {
                chunk_header h;
                if (!chunk_at(staging_ + pos, h)) {
                    // Not a chunk: bytes from outside multiproc. Skip to the next one that fits.
                    std::uint64_t next = find_chunk(pos + 1, end, last);
                    commit([&](reader_state& s) { s.pos = next; });
                    pos = next;
                    continue;
                }
                if (end - pos >= sizeof h + h.length)
                    return chunk_ref{h, staging_ + pos + sizeof h, pos + sizeof h + h.length};
            }
            // Reads end at a chunk's end, so what is left is bytes from outside; and it can
            // fail to move only when staging holds less than about three chunks. A caller
            // that has taken chunks it has not committed yet (get_many's run) commits them
            // first: the move must not write over bytes its journal still names.
            if (pos != 0) commit([](reader_state&) {});
            if (!to_front(pos, end, commit)) to_front_unjournaled(pos, end, commit);
            if (!read_more(end, commit)) return std::nullopt;
        }
    }

    /// Waits for bytes in the stream; true early once interrupt() was called.
    bool wait_data(const reader_state&, std::optional<steady::time_point> deadline, const std::atomic<std::uint32_t>&) {
        return wait_or_woken(r_.get(), POLLIN, deadline);
    }

    void released(const reader_state&) noexcept {}

    /// Whether the last chunk of message `seq` is in staging or the stream, taking all the
    /// stream holds into staging to look; nothing if staging has no room for it all.
    template <class Commit>
    std::optional<bool> holds_final_of(std::uint64_t seq, const reader_state& rs, Commit&& commit) {
        std::uint64_t pos = rs.pos, end = rs.end;
        chunk_position last = rs.last;
        // Unmoved, the room after them could end a read inside a chunk: tell later instead.
        if (!to_front(pos, end, commit)) return std::nullopt;
        do {
            if (end == shared_bytes()) return std::nullopt;
        } while (read_more(end, commit));
        chunk_header h;
        for (std::uint64_t p = pos; end - p >= sizeof h && chunk_at(staging_ + p, h); p += sizeof h + h.length) {
            if (end - p < sizeof h + h.length) break;
            if (!follows(last, h)) continue;
            last = advance(last, h);
            if (last.seq == seq && last.final) return true;
        }
        return false;
    }

    /// A consumer died: take in the chunks it had read into staging but not committed.
    void recover_reader(reader_state& rs) const noexcept {
        chunk_position last = rs.last;
        std::uint64_t pos = rs.pos;
        chunk_header h;
        while (rs.end - pos >= sizeof h && chunk_at(staging_ + pos, h) && rs.end - pos >= sizeof h + h.length) {
            if (follows(last, h)) last = advance(last, h);
            pos += sizeof h + h.length;
        }
        if (pos != rs.end) return; // a cut chunk at the end: keep what was committed
        std::uint64_t end = rs.end;
        while (shared_bytes() - end >= sizeof h && chunk_at(staging_ + end, h) && follows(last, h) &&
               shared_bytes() - end >= sizeof h + h.length) {
            last = advance(last, h);
            end += sizeof h + h.length;
        }
        rs.end = end;
    }

private:
    /// Writes out_ in one write; false if the stream has no room for it now.
    bool write_out() {
        iovec iov{out_.data(), out_.size()};
        ssize_t w = Stream::send(w_.get(), &iov, 1, false); // this process holds a read end too
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            sys::fail("write to a queue's stream");
        }
        if (static_cast<std::size_t>(w) != out_.size())
            detail::raise(error("multiproc: a write of chunks to a queue's stream was split; the transport's "
                        "atomic_write is larger than what the kernel writes at once"));
        return true;
    }

    /// Waits until `fd` reports `events` or the wake-up eventfd is readable; false on timeout.
    bool wait_or_woken(int fd, short events, std::optional<steady::time_point> deadline) {
        pollfd p[2] = {{fd, events, 0}, {wake_.get(), POLLIN, 0}};
        int n = sys::poll_until(p, 2, deadline.value_or(steady::time_point{}), !deadline.has_value());
        if (n < 0) sys::fail("poll on a queue's stream");
        return n > 0;
    }

    /// Moves what is left in staging, [pos, end), to its start, so that a read has room.
    /// Each copy is between ranges that do not overlap, and is committed before its source
    /// is written over, so that a consumer killed at any point leaves [pos, end) whole:
    /// through the free room after `end` if the two places overlap. False, with nothing
    /// moved, if they overlap and that room is too small.
    template <class Commit>
    bool to_front(std::uint64_t& pos, std::uint64_t& end, Commit& commit) {
        if (pos == 0) return true;
        const std::uint64_t n = end - pos;
        if (n > pos) {
            if (n > shared_bytes() - end) return false;
            move_committed(pos, end, end, commit); // out of the way first
        }
        move_committed(pos, end, 0, commit);
        return true;
    }

    /// Copies [pos, end) to `to` (the two do not overlap) and commits it there.
    template <class Commit>
    void move_committed(std::uint64_t& pos, std::uint64_t& end, std::uint64_t to, Commit& commit) {
        const std::uint64_t n = end - pos;
        if (n != 0) std::memcpy(staging_ + to, staging_ + pos, n);
        pos = to;
        end = to + n;
        commit([p = pos, e = end](reader_state& s) {
            s.pos = p;
            s.end = e;
        });
    }

    /// to_front for bytes that need not survive the mover: one overlapping move.
    template <class Commit>
    void to_front_unjournaled(std::uint64_t& pos, std::uint64_t& end, Commit& commit) {
        std::memmove(staging_, staging_ + pos, end - pos);
        end -= pos;
        pos = 0;
        commit([e = end](reader_state& s) {
            s.pos = 0;
            s.end = e;
        });
    }

    /// One read from the stream into staging after `end`, committed; false if the stream
    /// holds nothing now.
    template <class Commit>
    bool read_more(std::uint64_t& end, Commit& commit) {
        std::size_t n = read_size(shared_bytes() - end);
        if (n == 0) return false;
        ssize_t r = read_some(r_.get(), staging_ + end, n, "a queue's stream");
        if (r < 0) return false;
        if (r == 0) detail::raise(error("multiproc: a queue's stream reached end of file (its write end was closed)"));
        end += static_cast<std::uint64_t>(r);
        commit([e = end](reader_state& s) { s.end = e; });
        return true;
    }

    /// How many bytes the next read asks for (0: none are there), at most `room`, so that
    /// it ends at a chunk's end. A pipe's read stops at what the pipe held when it began,
    /// which staging holds whole: it asks for all the room. A socket's read goes on taking
    /// what producers write while it copies, so under load it would fill any room and end
    /// inside a chunk, whose rest only the stream would hold (a consumer killed then loses
    /// it, or loses all it read next). It asks for what the socket holds now: whole chunks,
    /// each written at once. If that outgrew the room (the socket's buffer was raised after
    /// the queue was made), it asks for the whole chunks at the front that fit.
    std::size_t read_size(std::size_t room) {
        if constexpr (requires(int fd) { Stream::readable(fd); }) {
            std::size_t n = Stream::readable(r_.get());
            if (n <= room) return n;
            if constexpr (requires(int fd, void* p) { Stream::peek(fd, p, room); }) return fitting_chunks(room);
        }
        return room;
    }

    /// The bytes at the stream's front that are whole chunks and fit in `room`, found by
    /// peeking (all of `room` if the front is not a chunk: bytes from outside multiproc,
    /// which the consumer skips).
    std::size_t fitting_chunks(std::size_t room) {
        std::vector<std::byte> look(room);
        ssize_t got = Stream::peek(r_.get(), look.data(), room);
        if (got < 0) sys::fail("peek at a queue's stream");
        const auto n = static_cast<std::size_t>(got);
        std::size_t p = 0;
        chunk_header h;
        while (n - p >= sizeof h && chunk_at(look.data() + p, h) && n - p - sizeof h >= h.length)
            p += sizeof h + h.length;
        return p != 0 ? p : room;
    }

    /// Whether a chunk header starts at `p`: one that checks, of a length this channel's
    /// chunks can have (anything else is bytes from outside multiproc).
    bool chunk_at(const std::byte* p, chunk_header& h) const noexcept { return load_chunk(p, h, max_payload()); }

    /// The first offset in [from, end) where a chunk that follows `last` starts, or end.
    std::uint64_t find_chunk(std::uint64_t from, std::uint64_t end, const chunk_position& last) const noexcept {
        chunk_header h;
        for (std::uint64_t p = from; end - p >= sizeof h; ++p)
            if (chunk_at(staging_ + p, h) && follows(last, h)) return p;
        return end;
    }

    sys::unique_fd r_, w_;
    sys::unique_fd wake_; // an eventfd made readable for good by shutdown (interrupt())
    std::size_t capacity_ = 0;
    std::size_t unit_ = 0;
    std::byte* staging_ = nullptr;
    std::vector<std::byte> out_;
    chunk_header prepared_h_{};
    bool prepared_ = false;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
