/// @file policies/serialize.hpp
/// Serialization policies (Python: pickle, which multiprocessing uses for everything it sends):
/// their names, what a policy must provide, and the default. The policies themselves are
/// defined in <multiproc/serialize.hpp>, which every header that sends values includes.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>

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

/// Plain data as its bytes (defined in <multiproc/serialize.hpp>).
struct bitwise;
/// Standard types, aggregates and Hana structs; the default (defined in <multiproc/serialize.hpp>).
struct binary;

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

} // namespace multiproc
