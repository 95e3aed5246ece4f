// Not part of the API: where locks, semaphores, values and arrays live. Small objects are
// carved from 64 KiB chunks of anonymous shared memory (memfd), so a thousand locks cost a
// few descriptors and pages, not a thousand of each; large ones get a region of their own.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/os/shared_region.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

#include <pthread.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A memfd region that objects are carved from. Its first bytes count what has been handed
/// out, in shared memory, so that a forked child allocating from an inherited chunk and
/// its parent never hand out the same bytes. Slots are never reused: the memory goes back
/// to the system when no process maps the chunk any more.
struct arena_chunk {
    shared_region region;

    struct header {
        std::atomic<std::size_t> used;
    };

    /// `size` bytes at a 64-byte boundary, or nullptr if the chunk is full.
    void* take(std::size_t size) noexcept {
        auto* h = region.as<header>();
        std::size_t off = h->used.fetch_add(size, std::memory_order_relaxed);
        if (off + size > region.size() || off + size < off) return nullptr;
        return static_cast<char*>(region.data()) + off;
    }
};

/// A place in shared memory and what keeps it mapped in this process. It is also what
/// another process needs to map the same place: the chunk's descriptor and an offset.
struct shared_block {
    std::shared_ptr<arena_chunk> chunk;
    void* ptr = nullptr;

    shared_block() = default;
    shared_block(std::shared_ptr<arena_chunk> c, void* p) noexcept : chunk(std::move(c)), ptr(p) {}
    // Copies only: a "moved-from" object still refers to its memory, as a Python object would.
    shared_block(const shared_block&) = default;
    shared_block& operator=(const shared_block&) = default;
    ~shared_block() = default;

    /// The memfd behind the block (to pass to a spawned process with SCM_RIGHTS).
    [[nodiscard]] int fd() const noexcept { return chunk ? chunk->region.fd() : -1; }
    /// Where the block starts in that memfd.
    [[nodiscard]] std::size_t offset() const noexcept {
        return chunk ? static_cast<std::size_t>(static_cast<char*>(ptr) - static_cast<char*>(chunk->region.data())) : 0;
    }

    /// For a spawn or forkserver child: the chunk's descriptor and the block's offset.
    void cross_out(crossing_writer& w) const {
        w.put_fd(fd());
        w.put<std::uint64_t>(offset());
    }
    /// In the child: maps the chunk sent by cross_out and finds the block of `size` bytes.
    static shared_block cross_in(crossing_reader& r, std::size_t size) {
        auto fd = r.take_fd();
        const auto off = r.get<std::uint64_t>();
        auto c = std::make_shared<arena_chunk>();
        c->region = shared_region::attach(fd.release());
        if (off > c->region.size() || size > c->region.size() - off)
            detail::raise(serialization_error("multiproc: a shared object sent to the child lies outside its memory"));
        return {c, static_cast<char*>(c->region.data()) + off};
    }
};

/// The chunk this process currently carves from. Held weakly: once every object in it is
/// gone, the chunk is unmapped and its descriptor closed, so nothing lingers.
class arena {
public:
    static constexpr std::size_t chunk_size = 64 * 1024;
    static constexpr std::size_t slot_align = 64; // a cache line: no false sharing between locks
    static constexpr std::size_t own_region_above = chunk_size / 4;

    /// The arena of this process: constant-initialised and never destroyed, so that a forked
    /// child never finds it half-made by a thread it does not have, and objects may outlive
    /// static destruction.
    static arena& instance() noexcept;

    /// Zeroed shared memory for an object of `size` bytes, 64-byte aligned.
    shared_block allocate(std::size_t size) {
        size = (std::max<std::size_t>(size, 1) + slot_align - 1) / slot_align * slot_align;
        if (size > own_region_above) {
            auto c = std::make_shared<arena_chunk>();
            c->region = shared_region::create(size, "multiproc-shared");
            return {c, c->region.data()};
        }
        std::lock_guard lk(mu_);
        if (auto c = current_.lock())
            if (void* p = c->take(size)) return {std::move(c), p};
        auto c = std::make_shared<arena_chunk>();
        c->region = shared_region::create(chunk_size, "multiproc-sync");
        c->region.construct<arena_chunk::header>()->used.store(slot_align, std::memory_order_relaxed);
        void* p = c->take(size);
        current_ = c;
        return {std::move(c), p};
    }

    // Held across fork, so that a child never inherits it locked by a thread it lacks.
    static void before_fork() noexcept { instance().mu_.lock(); }
    static void after_fork() noexcept { instance().mu_.unlock(); }

private:
    friend union sys::never_destroyed<arena>;
    constexpr arena() = default;

    std::mutex mu_;
    std::weak_ptr<arena_chunk> current_;
};

inline constinit sys::never_destroyed<arena> the_arena;
inline arena& arena::instance() noexcept { return the_arena.value; }
/// Registered during static initialisation, before main and any thread (see never_destroyed).
inline const int arena_fork_handlers = sys::at_fork(&arena::before_fork, &arena::after_fork, &arena::after_fork);

/// A `T` in shared memory, and the chunk that keeps it mapped. Copies refer to the same
/// object: this is how every shared object is passed to a child under start::fork.
template <class T>
class shared_ptr_in_arena {
public:
    shared_ptr_in_arena() = default;
    // Copies only: moving a lock or a value leaves a usable object behind.
    shared_ptr_in_arena(const shared_ptr_in_arena&) = default;
    shared_ptr_in_arena& operator=(const shared_ptr_in_arena&) = default;
    ~shared_ptr_in_arena() = default;

    /// Makes a T in fresh shared memory with `extra` bytes after it (for trailing arrays).
    template <class... Args>
    static shared_ptr_in_arena make(std::size_t extra, Args&&... args) {
        static_assert(alignof(T) <= arena::slot_align, "multiproc: over-aligned type in shared memory");
        shared_ptr_in_arena s;
        s.block_ = arena::instance().allocate(sizeof(T) + extra);
        s.ptr_ = ::new (s.block_.ptr) T(std::forward<Args>(args)...);
        return s;
    }

    [[nodiscard]] T* get() const noexcept { return ptr_; }
    T* operator->() const noexcept { return ptr_; }
    T& operator*() const noexcept { return *ptr_; }
    /// The bytes after the T (`extra` at make()).
    [[nodiscard]] void* trailing() const noexcept { return ptr_ + 1; }
    [[nodiscard]] const shared_block& block() const noexcept { return block_; }

    /// For a spawn or forkserver child: the memory's descriptor and where the T is in it.
    void cross_out(crossing_writer& w) const { block_.cross_out(w); }
    /// In the child: the same T, mapped from what cross_out sent.
    static shared_ptr_in_arena cross_in(crossing_reader& r) {
        shared_ptr_in_arena s;
        s.block_ = shared_block::cross_in(r, sizeof(T));
        s.ptr_ = std::launder(static_cast<T*>(s.block_.ptr));
        return s;
    }

private:
    shared_block block_;
    T* ptr_ = nullptr;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
