// Not part of the API: the byte sinks and sources serializers write to and read from.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/per_thread.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// Appends to a vector (after whatever it already holds, such as room for a frame header).
class vector_writer {
public:
    explicit vector_writer(std::vector<std::byte>& out) noexcept : out_(out) {}
    void write(const void* p, std::size_t n) {
        if (n == 0) return;
        // insert, not resize + memcpy: the bytes are copied once, never zero-filled first.
        // (GCC 12 at -O2 warns, wrongly, that the insert into a vector it saw cleared writes
        // out of bounds: -Wstringop-overflow, -Warray-bounds. Off here only.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
        const auto* b = static_cast<const std::byte*>(p);
        out_.insert(out_.end(), b, b + n);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    }

private:
    std::vector<std::byte>& out_;
};

/// Writes into a fixed span; the caller sized it with `size_counter` first.
class span_writer {
public:
    explicit span_writer(std::span<std::byte> out) noexcept : p_(out.data()), left_(out.size()) {}
    void write(const void* p, std::size_t n) {
        if (n > left_) detail::raise(serialization_error("multiproc: a serializer wrote more bytes than it announced"));
        if (n) std::memcpy(p_, p, n);
        p_ += n;
        left_ -= n;
    }
    [[nodiscard]] std::size_t left() const noexcept { return left_; }

private:
    std::byte* p_;
    std::size_t left_;
};

/// Counts what would be written, so that a message can be encoded in place.
class size_counter {
public:
    void write(const void*, std::size_t n) noexcept { n_ += n; }
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

private:
    std::size_t n_ = 0;
};

/// Reads from one frame's bytes and never past them.
class span_reader {
public:
    explicit span_reader(std::span<const std::byte> in) noexcept : p_(in.data()), left_(in.size()) {}
    void read(void* dst, std::size_t n) {
        if (n > left_)
            detail::raise(serialization_error("multiproc: truncated message: " + std::to_string(n) + " more bytes needed, " +
                                      std::to_string(left_) + " left in the frame"));
        if (n) std::memcpy(dst, p_, n);
        p_ += n;
        left_ -= n;
    }
    [[nodiscard]] std::size_t remaining() const noexcept { return left_; }
    /// The next `n` bytes where they are (valid while the message is), skipped over.
    const std::byte* take(std::size_t n) {
        const std::byte* at = p_;
        if (n > left_) read(nullptr, n); // (raises)
        p_ += n;
        left_ -= n;
        return at;
    }

private:
    const std::byte* p_;
    std::size_t left_;
};

/// Where a message is encoded before it is sent, when it cannot be encoded in place: one
/// buffer per thread, kept between messages.
inline std::vector<std::byte>& scratch() {
    struct tag;
    return per_thread<std::vector<std::byte>, tag>();
}

/// A message as consecutive pieces of bytes, sent one after the other as one message (a
/// gather: writev/sendmsg on a stream, chunk by chunk into a ring).
using byte_pieces = std::span<const std::span<const std::byte>>;

/// How many bytes the pieces hold in all.
inline std::size_t total_size(byte_pieces parts) noexcept {
    std::size_t n = 0;
    for (auto p : parts) n += p.size();
    return n;
}

/// Copies pieces out in order, as many bytes at a time as the caller asks.
class pieces_cursor {
public:
    explicit pieces_cursor(byte_pieces parts) noexcept : parts_(parts) {}
    /// Copies the next `n` bytes to `dst` (there must be that many left).
    void copy_to(std::byte* dst, std::size_t n) noexcept {
        while (n > 0) {
            const auto part = parts_[i_];
            const std::size_t k = std::min(n, part.size() - off_);
            if (k) std::memcpy(dst, part.data() + off_, k);
            dst += k;
            n -= k;
            off_ += k;
            if (off_ == part.size()) {
                ++i_;
                off_ = 0;
            }
        }
    }

private:
    byte_pieces parts_;
    std::size_t i_ = 0, off_ = 0;
};

/// Encodes a message as pieces without copying its large runs: a write of at least
/// `by_reference` bytes stays where it is, as a piece of its own; smaller writes are
/// copied, in order, into the thread's scratch buffer. Referencing is only for a serializer
/// that writes such runs from the value itself (serialize::binary: a block of elements,
/// never a copy on its stack), and the value must outlive the pieces. The pieces live in
/// storage of the thread, kept between messages: valid until the thread encodes again.
class gather_writer {
public:
    static constexpr std::size_t by_reference = std::size_t{64} << 10;

    /// `references`: whether large runs stay where they are (false: every byte is copied,
    /// for a serializer that may write from its own temporaries).
    explicit gather_writer(bool references = true)
        : small_(scratch()), s_(state()), by_reference_(references ? by_reference : SIZE_MAX) {
        small_.clear();
        s_.runs.clear();
    }
    gather_writer(const gather_writer&) = delete;
    gather_writer& operator=(const gather_writer&) = delete;

    void write(const void* p, std::size_t n) {
        if (n == 0) return;
        const auto* b = static_cast<const std::byte*>(p);
        if (n >= by_reference_) {
            s_.runs.push_back({b, n});
            return;
        }
        if (s_.runs.empty() || s_.runs.back().at) s_.runs.push_back({nullptr, 0}); // (a run in scratch)
        vector_writer(small_).write(b, n);
        s_.runs.back().len += n;
    }

