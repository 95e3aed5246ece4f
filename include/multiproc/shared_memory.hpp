/// @file shared_memory.hpp
/// Named shared memory that unrelated processes can attach to (Python:
/// multiprocessing.shared_memory.SharedMemory), and a list of scalars and strings stored in
/// one (Python: multiprocessing.shared_memory.ShareableList).
///
/// The roles are explicit: the process that creates a segment owns its name and removes it
/// (unlink) when its object is destroyed, if nobody did before; an attacher never removes
/// it, so there is no resource-tracker surprise as in CPython. A segment is a name in
/// /dev/shm: one left by an owner killed with SIGKILL stays there. Objects shared only with
/// children (lock, value, array, ...) use anonymous memory instead and never leave one.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/crossing.hpp>
#include <multiproc/detail/os/segment_reaper.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE // (glibc before 2.29; the kernel's value, linux/fcntl.h)
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {
/// Python's checks on a segment's `size` (negative first, whether or not creating), by
/// value, so a negative signed argument is never wrapped into a huge unsigned one
/// (shared_memory, and shared_memory_manager's segments).
template <class Size>
std::size_t checked_segment_size(Size size) {
    if constexpr (std::is_signed_v<Size>)
        if (size < 0)
            raise(value_error("multiproc: 'size' must be a positive integer, not " +
                              std::to_string(static_cast<long long>(size))));
    if (static_cast<std::uintmax_t>(size) > static_cast<std::uintmax_t>(std::numeric_limits<off_t>::max()))
        raise(value_error("multiproc: 'size' " + std::to_string(static_cast<std::uintmax_t>(size)) +
                          " is larger than any shared memory segment can be"));
    return static_cast<std::size_t>(size);
}
} // namespace detail

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
        const std::size_t checked = detail::checked_segment_size(size);
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
          fd_(std::move(o.fd_)), owner_pid_(std::exchange(o.owner_pid_, 0)), reaped_(std::exchange(o.reaped_, 0)),
          ino_(std::exchange(o.ino_, 0)) {}
    shared_memory& operator=(shared_memory&& o) noexcept {
        if (this != &o) {
            finish();
            name_ = std::move(o.name_);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            fd_ = std::move(o.fd_);
            owner_pid_ = std::exchange(o.owner_pid_, 0);
            reaped_ = std::exchange(o.reaped_, 0);
            ino_ = std::exchange(o.ino_, 0);
        }
        return *this;
    }
    /// Closes; the owner also unlinks the name, if nobody has (only in the process that
    /// created it, never in a child that inherited the object), and only if the name is
    /// still its segment: one made since under a name someone else unlinked stays.
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
        const bool mine = is_owner();
        owner_pid_ = 0; // done: the destructor has nothing left to remove
        const int r = detail::sys::shm_unlink(name_.c_str());
        const int e = errno;
        if (mine) unreap();
        if (r != 0) detail::sys::fail("cannot unlink shared memory '" + name_ + "'", e);
    }

    /// Python's repr: `SharedMemory('psm_1a2b3c4d', size=4096)`.
    friend std::ostream& operator<<(std::ostream& os, const shared_memory& m) {
        return os << "SharedMemory('" << m.name() << "', size=" << m.size_ << ')';
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child attaches to the same segment through its descriptor (so it works even once the
    /// name is unlinked), as an attacher: it never unlinks.
    void cross_out(crossing_writer& w) const {
        if (!data_) detail::raise(value_error("multiproc: a closed shared_memory cannot be sent (to a child, or through a connection or a queue)"));
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
        // A failure from here on removes the name before it is raised (no half-made segment
        // is left behind): without exceptions the error handler runs at the raise, and
        // nothing after it would.
        const auto unlinked = [&] { // -> the errno of the failure
            const int e = errno;
            detail::sys::shm_unlink(name_.c_str());
            return e;
        };
        detail::sys::unique_fd guard(fd);
        if (detail::sys::ftruncate(fd, static_cast<off_t>(size)) != 0) {
            const int e = unlinked();
            detail::sys::fail("cannot size shared memory '" + name_ + "' to " + std::to_string(size) + " bytes", e);
        }
        void* p = detail::sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (!p) {
            const int e = unlinked();
            detail::sys::fail("mmap of shared memory '" + name_ + "'", e);
        }
        struct stat st {};
        const bool known = detail::sys::fstat(fd, &st) == 0;
        adopt(p, size, std::move(guard));
        owner_pid_ = ::getpid();
        ino_ = known ? static_cast<std::uint64_t>(st.st_ino) : 0;
        // From here the name goes with this process however it ends (design §5.5).
        reaped_ = known ? detail::segment_reaper::made(name_, st.st_ino) : 0;
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
        adopt(p, size, std::move(guard));
    }
    void adopt(void* p, std::size_t size, detail::sys::unique_fd fd) noexcept {
        data_ = p;
        size_ = size;
        fd_ = std::move(fd);
    }

    void finish() noexcept {
        close();
        if (is_owner()) {
            // (Any process may unlink the name, and another then make a segment of its own
            // under it: that one is not this owner's to remove.)
            (void)detail::segment_reaper::remove_if_same(name_, ino_);
            unreap();
        }
        owner_pid_ = 0;
    }
    /// Tells this process's segment reaper that the name it was told of is removed.
    void unreap() noexcept {
        if (const auto t = std::exchange(reaped_, 0)) detail::segment_reaper::removed(t, name_);
    }

    std::string name_; // with the leading slash
    void* data_ = nullptr;
    std::size_t size_ = 0;
    detail::sys::unique_fd fd_;
    pid_t owner_pid_ = 0; // the creating process, while it still owns the name
    detail::segment_reaper::ticket reaped_ = 0; // which segment reaper of the owner's knows the name (detail/os/segment_reaper.hpp)
    std::uint64_t ino_ = 0; // the owner's: the segment's inode (0: unknown, the name is unlinked whatever it is)
};

/// Anonymous shared memory to fill in place and send through a connection or a queue of
/// any transport without copying its bytes (issue 20): the pages travel, not the bytes.
/// `page_buffer b(n)` maps `n` zeroed bytes of a sealed memfd (nothing appears in
/// /dev/shm); send or put it, and the receiver gets a page_buffer that maps the same pages,
/// however large, in the time a small message takes (its descriptor goes by SCM_RIGHTS or
/// through the sender's resource sharer, as every object with descriptors does). Both ends
/// then see the same memory: as with a move, the sender should not write to it after
/// sending. The memory is freed when the last process that maps it is done, however it
/// ended. Its size is sealed (F_SEAL_SHRINK, F_SEAL_GROW), and a receiver checks the seals
/// and the size before mapping, so a sender cannot make the receiver's reads fault.
/// A copy is another mapping of the same pages; it crosses into spawn and forkserver
/// children as a process argument too.
/// No Python counterpart (CPython's nearest is a SharedMemory whose name is sent).
class page_buffer {
public:
    /// No memory: size 0.
    page_buffer() = default;
    /// `size` zeroed bytes (0: an empty buffer, which crosses as one); value_error if no
    /// file can be that large (more than the largest off_t), os_error if the memory cannot
    /// be had.
    explicit page_buffer(std::size_t size) {
        if (size == 0) return;
        if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max()))
            detail::raise(value_error("multiproc: page_buffer: 'size' " + std::to_string(size) +
                                      " is larger than any memfd can be"));
        detail::sys::unique_fd fd(detail::sys::memfd_create("multiproc-page-buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (!fd) detail::sys::fail("memfd_create for a page_buffer");
        if (detail::sys::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
            detail::sys::fail("ftruncate of a page_buffer of " + std::to_string(size) + " bytes");
        if (detail::sys::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
            detail::sys::fail("sealing a page_buffer");
        region_ = map(std::move(fd), size, 0);
    }

    /// Another mapping of the same pages (as a receiver gets).
    page_buffer(const page_buffer& o) {
        if (o.empty()) return;
        detail::sys::unique_fd fd(detail::sys::fcntl(o.region_.fd(), F_DUPFD_CLOEXEC, 0));
        if (!fd) detail::sys::fail("dup of a page_buffer's memfd");
        region_ = map(std::move(fd), o.size(), 0);
    }
    page_buffer& operator=(const page_buffer& o) {
        if (this != &o) *this = page_buffer(o);
        return *this;
    }
    page_buffer(page_buffer&&) noexcept = default;
    page_buffer& operator=(page_buffer&&) noexcept = default;

    [[nodiscard]] std::byte* data() const noexcept { return static_cast<std::byte*>(region_.data()); }
    [[nodiscard]] std::size_t size() const noexcept { return region_.size(); }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    /// The bytes, writable.
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data(), size()}; }

    /// Sending: the memfd and the size (the receiver maps the same pages). The memfd is
    /// marked as pages: connections of every local transport carry it, alone or in a
    /// container (a kernel pipe through the sender's resource sharer, which a pipe refuses
    /// for other objects with descriptors).
    void cross_out(crossing_writer& w) const {
        w.put<std::uint64_t>(size());
        if (!empty()) detail::crossing_pages::put(w, region_.fd());
    }
    /// Receiving: maps what cross_out sent, after checking that it is a memfd whose size is
    /// sealed, that is at least what the message says and that may still be written
    /// (else `serialization_error`, naming which). If the sender wrote every
    /// page, their page tables are filled at once (MAP_POPULATE: cheaper than a fault per
    /// page on first touch); pages it never wrote are not made here, so a buffer of a size
    /// no machine has costs only what the receiver touches (docs/design/queues.md §6a).
    static page_buffer cross_in(crossing_reader& r) {
        page_buffer b;
        const auto size = r.get<std::uint64_t>();
        if (size == 0) return b;
        auto fd = r.take_fd();
        struct stat st {};
        if (detail::sys::fstat(fd.get(), &st) != 0) detail::sys::fail("fstat of a page_buffer received");
        const int seals = detail::sys::fcntl(fd.get(), F_GET_SEALS);
        constexpr int needed = F_SEAL_SHRINK | F_SEAL_GROW;
        const char* wrong = seals < 0                   ? "its descriptor is not a memfd (no seals can be read)"
                            : (seals & needed) != needed ? "the memfd's size is not sealed (it could shrink under the reader)"
                            : (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0
                                ? "the memfd is sealed against writing (a page_buffer is writable)"
                            : static_cast<std::uint64_t>(st.st_size) < size ? "the memfd is smaller than the message says"
                            : size > std::numeric_limits<std::size_t>::max()  ? "it is larger than this process can map"
                                                                              : nullptr;
        if (wrong)
            detail::raise(serialization_error("multiproc: a page_buffer received is not what its message says: " +
                                              std::string(wrong) + " (" + std::to_string(size) +
                                              " bytes said, the descriptor has " + std::to_string(st.st_size) + ")"));
        const bool written = static_cast<std::uint64_t>(st.st_blocks) * 512 >= size; // (st_blocks: 512-byte units)
        b.region_ = map(std::move(fd), static_cast<std::size_t>(size), written ? MAP_POPULATE : 0);
        return b;
    }

private:
    static detail::shared_region map(detail::sys::unique_fd fd, std::size_t size, int flags) {
        return detail::shared_region::map(std::move(fd), size, flags, "a page_buffer of " + std::to_string(size) + " bytes");
    }

    detail::shared_region region_; // its size is the buffer's (not rounded to pages)
};

/// A fixed-length list of scalars and strings in one shared memory segment, which other
/// processes attach to by name (Python: multiprocessing.shared_memory.ShareableList). Each
/// element is None, an integer, a float, a bool, a string or bytes (`item`); an element may
/// be replaced by one of another kind as long as it fits the room its slot was made with
/// (a string or bytes: its length at creation rounded up to 8 bytes, at least 8; other
/// kinds: 8). The layout is CPython's (3.8 to 3.12 on Linux, little-endian), so a Python
/// program attaches to a list made here by its name, and the reverse. As in Python, strings
/// and bytes lose trailing NUL bytes, and nothing serializes concurrent writers.
///
/// Copies are attachments to the same list; the one that created the segment owns it and
/// removes its name when destroyed (see shared_memory). It crosses into spawn and forkserver
/// children as a process argument.
class shareable_list {
public:
    /// One element (Python: None, int, float, bool, str, bytes).
    using item = std::variant<std::monostate, std::int64_t, double, bool, std::string, std::vector<std::byte>>;
    /// The longest str or bytes item, in bytes: its slot's format, "<room>s", must fit the 8
    /// bytes the layout gives it (a room of 9,999,992: "9999992s"). A list with a longer one
    /// is a value_error (CPython: an AssertionError) when it is made.
    static constexpr std::size_t max_string = 9'999'991;

    /// Creates a list of `items` in a new segment named `name` (a random one if empty)
    /// (Python: ShareableList(sequence, name=name)).
    explicit shareable_list(const std::vector<item>& items, std::string_view name = {})
        : shareable_list(items, shared_memory(name, true, size_for(items))) {}

    /// Lays out a list of `items` in `segment`, which must have size_for(items) bytes at
    /// least (value_error otherwise): for a segment made elsewhere (shared_memory_manager).
    shareable_list(const std::vector<item>& items, shared_memory segment) : shm_(std::move(segment)) {
        if (shm_.size() < size_for(items))
            detail::raise(value_error("multiproc: shareable_list: the segment has " + std::to_string(shm_.size()) +
                                      " bytes, the list needs " + std::to_string(size_for(items))));
        const std::size_t n = items.size();
        put<std::int64_t>(0, static_cast<std::int64_t>(n));
        std::size_t off = 0;
        put<std::int64_t>(8, 0);
        for (std::size_t i = 0; i < n; ++i) {
            off += room_of(items[i]);
            put<std::int64_t>(8 * (i + 2), static_cast<std::int64_t>(off));
        }
        load_offsets();
        for (std::size_t i = 0; i < n; ++i) store(i, items[i], true);
    }

    /// Attaches to the list in the segment `name` (Python: ShareableList(name=name));
    /// os_error (ENOENT) if there is none, value_error if the segment does not hold one.
    static shareable_list attach(std::string_view name) { return shareable_list(shared_memory::attach(name)); }

    /// The number of elements (Python: len()).
    [[nodiscard]] std::size_t size() const noexcept { return offsets_.empty() ? 0 : offsets_.size() - 1; }

    /// The element at `i` (negative: from the end); index_error out of range (Python: sl[i]).
    [[nodiscard]] item operator[](std::int64_t i) const { return load(position(i)); }
    [[nodiscard]] item at(std::int64_t i) const { return load(position(i)); }

    /// Replaces the element at `i` (Python: sl[i] = v); value_error if a string or bytes is
    /// longer than its slot ("exceeds available storage", as Python).
    void set(std::int64_t i, const item& v) { store(position(i), v, false); }

    /// How many elements equal `v` (Python: count()). Equal means of the same kind and
    /// value (std::variant's ==): an int 1, a float 1.0 and true are three different
    /// elements, where Python's `1 == 1.0 == True` counts them all. So for index().
    [[nodiscard]] std::size_t count(const item& v) const {
        std::size_t c = 0;
        for (std::size_t i = 0; i < size(); ++i) c += load(i) == v ? 1 : 0;
        return c;
    }
    /// The position of the first element equal to `v`; value_error if none (Python: index()).
    [[nodiscard]] std::size_t index(const item& v) const {
        for (std::size_t i = 0; i < size(); ++i)
            if (load(i) == v) return i;
        detail::raise(value_error("multiproc: shareable_list.index: the value is not in the list"));
    }
    /// Every element (Python: list(sl)).
    [[nodiscard]] std::vector<item> to_vector() const {
        std::vector<item> out;
        for (std::size_t i = 0; i < size(); ++i) out.push_back(load(i));
        return out;
    }
    /// The struct format of the elements, as Python's `format` ("q", "d", "xxxxxxx?" for a
    /// bool, "xxxxxx?x" for None, "16s" for a string or bytes slot of 16 bytes).
    [[nodiscard]] std::string format() const {
        std::string f;
        for (std::size_t i = 0; i < size(); ++i) f += format_at(i);
        return f;
    }
    /// The segment (Python: shm); its name is the list's.
    [[nodiscard]] const shared_memory& shm() const noexcept { return shm_; }
    [[nodiscard]] std::string name() const { return shm_.name(); }

    /// Crossing into a start::spawn or start::forkserver child: the segment crosses.
    void cross_out(crossing_writer& w) const { shm_.cross_out(w); }
    static shareable_list cross_in(crossing_reader& r) { return shareable_list(shared_memory::cross_in(r)); }

private:
    static constexpr std::size_t align = 8;
    enum code : std::int8_t { plain = 0, text = 1, raw = 2, none = 3 }; // Python's back-transform codes

    explicit shareable_list(shared_memory m) : shm_(std::move(m)) {
        if (shm_.size() < 16) bad("it is smaller than a list's header");
        const auto n = get<std::int64_t>(0);
        if (n < 0 || static_cast<std::uint64_t>(n) > (shm_.size() - 16) / 17) bad("its element count is impossible");
        load_offsets();
    }

    [[noreturn]] void bad(const char* why) const {
        detail::raise(value_error("multiproc: shared memory '" + shm_.name() + "' does not hold a shareable_list: " + why));
    }

    static std::size_t bytes_of(const item& v) {
        if (auto* s = std::get_if<std::string>(&v)) return s->size();
        if (auto* b = std::get_if<std::vector<std::byte>>(&v)) return b->size();
        return 0;
    }
    static bool is_string(const item& v) noexcept { return v.index() >= 4; }
    /// A slot's room: 8, or a string's length rounded up past the next multiple of 8.
    static std::size_t room_of(const item& v) {
        if (!is_string(v)) return align;
        const std::size_t n = bytes_of(v);
        if (n > max_string)
            detail::raise(value_error("multiproc: shareable_list: a str or bytes item of " + std::to_string(n) +
                                      " bytes is too long: at most " + std::to_string(max_string) +
                                      " fit, as its slot's format (\"<size>s\") must fit in 8 bytes"));
        return align * (n / align + 1);
    }
public:
    /// The bytes a list of `items` takes in its segment.
    static std::size_t size_for(const std::vector<item>& items) {
        std::size_t data = 0;
        for (const auto& v : items) data += room_of(v);
        return (items.size() + 2) * 8 + data + items.size() * 9;
    }

private:

    void load_offsets() {
        const auto n = static_cast<std::size_t>(get<std::int64_t>(0));
        offsets_.resize(n + 1);
        for (std::size_t i = 0; i <= n; ++i) {
            const auto o = get<std::int64_t>(8 * (i + 1));
            if (o < 0 || (i > 0 && static_cast<std::size_t>(o) < offsets_[i - 1])) bad("its offsets are not increasing");
            offsets_[i] = static_cast<std::size_t>(o);
        }
        if (data_start() + offsets_[n] + n * 9 > shm_.size()) bad("its offsets run past its end");
    }
    [[nodiscard]] std::size_t data_start() const noexcept { return (size() + 2) * 8; }
    [[nodiscard]] std::size_t formats_at() const noexcept { return data_start() + offsets_.back(); }
    [[nodiscard]] std::size_t codes_at() const noexcept { return formats_at() + size() * 8; }

    std::size_t position(std::int64_t i) const {
        const auto n = static_cast<std::int64_t>(size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) detail::raise(index_error("multiproc: shareable_list index out of range"));
        return static_cast<std::size_t>(i);
    }

    template <class T>
    T get(std::size_t at) const {
        T v;
        std::memcpy(&v, shm_.buf().data() + at, sizeof v);
        return v;
    }
    template <class T>
    void put(std::size_t at, const T& v) {
        std::memcpy(shm_.buf().data() + at, &v, sizeof v);
    }

    [[nodiscard]] std::string format_at(std::size_t i) const {
        const char* f = reinterpret_cast<const char*>(shm_.buf().data() + formats_at() + 8 * i);
        return std::string(f, ::strnlen(f, 8));
    }

    [[nodiscard]] item load(std::size_t i) const {
        const std::size_t at = data_start() + offsets_[i];
        const std::string f = format_at(i);
        const auto c = get<std::int8_t>(codes_at() + i);
        if (c == none || f == "xxxxxx?x") return std::monostate{};
        if (f == "q") return get<std::int64_t>(at);
        if (f == "d") return get<double>(at);
        if (f == "xxxxxxx?") return get<std::uint8_t>(at + 7) != 0;
        if (!f.empty() && f.back() == 's') {
            std::size_t len = std::min<std::size_t>(std::strtoul(f.c_str(), nullptr, 10), offsets_[i + 1] - offsets_[i]);
            const auto* p = shm_.buf().data() + at;
            while (len > 0 && p[len - 1] == std::byte{0}) --len; // (Python strips trailing NULs too)
            if (c == text) return std::string(reinterpret_cast<const char*>(p), len);
            return std::vector<std::byte>(p, p + len);
        }
        bad("an element has a format it cannot read");
    }

    void store(std::size_t i, const item& v, bool fresh) {
        const std::size_t at = data_start() + offsets_[i];
        const std::size_t room = offsets_[i + 1] - offsets_[i];
        std::string f;
        std::int8_t c = plain;
        std::byte* p = shm_.buf().data() + at;
        if (is_string(v)) {
            const std::size_t n = bytes_of(v);
            if (n > room) detail::raise(value_error("multiproc: shareable_list: bytes/str item exceeds available storage"));
            const std::string cur = fresh ? std::string() : format_at(i);
            f = !cur.empty() && cur.back() == 's' ? cur : std::to_string(room) + "s";
            std::memset(p, 0, room);
            if (auto* s = std::get_if<std::string>(&v)) {
                std::memcpy(p, s->data(), n);
                c = text;
            } else {
                std::memcpy(p, std::get<std::vector<std::byte>>(v).data(), n);
                c = raw;
            }
        } else if (std::holds_alternative<std::monostate>(v)) {
            f = "xxxxxx?x";
            std::memset(p, 0, align);
            c = none;
        } else if (auto* x = std::get_if<std::int64_t>(&v)) {
            f = "q";
            put(at, *x);
        } else if (auto* d = std::get_if<double>(&v)) {
            f = "d";
            put(at, *d);
        } else {
            f = "xxxxxxx?";
            std::memset(p, 0, align);
            put<std::uint8_t>(at + 7, std::get<bool>(v) ? 1 : 0);
        }
        char fmt[8] = {};
        std::memcpy(fmt, f.data(), std::min<std::size_t>(f.size(), 8));
        std::memcpy(shm_.buf().data() + formats_at() + 8 * i, fmt, 8);
        put<std::int8_t>(codes_at() + i, c);
    }

    shared_memory shm_;
    std::vector<std::size_t> offsets_; // Python's _allocated_offsets
};

MULTIPROC_ABI_END } // namespace multiproc
