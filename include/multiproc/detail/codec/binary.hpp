// Not part of the API: the encoding of serialize::binary.
//
// Wire format (host byte order; a frame is never read by another architecture):
//   bool                 1 byte, 0 or 1
//   arithmetic, enum     its bytes (an enum as its underlying type)
//   string, containers   u64 element count, then the elements
//   array<T, N>          N elements
//   pair, tuple          the members in order
//   optional             1 byte (0 or 1), then the value if 1
//   variant              u32 index, then the alternative
//   duration             its count; time_point: its time_since_epoch()
//   aggregate, Hana      the members in order
//   an empty type        1 byte, 0 (monostate, tuple<>, array<T, 0>, a struct without
//                        members), so that every value takes at least one byte
// Elements whose encoding equals their object representation (arithmetic types other
// than bool, enums with a fixed underlying type, arrays and padding-free aggregates of
// those) travel as one block. Decoding checks every count against the bytes left in the
// frame before allocating: each element needs at least `min_size` bytes; and it reserves
// no more memory ahead of the elements than the bytes left in the frame. (A decoded value
// can still be larger in memory than in the frame, by a factor its type fixes: an empty
// std::string is 8 bytes in a frame and 32 in memory.)
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/codec/fields.hpp>
#include <multiproc/error.hpp>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/unpack.hpp>

#include <algorithm>
#include <array>
#include <multiproc/detail/util/chrono.hpp>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::bin {

namespace hana = boost::hana;

// ---- type families ----------------------------------------------------------------

template <class T> struct is_string : std::false_type {};
template <class C, class Tr, class A> struct is_string<std::basic_string<C, Tr, A>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class E, class A> struct is_vector<std::vector<E, A>> : std::true_type {};
template <class T> struct is_array : std::false_type {};
template <class E, std::size_t N> struct is_array<std::array<E, N>> : std::true_type {};
// The other standard containers are recognised by their shape, so that this header need
// not include <deque>, <list>, <map>, <set>, <unordered_map> and <unordered_set> (a
// program that sends one has included its header): deque and list are the allocator-aware
// containers with push_front and push_back; (multi)map and unordered_(multi)map the ones
// with a key_type, a mapped_type and emplace_hint; (multi)set and unordered_(multi)set
// those whose value is their key. A container of another library with the same shape is
// sent the same way.
template <class T>
concept front_and_back_sequence = requires(T& c, typename T::value_type&& e) {
    typename T::allocator_type;
    c.push_back(std::move(e));
    c.push_front(std::move(e));
    { c.size() } -> std::convertible_to<std::size_t>;
    c.clear();
};
template <class T>
concept associative = requires(T& c) {
    typename T::allocator_type;
    typename T::key_type;
    { c.size() } -> std::convertible_to<std::size_t>;
    c.clear();
    c.begin();
    c.end();
};
template <class T>
concept map_shaped = associative<T> && requires(T& c, typename T::key_type&& k, typename T::mapped_type&& m) {
    c.emplace_hint(c.end(), std::move(k), std::move(m));
};
template <class T>
concept set_shaped = associative<T> && std::same_as<typename T::key_type, typename T::value_type> &&
                     requires(T& c, typename T::key_type&& k) { c.emplace_hint(c.end(), std::move(k)); };

template <class T> struct is_sequence : std::bool_constant<front_and_back_sequence<T>> {}; // other than vector
template <class T> struct is_map : std::bool_constant<map_shaped<T>> {};
template <class T> struct is_set : std::bool_constant<set_shaped<T> && !map_shaped<T>> {};
template <class T> struct is_pair : std::false_type {};
template <class A, class B> struct is_pair<std::pair<A, B>> : std::true_type {};
template <class T> struct is_tuple : std::false_type {};
template <class... Ts> struct is_tuple<std::tuple<Ts...>> : std::true_type {};
template <class T> struct is_optional : std::false_type {};
template <class V> struct is_optional<std::optional<V>> : std::true_type {};
template <class T> struct is_variant : std::false_type {};
template <class... Ts> struct is_variant<std::variant<Ts...>> : std::true_type {};
template <class T> struct is_duration : std::false_type {};
template <class R, class P> struct is_duration<std::chrono::duration<R, P>> : std::true_type {};
template <class T> struct is_time_point : std::false_type {};
template <class C, class D> struct is_time_point<std::chrono::time_point<C, D>> : std::true_type {};

