/// @file policies/serialize.hpp
/// Serialization policies (Python: pickle, which multiprocessing uses for everything it sends):
/// the policies, what a policy must provide, and the default. The operations of bitwise and
/// binary are defined in <multiproc/serialize.hpp>, which every header that sends values
/// includes: naming a policy reads no codec.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>

namespace multiproc { MULTIPROC_ABI_BEGIN

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

/// Opt-in for serialize::bitwise: specialize to true for a trivially copyable type whose
/// bytes mean the same in another process although bitwise cannot check it — a class with
/// private members or constructors, a union, an aggregate with a base class — or that holds
/// what bitwise refuses on purpose (a pointer used only as a number, say):
///
///     template <> inline constexpr bool multiproc::serialize::enable_bitwise<my_class> = true;
///
/// The specialization is a promise: bitwise then sends the bytes as they are.
template <class T>
inline constexpr bool enable_bitwise = false;

} // namespace serialize

namespace detail {
template <class T>
struct bitwise_supported; // <multiproc/serialize.hpp>
template <class T>
struct binary_supported; // <multiproc/serialize.hpp>
} // namespace detail

namespace serialize {

/// Plain data as its bytes: one memcpy each way, straight into and out of the transport's
/// buffer where it allows. Sends arithmetic types, enums, and aggregates (nested, with
/// arrays) of those; refuses at compile time, naming the member, anything holding an
/// address (pointers, references, std::string_view, std::span), anything not trivially
/// copyable, and classes it cannot look inside unless they are declared with
/// `enable_bitwise`. The bytes are trusted to come from the same program (only their
/// count is checked), so an invalid bool arrives as sent. Python has no counterpart (pickle
/// always describes the value).
struct bitwise {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "bitwise";

    /// Whether T can be sent: a trivially copyable object type, not an array, that is plain
    /// data (see above) or declared with enable_bitwise.
    template <class T>
    static constexpr bool supports = detail::bitwise_supported<T>::value;

    /// Stops compilation with a sentence that says why T cannot be sent (T unsupported).
    template <class T>
    static constexpr void explain();

    /// The encoded size: always sizeof(T).
    template <class T>
    static constexpr std::size_t encoded_size(const T&) noexcept
        requires supports<T>;

    template <class T, byte_writer W>
    static void encode(const T& v, W& w)
        requires supports<T>;

    /// Throws serialization_error unless the frame holds exactly sizeof(T) bytes.
    template <class T, byte_reader R>
    static T decode(R& r)
        requires supports<T>;
};

/// Standard types, plain aggregates (detail/codec/fields.hpp) and Hana-adapted structs, nested freely;
/// the default. Covers arithmetic types, enums with a fixed underlying type, std::string,
/// vector, array, deque, list, (unordered_)(multi)map and set, pair, tuple, optional,
/// variant, chrono durations and time points. Decoding checks every length against the
/// frame, so corrupt bytes are a `serialization_error`, never a crash or a huge allocation.
struct binary {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "binary";

    /// Whether T (and everything inside it) has an encoding.
    template <class T>
    static constexpr bool supports = detail::binary_supported<T>::value;

    /// The exact number of bytes `encode` writes (a counting pass, no copy).
    template <class T>
    static std::size_t encoded_size(const T& v)
        requires supports<T>;

    template <class T, byte_writer W>
    static void encode(const T& v, W& w)
        requires supports<T>;

    /// Decodes the whole frame; left-over bytes are an error too.
    template <class T, byte_reader R>
    static T decode(R& r)
        requires supports<T>;
};

} // namespace serialize

namespace detail {
// What serializer_for hands a policy: any byte_writer and byte_reader will do.
struct writer_archetype {
    void write(const void* p, std::size_t n);
};
struct reader_archetype {
    void read(void* p, std::size_t n);
    std::size_t remaining() const;
};
} // namespace detail


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
concept serializer_for = serialize_policy<S> && requires(const T& v, detail::writer_archetype& w, detail::reader_archetype& r) {
    S::encode(v, w);
    { S::template decode<T>(r) } -> std::same_as<T>;
};

MULTIPROC_ABI_END } // namespace multiproc
