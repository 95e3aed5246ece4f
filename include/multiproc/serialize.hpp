/// @file serialize.hpp
/// The serialization policies serialize::bitwise and serialize::binary (Python: pickle),
/// named in <multiproc/policies/serialize.hpp>, and the library's use of them. Headers that
/// send values include this one; include it yourself to call a policy directly.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/codec/binary.hpp>
#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/codec/fields.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/serialize.hpp>

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

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {

/// std::span of any extent (a view: it holds an address).
template <class T>
struct is_span : std::false_type {};
template <class T, std::size_t N>
struct is_span<std::span<T, N>> : std::true_type {};

} // namespace detail

namespace detail::bitwise_data {

template <class T> struct is_string_view : std::false_type {};
template <class C, class Tr> struct is_string_view<std::basic_string_view<C, Tr>> : std::true_type {};

/// Whether a value of T is plain data whose bytes mean the same in another process:
/// arithmetic types, enums, arrays (C and std::) and plain aggregates of data, chrono
/// durations and time points of those, and what the user declared with enable_bitwise.
/// Refused: pointers (of every kind), references, std::basic_string_view and std::span, types
/// that are not trivially copyable, and classes that cannot be looked inside.
template <class T>
consteval bool data();

template <class... Fs>
consteval bool all_data() {
    return (data<Fs>() && ...);
}

template <class T>
consteval bool data() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_reference_v<T>)
        return false;
    else if constexpr (serialize::enable_bitwise<U>)
        return std::is_trivially_copyable_v<U>;
    else if constexpr (std::is_arithmetic_v<U> || std::is_enum_v<U>)
        return true;
    else if constexpr (std::is_array_v<U>)
        return data<std::remove_all_extents_t<U>>();
    else if constexpr (!std::is_class_v<U> || !std::is_trivially_copyable_v<U> || is_string_view<U>::value ||
                       is_span<U>::value)
        return false; // pointers of every kind, nullptr_t, unions, views, what cannot be copied as bytes
    else if constexpr (bin::is_array<U>::value) // std::array
        return data<typename U::value_type>();
    else if constexpr (bin::is_duration<U>::value)
        return data<typename U::rep>();
    else if constexpr (bin::is_time_point<U>::value)
        return data<typename U::duration>();
    else if constexpr (fields::reflectable<U>)
        return fields::fold_types<U>([]<class... Fs>() { return all_data<Fs...>(); });
    else
        return false;
}

/// What an array (C or std::, nested) holds, without cv; T itself if not an array.
template <class T>
struct element {
    using type = T;
};
template <class T, std::size_t N>
struct element<T[N]> : element<std::remove_cv_t<T>> {};
template <class E, std::size_t N>
struct element<std::array<E, N>> : element<std::remove_cv_t<E>> {};
template <class T>
using element_t = typename element<std::remove_cv_t<T>>::type;

/// The index of T's first member that is not data (T a reflectable aggregate).
template <class T>
consteval std::size_t first_bad_field() {
    return fields::fold_types<T>([]<class... Fs>() {
        std::size_t i = 0;
        ((data<Fs>() ? ++i : 0) && ...);
        return i;
    });
}

template <std::size_t I, class F, class... Fs>
struct nth : nth<I - 1, Fs...> {};
template <class F, class... Fs>
struct nth<0, F, Fs...> {
    using type = F;
};

template <class L, std::size_t I>
struct nth_of;
template <class... Fs, std::size_t I>
struct nth_of<fields::types<Fs...>, I> : nth<I, Fs...> {};

/// The declared type of member I of the aggregate T.
template <class T, std::size_t I>
using field_t = typename nth_of<fields::types_of<T>, I>::type;

/// The member at fault in an aggregate A that is not data: A's first member that is not,
/// or, when that member is an aggregate (or an array of them), the member at fault in it.
template <class A>
struct first_fault {
    static constexpr std::size_t index = first_bad_field<A>();
    using type = field_t<A, index>;
    using inner = element_t<type>;
    static constexpr bool deeper = !std::is_reference_v<type> && std::is_class_v<inner> &&
                                   std::is_trivially_copyable_v<inner> && !serialize::enable_bitwise<inner> &&
                                   fields::reflectable<inner>;
};
template <class A, bool = first_fault<A>::deeper>
struct fault {
    using holder = A;
    static constexpr std::size_t index = first_fault<A>::index;
    using type = typename first_fault<A>::type;
};
template <class A>
struct fault<A, true> : fault<typename first_fault<A>::inner> {};

} // namespace detail::bitwise_data

namespace detail {

/// Never defined: when serialize::bitwise refuses a member, the compiler names this type —
/// the aggregate that holds the member, the policy, the member's index and its type — right
/// below the sentence of `serialize::bitwise::explain`.
template <class T, class S, std::size_t Index, class FieldType>
struct field_cannot_be_serialized;

/// Never defined: when a message type cannot be serialized, the compiler names this type,
/// and with it T and S, right below the sentence of `check_serializable` (or of
/// `serialize::bitwise::explain`).
template <class T, class S>
struct type_cannot_be_serialized_by;

template <class T>
struct bitwise_supported : std::bool_constant<std::is_object_v<T> && !std::is_array_v<T> && std::is_trivially_copyable_v<T> &&
                                     detail::bitwise_data::data<T>()> {};
template <class T>
struct binary_supported : std::bool_constant<bin::supported_v<T>> {};

} // namespace detail

