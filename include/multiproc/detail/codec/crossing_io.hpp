// Not part of the API: the two ends of a crossing (detail/codec/crossing.hpp) -- what a value
// writes for a process that does not share the sender's memory, and reads back there --
// kept apart so that shared objects (locks, values) can cross without the serializers.
#pragma once

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

namespace multiproc::detail {

/// Collects what one value (or a whole request) sends: bytes, and descriptors that the
/// kernel duplicates into the receiver. The descriptors are borrowed: they must stay open
/// until the message is sent.
class crossing_writer {
public:
    void write(const void* p, std::size_t n) { bytes_.append(static_cast<const char*>(p), n); }
    template <class T>
        requires std::is_trivially_copyable_v<T>
    void put(const T& v) {
        write(&v, sizeof v);
    }
    void put_string(std::string_view s) {
        put<std::uint64_t>(s.size());
        write(s.data(), s.size());
    }
    /// Sends `fd` along; the receiver takes its copy, in order, with take_fd().
    void put_fd(int fd) {
        if (fd < 0) detail::raise(serialization_error("multiproc: cannot send a closed descriptor to a child"));
        fds_.push_back(fd);
    }

    [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }
    [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }

private:
    std::string bytes_;
    std::vector<int> fds_;
};

/// Reads back what a crossing_writer wrote. Running out of bytes or descriptors is a
/// serialization_error; descriptors nobody took are closed with the reader.
class crossing_reader {
public:
    crossing_reader(std::string bytes, std::vector<sys::unique_fd> fds)
        : bytes_(std::move(bytes)), fds_(std::move(fds)) {}

    void read(void* p, std::size_t n) {
        if (n > bytes_.size() - pos_) detail::raise(serialization_error("multiproc: the data sent to the child is truncated"));
        std::memcpy(p, bytes_.data() + pos_, n);
        pos_ += n;
    }
    template <class T>
        requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
    T get() {
        T v;
        read(&v, sizeof v);
        return v;
    }
    /// What put_string() wrote, as a view into the reader's bytes (valid while it lives).
    std::string_view get_view() {
        auto n = get<std::uint64_t>();
        if (n > bytes_.size() - pos_) detail::raise(serialization_error("multiproc: the data sent to the child is truncated"));
        std::string_view s(bytes_.data() + pos_, static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    std::string get_string() { return std::string(get_view()); }
    /// The next descriptor sent with put_fd(), now owned by the caller.
    sys::unique_fd take_fd() {
        if (next_fd_ >= fds_.size())
            detail::raise(serialization_error("multiproc: fewer descriptors arrived in the child than were sent"));
        return std::move(fds_[next_fd_++]);
    }
    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

private:
    std::string bytes_;
    std::size_t pos_ = 0;
    std::vector<sys::unique_fd> fds_;
    std::size_t next_fd_ = 0;
};

/// A type that crosses by its own members cross_out / cross_in.
template <class T>
concept crosses_itself = requires(const T& t, crossing_writer& w, crossing_reader& r) {
    t.cross_out(w);
    { T::cross_in(r) } -> std::same_as<T>;
};

} // namespace multiproc::detail
