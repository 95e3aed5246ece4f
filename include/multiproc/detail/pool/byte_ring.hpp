// Not part of the API: single-producer single-consumer byte rings in memory shared with
// children made by fork. The data area of each ring is mapped twice, back to back, so that
// any run of up to `capacity` bytes starting anywhere in it is contiguous: a message that
// wraps around the end is still read and written with one memcpy, and decoded in place.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// The shared indices of one ring. Positions only grow; `tail - head` bytes are readable.
struct ring_indices {
    alignas(64) std::atomic<std::uint64_t> tail; // written by the producer only
    alignas(64) std::atomic<std::uint64_t> head; // written by the consumer only
    alignas(64) notifier readable;              // the consumer sleeps here for data
    notifier writable;                          // the producer sleeps here for room
    std::atomic<std::uint32_t> writer_waiting;  // the producer found the ring full and wants a wake-up
};

/// One end's view of a ring: indices and the (mirrored) data area. The view itself never
/// changes; what it points to does, hence the const members that write.
class byte_ring {
public:
    byte_ring() = default;
    byte_ring(ring_indices* ix, std::byte* data, std::size_t capacity) noexcept
        : ix_(ix), data_(data), cap_(capacity) {}

    [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
    [[nodiscard]] ring_indices& indices() const noexcept { return *ix_; }

    // ---- consumer side
    /// Bytes that can be read now.
    [[nodiscard]] std::size_t readable() const noexcept {
        return static_cast<std::size_t>(ix_->tail.load(std::memory_order_acquire) -
                                        ix_->head.load(std::memory_order_relaxed));
    }
    /// The next unread byte; `readable()` bytes from here are contiguous.
    [[nodiscard]] const std::byte* read_ptr() const noexcept {
        return data_ + (ix_->head.load(std::memory_order_relaxed) % cap_);
    }
    /// Frees `n` read bytes for the producer.
    void consume(std::size_t n) const noexcept {
        ix_->head.store(ix_->head.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }

    /// The byte at stream position `pos` (meaningful while head <= pos < tail).
    [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept { return data_ + (pos % cap_); }

    // ---- producer side
    /// Bytes that can be written now.
    [[nodiscard]] std::size_t writable() const noexcept {
        return cap_ - static_cast<std::size_t>(ix_->tail.load(std::memory_order_relaxed) -
                                               ix_->head.load(std::memory_order_acquire));
    }
    /// Where the next byte goes; `writable()` bytes from here are contiguous.
    [[nodiscard]] std::byte* write_ptr() const noexcept { return data_ + (ix_->tail.load(std::memory_order_relaxed) % cap_); }
    /// Makes `n` written bytes visible to the consumer.
    void publish(std::size_t n) const noexcept {
        ix_->tail.store(ix_->tail.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }
    /// Copies `n <= writable()` bytes in and publishes them.
    void write(const void* p, std::size_t n) const noexcept {
        std::memcpy(write_ptr(), p, n);
        publish(n);
    }
    /// As write, of `n` zero bytes.
    void write_zeros(std::size_t n) const noexcept {
        std::memset(write_ptr(), 0, n);
        publish(n);
    }

private:
    ring_indices* ix_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t cap_ = 0;
};

/// A memfd mapped MAP_SHARED as: a header of `header_size` bytes, then `rings` data areas of
/// `ring_capacity` bytes, each mapped twice in a row. Children made by fork inherit the
/// mappings at the same addresses; a spawn or forkserver child maps the descriptor again
/// (`attach`). Nothing is left behind: the memory goes with the last process that maps it
/// or holds the descriptor.
class mirrored_region {
public:
    mirrored_region() = default;

    static mirrored_region create(std::size_t header_size, std::size_t ring_capacity, int rings, const char* tag) {
        const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        header_size = (header_size + page - 1) / page * page;
        ring_capacity = (ring_capacity + page - 1) / page * page;
        const std::size_t file_size = header_size + ring_capacity * static_cast<std::size_t>(rings);

        sys::unique_fd fd(sys::memfd_create(tag, MFD_CLOEXEC));
        if (!fd) sys::fail(std::string("memfd_create for ") + tag);
        if (sys::ftruncate(fd.get(), static_cast<off_t>(file_size)) != 0) sys::fail(std::string("ftruncate of ") + tag);
        return map(std::move(fd), header_size, ring_capacity, rings, tag);
    }

    /// Maps a region made by `create` in another process, from its descriptor (taken over)
    /// and the sizes `create` rounded (header_bytes(), ring_capacity()).
    static mirrored_region attach(sys::unique_fd fd, std::size_t header_size, std::size_t ring_capacity, int rings,
                                  const char* tag) {
        const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        struct stat st {};
        if (sys::fstat(fd.get(), &st) != 0) sys::fail(std::string("fstat of ") + tag);
        if (header_size % page || ring_capacity % page || ring_capacity == 0 || rings < 1 || rings > 2 ||
            static_cast<std::size_t>(st.st_size) != header_size + ring_capacity * static_cast<std::size_t>(rings))
            detail::raise(serialization_error(std::string("multiproc: the sizes sent with ") + tag + " do not match its memory"));
        return map(std::move(fd), header_size, ring_capacity, rings, tag);
    }

    mirrored_region(mirrored_region&& o) noexcept
        : base_(std::exchange(o.base_, nullptr)), span_(std::exchange(o.span_, 0)), header_(o.header_), cap_(o.cap_),
          fd_(std::move(o.fd_)) {}
    mirrored_region& operator=(mirrored_region&& o) noexcept {
        if (this != &o) {
            unmap();
            base_ = std::exchange(o.base_, nullptr);
            span_ = std::exchange(o.span_, 0);
            header_ = o.header_;
            cap_ = o.cap_;
            fd_ = std::move(o.fd_);
        }
        return *this;
    }
    mirrored_region(const mirrored_region&) = delete;
    mirrored_region& operator=(const mirrored_region&) = delete;
    ~mirrored_region() { unmap(); }

    /// The header, zeroed at creation.
    [[nodiscard]] void* header() const noexcept { return base_; }
    /// The data area of ring `i`: `ring_capacity()` bytes, mirrored.
    [[nodiscard]] std::byte* ring_data(int i) const noexcept {
        return base_ + header_ + 2 * cap_ * static_cast<std::size_t>(i);
    }
    [[nodiscard]] std::size_t ring_capacity() const noexcept { return cap_; }
    [[nodiscard]] std::size_t header_bytes() const noexcept { return header_; }
    /// The memfd behind the region, for a child that must map it again.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    static mirrored_region map(sys::unique_fd fd, std::size_t header_size, std::size_t ring_capacity, int rings,
                               const char* tag) {
        const std::size_t span = header_size + 2 * ring_capacity * static_cast<std::size_t>(rings);
        // Reserve the whole span, then lay the file over it piece by piece.
        void* base = sys::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (!base) sys::fail(std::string("mmap (reserving) for ") + tag);
        mirrored_region r;
        r.base_ = static_cast<std::byte*>(base);
        r.span_ = span;
        r.header_ = header_size;
        r.cap_ = ring_capacity;
        auto place = [&](std::size_t at, std::size_t len, std::size_t file_off) {
            void* p = sys::mmap(r.base_ + at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd.get(),
                                static_cast<off_t>(file_off));
            if (!p) sys::fail(std::string("mmap of ") + tag);
        };
        place(0, header_size, 0);
        for (int i = 0; i < rings; ++i) {
            std::size_t file_off = header_size + ring_capacity * static_cast<std::size_t>(i);
            std::size_t at = header_size + 2 * ring_capacity * static_cast<std::size_t>(i);
            place(at, ring_capacity, file_off);
            place(at + ring_capacity, ring_capacity, file_off);
        }
        r.fd_ = std::move(fd);
        return r;
    }

    void unmap() noexcept {
        if (base_) (void)sys::munmap(base_, span_);
        base_ = nullptr;
        span_ = 0;
    }
    std::byte* base_ = nullptr;
    std::size_t span_ = 0, header_ = 0, cap_ = 0;
    sys::unique_fd fd_; // kept for spawn and forkserver workers (close-on-exec)
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
