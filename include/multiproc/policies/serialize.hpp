/// @file policies/serialize.hpp
/// Serialization policies (Python: pickle, which multiprocessing uses for everything it sends).
#pragma once

#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <string_view>

namespace multiproc {

namespace serialize {
/// Trivially copyable types as their bytes: one memcpy.
struct bitwise {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "bitwise";
};
/// Standard types, plain aggregates (Boost.PFR) and Hana-adapted structs. The default.
struct binary {
    using policy_kind = kind::serialize;
    static constexpr std::string_view name = "binary";
};
} // namespace serialize

template <>
struct default_policy<kind::serialize> {
    using type = serialize::binary;
};

/// What a serialization policy provides: its `name`.
template <class P>
concept serialize_policy = policy_of_kind<P, kind::serialize> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
};

} // namespace multiproc
