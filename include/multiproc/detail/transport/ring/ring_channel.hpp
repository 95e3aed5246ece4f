// Not part of the API: the queue channel on a shared-memory ring (transport::shm). A chunk
// is published by the tail store and released by the head store, so a writer's repair can
// tell exactly whether the chunk it was writing got in (the tail moved past its mark).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/ring/ring.hpp>
#include <multiproc/policies/transport.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

class ring_channel {
public:
    static constexpr const char* what = "ring";

    static ring_channel open(std::size_t buffer) {
        ring_channel c;
        c.capacity_ = ring::round_capacity(buffer ? buffer : transport::shm::default_capacity);
        return c;
    }

    /// For a spawn or forkserver child: the ring's capacity (the ring is in the queue's region).
    void cross_out(crossing_writer& w) const { w.put<std::uint64_t>(capacity_); }
    /// In the child: the channel cross_out sent (bind() attaches it to the ring).
    static ring_channel cross_in(crossing_reader& r) {
        ring_channel c;
        c.capacity_ = static_cast<std::size_t>(r.get<std::uint64_t>());
        if (c.capacity_ != ring::round_capacity(c.capacity_))
            detail::raise(serialization_error("multiproc: a queue sent to the child has a bad ring size"));
        return c;
    }

    [[nodiscard]] std::size_t shared_bytes() const noexcept { return ring::bytes_for(capacity_); }
    void bind(std::byte* area, bool create) {
        ring_ = create ? ring::create(area, capacity_) : ring::attach(area, shared_bytes());
        if (ring_.capacity() != capacity_)
            detail::raise(serialization_error("multiproc: a queue sent to the child has a ring of another size than it says"));
    }
    [[nodiscard]] std::size_t max_payload() const noexcept { return ring_.max_payload(); }

    // ---- writer ----

    [[nodiscard]] std::uint64_t mark() const noexcept { return ring_.shared().tail.load(std::memory_order_acquire); }
    [[nodiscard]] fate published_since(std::uint64_t mark) const noexcept {
        return ring_.shared().tail.load(std::memory_order_acquire) != mark ? fate::yes : fate::no;
    }
    template <class Fill>
    bool try_put(const chunk_header& h, Fill&& fill) {
        return ring_.try_put(h, fill);
    }
    /// How many one-chunk messages of these payload lengths one publish carries now (0: the
    /// first does not fit yet).
    [[nodiscard]] std::size_t batch_fit(std::span<const std::uint32_t> lens) const noexcept { return ring_.batch_fit(lens); }
    /// Writes and publishes them at once (ring::try_put_many); `fresh` is immaterial here.
    template <class Fill>
    bool try_put_batch(std::uint64_t first, std::span<const std::uint32_t> lens, Fill&& fill, bool) {
        return ring_.try_put_many(first, lens, fill);
    }

    /// Waits for room in the ring for chunk `h` (or, given a length, a one-chunk message);
    /// true early once `stop` is set (interrupt() wakes it).
    template <class Chunk>
    bool wait_room(const Chunk& h, std::optional<steady::time_point> deadline, const std::atomic<std::uint32_t>& stop) {
        return ring_.shared().space.wait_until(
            [&] { return ring_.has_room(h) || stop.load(std::memory_order_acquire) != 0; }, deadline);
    }

    /// Wakes every process waiting in wait_room or wait_data (the caller has set their `stop`).
    void interrupt() noexcept {
        ring_.shared().data.notify_all();
        ring_.shared().space.notify_all();
    }

    // ---- reader ----

    template <class Commit>
    std::optional<chunk_ref> try_peek(const reader_state& rs, Commit&&) const {
        auto it = ring_.try_peek(rs.pos);
        if (!it) return std::nullopt;
        return chunk_ref{it->h, it->payload, it->next};
    }
    bool wait_data(const reader_state& rs, std::optional<steady::time_point> deadline,
                   const std::atomic<std::uint32_t>& stop) {
        std::uint64_t pos = rs.pos;
        return ring_.shared().data.wait_until(
            [&] {
                return ring_.shared().tail.load(std::memory_order_acquire) != pos || stop.load(std::memory_order_acquire) != 0;
            },
            deadline);
    }
    void released(const reader_state& rs) noexcept { ring_.release(rs.pos); }
    /// Never asked: a ring's writer repair always knows whether a chunk got in.
    template <class Commit>
    std::optional<bool> holds_final_of(std::uint64_t, const reader_state&, Commit&&) const noexcept {
        return std::nullopt;
    }
    /// A consumer died: the ring holds exactly what its last commit says.
    void recover_reader(reader_state&) const noexcept {}

private:
    std::size_t capacity_ = 0;
    ring ring_;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
