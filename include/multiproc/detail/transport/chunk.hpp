// Not part of the API: the unit that queues (and shared-memory connections) move. A
// message is cut into chunks; each chunk is written in one kernel-atomic write (pipes:
// <= PIPE_BUF) or committed with one index store (rings), and carries enough to be
// checked and placed on its own: magic, the message's sequence number, the chunk's index,
// its length, the message's total length, and a checksum of those fields. See
// docs/design/queues.md.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/bytes.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

inline constexpr std::uint32_t chunk_data = 0x444d504dU; // "MPMD": a piece of a message
inline constexpr std::uint32_t chunk_nop = 0x4e4d504dU;  // "MPMN": advances the sequence, carries nothing
inline constexpr std::uint32_t chunk_pad = 0x504d504dU;  // "MPMP": ring only, skip to the ring's start

struct chunk_header {
    std::uint32_t magic;
    std::uint32_t length; // payload bytes in this chunk
    std::uint64_t seq;    // the message's sequence number, > 0, increasing in stream order
    std::uint64_t total;  // payload bytes of the whole message
    std::uint32_t index;  // the chunk's place in its message, from 0
    std::uint32_t check;  // checksum of the fields above
};
static_assert(sizeof(chunk_header) == 32);

inline constexpr std::size_t chunk_align = 8;

constexpr std::size_t align_up(std::size_t n, std::size_t a = chunk_align) noexcept { return (n + a - 1) / a * a; }

/// A 32-bit mix of the header fields: catches stale or foreign bytes that happen to
/// start with the magic (it is not a defence against a deliberate forgery).
constexpr std::uint32_t header_check(const chunk_header& h) noexcept {
    auto mix = [](std::uint64_t x) {
        x ^= x >> 31;
        x *= 0x7fb5d329728ea185ULL;
        x ^= x >> 27;
        x *= 0x81dadef4bc2dd44dULL;
        return x ^ (x >> 33);
    };
    std::uint64_t x = mix((std::uint64_t{h.magic} << 32) | h.length);
    x = mix(x ^ h.seq);
    x = mix(x ^ h.total);
    x = mix(x ^ h.index);
    return static_cast<std::uint32_t>(x ^ (x >> 32));
}

inline chunk_header make_chunk(std::uint32_t magic, std::uint64_t seq, std::uint32_t index, std::uint32_t length,
                               std::uint64_t total) noexcept {
    chunk_header h{magic, length, seq, total, index, 0};
    h.check = header_check(h);
    return h;
}

/// Reads a header from possibly unaligned bytes; true if its magic and checksum are right
/// and its lengths possible: at most `max_length` payload bytes (what the channel's chunks
/// can carry), a message of at most max_message_bytes.
inline bool load_chunk(const std::byte* p, chunk_header& h, std::size_t max_length) noexcept {
    std::memcpy(&h, p, sizeof h);
    return (h.magic == chunk_data || h.magic == chunk_nop) && h.check == header_check(h) && h.length <= h.total &&
           h.length <= max_length && h.total <= max_message_bytes &&
           (h.magic == chunk_data || (h.length == 0 && h.total == 0 && h.index == 0));
}

/// Where a chunk sits in the sequence, relative to the chunk read before it.
struct chunk_position {
    std::uint64_t seq = 0;    // of the last chunk (0: none yet)
    std::uint32_t index = 0;  // of the last chunk
    std::uint64_t offset = 0; // payload bytes of its message up to and including it
    std::uint64_t total = 0;  // payload bytes of its message
    bool final = true;        // whether it completed its message
};

/// Whether `h` can be the chunk that follows `last` in a stream: the next chunk of an
/// unfinished message, or the first chunk of a later message (a writer that died or gave
/// up mid-message leaves its message unfinished; the next message starts anyway). Every
/// chunk of a message carries the same total, which its chunks never pass.
inline bool follows(const chunk_position& last, const chunk_header& h) noexcept {
    if (h.index == 0) return h.seq > last.seq;
    return !last.final && h.seq == last.seq && h.index == last.index + 1 && h.total == last.total &&
           h.length <= h.total - last.offset;
}

inline chunk_position advance(const chunk_position& last, const chunk_header& h) noexcept {
    chunk_position p;
    p.seq = h.seq;
    p.index = h.index;
    p.offset = (h.index == 0 ? 0 : last.offset) + h.length;
    p.total = h.total;
    p.final = p.offset == h.total;
    return p;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