namespace serialize {

template <class T>
constexpr void bitwise::explain() {
    using U = std::remove_cv_t<T>;
    if constexpr (!std::is_object_v<T> || std::is_array_v<T> || !std::is_trivially_copyable_v<T>) {
        static_assert(supports<T>,
                      "multiproc: serialize::bitwise sends only trivially copyable objects that are not arrays, "
                      "and the message type T (named below, in type_cannot_be_serialized_by<T, S>) is not one; "
                      "make it an aggregate of data, adapt it with Hana, or use cereal (serialize::binary or "
                      "ext::serialize::cereal)");
        detail::type_cannot_be_serialized_by<T, bitwise> carrier;
        (void)carrier;
    } else if constexpr (detail::fields::reflectable<U>) {
        static_assert(supports<T>,
                      "multiproc: serialize::bitwise cannot send the message type T: one of its fields (the "
                      "aggregate that holds it, its index and its type are named below, in "
                      "field_cannot_be_serialized<T, S, index, FieldType>) is a pointer, a reference, a "
                      "std::string_view or std::span, or a type that is not trivially copyable or that bitwise "
                      "cannot look inside, and its bytes would mean nothing in another process; make it an "
                      "aggregate of data, adapt it with Hana, or use cereal (or, if its bytes are meant to be "
                      "sent, specialize multiproc::serialize::enable_bitwise<T> = true)");
        using at_fault = detail::bitwise_data::fault<U>;
        detail::field_cannot_be_serialized<typename at_fault::holder, bitwise, at_fault::index,
                                           typename at_fault::type>
            carrier;
        (void)carrier;
    } else {
        static_assert(supports<T>,
                      "multiproc: serialize::bitwise cannot look inside the message type T (named below, in "
                      "type_cannot_be_serialized_by<T, S>): it holds an address (a pointer, a view, an array of "
                      "those), or it is a class that is not an aggregate whose members can be listed (private "
                      "members, constructors, a base class, a union, a reference member); make it an aggregate "
                      "of data, "
                      "adapt it with Hana, or use cereal (or, if its bytes mean the same in another process, "
                      "specialize multiproc::serialize::enable_bitwise<T> = true)");
        detail::type_cannot_be_serialized_by<T, bitwise> carrier;
        (void)carrier;
    }
}

template <class T>
constexpr std::size_t bitwise::encoded_size(const T&) noexcept
    requires supports<T>
{
    return sizeof(T);
}

template <class T, byte_writer W>
void bitwise::encode(const T& v, W& w)
    requires supports<T>
{
    w.write(std::addressof(v), sizeof(T));
}

template <class T, byte_reader R>
T bitwise::decode(R& r)
    requires supports<T>
{
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

template <class T>
std::size_t binary::encoded_size(const T& v)
    requires supports<T>
{
    if constexpr (detail::bin::block<T>()) {
        return sizeof(T);
    } else {
        detail::size_counter c;
        detail::bin::encode(v, c);
        return c.size();
    }
}

template <class T, byte_writer W>
void binary::encode(const T& v, W& w)
    requires supports<T>
{
    detail::bin::encode(v, w);
}

template <class T, byte_reader R>
T binary::decode(R& r)
    requires supports<T>
{
    return detail::bin::decode_frame<T>(r);
}

} // namespace serialize

namespace detail {

template <class T, class S>
constexpr bool check_serializable() {
    if constexpr (!serializer_for<S, T> && std::is_same_v<S, serialize::bitwise>) {
        serialize::bitwise::explain<T>(); // its own sentence, naming the field at fault
    } else if constexpr (!serializer_for<S, T>) {
        static_assert(serializer_for<S, T>,
                      "multiproc: the message type T cannot be serialized by the serialization policy S (both are "
                      "named below, in type_cannot_be_serialized_by<T, S>); give T a shape the policy supports, "
                      "choose another policy (serialize::binary for standard types, aggregates and Hana structs, "
                      "serialize::bitwise only for aggregates of plain data sent as their bytes, "
                      "ext::serialize::cereal for types with cereal functions), or write a policy that satisfies "
                      "multiproc::serializer_for");
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

/// Encodes `v` with S as pieces to send as one message. serialize::binary leaves the large
/// blocks of `v` (the elements of a vector or string of plain data) where they are, so that
/// a 64 MiB vector is sent from its own memory rather than copied first; other serializers
/// encode into this thread's scratch buffer. Valid while `v` is and until the thread
/// encodes again.
template <class S, class T>
byte_pieces encode_pieces(const T& v) {
    gather_writer w(std::is_same_v<S, serialize::binary>);
    S::encode(v, w);
    return w.pieces();
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

/// A taker (a callable given one whole frame) that decodes it with S into `out`: how the
/// try_ forms receive, so that "nothing arrived" stays an empty optional, not an error.
template <class S, class T>
auto decode_into(std::optional<T>& out) {
    return [&out](std::span<const std::byte> bytes) {
        span_reader r(bytes);
        out.emplace(S::template decode<T>(r));
    };
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

MULTIPROC_ABI_END } // namespace multiproc