/// An enum whose every value of the underlying type is valid: one with a fixed underlying
/// type (only those can be list-initialized from an integer).
template <class T>
concept fixed_enum = std::is_enum_v<T> && requires { T{std::underlying_type_t<T>{}}; };

template <class T>
concept hana_struct = hana::Struct<T>::value;

/// A plain aggregate that detail/codec/fields.hpp reflects (Hana structs and std::array are
/// handled apart).
template <class T>
concept plain_aggregate = fields::reflectable<T> && !hana_struct<T> && !is_array<T>::value &&
                          std::is_default_constructible_v<T>;

/// f.template operator()<Fs...>() with Fs the member types of T, without cv or reference
/// (a reference member is refused by `supported`, as a member that is not data).
template <class T, class F>
constexpr auto fold_fields(F f) {
    return fields::fold_types<T>([&]<class... Fs>() { return f.template operator()<Fs...>(); });
}

template <class T>
using hana_member_t = std::remove_cvref_t<T>;

template <class T, class F>
constexpr auto fold_hana_members(F f) {
    return hana::unpack(hana::accessors<T>(), [&](auto... p) {
        return f.template operator()<std::remove_cvref_t<decltype(hana::second(p)(std::declval<T&>()))>...>();
    });
}

/// Calls f(member) for each member of a Hana struct or a plain aggregate, in order; false
/// if it has none (then it encodes as an empty value).
template <class V, class F>
bool for_each_member(V& v, F&& f) {
    using U = std::remove_cvref_t<V>;
    if constexpr (hana_struct<U>) {
        if constexpr (decltype(hana::length(hana::accessors<U>()))::value == 0)
            return false;
        else
            hana::for_each(hana::accessors<U>(), [&](auto p) { f(hana::second(p)(v)); });
    } else {
        static_assert(plain_aggregate<U>);
        if constexpr (fields::count<U>() == 0)
            return false;
        else
            fields::for_each(v, f);
    }
    return true;
}

// ---- what the format covers -----------------------------------------------------

template <class T>
consteval bool supported();

template <class... Ts>
consteval bool all_supported() {
    return (supported<Ts>() && ...);
}

template <class T>
consteval bool supported() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, bool> || (std::is_arithmetic_v<U>) || fixed_enum<U>)
        return true;
    else if constexpr (std::is_enum_v<U>)
        return false; // no fixed underlying type: a received value could be out of range
    else if constexpr (is_string<U>::value)
        return std::is_arithmetic_v<typename U::value_type>;
    else if constexpr (is_vector<U>::value || is_array<U>::value || is_sequence<U>::value || is_set<U>::value ||
                       is_optional<U>::value)
        return supported<typename U::value_type>();
    else if constexpr (is_map<U>::value)
        return supported<typename U::key_type>() && supported<typename U::mapped_type>();
    else if constexpr (is_pair<U>::value)
        return supported<typename U::first_type>() && supported<typename U::second_type>();
    else if constexpr (is_tuple<U>::value || is_variant<U>::value)
        return []<template <class...> class L, class... Ts>(std::type_identity<L<Ts...>>) {
            return all_supported<Ts...>();
        }(std::type_identity<U>{});
    else if constexpr (std::is_same_v<U, std::monostate>)
        return true;
    else if constexpr (is_duration<U>::value)
        return supported<typename U::rep>();
    else if constexpr (is_time_point<U>::value)
        return supported<typename U::duration>();
    else if constexpr (hana_struct<U>)
        return fold_hana_members<U>([]<class... Fs>() { return all_supported<Fs...>(); });
    else if constexpr (plain_aggregate<U>)
        return fold_fields<U>([]<class... Fs>() { return all_supported<Fs...>(); });
    else
        return false;
}

/// Types that travel as their object representation, in one block with their neighbours.
template <class T>
consteval bool block() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, bool>)
        return false;
    else if constexpr (std::is_arithmetic_v<U>)
        return true;
    else if constexpr (fixed_enum<U>)
        return !std::is_same_v<std::underlying_type_t<U>, bool>;
    else if constexpr (is_array<U>::value)
        return std::tuple_size_v<U> > 0 && block<typename U::value_type>() &&
               sizeof(U) == std::tuple_size_v<U> * sizeof(typename U::value_type);
    else if constexpr (plain_aggregate<U> && std::is_trivially_copyable_v<U>) {
        if constexpr (fields::count<U>() == 0)
            return false;
        else
            return fold_fields<U>([]<class... Fs>() { return (block<Fs>() && ...) && (sizeof(Fs) + ...) == sizeof(U); });
    } else
        return false;
}

