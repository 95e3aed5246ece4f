// How an object crosses into a child that does not share the parent's memory (a
// `start::spawn` or `start::forkserver` child): as bytes plus file descriptors, which the
// kernel duplicates into the child (SCM_RIGHTS). Python: pickling with
// multiprocessing.reduction's descriptor passing.
//
// A type of your own crosses by itself when it has two members:
//
//     void cross_out(multiproc::crossing_writer& w) const;  // in the parent, at start()
//     static T cross_in(multiproc::crossing_reader& r);      // in the child, before the target runs
//
// cross_in reads back exactly what cross_out wrote, in the same order. Under `start::fork`
// neither runs: the child gets a copy of the object with the rest of the memory and
// inherits its descriptors at the same numbers.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {
struct crossing_pages;
} // namespace detail

/// What an object's cross_out writes for the child: bytes, and descriptors that the kernel
/// duplicates into the child. The descriptors are borrowed: the object keeps owning them,
/// and must keep them open until start() returns; the child gets fresh copies.
class crossing_writer {
public:
    /// Appends `n` raw bytes from `p`.
    void write(const void* p, std::size_t n) { bytes_.append(static_cast<const char*>(p), n); }
    /// Appends the object representation of `v` (read back with get<T>()). Only for values
    /// whose bytes mean the same in another program: no pointers or handles.
    template <class T>
        requires std::is_trivially_copyable_v<T>
    void put(const T& v) {
        write(&v, sizeof v);
    }
    /// Appends `s` after its length (read back with get_string() or get_view()).
    void put_string(std::string_view s) {
        put<std::uint64_t>(s.size());
        write(s.data(), s.size());
    }
    /// Sends `fd` along (borrowed, see above); the child takes its own copy, in the order
    /// sent, with take_fd(). A negative `fd` is a `serialization_error`.
    void put_fd(int fd) {
        if (fd < 0) detail::raise(serialization_error("multiproc: cannot send a closed descriptor to a child"));
        fds_.push_back(fd);
    }

    /// For the library (and a test of a type's hooks): the bytes written so far.
    [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }
    /// For the library (and a test of a type's hooks): the descriptors put so far, in order.
    [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }

private:
    friend struct detail::crossing_pages;

    std::string bytes_;
    std::vector<int> fds_;
    std::size_t page_fds_ = 0; // how many of fds_ are page_buffers' memfds (detail::crossing_pages)
};

/// What an object's cross_in reads in the child: what the parent's crossing_writer wrote.
/// Reading past the bytes, or taking more descriptors than were sent, raises
/// `serialization_error` (start() in the parent then fails with `error`, naming the
/// process and that cause); descriptors nobody took are closed with the reader.
class crossing_reader {
public:
    /// A descriptor owned by its holder (closed when it is destroyed): get() reads it,
    /// release() gives up ownership and returns it, reset(fd) closes it and takes `fd`,
    /// `explicit operator bool` says whether it holds one. Move-only.
    using owned_fd = detail::sys::unique_fd;

    /// For the library (and a test of a type's hooks): a reader of `bytes` and `fds`, in
    /// the order a crossing_writer put them.
    crossing_reader(std::string bytes, std::vector<owned_fd> fds) : bytes_(std::move(bytes)), fds_(std::move(fds)) {}

    /// Copies the next `n` bytes to `p`.
    void read(void* p, std::size_t n) {
        if (n > bytes_.size() - pos_) detail::raise(serialization_error(ran_out()));
        std::memcpy(p, bytes_.data() + pos_, n);
        pos_ += n;
    }
    /// The next value put<T>() wrote.
    template <class T>
        requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
    T get() {
        T v;
        read(&v, sizeof v);
        return v;
    }
    /// The next string put_string() wrote, as a view into the reader's bytes (valid while
    /// the reader lives, so only inside cross_in).
    std::string_view get_view() {
        auto n = get<std::uint64_t>();
        if (n > bytes_.size() - pos_) detail::raise(serialization_error(ran_out()));
        std::string_view s(bytes_.data() + pos_, static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    /// The next string put_string() wrote, copied.
    std::string get_string() { return std::string(get_view()); }
    /// The next descriptor put_fd() sent: a fresh descriptor in this process (close-on-exec),
    /// now owned by the caller.
    owned_fd take_fd() {
        if (next_fd_ >= fds_.size())
            detail::raise(serialization_error("multiproc: more descriptors were taken in the child than were sent to "
                                              "it; does a cross_in take more than its cross_out put?"));
        return std::move(fds_[next_fd_++]);
    }
    /// How many bytes are left to read.
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

private:
    static const char* ran_out() noexcept {
        return "multiproc: the data sent to the child is truncated; does a cross_in read more than its cross_out wrote?";
    }

    std::string bytes_;
    std::size_t pos_ = 0;
    std::vector<owned_fd> fds_;
    std::size_t next_fd_ = 0;
};

namespace detail {
/// For page_buffer, the one object a connection over a kernel pipe carries (through the
/// sender's resource sharer), alone or inside a container or tuple: put() marks its memfd,
/// only() says whether every descriptor of a crossing is such a memfd.
struct crossing_pages {
    static void put(crossing_writer& w, int fd) {
        w.put_fd(fd);
        ++w.page_fds_;
    }
    [[nodiscard]] static bool only(const crossing_writer& w) noexcept { return w.page_fds_ == w.fds_.size(); }
};
} // namespace detail

/// A type that crosses into a spawn or forkserver child by its own members: `t.cross_out(w)`
/// and `T::cross_in(r)`, which returns a T. As a process argument (or a member a process
/// subclass lists in fields()), on its own or as an element of a std::vector, std::tuple or
/// std::pair, such a type crosses this way; anything else is data for the serialization
/// policy (which would send a descriptor's number, not the descriptor).
template <class T>
concept crosses_itself = requires(const T& t, crossing_writer& w, crossing_reader& r) {
    t.cross_out(w);
    { T::cross_in(r) } -> std::same_as<T>;
};

MULTIPROC_ABI_END } // namespace multiproc
