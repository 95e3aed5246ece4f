/// @file policies/nested.hpp
/// Nesting policies: whether a daemon may have children of its own (Python: always
/// forbidden, "daemonic processes are not allowed to have children").
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace nested {
/// CPython's rule: a daemon's start() of a child fails with state_error "daemonic processes
/// are not allowed to have children", so a pool worker may not make processes or pools. The
/// default.
struct forbid {
    using policy_kind = kind::nested;
    static constexpr bool allowed = false;
};
/// A daemon made under this policy (a pool worker of `basic_pool<nested::allow>` too) may
/// start children and pools. CPython forbids it so that a daemon's children are not orphaned
/// when the daemon is terminated; here every daemon dies with its creator (killed by the
/// kernel or by the forkserver), so its own daemon children die with it in turn.
struct allow {
    using policy_kind = kind::nested;
    static constexpr bool allowed = true;
};
} // namespace nested

template <>
struct default_policy<kind::nested> {
    using type = nested::forbid;
};

/// What a nesting policy provides: whether daemons made under it may have children, as `allowed`.
template <class P>
concept nested_policy = policy_of_kind<P, kind::nested> && requires {
    { P::allowed } -> std::convertible_to<bool>;
};

MULTIPROC_ABI_END } // namespace multiproc