template <class T>
consteval std::size_t min_size();

template <class... Ts>
consteval std::size_t sum_min() {
    return (std::size_t{0} + ... + min_size<Ts>());
}

/// The fewest bytes a value of T encodes to; at least 1, so that counts can be checked.
template <class T>
consteval std::size_t min_size() {
    using U = std::remove_cv_t<T>;
    if constexpr (block<U>())
        return sizeof(U);
    else if constexpr (std::is_same_v<U, bool> || std::is_enum_v<U> || is_optional<U>::value ||
                       std::is_same_v<U, std::monostate>)
        return 1;
    else if constexpr (is_string<U>::value || is_vector<U>::value || is_sequence<U>::value || is_set<U>::value ||
                       is_map<U>::value)
        return sizeof(std::uint64_t);
    else if constexpr (is_array<U>::value)
        return std::tuple_size_v<U> == 0 ? 1 : std::tuple_size_v<U> * min_size<typename U::value_type>();
    else if constexpr (is_pair<U>::value)
        return min_size<typename U::first_type>() + min_size<typename U::second_type>();
    else if constexpr (is_tuple<U>::value)
        return std::tuple_size_v<U> == 0 ? 1 : []<class... Ts>(std::type_identity<std::tuple<Ts...>>) {
            return sum_min<Ts...>();
        }(std::type_identity<U>{});
    else if constexpr (is_variant<U>::value)
        return sizeof(std::uint32_t) + []<class... Ts>(std::type_identity<std::variant<Ts...>>) {
            return std::min({min_size<Ts>()...});
        }(std::type_identity<U>{});
    else if constexpr (is_duration<U>::value)
        return min_size<typename U::rep>();
    else if constexpr (is_time_point<U>::value)
        return min_size<typename U::duration>();
    else if constexpr (hana_struct<U>) {
        std::size_t n = fold_hana_members<U>([]<class... Fs>() { return sum_min<Fs...>(); });
        return n == 0 ? 1 : n;
    } else if constexpr (plain_aggregate<U>) {
        std::size_t n = fold_fields<U>([]<class... Fs>() { return sum_min<Fs...>(); });
        return n == 0 ? 1 : n;
    } else
        return 1;
}

template <class T>
inline constexpr bool supported_v = supported<T>();

// ---- encoding -----------------------------------------------------------------------

template <class W>
void put_count(W& w, std::size_t n) {
    std::uint64_t v = n;
    w.write(&v, sizeof v);
}

template <class W>
void put_unit(W& w) {
    unsigned char z = 0;
    w.write(&z, 1);
}

template <class T, class W>
void encode(const T& v, W& w) {
    using U = std::remove_cv_t<T>;
    if constexpr (block<U>()) {
        w.write(&v, sizeof(U));
    } else if constexpr (std::is_same_v<U, bool>) {
        unsigned char b = v ? 1 : 0;
        w.write(&b, 1);
    } else if constexpr (std::is_enum_v<U>) { // enum : bool
        encode(static_cast<std::underlying_type_t<U>>(v), w);
    } else if constexpr (is_string<U>::value) {
        put_count(w, v.size());
        w.write(v.data(), v.size() * sizeof(typename U::value_type));
    } else if constexpr (is_vector<U>::value || is_array<U>::value) {
        using E = typename U::value_type;
        if constexpr (is_vector<U>::value)
            put_count(w, v.size());
        else if constexpr (std::tuple_size_v<U> == 0)
            put_unit(w);
        if constexpr (block<E>())
            w.write(v.data(), v.size() * sizeof(E));
        else
            for (auto&& e : v) encode(static_cast<const E&>(e), w);
    } else if constexpr (is_sequence<U>::value || is_set<U>::value) {
        put_count(w, v.size());
        for (const auto& e : v) encode(e, w);
    } else if constexpr (is_map<U>::value) {
        put_count(w, v.size());
        for (const auto& [k, m] : v) {
            encode(k, w);
            encode(m, w);
        }
    } else if constexpr (is_pair<U>::value) {
        encode(v.first, w);
        encode(v.second, w);
    } else if constexpr (is_tuple<U>::value) {
        if constexpr (std::tuple_size_v<U> == 0)
            put_unit(w);
        else
            std::apply([&](const auto&... e) { (encode(e, w), ...); }, v);
    } else if constexpr (is_optional<U>::value) {
        encode(v.has_value(), w);
        if (v) encode(*v, w);
    } else if constexpr (is_variant<U>::value) {
        if (v.valueless_by_exception())
            detail::raise(serialization_error("multiproc: cannot encode a variant that is valueless by exception"));
        auto index = static_cast<std::uint32_t>(v.index());
        w.write(&index, sizeof index);
        std::visit([&](const auto& alt) { encode(alt, w); }, v);
    } else if constexpr (std::is_same_v<U, std::monostate>) {
        put_unit(w);
    } else if constexpr (is_duration<U>::value) {
        encode(v.count(), w);
    } else if constexpr (is_time_point<U>::value) {
        encode(v.time_since_epoch(), w);
    } else { // a Hana struct or a plain aggregate
        if (!for_each_member(v, [&](const auto& m) { encode(m, w); })) put_unit(w);
    }
}

