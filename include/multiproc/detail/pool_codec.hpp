// Not part of the API: how the pool turns task arguments and results into bytes and back.
// Every encode and decode of the pool goes through pool_codec<Serializer>, so that the
// serialization policies (serialize::binary, serialize::bitwise) can take over here alone.
// Until then it handles what the pool needs most: trivially copyable values (one memcpy;
// pointers excluded), std::string, and std::vector, std::pair, std::tuple, std::optional
// of supported types.
#pragma once

#include <multiproc/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc::detail {

/// A growable run of bytes that never zero-fills: what messages are built in.
class byte_buffer {
public:
    byte_buffer() = default;
    byte_buffer(byte_buffer&& o) noexcept
        : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)), cap_(std::exchange(o.cap_, 0)) {}
    byte_buffer& operator=(byte_buffer&& o) noexcept {
        if (this != &o) {
            std::free(p_);
            p_ = std::exchange(o.p_, nullptr);
            size_ = std::exchange(o.size_, 0);
            cap_ = std::exchange(o.cap_, 0);
        }
        return *this;
    }
    byte_buffer(const byte_buffer&) = delete;
    byte_buffer& operator=(const byte_buffer&) = delete;
    ~byte_buffer() { std::free(p_); }

    [[nodiscard]] std::byte* data() noexcept { return p_; }
    [[nodiscard]] const std::byte* data() const noexcept { return p_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    void clear() noexcept { size_ = 0; }

    /// Makes room for `n` more bytes and returns where they go (uninitialized); size grows by n.
    std::byte* grow(std::size_t n) {
        if (size_ + n > cap_) reserve(std::max(size_ + n, cap_ * 2 + 64));
        std::byte* at = p_ + size_;
        size_ += n;
        return at;
    }
    void append(const void* src, std::size_t n) {
        if (n) std::memcpy(grow(n), src, n);
    }
    void reserve(std::size_t n) {
        if (n <= cap_) return;
        void* q = std::realloc(p_, n);
        if (!q) throw std::bad_alloc();
        p_ = static_cast<std::byte*>(q);
        cap_ = n;
    }
    /// Drops the first `n` bytes (moves the rest down).
    void erase_front(std::size_t n) noexcept {
        if (n >= size_) {
            size_ = 0;
            return;
        }
        std::memmove(p_, p_ + n, size_ - n);
        size_ -= n;
    }
    void shrink(std::size_t n) noexcept { size_ = n; }

private:
    std::byte* p_ = nullptr;
    std::size_t size_ = 0, cap_ = 0;
};

/// Reads values out of a run of bytes; running past the end is a serialization_error.
class byte_reader {
public:
    byte_reader(const std::byte* p, std::size_t n) noexcept : p_(p), end_(p + n) {}
    [[nodiscard]] const std::byte* take(std::size_t n) {
        if (static_cast<std::size_t>(end_ - p_) < n)
            throw serialization_error("multiproc: a pool message ended early (corrupt or truncated data)");
        const std::byte* at = p_;
        p_ += n;
        return at;
    }
    [[nodiscard]] const std::byte* pos() const noexcept { return p_; }
    [[nodiscard]] std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

private:
    const std::byte* p_;
    const std::byte* end_;
};

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_tuple_like_std : std::false_type {};
template <class... Ts>
struct is_tuple_like_std<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like_std<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

/// A trivially copyable value that is not, and does not look like, a pointer into this
/// process: sent as its bytes.
template <class T>
inline constexpr bool is_bitwise_value = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                         !std::is_member_pointer_v<T> && !std::is_reference_v<T>;

/// The codec of the pool: encode into a byte_buffer, decode from a byte_reader.
/// `Serializer` is the pool's serialization policy; it chooses nothing yet.
template <class Serializer>
struct pool_codec {
    template <class T>
    static constexpr bool supports() {
        if constexpr (is_bitwise_value<T>)
            return true;
        else if constexpr (std::is_same_v<T, std::string>)
            return true;
        else if constexpr (is_std_vector<T>::value)
            return supports<typename T::value_type>();
        else if constexpr (is_std_optional<T>::value)
            return supports<typename T::value_type>();
        else if constexpr (is_tuple_like_std<T>::value)
            return []<std::size_t... I>(std::index_sequence<I...>) {
                return (supports<std::remove_cv_t<std::tuple_element_t<I, T>>>() && ...);
            }(std::make_index_sequence<std::tuple_size_v<T>>{});
        else
            return false;
    }

