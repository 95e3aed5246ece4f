/// @file policies/order.hpp
/// Result-ordering policies (Python: the choice between Pool.imap and Pool.imap_unordered).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace order {
/// Results come back in the order of the inputs. The default.
struct ordered {
    using policy_kind = kind::order;
    static constexpr bool is_ordered = true;
};
/// Results come back as soon as each is ready.
struct unordered {
    using policy_kind = kind::order;
    static constexpr bool is_ordered = false;
};
} // namespace order

template <>
struct default_policy<kind::order> {
    using type = order::ordered;
};

/// What an ordering policy provides: `is_ordered`.
template <class P>
concept order_policy = policy_of_kind<P, kind::order> && requires {
    { P::is_ordered } -> std::convertible_to<bool>;
};

MULTIPROC_ABI_END } // namespace multiproc
