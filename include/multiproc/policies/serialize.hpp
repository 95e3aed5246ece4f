/// @file policies/serialize.hpp
/// Serialization policies (Python: pickle, which multiprocessing uses for everything it sends).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/binary.hpp>
#include <multiproc/detail/bytes.hpp>
#include <multiproc/detail/demangle.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/kinds.hpp>

#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc {

/// Where a serializer writes a message: `w.write(const void* p, std::size_t n)` appends n bytes.
template <class W>
concept byte_writer = requires(W& w, const void* p, std::size_t n) { w.write(p, n); };

/// Where a serializer reads one whole message from: `r.read(void* p, std::size_t n)` takes
/// the next n bytes or throws `serialization_error` if fewer are left; `r.remaining()` is
/// what is left. Check every length read from the bytes against `remaining()`.
template <class R>
concept byte_reader = requires(R& r, void* p, std::size_t n) {
    r.read(p, n);
    { r.remaining() } -> std::convertible_to<std::size_t>;
};

namespace serialize {

/// Trivially copyable types as their bytes: one memcpy each way, straight into and out of
/// the transport's buffer where it allows. The bytes are trusted to come from the same
/// program (only their count is checked), so a value holding pointers or invalid bools
/// arrives as sent. Python has no counterpart (pickle always describes the value).
struct bitwise {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "bitwise";

    /// Whether T can be sent: an object type, not an array, trivially copyable.
    template <class T>
    static constexpr bool supports = std::is_object_v<T> && !std::is_array_v<T> && std::is_trivially_copyable_v<T>;

    /// The encoded size: always sizeof(T).
    template <class T>
        requires supports<T>
    static constexpr std::size_t encoded_size(const T&) noexcept {
        return sizeof(T);
    }

    template <class T, byte_writer W>
        requires supports<T>
    static void encode(const T& v, W& w) {
        w.write(std::addressof(v), sizeof(T));
    }

    /// Throws serialization_error unless the frame holds exactly sizeof(T) bytes.
    template <class T, byte_reader R>
        requires supports<T>
    static T decode(R& r) {
        if (r.remaining() != sizeof(T))
            detail::raise(serialization_error("multiproc: cannot decode a " + detail::type_name<T>() +
                                      " (serialize::bitwise): the frame holds " + std::to_string(r.remaining()) +
                                      " bytes, not " + std::to_string(sizeof(T))));
        if constexpr (std::is_default_constructible_v<T>) {
            T v; // read straight into the value returned: one copy
            r.read(std::addressof(v), sizeof(T));
            return v;
        } else {
            std::array<std::byte, sizeof(T)> bytes;
            r.read(bytes.data(), sizeof(T));
            return std::bit_cast<T>(bytes);
        }
    }
};

/// Standard types, plain aggregates (Boost.PFR) and Hana-adapted structs, nested freely;
/// the default. Covers arithmetic types, enums with a fixed underlying type, std::string,
/// vector, array, deque, list, (unordered_)(multi)map and set, pair, tuple, optional,
/// variant, chrono durations and time points. Decoding checks every length against the
/// frame, so corrupt bytes are a `serialization_error`, never a crash or a huge allocation.
struct binary {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "binary";

    /// Whether T (and everything inside it) has an encoding.
    template <class T>
    static constexpr bool supports = detail::bin::supported_v<T>;

    /// The exact number of bytes `encode` writes (a counting pass, no copy).
    template <class T>
        requires supports<T>
    static std::size_t encoded_size(const T& v) {
        if constexpr (detail::bin::block<T>()) {
            return sizeof(T);
        } else {
            detail::size_counter c;
            detail::bin::encode(v, c);
            return c.size();
        }
    }

    template <class T, byte_writer W>
        requires supports<T>
    static void encode(const T& v, W& w) {
        detail::bin::encode(v, w);
    }

    /// Decodes the whole frame; left-over bytes are an error too.
    template <class T, byte_reader R>
        requires supports<T>
    static T decode(R& r) {
        return detail::bin::decode_frame<T>(r);
    }
};

} // namespace serialize

template <>
struct default_policy<kind::serialize> {
    using type = serialize::binary;
};

/// What every serialization policy provides: its `name` (the operations are checked per
/// message type by `serializer_for`).
template <class P>
concept serialize_policy = policy_of_kind<P, kind::serialize> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
};

/// Whether policy S can send a T: `S::encode(value, writer)` writes it to any
/// `byte_writer`, and `S::template decode<T>(reader)` rebuilds it from one whole frame of
/// any `byte_reader`, throwing `serialization_error` for bytes it cannot accept. Optional:
/// `S::encoded_size(value)`, the exact size, lets transports encode in place.
template <class S, class T>
concept serializer_for = serialize_policy<S> && requires(const T& v, detail::vector_writer& w, detail::span_reader& r) {
    S::encode(v, w);
    { S::template decode<T>(r) } -> std::same_as<T>;
};

namespace detail {

/// Never defined: when a message type cannot be serialized, the compiler names this type,
/// and with it T and S, right below the sentence of `check_serializable`.
template <class T, class S>
struct type_cannot_be_serialized_by;

template <class T, class S>
constexpr bool check_serializable() {
    if constexpr (!serializer_for<S, T>) {
        static_assert(serializer_for<S, T>,
                      "multiproc: the message type T cannot be serialized by the serialization policy S (both are "
                      "named below, in type_cannot_be_serialized_by<T, S>); give T a shape the policy supports, "
                      "choose another policy (serialize::binary for standard types, aggregates and Hana structs, "
                      "serialize::bitwise for trivially copyable types, ext::serialize::cereal for types with cereal "
                      "functions), or write a policy that satisfies multiproc::serializer_for");
        type_cannot_be_serialized_by<T, S> carrier;
        (void)carrier;
    }
    return true;
}

/// Encodes `v` with S into this thread's scratch buffer; the bytes stay valid until the
/// thread encodes again.
template <class S, class T>
std::span<const std::byte> encode_to_scratch(const T& v) {
    auto& buf = scratch();
    buf.clear();
    vector_writer w(buf);
    S::encode(v, w);
    return buf;
}

/// Calls `source(take)`, which hands one message's bytes to `take`, and returns the T
/// that S decodes from them.
template <class S, class T, class Source>
T decode_from(Source&& source) {
    // The decoded value is built in place (a new-expression takes decode's result without a
    // copy; optional::emplace would take a temporary first): a 64 MiB trivially copyable
    // value then costs two copies of stack, not three.
    union slot {
        T value;
        slot() noexcept {}
        ~slot() {}
    } out;
    bool made = false;
    source([&](std::span<const std::byte> bytes) {
        span_reader r(bytes);
        ::new (static_cast<void*>(std::addressof(out.value))) T(S::template decode<T>(r));
        made = true;
    });
    struct destroy {
        slot& s;
        bool made;
        ~destroy() {
            if (made) s.value.~T();
        }
    } guard{out, made};
    return std::move(out.value);
}

/// The encoded size when S can tell it cheaply, else nothing.
template <class S, class T>
std::optional<std::size_t> encoded_size(const T& v) {
    if constexpr (requires { { S::encoded_size(v) } -> std::convertible_to<std::size_t>; })
        return S::encoded_size(v);
    else
        return std::nullopt;
}

} // namespace detail

} // namespace multiproc