// ---- decoding -----------------------------------------------------------------------

/// Reads an element count and checks that `count` elements of at least `each` bytes can
/// still be in the frame: a corrupt count fails here instead of allocating.
template <class R>
std::size_t get_count(R& r, std::size_t each) {
    std::uint64_t n = 0;
    r.read(&n, sizeof n);
    if (n > r.remaining() / each)
        detail::raise(serialization_error("multiproc: corrupt message: a count of " + std::to_string(n) +
                                  " elements of at least " + std::to_string(each) + " bytes each, with " +
                                  std::to_string(r.remaining()) + " bytes left in the frame"));
    return static_cast<std::size_t>(n);
}

/// How many of `n` elements of E to reserve room for before decoding them: no more than
/// the bytes left in the frame would fill as objects of E, so that a count (checked by
/// get_count, but an element may take fewer bytes in the frame than in memory) costs at
/// most the frame's own size until its elements are really there; the rest grows as they
/// are decoded.
template <class E, class R>
std::size_t reservable(std::size_t n, const R& r) {
    return std::min(n, r.remaining() / sizeof(E));
}

template <class R>
void get_unit(R& r) {
    unsigned char z = 1;
    r.read(&z, 1);
    if (z != 0) detail::raise(serialization_error("multiproc: corrupt message: an empty value's marker byte is not 0"));
}

template <class R>
bool get_flag(R& r, const char* what) {
    unsigned char b = 0;
    r.read(&b, 1);
    if (b > 1)
        detail::raise(serialization_error(std::string("multiproc: corrupt message: ") + what + " byte is " +
                                  std::to_string(b) + ", not 0 or 1"));
    return b == 1;
}

template <class T, class R>
void decode_into(T& v, R& r);

template <class T, class R>
T decode_value(R& r) {
    T v{};
    decode_into(v, r);
    return v;
}

template <class V, class R, std::size_t... I>
void decode_variant(V& v, std::uint32_t index, R& r, std::index_sequence<I...>) {
    using fn = void (*)(V&, R&);
    static constexpr fn table[] = {+[](V& out, R& in) {
        out.template emplace<I>();
        decode_into(std::get<I>(out), in);
    }...};
    table[index](v, r);
}

/// Fills string or vector `v` with `n` elements stored as bytes. Elements of a byte type are
/// copied once from where they are when the reader can say, not zero-filled by a resize
/// first.
template <class V, class R>
void read_block_elements(V& v, std::size_t n, R& r) {
    using E = typename V::value_type;
    // (Only for the byte types, through which any storage may be read; others need memcpy.)
    constexpr bool bytes = std::is_same_v<E, char> || std::is_same_v<E, unsigned char> || std::is_same_v<E, std::byte>;
    if constexpr (bytes && requires { r.take(n); }) {
        const E* first = reinterpret_cast<const E*>(r.take(n));
        v.assign(first, first + n);
    } else {
        v.resize(n);
        r.read(v.data(), n * sizeof(E));
    }
}

