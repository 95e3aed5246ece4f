// Not part of the API: the members of a plain aggregate, found without macros (what
// serialize::binary encodes member by member and serialize::bitwise checks for addresses).
//
// Counting: an aggregate T with m members (up to max_fields) accepts `T{ {}, ..., {} }` with
// m empty-brace initializers and no more. An empty brace pair initializes one member
// whatever it is — a scalar, a class with a default constructor, an array of any size —
// and never spreads over an array's elements the way an initializer without braces does
// (brace elision, which makes counting by converters try sizeof(T) * CHAR_BIT initializers
// for a struct holding a large array and exhausts the compiler's memory). A member that an
// empty brace pair cannot initialize (a reference, a class without a default constructor)
// makes the type not reflectable: one more initializer that converts to anything would then
// still fit, and that is checked. Member types come from structured bindings, written out for
// 1..max_fields members with Boost.Preprocessor.
//
// Not reflectable (reflectable<T> is false, nothing fails to compile): non-aggregates,
// unions, tuple-like aggregates (std::array: handle it as a container), aggregates with a
// base class, aggregates with a member an empty brace pair cannot
// initialize. An aggregate with more than max_fields members stops compilation with a sentence.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <boost/preprocessor/arithmetic/inc.hpp>
#include <boost/preprocessor/punctuation/comma_if.hpp>
#include <boost/preprocessor/repetition/enum_params.hpp>
#include <boost/preprocessor/repetition/repeat.hpp>
#include <boost/preprocessor/repetition/repeat_from_to.hpp>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::fields {

/// The most members an aggregate can have to be reflected.
inline constexpr std::size_t max_fields = 64;

#define MULTIPROC_FIELDS_MAX 64 // max_fields, for the preprocessor

/// Converts to anything: an initializer that fits any member an empty brace pair cannot.
struct any_lvalue {
    template <class U>
    operator U&() const noexcept;
};
/// Converts to anything as a prvalue: fits members that cannot be copied.
struct any_prvalue {
    template <class U>
    operator U() const noexcept;
};
/// Converts only to a base class of T: fits the first initializer only if it is a base.
template <class T>
struct any_base {
    template <class B>
        requires(std::is_base_of_v<B, T> && !std::is_same_v<B, T>)
    operator B&() const noexcept;
};

/// braces<N>: whether `T{ {} x N }` compiles, and whether one more initializer E fits after.
template <std::size_t N>
struct braces;