    /// Bytes per value when every value of T has the same size (then n values are n times
    /// that, back to back), else 0.
    template <class T>
    static constexpr std::size_t fixed_size() {
        if constexpr (is_bitwise_value<T>)
            return sizeof(T);
        else
            return 0;
    }

    template <class T>
    static void encode(byte_buffer& out, const T& v) {
        if constexpr (is_bitwise_value<T>) {
            out.append(&v, sizeof(T));
        } else if constexpr (std::is_same_v<T, std::string>) {
            put_size(out, v.size());
            out.append(v.data(), v.size());
        } else if constexpr (is_std_vector<T>::value) {
            using E = typename T::value_type;
            put_size(out, v.size());
            if constexpr (is_bitwise_value<E> && !std::is_same_v<E, bool>)
                out.append(v.data(), v.size() * sizeof(E));
            else
                for (const auto& e : v) encode<E>(out, e);
        } else if constexpr (is_std_optional<T>::value) {
            const unsigned char has = v.has_value();
            out.append(&has, 1);
            if (v) encode<typename T::value_type>(out, *v);
        } else if constexpr (is_tuple_like_std<T>::value) {
            std::apply([&](const auto&... e) { (encode<std::remove_cvref_t<decltype(e)>>(out, e), ...); }, v);
        } else {
            static_assert(supports<T>(), "multiproc: this type cannot be sent to or from a pool worker yet");
        }
    }

    template <class T>
    static T decode(byte_reader& in) {
        if constexpr (is_bitwise_value<T>) {
            // memcpy into storage, not into a T: T need not be default-constructible.
            alignas(T) unsigned char raw[sizeof(T)];
            std::memcpy(raw, in.take(sizeof(T)), sizeof(T));
            return *std::launder(reinterpret_cast<T*>(raw));
        } else if constexpr (std::is_same_v<T, std::string>) {
            std::size_t n = get_size(in);
            const std::byte* p = in.take(n);
            return std::string(reinterpret_cast<const char*>(p), n);
        } else if constexpr (is_std_vector<T>::value) {
            using E = typename T::value_type;
            std::size_t n = get_size(in);
            T v;
            if constexpr (is_bitwise_value<E> && !std::is_same_v<E, bool> && std::is_default_constructible_v<E>) {
                if (n > in.left() / sizeof(E)) (void)in.take(in.left() + 1); // reports the short message
                v.resize(n);
                std::memcpy(v.data(), in.take(n * sizeof(E)), n * sizeof(E));
            } else {
                v.reserve(std::min<std::size_t>(n, in.left()));
                for (std::size_t i = 0; i < n; ++i) v.push_back(decode<E>(in));
            }
            return v;
        } else if constexpr (is_std_optional<T>::value) {
            bool has = *in.take(1) != std::byte{0};
            if (!has) return T{};
            return T(decode<typename T::value_type>(in));
        } else if constexpr (is_tuple_like_std<T>::value) {
            return decode_tuple<T>(in, std::make_index_sequence<std::tuple_size_v<T>>{});
        } else {
            static_assert(supports<T>(), "multiproc: this type cannot be sent to or from a pool worker yet");
        }
    }

    /// Moves past one encoded T without building it.
    template <class T>
    static void skip(byte_reader& in) {
        if constexpr (fixed_size<T>() != 0)
            (void)in.take(fixed_size<T>());
        else if constexpr (std::is_same_v<T, std::string>)
            (void)in.take(get_size(in));
        else
            (void)decode<T>(in);
    }

private:
    template <class T, std::size_t... I>
    static T decode_tuple(byte_reader& in, std::index_sequence<I...>) {
        // Braced initialization evaluates left to right, in encoding order.
        return T{decode<std::remove_cv_t<std::tuple_element_t<I, T>>>(in)...};
    }
    static void put_size(byte_buffer& out, std::size_t n) {
        std::uint64_t v = n;
        out.append(&v, sizeof v);
    }
    static std::size_t get_size(byte_reader& in) {
        std::uint64_t v;
        std::memcpy(&v, in.take(sizeof v), sizeof v);
        return static_cast<std::size_t>(v);
    }
};

} // namespace multiproc::detail