template <class T, class R>
void decode_into(T& v, R& r) {
    using U = std::remove_cv_t<T>;
    if constexpr (block<U>()) {
        r.read(&v, sizeof(U));
    } else if constexpr (std::is_same_v<U, bool>) {
        v = get_flag(r, "a bool");
    } else if constexpr (std::is_enum_v<U>) {
        v = static_cast<U>(decode_value<std::underlying_type_t<U>>(r));
    } else if constexpr (is_string<U>::value) {
        using C = typename U::value_type;
        std::size_t n = get_count(r, sizeof(C));
        read_block_elements(v, n, r);
    } else if constexpr (is_vector<U>::value) {
        using E = typename U::value_type;
        std::size_t n = get_count(r, min_size<E>());
        if constexpr (block<E>()) {
            read_block_elements(v, n, r);
        } else {
            v.clear();
            v.reserve(reservable<E>(n, r));
            for (std::size_t i = 0; i < n; ++i) v.push_back(decode_value<E>(r));
        }
    } else if constexpr (is_array<U>::value) {
        using E = typename U::value_type;
        if constexpr (std::tuple_size_v<U> == 0)
            get_unit(r);
        else if constexpr (block<E>())
            r.read(v.data(), sizeof(U));
        else
            for (auto& e : v) decode_into(e, r);
    } else if constexpr (is_sequence<U>::value) {
        using E = typename U::value_type;
        std::size_t n = get_count(r, min_size<E>());
        v.clear();
        for (std::size_t i = 0; i < n; ++i) v.push_back(decode_value<E>(r));
    } else if constexpr (is_set<U>::value || is_map<U>::value) {
        using E = typename U::value_type;
        std::size_t each;
        if constexpr (is_map<U>::value)
            each = min_size<typename U::key_type>() + min_size<typename U::mapped_type>();
        else
            each = min_size<E>();
        std::size_t n = get_count(r, each);
        v.clear();
        if constexpr (requires { v.reserve(n); }) v.reserve(reservable<void*>(n, r)); // (a bucket per element)
        for (std::size_t i = 0; i < n; ++i) {
            if constexpr (is_map<U>::value) {
                auto k = decode_value<typename U::key_type>(r);
                auto m = decode_value<typename U::mapped_type>(r);
                v.emplace_hint(v.end(), std::move(k), std::move(m));
            } else {
                v.emplace_hint(v.end(), decode_value<E>(r));
            }
        }
    } else if constexpr (is_pair<U>::value) {
        decode_into(v.first, r);
        decode_into(v.second, r);
    } else if constexpr (is_tuple<U>::value) {
        if constexpr (std::tuple_size_v<U> == 0)
            get_unit(r);
        else
            std::apply([&](auto&... e) { (decode_into(e, r), ...); }, v);
    } else if constexpr (is_optional<U>::value) {
        if (get_flag(r, "an optional's presence")) {
            v.emplace();
            decode_into(*v, r);
        } else {
            v.reset();
        }
    } else if constexpr (is_variant<U>::value) {
        std::uint32_t index = 0;
        r.read(&index, sizeof index);
        if (index >= std::variant_size_v<U>)
            detail::raise(serialization_error("multiproc: corrupt message: variant index " + std::to_string(index) +
                                      " of a variant with " + std::to_string(std::variant_size_v<U>) + " alternatives"));
        decode_variant(v, index, r, std::make_index_sequence<std::variant_size_v<U>>{});
    } else if constexpr (std::is_same_v<U, std::monostate>) {
        get_unit(r);
    } else if constexpr (is_duration<U>::value) {
        v = U(decode_value<typename U::rep>(r));
    } else if constexpr (is_time_point<U>::value) {
        v = U(decode_value<typename U::duration>(r));
    } else { // a Hana struct or a plain aggregate
        if (!for_each_member(v, [&](auto& m) { decode_into(m, r); })) get_unit(r);
    }
}

/// Decodes a whole frame as a T: every byte must be used.
template <class T, class R>
T decode_frame(R& r) {
    MULTIPROC_TRY {
        T v = decode_value<T>(r);
        if (r.remaining() != 0)
            detail::raise(serialization_error("multiproc: corrupt message: " + std::to_string(r.remaining()) +
                                      " bytes left over after the value"));
        return v;
    } MULTIPROC_CATCH(const serialization_error&, e) {
        std::string what = e.what();
        if (what.rfind("multiproc: ", 0) == 0) what.erase(0, 11);
        detail::raise(serialization_error("multiproc: cannot decode a " + type_name<T>() + " (serialize::binary): " +
                                  what));
    }
}

} MULTIPROC_ABI_END } // namespace multiproc::detail::bin