    /// The message: its pieces in order (none for an empty message).
    [[nodiscard]] byte_pieces pieces() {
        s_.pieces.clear();
        std::size_t in_scratch = 0; // (runs in scratch are found by length: it may have moved as it grew)
        for (const run& r : s_.runs) {
            s_.pieces.emplace_back(r.at ? r.at : small_.data() + in_scratch, r.len);
            if (!r.at) in_scratch += r.len;
        }
        return s_.pieces;
    }

private:
    struct run {
        const std::byte* at; // null: the next `len` bytes of scratch
        std::size_t len;
    };
    struct buffers {
        std::vector<run> runs;
        std::vector<std::span<const std::byte>> pieces;
    };
    static buffers& state() { return per_thread<buffers>(); }

    std::vector<std::byte>& small_;
    buffers& s_;
    std::size_t by_reference_;
};

/// The most bytes one message can have: more than any process can address (x86-64 and
/// arm64 user space is 2^47 bytes or less). A length header claiming more is corrupt.
inline constexpr std::uint64_t max_message_bytes = std::uint64_t{1} << 47;

/// Memory for one incoming message whose length comes from a header, which may lie: it
/// grows as the bytes arrive, never more than `step` bytes past those already in it, so
/// that a forged length costs at most `step` bytes. Up to `step` bytes live on the heap,
/// kept from one message to the next; more live in pages mapped for the message alone,
/// grown with mremap (no byte is copied) and unmapped by clear().
class message_buffer {
public:
    static constexpr std::size_t step = std::size_t{4} << 20;

    message_buffer() = default;
    message_buffer(message_buffer&& o) noexcept
        : heap_(std::move(o.heap_)), heap_cap_(std::exchange(o.heap_cap_, 0)), map_(std::exchange(o.map_, nullptr)),
          map_cap_(std::exchange(o.map_cap_, 0)), size_(std::exchange(o.size_, 0)) {}
    message_buffer& operator=(message_buffer&& o) noexcept {
        if (this != &o) {
            unmap();
            heap_ = std::move(o.heap_);
            heap_cap_ = std::exchange(o.heap_cap_, 0);
            map_ = std::exchange(o.map_, nullptr);
            map_cap_ = std::exchange(o.map_cap_, 0);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    message_buffer(const message_buffer&) = delete;
    message_buffer& operator=(const message_buffer&) = delete;
    ~message_buffer() { unmap(); }

    [[nodiscard]] std::byte* data() const noexcept { return map_ ? map_ : heap_.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }

    /// Empties it for the next message (pages mapped for a large one go back).
    void clear() noexcept {
        unmap();
        size_ = 0;
    }

    /// Room after the bytes already in it, for a message of `total` bytes in all (> size()):
    /// at most `step` bytes more than it holds. Call commit() with what was written there.
    std::span<std::byte> room(std::uint64_t total) {
        if (size_ == capacity()) grow(static_cast<std::size_t>(std::min<std::uint64_t>(total, size_ + step)));
        return {data() + size_, static_cast<std::size_t>(std::min<std::uint64_t>(total, capacity())) - size_};
    }
    void commit(std::size_t n) noexcept { size_ += n; }

    /// Appends `n` bytes of a message of `total` bytes in all (size() + n <= total).
    void append(const std::byte* p, std::size_t n, std::uint64_t total) {
        while (n > 0) {
            auto r = room(total);
            std::size_t k = std::min(n, r.size());
            std::memcpy(r.data(), p, k);
            commit(k);
            p += k;
            n -= k;
        }
    }

private:
    [[nodiscard]] std::size_t capacity() const noexcept { return map_ ? map_cap_ : heap_cap_; }

    void grow(std::size_t want) {
        if (want <= step) { // (the heap buffer, kept: only the first `step` bytes of a message are here)
            if (want <= heap_cap_) return;
            auto next = std::make_unique_for_overwrite<std::byte[]>(want);
            if (size_) std::memcpy(next.get(), heap_.get(), size_);
            heap_ = std::move(next);
            heap_cap_ = want;
            return;
        }
        const std::size_t page = 4096, len = (want + page - 1) / page * page;
        void* p = map_ ? sys::mremap(map_, map_cap_, len)
                       : sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (!p) sys::fail("memory for a message of " + std::to_string(want) + " bytes or more");
        if (!map_ && size_) std::memcpy(p, heap_.get(), size_);
        map_ = static_cast<std::byte*>(p);
        map_cap_ = len;
    }

    void unmap() noexcept {
        if (map_) (void)sys::munmap(map_, map_cap_);
        map_ = nullptr;
        map_cap_ = 0;
    }

    std::unique_ptr<std::byte[]> heap_;
    std::size_t heap_cap_ = 0;
    std::byte* map_ = nullptr;
    std::size_t map_cap_ = 0;
    std::size_t size_ = 0;
};

/// Empties a message_buffer on leaving the scope that handed its bytes out.
struct cleared_after {
    message_buffer& b;
    ~cleared_after() { b.clear(); }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
