/// @file shared_memory.hpp
/// Named shared memory that unrelated processes can attach to (Python:
/// multiprocessing.shared_memory.SharedMemory).
///
/// The roles are explicit: the process that creates a segment owns its name and removes it
/// (unlink) when its object is destroyed, if nobody did before; an attacher never removes
/// it, so there is no resource-tracker surprise as in CPython. A segment is a name in
/// /dev/shm: one left by an owner killed with SIGKILL stays there. Objects shared only with
/// children (lock, value, array, ...) use anonymous memory instead and never leave one.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/crossing.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// A block of shared memory with a name (Python: SharedMemory). `buf()` is its bytes.
/// Copies are new attachments to the same segment (attachers, even when copied from the
/// owner); moves carry the role along.
class shared_memory {
public:
    /// Python: SharedMemory(name, create=False, size=0). With `create`, makes a segment of
    /// `size` bytes called `name` (a random `psm_xxxxxxxx` if empty), mode 0600, and owns
    /// it; os_error (EEXIST) if the name is taken. Without, attaches to the segment `name`,
    /// whatever its size; os_error (ENOENT) if there is none. `size` is any integer type,
    /// checked by value: a negative one, or one past the largest file size, is a
    /// value_error, as is a name with a NUL byte in it.
    template <std::integral Size = std::size_t>
        requires(!std::same_as<Size, bool>)
    explicit shared_memory(std::string_view name, bool create = false, Size size = 0) {
        const std::size_t checked = checked_size(size);
        if (create)
            make(name, checked);
        else
            open_existing(name);
    }

    /// Creates and owns a new segment of `size` bytes (Python: SharedMemory(create=True, size=n)).
    template <std::integral Size>
        requires(!std::same_as<Size, bool>)
    [[nodiscard]] static shared_memory create(Size size, std::string_view name = {}) {
        return shared_memory(name, true, size);
    }
    /// Attaches to the existing segment `name` (Python: SharedMemory(name)).
    [[nodiscard]] static shared_memory attach(std::string_view name) { return shared_memory(name, false); }

