// Not part of the API: a ring of chunks in shared memory (transport::shm). One writer and
// one reader at a time (queues serialize each side with a robust lock). A chunk becomes
// visible only when the writer stores the new tail, and is gone only when the reader stores
// the new head, so a process killed at any instruction leaves the ring as it was at its
// last store: never half a chunk.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <string>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

struct ring_shared {
    alignas(64) std::atomic<std::uint64_t> tail{0}; // bytes ever published (pads included)
    alignas(64) std::atomic<std::uint64_t> head{0}; // bytes ever released
    alignas(64) notifier data;                      // tail moved: readers wait here
    alignas(64) notifier space;                     // head moved: writers wait here
    // Connections only (queues keep these in their journals):
    alignas(64) std::atomic<std::uint64_t> next_seq{0}; // the last sequence number a sender took
    chunk_position reader_last{};                        // the last chunk the receiver consumed
    std::uint64_t capacity = 0;                          // a power of two
};

/// One chunk found in the ring: its header, its payload, and the position after it.
struct ring_item {
    chunk_header h;
    const std::byte* payload;
    std::uint64_t next;
};

class ring {
public:
    /// Data written at an offset this far into the ring goes back to its start as soon as the
    /// reader has freed room there, so that a ring that keeps up touches only its first pages
    /// however large it is.
    static constexpr std::uint64_t rewind_after = 64 * 1024;

    static constexpr std::size_t header_bytes() noexcept { return align_up(sizeof(ring_shared), 64); }
    /// The capacity actually used for a request: a power of two from 4 KiB to 2 GiB.
    static constexpr std::size_t round_capacity(std::size_t want) noexcept {
        return std::bit_ceil(std::clamp<std::size_t>(want, 4096, std::size_t{1} << 31));
    }
    static constexpr std::size_t bytes_for(std::size_t capacity) noexcept {
        return header_bytes() + round_capacity(capacity);
    }

    ring() = default;
    /// Lays out a new ring at `at` (zeroed memory of bytes_for(capacity) bytes).
    static ring create(void* at, std::size_t capacity) {
        auto* s = ::new (at) ring_shared();
        s->capacity = round_capacity(capacity);
        return ring(s, s->capacity);
    }
    /// A view of a ring laid out by create() in `size` bytes of memory shared with another
    /// process. Its capacity is read once and checked against `size`: the view never
    /// reaches outside that memory, whatever is written into the ring's header later.
    static ring attach(void* at, std::size_t size) {
        auto* s = std::launder(static_cast<ring_shared*>(at));
        const std::uint64_t cap = s->capacity;
        if (size < header_bytes() || cap != round_capacity(static_cast<std::size_t>(cap)) || cap > size - header_bytes())
            detail::raise(serialization_error("multiproc: a shared-memory ring's header claims a capacity of " +
                                      std::to_string(cap) + " bytes, which its " + std::to_string(size) +
                                      " bytes of memory cannot hold"));
        return ring(s, cap);
    }

    [[nodiscard]] ring_shared& shared() const noexcept { return *s_; }
    [[nodiscard]] std::uint64_t capacity() const noexcept { return cap_; }
    /// The largest chunk: a large message streams through the ring in chunks this big while
    /// the reader copies out the ones before it. Small enough that the chunks in flight stay
    /// in the caches the two cores share, with the writer starting over at the ring's front
    /// (rewind_after): 64 MiB over a connection went 13.5 -> 17.4 GB/s here against chunks
    /// of 1 MiB (32 KiB: 15.4, 128 KiB: 15.2; medians of 5; memcpy: 19.7).
    static constexpr std::size_t chunk_limit = std::size_t{64} << 10;
    /// The largest payload of one chunk: a quarter of the ring, at most chunk_limit in all.
    [[nodiscard]] std::size_t max_payload() const noexcept {
        return std::min<std::size_t>(capacity() / 4, chunk_limit) - sizeof(chunk_header);
    }

    // ---- writer side ----

    /// Whether a message of one chunk of `len` payload bytes would fit now.
    [[nodiscard]] bool has_room(std::size_t len) const noexcept { return plan(len, 0, false).has_value(); }
    /// Whether chunk `h` would fit now (what try_put(h) finds).
    [[nodiscard]] bool has_room(const chunk_header& h) const noexcept { return plan_chunk(h).has_value(); }

    /// Writes a chunk (header, then `fill(span)` writes the payload) and publishes it;
    /// false, with nothing written, if it does not fit now. A message's chunks are put in
    /// order, index 0 first, each of max_payload() bytes but the last.
    template <class Fill>
    bool try_put(const chunk_header& h, Fill&& fill) {
        const std::uint64_t t = checked_tail();
        if (h.index == 0) msg_start_ = t;
        auto p = plan_chunk(h);
        if (!p) return false;
        write_chunk(t + pad_at(t, p->pad), h, fill);
        publish(t + p->pad + p->need);
        return true;
    }