#define MULTIPROC_FIELDS_EMPTY(z, n, _) BOOST_PP_COMMA_IF(n){}
#define MULTIPROC_FIELDS_BRACES(z, n, _)                                                           \
    template <>                                                                                    \
    struct braces<n> {                                                                             \
        template <class T>                                                                         \
        static constexpr bool fit = requires { T{BOOST_PP_REPEAT_##z(n, MULTIPROC_FIELDS_EMPTY, _)}; }; \
        template <class T, class E>                                                                \
        static constexpr bool one_more =                                                           \
            requires { T{BOOST_PP_REPEAT_##z(n, MULTIPROC_FIELDS_EMPTY, _) BOOST_PP_COMMA_IF(n) E{}}; }; \
    };
BOOST_PP_REPEAT(BOOST_PP_INC(BOOST_PP_INC(MULTIPROC_FIELDS_MAX)), MULTIPROC_FIELDS_BRACES, _)
#undef MULTIPROC_FIELDS_BRACES
#undef MULTIPROC_FIELDS_EMPTY

/// The most empty-brace initializers T takes, up to max_fields + 1; -1 if none.
template <class T>
consteval int brace_count() {
    return []<std::size_t... N>(std::index_sequence<N...>) {
        int most = -1;
        ((braces<N>::template fit<T> ? most = static_cast<int>(N) : 0), ...);
        return most;
    }(std::make_index_sequence<max_fields + 2>{});
}

template <class T>
consteval bool check_reflectable() {
    if constexpr (!std::is_class_v<T> || std::is_union_v<T> || !std::is_aggregate_v<T>)
        return false;
    else if constexpr (requires { std::tuple_size<T>::value; })
        return false; // tuple-like (std::array): structured bindings see its elements, not its members
    else if constexpr (requires { T{any_base<T>{}}; })
        return false; // a base class: structured bindings see the members of one class only
    else {
        constexpr int n = brace_count<T>();
        if constexpr (n < 0)
            return false;
        else if constexpr (static_cast<std::size_t>(n) > max_fields)
            return true; // too many members: the reflection below says so
        else
            return !braces<n>::template one_more<T, any_lvalue> && !braces<n>::template one_more<T, any_prvalue>;
    }
}

/// Whether T is a plain aggregate whose members can be listed.
template <class T>
concept reflectable = check_reflectable<std::remove_cv_t<T>>();

/// The number of members of T.
template <reflectable T>
consteval std::size_t count() {
    constexpr int n = brace_count<std::remove_cv_t<T>>();
    static_assert(static_cast<std::size_t>(n) <= max_fields,
                  "multiproc: an aggregate with more than 64 members cannot be reflected (serialize::binary, "
                  "serialize::bitwise); group its members into nested aggregates, or adapt it with Hana");
    return static_cast<std::size_t>(n);
}

/// The member types of a T in a type list: `types<Fs...>`.
template <class... Fs>
struct types {};

/// bind<N>: the structured bindings of an aggregate with N members.
template <std::size_t N>
struct bind;

template <>
struct bind<0> {
    template <class V, class F>
    static constexpr decltype(auto) apply(V&, F&& f) {
        return std::forward<F>(f)();
    }
    template <class V>
    static types<> list(V&);
};

#define MULTIPROC_FIELDS_DECLTYPE(z, n, _) BOOST_PP_COMMA_IF(n) decltype(m##n)
#define MULTIPROC_FIELDS_BIND(z, n, _)                                                             \
    template <>                                                                                    \
    struct bind<n> {                                                                               \
        template <class V, class F>                                                                \
        static constexpr decltype(auto) apply(V& v, F&& f) {                                       \
            auto& [BOOST_PP_ENUM_PARAMS_Z(z, n, m)] = v;                                           \
            return std::forward<F>(f)(BOOST_PP_ENUM_PARAMS_Z(z, n, m));                            \
        }                                                                                          \
        template <class V>                                                                         \
        static auto list(V& v) {                                                                   \
            auto& [BOOST_PP_ENUM_PARAMS_Z(z, n, m)] = v;                                           \
            return types<BOOST_PP_REPEAT_##z(n, MULTIPROC_FIELDS_DECLTYPE, _)>{};                  \
        }                                                                                          \
    };
BOOST_PP_REPEAT_FROM_TO(1, BOOST_PP_INC(MULTIPROC_FIELDS_MAX), MULTIPROC_FIELDS_BIND, _)
#undef MULTIPROC_FIELDS_BIND
#undef MULTIPROC_FIELDS_DECLTYPE
#undef MULTIPROC_FIELDS_MAX

/// The declared types of T's members, in order (a reference member as its reference type).
template <reflectable T>
using types_of = decltype(bind<count<T>()>::list(std::declval<std::remove_cv_t<T>&>()));

/// Returns `f.template operator()<Fs...>()` with Fs the declared types of T's members.
template <reflectable T, class F>
constexpr decltype(auto) fold_types(F&& f) {
    return []<class... Fs>(F& g, types<Fs...>) -> decltype(auto) {
        return g.template operator()<Fs...>();
    }(f, types_of<T>{});
}

/// A tuple of references to the members of v, in order.
template <class V>
    requires reflectable<std::remove_cvref_t<V>>
constexpr auto tie_of(V& v) {
    return bind<count<std::remove_cvref_t<V>>()>::apply(v, [](auto&... m) { return std::tie(m...); });
}

/// Calls f(member) for each member of v, in order.
template <class V, class F>
    requires reflectable<std::remove_cvref_t<V>>
constexpr void for_each(V& v, F&& f) {
    bind<count<std::remove_cvref_t<V>>()>::apply(v, [&](auto&... m) { (f(m), ...); });
}

} MULTIPROC_ABI_END } // namespace multiproc::detail::fields