    shared_memory(const shared_memory& o) : name_(o.name_) {
        if (o.fd_) map(sys_checked(detail::sys::fcntl(o.fd_.get(), F_DUPFD_CLOEXEC), "dup of the descriptor of"), o.size_);
    }
    shared_memory& operator=(const shared_memory& o) {
        if (this != &o) *this = shared_memory(o);
        return *this;
    }
    shared_memory(shared_memory&& o) noexcept
        : name_(std::move(o.name_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
          fd_(std::move(o.fd_)), owner_pid_(std::exchange(o.owner_pid_, 0)) {}
    shared_memory& operator=(shared_memory&& o) noexcept {
        if (this != &o) {
            finish();
            name_ = std::move(o.name_);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            fd_ = std::move(o.fd_);
            owner_pid_ = std::exchange(o.owner_pid_, 0);
        }
        return *this;
    }
    /// Closes; the owner also unlinks the name, if nobody has (only in the process that
    /// created it, never in a child that inherited the object).
    ~shared_memory() { finish(); }

    /// The bytes (Python: buf); empty once closed.
    [[nodiscard]] std::span<std::byte> buf() const noexcept { return {static_cast<std::byte*>(data_), data_ ? size_ : 0}; }
    /// The name without its leading slash, as Python gives it (Python: name).
    [[nodiscard]] std::string name() const { return name_.empty() ? name_ : name_.substr(1); }
    /// The size in bytes (Python: size).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// Whether this object created the segment and will unlink it.
    [[nodiscard]] bool is_owner() const noexcept { return owner_pid_ == ::getpid(); }

    /// Unmaps the memory and closes the descriptor; the segment stays (Python: close()).
    /// Closing twice is harmless.
    void close() noexcept {
        if (data_) detail::sys::munmap(data_, size_);
        data_ = nullptr;
        fd_.reset();
    }

    /// Removes the name, so no new process can attach; the memory lives on until every
    /// process has closed it (Python: unlink()). Any process may call it; os_error (ENOENT)
    /// if the name is already gone.
    void unlink() {
        owner_pid_ = 0; // done: the destructor has nothing left to remove
        if (detail::sys::shm_unlink(name_.c_str()) != 0) detail::sys::fail("cannot unlink shared memory '" + name_ + "'");
    }

    /// Python's repr: `SharedMemory('psm_1a2b3c4d', size=4096)`.
    friend std::ostream& operator<<(std::ostream& os, const shared_memory& m) {
        return os << "SharedMemory('" << m.name() << "', size=" << m.size_ << ')';
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child attaches to the same segment through its descriptor (so it works even once the
    /// name is unlinked), as an attacher: it never unlinks.
    void cross_out(crossing_writer& w) const {
        if (!data_) detail::raise(value_error("multiproc: a closed shared_memory cannot cross into a child"));
        w.put_string(name_);
        w.put<std::uint64_t>(size_);
        w.put_fd(fd_.get());
    }
    /// In the child: the segment cross_out sent.
    static shared_memory cross_in(crossing_reader& r) {
        shared_memory m;
        m.name_ = r.get_string();
        const auto size = r.get<std::uint64_t>();
        auto fd = r.take_fd();
        struct stat st {};
        m.sys_checked(detail::sys::fstat(fd.get(), &st), "fstat of");
        if (size == 0 || size > static_cast<std::uint64_t>(st.st_size))
            detail::raise(serialization_error("multiproc: shared memory '" + m.name_ + "' sent to the child is smaller than said"));
        m.map(fd.release(), static_cast<std::size_t>(size));
        return m;
    }

private:
    shared_memory() = default;

    int sys_checked(int r, const char* what) const {
        if (r < 0) detail::sys::fail(std::string(what) + " shared memory '" + name_ + "'");
        return r;
    }

    // Python's checks on `size` (negative first, whether or not creating), by value, so a
    // negative signed argument is never wrapped into a huge unsigned one.
    template <class Size>
    static std::size_t checked_size(Size size) {
        if constexpr (std::is_signed_v<Size>)
            if (size < 0)
                detail::raise(value_error("multiproc: 'size' must be a positive integer, not " +
                                  std::to_string(static_cast<long long>(size))));
        if (static_cast<std::uintmax_t>(size) > static_cast<std::uintmax_t>(std::numeric_limits<off_t>::max()))
            detail::raise(value_error("multiproc: 'size' " + std::to_string(static_cast<std::uintmax_t>(size)) +
                              " is larger than any shared memory segment can be"));
        return static_cast<std::size_t>(size);
    }

    // The name as shm_open wants it; a NUL byte would silently cut it short there.
    static std::string with_slash(std::string_view name) {
        if (const auto nul = name.find('\0'); nul != std::string_view::npos)
            detail::raise(value_error("multiproc: shared memory name has an embedded NUL byte at position " +
                              std::to_string(nul) + " (after '" + std::string(name.substr(0, nul)) + "')"));
        std::string n(name);
        if (n.empty() || n.front() != '/') n.insert(n.begin(), '/');
        return n;
    }

    static std::string random_name() {
        std::uint32_t r = 0;
        if (detail::sys::getrandom_all(&r, sizeof r) != 0) detail::sys::fail("getrandom for a shared memory name");
        char buf[16];
        std::snprintf(buf, sizeof buf, "/psm_%08x", static_cast<unsigned>(r));
        return buf;
    }

    void make(std::string_view name, std::size_t size) {
        if (size == 0) detail::raise(value_error("multiproc: 'size' must be a positive number different from zero"));
        int fd = -1;
        for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
            name_ = name.empty() ? random_name() : with_slash(name);
            fd = detail::sys::shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
            if (fd < 0 && (errno != EEXIST || !name.empty())) break;
        }
        sys_checked(fd, "cannot create");
        detail::sys::unique_fd guard(fd);
        MULTIPROC_TRY {
            if (detail::sys::ftruncate(fd, static_cast<off_t>(size)) != 0)
                detail::sys::fail("cannot size shared memory '" + name_ + "' to " + std::to_string(size) + " bytes");
            map(guard.release(), size);
        } MULTIPROC_CATCH_ALL {
            detail::sys::shm_unlink(name_.c_str()); // leave no half-made segment behind
            MULTIPROC_RETHROW;
        }
        owner_pid_ = ::getpid();
    }

    void open_existing(std::string_view name) {
        if (name.empty()) detail::raise(value_error("multiproc: 'name' can only be None if create=True"));
        name_ = with_slash(name);
        detail::sys::unique_fd fd(sys_checked(detail::sys::shm_open(name_.c_str(), O_RDWR | O_CLOEXEC, 0600),
                                              "cannot attach to"));
        struct stat st {};
        sys_checked(detail::sys::fstat(fd.get(), &st), "fstat of");
        if (st.st_size == 0) detail::raise(value_error("multiproc: cannot mmap an empty file: shared memory '" + name_ + "' has size 0"));
        map(fd.release(), static_cast<std::size_t>(st.st_size));
    }

    // Maps `size` bytes of `fd`, taking ownership of the descriptor.
    void map(int fd, std::size_t size) {
        detail::sys::unique_fd guard(fd);
        void* p = detail::sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (!p) detail::sys::fail("mmap of shared memory '" + name_ + "'");
        data_ = p;
        size_ = size;
        fd_ = std::move(guard);
    }

    void finish() noexcept {
        close();
        if (is_owner()) detail::sys::shm_unlink(name_.c_str());
        owner_pid_ = 0;
    }

    std::string name_; // with the leading slash
    void* data_ = nullptr;
    std::size_t size_ = 0;
    detail::sys::unique_fd fd_;
    pid_t owner_pid_ = 0; // the creating process, while it still owns the name
};

MULTIPROC_ABI_END } // namespace multiproc