    /// How many chunks of these payload lengths fit now in one run (after a pad, if the run
    /// starts the ring over): what try_put_many() writes. Never fewer later while only the
    /// reader moves (room only grows).
    [[nodiscard]] std::size_t batch_fit(std::span<const std::uint32_t> lens) const noexcept {
        return plan_batch(lens).count;
    }

    /// Writes chunks of one-chunk messages `first`, `first + 1`, ... of these payload lengths
    /// (`fill(i, span)` writes message i's payload) and publishes them with one store of the
    /// tail; false, with nothing published, if they do not all fit now (batch_fit).
    template <class Fill>
    bool try_put_many(std::uint64_t first, std::span<const std::uint32_t> lens, Fill&& fill) {
        const std::uint64_t t = checked_tail();
        const batch_plan p = plan_batch(lens);
        if (p.count < lens.size()) return false;
        std::uint64_t pos = t + pad_at(t, p.pad);
        for (std::size_t i = 0; i < lens.size(); ++i) {
            const chunk_header h = make_chunk(chunk_data, first + i, 0, lens[i], lens[i]);
            write_chunk(pos, h, [&](std::span<std::byte> dst) { fill(i, dst); });
            pos += align_up(sizeof h + lens[i]);
        }
        publish(pos);
        return true;
    }

    // ---- reader side ----

    /// The chunk at `pos` (pads skipped), or nothing if the ring holds no more. Throws
    /// `error` if the bytes there are not a chunk: the shared memory was overwritten.
    [[nodiscard]] std::optional<ring_item> try_peek(std::uint64_t pos) const {
        std::uint64_t t = s_->tail.load(std::memory_order_acquire);
        while (pos != t) {
            std::uint64_t off = pos & (capacity() - 1);
            if (off % chunk_align != 0) corrupt("a read position that is not a chunk boundary");
            std::uint32_t word[2];
            std::memcpy(word, at(pos), sizeof word);
            if (word[0] == chunk_pad) {
                if (word[1] != capacity() - off || word[1] > t - pos) corrupt("a pad record of the wrong length");
                pos += word[1];
                continue;
            }
            ring_item it{};
            if (t - pos < sizeof(chunk_header) || capacity() - off < sizeof(chunk_header))
                corrupt("a chunk header cut short");
            if (!load_chunk(at(pos), it.h, max_payload())) {
                if (it.h.check != header_check(it.h)) corrupt("bytes that are not a chunk header");
                corrupt("a chunk header claiming " + std::to_string(it.h.length) + " bytes of a message of " +
                        std::to_string(it.h.total) + ", more than a chunk (" + std::to_string(max_payload()) +
                        ") or a message can hold");
            }
            std::uint64_t need = align_up(sizeof(chunk_header) + it.h.length);
            if (need > t - pos || off + need > capacity()) corrupt("a chunk longer than the published bytes");
            it.payload = at(pos) + sizeof(chunk_header);
            it.next = pos + need;
            return it;
        }
        return std::nullopt;
    }

    /// Frees everything before `pos` for the writer.
    void release(std::uint64_t pos) noexcept {
        s_->head.store(pos, std::memory_order_release);
        s_->space.notify_all();
    }

private:
    ring(ring_shared* s, std::uint64_t capacity) noexcept : s_(s), cap_(capacity) {}

    struct placement {
        std::uint64_t pad;
        std::uint64_t need;
    };

    /// Where chunk `h` goes: plan() with the bytes the rest of its message takes, and
    /// whether the reader has begun taking the message (released past its start).
    [[nodiscard]] std::optional<placement> plan_chunk(const chunk_header& h) const noexcept {
        const std::uint64_t maxp = max_payload();
        const std::uint64_t done = std::uint64_t{h.index} * maxp + h.length; // payload up to this chunk's end
        const std::uint64_t rest = h.total > done ? h.total - done : 0;
        const std::uint64_t after = rest == 0 ? 0 // (a message of one chunk: no division on its way)
                                              : rest / maxp * align_up(sizeof(chunk_header) + maxp) +
                                                    (rest % maxp != 0 ? align_up(sizeof(chunk_header) + rest % maxp) : 0);
        const bool reader_in = h.index != 0 && s_->head.load(std::memory_order_acquire) > msg_start_;
        return plan(h.length, after, reader_in);
    }

