// Not part of the API: memory shared between a process and the children it starts.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>

#include <cstddef>
#include <new>
#include <string>
#include <utility>

#include <sys/mman.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A read-write MAP_SHARED mapping of an anonymous memfd: children made by fork share it;
/// it can also be handed to an unrelated process as a descriptor (spawn, forkserver).
/// Nothing appears in /dev/shm, and the memory is freed when the last process that maps
/// it or holds its descriptor is gone, however it died. The memory starts zeroed.
class shared_region {
public:
    shared_region() = default;

    /// Creates a region of `size` bytes (rounded up to pages); `tag` names it in
    /// /proc/<pid>/maps for debugging. Keeps the descriptor only if `keep_fd`.
    static shared_region create(std::size_t size, const char* tag = "multiproc", bool keep_fd = true) {
        if (size == 0) size = 1;
        sys::unique_fd fd(sys::memfd_create(tag, MFD_CLOEXEC));
        if (!fd) sys::fail(std::string("memfd_create for ") + tag);
        std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        size = (size + page - 1) / page * page;
        if (sys::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) sys::fail(std::string("ftruncate of ") + tag);
        void* p = sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (!p) sys::fail(std::string("mmap of ") + tag);
        shared_region r;
        r.data_ = p;
        r.size_ = size;
        if (keep_fd) r.fd_ = std::move(fd);
        return r;
    }

    /// Maps the region behind a descriptor received from another process; takes ownership.
    static shared_region attach(int raw_fd) {
        sys::unique_fd fd(raw_fd);
        struct stat st {};
        if (sys::fstat(fd.get(), &st) != 0) sys::fail("fstat of a shared region");
        return map(std::move(fd), static_cast<std::size_t>(st.st_size), 0, "a shared region");
    }

    /// Maps the first `size` bytes (> 0) behind `fd`, read-write and shared, with mmap's
    /// `extra_flags` (MAP_POPULATE...); keeps the descriptor. `what` names it in errors.
    static shared_region map(sys::unique_fd fd, std::size_t size, int extra_flags, const std::string& what) {
        void* p = sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | extra_flags, fd.get(), 0);
        if (!p) sys::fail("mmap of " + what);
        shared_region r;
        r.data_ = p;
        r.size_ = size;
        r.fd_ = std::move(fd);
        return r;
    }

    shared_region(shared_region&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), fd_(std::move(o.fd_)) {}
    shared_region& operator=(shared_region&& o) noexcept {
        if (this != &o) {
            unmap();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            fd_ = std::move(o.fd_);
        }
        return *this;
    }
    shared_region(const shared_region&) = delete;
    shared_region& operator=(const shared_region&) = delete;
    ~shared_region() { unmap(); }

    [[nodiscard]] void* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The memfd, or -1 if it was not kept.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    explicit operator bool() const noexcept { return data_ != nullptr; }

    /// Constructs a T at the start of the region (call once, in the creator).
    template <class T, class... Args>
    T* construct(Args&&... args) {
        static_assert(alignof(T) <= 4096, "multiproc: over-aligned type in a shared region");
        return ::new (data_) T(std::forward<Args>(args)...);
    }
    template <class T>
    [[nodiscard]] T* as() const noexcept {
        return std::launder(static_cast<T*>(data_));
    }

private:
    void unmap() noexcept {
        if (data_) sys::munmap(data_, size_);
        data_ = nullptr;
        size_ = 0;
        fd_.reset();
    }

    void* data_ = nullptr;
    std::size_t size_ = 0;
    sys::unique_fd fd_;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
