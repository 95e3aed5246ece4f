// Forging what travels under connections and queues, for the tests and the fuzz target
// that feed them corrupt or hostile bytes: the descriptor a stream transport carries
// frames on, and the rings in shared memory, reached the way a child reaches them
// (cross_out), so that nothing private to the library is touched. No Catch2 here.
#pragma once

#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/ring/ring.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/transport/stream/stream.hpp>
#include <multiproc/process.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <span>
#include <stdexcept>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace forge {

namespace detail = multiproc::detail;

/// The header a stream connection puts before each message (detail/transport/stream/stream_link.hpp).
struct frame_header {
    std::uint32_t magic = 0x464d504dU;
    std::uint32_t reserved = 0;
    std::uint64_t length = 0;
};
/// No stream connection frame is shorter: short payloads are padded to it.
inline constexpr std::size_t min_frame = 128;

/// A well-formed stream connection frame of `payload`.
inline std::vector<std::byte> frame(std::span<const std::byte> payload) {
    frame_header h;
    h.length = payload.size();
    std::vector<std::byte> out(std::max(sizeof h + payload.size(), min_frame));
    std::memcpy(out.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(out.data() + sizeof h, payload.data(), payload.size());
    return out;
}

/// Just a header claiming `length` bytes (padded to a frame's first read).
inline std::vector<std::byte> header_only(std::uint64_t length, std::uint32_t magic = frame_header{}.magic) {
    frame_header h{magic, 0, length};
    std::vector<std::byte> out(min_frame);
    std::memcpy(out.data(), &h, sizeof h);
    return out;
}

/// Writes all of `bytes` to a descriptor (blocking or not: it waits for room).
inline void write_fd(int fd, std::span<const std::byte> bytes) {
    const std::byte* p = bytes.data();
    std::size_t n = bytes.size();
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                (void)detail::wait_fd(fd, POLLOUT, std::nullopt, "a forged stream");
                continue;
            }
            throw std::runtime_error("forge: write failed");
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// What an object sends to a child: its bytes and (borrowed) descriptors.
template <class T>
detail::crossing_writer crossing_of(const T& obj) {
    detail::crossing_writer w;
    obj.cross_out(w);
    return w;
}

/// A ring in shared memory, mapped here from a descriptor of its region: chunks, or any
/// bytes at all, can be put in it as its writer would.
class ring_access {
public:
    /// The ring `offset` bytes into the region behind `fd` (duplicated: the caller keeps it).
    ring_access(int fd, std::size_t offset)
        : region_(detail::shared_region::attach(::dup(fd))),
          ring_(detail::ring::attach(static_cast<std::byte*>(region_.data()) + offset, region_.size() - offset)),
          data_(static_cast<std::byte*>(region_.data()) + offset + detail::ring::header_bytes()) {}

    [[nodiscard]] detail::ring& ring() noexcept { return ring_; }
    [[nodiscard]] detail::ring_shared& shared() noexcept { return ring_.shared(); }

    /// Puts a chunk with a checksum that checks; false if the ring has no room.
    bool put_chunk(std::uint32_t magic, std::uint64_t seq, std::uint32_t index, std::span<const std::byte> payload,
                   std::uint64_t total) {
        auto h = detail::make_chunk(magic, seq, index, static_cast<std::uint32_t>(payload.size()), total);
        return put_header(h, payload);
    }
    /// Puts a header as given (its length field says how many payload bytes follow).
    bool put_header(const detail::chunk_header& h, std::span<const std::byte> payload) {
        if (!ring_.has_room(payload.size())) return false;
        // (try_put writes h.length bytes: a header that lies about its length gets a payload
        // of that length, zero-padded, only if it fits; otherwise write it raw.)
        if (h.length != payload.size()) return put_raw(as_bytes_of(h, payload));
        return ring_.try_put(h, [&](std::span<std::byte> dst) {
            if (!payload.empty()) std::memcpy(dst.data(), payload.data(), payload.size());
        });
    }
    /// Writes `bytes` at the ring's tail and publishes them, whatever they are (rounded up
    /// to the ring's alignment); false if they do not fit before the ring's end.
    bool put_raw(std::span<const std::byte> bytes) {
        auto& s = ring_.shared();
        const std::uint64_t t = s.tail.load(), h = s.head.load(), cap = ring_.capacity();
        const std::uint64_t n = detail::align_up(bytes.size());
        const std::uint64_t off = t & (cap - 1);
        if (n == 0 || n > cap - (t - h) || off + n > cap) return false;
        std::memset(data_ + off, 0, n);
        std::memcpy(data_ + off, bytes.data(), bytes.size());
        s.tail.store(t + n);
        s.data.notify_all();
        return true;
    }

private:
    static std::vector<std::byte> as_bytes_of(const detail::chunk_header& h, std::span<const std::byte> payload) {
        std::vector<std::byte> out(sizeof h + payload.size());
        std::memcpy(out.data(), &h, sizeof h);
        if (!payload.empty()) std::memcpy(out.data() + sizeof h, payload.data(), payload.size());
        return out;
    }

    detail::shared_region region_;
    detail::ring ring_;
    std::byte* data_;
};

/// The ring a transport::shm connection end sends into (the end must be able to send).
template <class Conn>
ring_access sending_ring(const Conn& end) {
    auto w = crossing_of(end);
    const auto shape = static_cast<std::uint8_t>(w.bytes().at(0));
    if (!(shape & 2)) throw std::runtime_error("forge: the end does not send");
    return ring_access(w.fds().at((shape & 1) ? 2 : 0), 0);
}

/// Where a queue's channel starts in its shared region.
inline std::size_t queue_channel_offset() { return detail::align_up(sizeof(detail::queue_control), 4096); }

/// The ring of a transport::shm queue.
template <class Queue>
ring_access queue_ring(const Queue& q) {
    auto w = crossing_of(q);
    return ring_access(w.fds().at(0), queue_channel_offset());
}

/// The descriptor producers of a stream queue (pipe, socketpair) write chunks to; valid
/// while the queue is open in this process. (A queue crosses as: its region, its readiness
/// eventfd, then its channel's read end and write end.)
template <class Queue>
int queue_write_fd(const Queue& q) {
    return crossing_of(q).fds().at(3);
}

/// A chunk as a stream queue's producer writes it: header (checksum that checks) and
/// payload, in one write.
inline std::vector<std::byte> chunk_bytes(std::uint32_t magic, std::uint64_t seq, std::uint32_t index,
                                          std::span<const std::byte> payload, std::uint64_t total,
                                          std::uint32_t claimed_length) {
    auto h = detail::make_chunk(magic, seq, index, claimed_length, total);
    std::vector<std::byte> out(sizeof h + payload.size());
    std::memcpy(out.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(out.data() + sizeof h, payload.data(), payload.size());
    return out;
}

// ---- memory bounds --------------------------------------------------------------------

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif
#else
inline constexpr bool under_asan = false;
#endif

/// Exit codes of in_bounded_child beyond f's own.
enum : int { bad_alloc_exit = 100, rss_exit = 101, exception_exit = 102 };

/// Runs `f` (returning an exit code 0..99) in a forked child whose address space may grow
/// by at most `limit` bytes (RLIMIT_AS, so that a larger allocation fails there; not under
/// AddressSanitizer, whose own reservations it would count) and whose peak resident memory
/// must grow by less than `limit` (getrusage). Returns f's code, bad_alloc_exit if an
/// allocation failed, rss_exit if the peak grew too much, exception_exit if f threw
/// (its what() on stderr), or -signal.
template <class F>
int in_bounded_child(F f, std::size_t limit) {
    multiproc::process p([&] {
        if constexpr (!under_asan) {
            unsigned long pages = 0;
            if (FILE* in = std::fopen("/proc/self/statm", "r")) {
                if (std::fscanf(in, "%lu", &pages) != 1) pages = 0;
                std::fclose(in);
            }
            const rlim_t cap = pages * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + limit;
            rlimit lim{cap, cap};
            if (pages == 0 || ::setrlimit(RLIMIT_AS, &lim) != 0) std::_Exit(exception_exit);
        }
        rusage before{};
        ::getrusage(RUSAGE_SELF, &before);
        int code = exception_exit;
        try {
            code = f();
        } catch (const std::bad_alloc&) {
            std::_Exit(bad_alloc_exit);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "in_bounded_child: %s\n", e.what());
            std::_Exit(exception_exit);
        }
        rusage after{};
        ::getrusage(RUSAGE_SELF, &after);
        if (static_cast<std::size_t>(after.ru_maxrss - before.ru_maxrss) * 1024 >= limit) std::_Exit(rss_exit);
        std::_Exit(code);
    });
    p.start();
    p.join();
    return p.exitcode().value_or(-1);
}

} // namespace forge