    /// Where a chunk of `len` payload bytes goes now, if it fits: after a pad to the ring's
    /// end, or none. `after`: the bytes the chunks still to come of its message take;
    /// `reader_in`: the reader is taking that message already.
    [[nodiscard]] std::optional<placement> plan(std::size_t len, std::uint64_t after, bool reader_in) const noexcept {
        std::uint64_t cap = capacity();
        std::uint64_t t = s_->tail.load(std::memory_order_relaxed);
        std::uint64_t h = s_->head.load(std::memory_order_acquire);
        std::uint64_t need = align_up(sizeof(chunk_header) + len);
        std::uint64_t off = t & (cap - 1);
        std::uint64_t free = cap - (t - h);
        std::uint64_t pad = 0;
        // Back to the start early, once past rewind_after, whenever the reader has freed the
        // room there (the bytes in use, [h, t), do not wrap and start at least `need` in):
        // a ring that streams, however large, then keeps to its first pages instead of
        // touching fresh ones all the way round. The pad holds the ring's end until the
        // reader passes it, so the rest of the message must fit there too, unless the reader
        // is taking the message already: else a message that fits the free ring would wait
        // for a reader (a put into an empty queue raised queue_full, or hung the program
        // that would get it next).
        const bool early = off >= rewind_after && t - h <= off && need <= off - (t - h) &&
                           (reader_in || after <= off - (t - h) - need);
        if (early || off + need > cap) pad = cap - off;
        if (pad + need > free) return std::nullopt;
        return placement{pad, need};
    }

    /// The write position, checked: a chunk boundary, with the read position behind it.
    [[nodiscard]] std::uint64_t checked_tail() const {
        const std::uint64_t t = s_->tail.load(std::memory_order_relaxed);
        if (t % chunk_align != 0 || t - s_->head.load(std::memory_order_acquire) > capacity())
            corrupt("a write position that is not a chunk boundary, or a read position past it");
        return t;
    }
    /// Writes a pad record of `pad` bytes at `t` if `pad` is not 0 (the rest of the ring up
    /// to its end, skipped by the reader); returns `pad`.
    std::uint64_t pad_at(std::uint64_t t, std::uint64_t pad) noexcept {
        if (pad) {
            const std::uint32_t word[2] = {chunk_pad, static_cast<std::uint32_t>(pad)};
            std::memcpy(at(t), word, sizeof word);
        }
        return pad;
    }
    /// Writes chunk `h` at `pos`: its header, then `fill(span)` its payload.
    template <class Fill>
    void write_chunk(std::uint64_t pos, const chunk_header& h, Fill&& fill) {
        std::byte* dst = at(pos);
        std::memcpy(dst, &h, sizeof h);
        fill(std::span<std::byte>(dst + sizeof h, h.length));
    }
    /// Makes everything before `tail` visible to the reader, and wakes it.
    void publish(std::uint64_t tail) noexcept {
        s_->tail.store(tail, std::memory_order_release);
        s_->data.notify_all();
    }

    struct batch_plan {
        std::uint64_t pad;
        std::size_t count;
    };

    /// Where a run of chunks goes: on from the tail while they fit before the ring's end; or
    /// from the ring's start (after a pad) when the first does not fit before the end, or
    /// when the whole run fits there and the tail is past rewind_after (as plan() does for
    /// one chunk). Room only grows while the writer waits, so the count never shrinks.
    [[nodiscard]] batch_plan plan_batch(std::span<const std::uint32_t> lens) const noexcept {
        const std::uint64_t cap = capacity();
        const std::uint64_t t = s_->tail.load(std::memory_order_relaxed);
        const std::uint64_t h = s_->head.load(std::memory_order_acquire);
        const std::uint64_t off = t & (cap - 1), used = t - h, free = cap - used;
        // Chunks that fit in `room` bytes from the run's start.
        auto fitting = [&](std::uint64_t room) {
            std::size_t k = 0;
            for (std::uint64_t bytes = 0; k < lens.size(); ++k) {
                const std::uint64_t need = align_up(sizeof(chunk_header) + lens[k]);
                if (need > room - bytes) break;
                bytes += need;
            }
            return k;
        };
        if (off >= rewind_after && used <= off) { // [h, t) sits below the tail: the start is free up to h
            const std::size_t k = fitting(off - used);
            if (k == lens.size()) return {cap - off, k};
        }
        const std::size_t on = fitting(std::min(cap - off, free));
        if (on != 0) return {0, on};
        if (cap - off >= free) return {0, 0}; // the end is not what stops the first chunk
        // The ring's end stops it: start over. [h, t) then sits below the tail (were it to
        // wrap, the free bytes would all lie before the end).
        return {cap - off, fitting(off - used)};
    }

    [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept {
        return reinterpret_cast<std::byte*>(s_) + header_bytes() + (pos & (capacity() - 1));
    }

    [[noreturn]] static void corrupt(const std::string& what) {
        detail::raise(serialization_error("multiproc: the shared-memory ring is corrupt (" + what +
                                  "): something other than multiproc wrote into it"));
    }

    ring_shared* s_ = nullptr;
    std::uint64_t cap_ = 0; // this process's copy: the shared one could be overwritten
    std::uint64_t msg_start_ = 0; // writer: the tail when the message being put began
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
