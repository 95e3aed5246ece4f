// Not part of the API: what a starting process hands to the objects among its arguments
// (connections close their peer ends in the child). Only detail code makes a key, so the
// public members that take one are not for users.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

struct child_key {
    explicit child_key() = default;
};

template <class A>
void claim_in_child(A& a) noexcept {
    if constexpr (requires { a.claim_in_child(child_key{}); }) a.claim_in_child(child_key{});
}

template <class A>
void adopt_in_child(A& a) noexcept {
    if constexpr (requires { a.adopt_in_child(child_key{}); }) a.adopt_in_child(child_key{});
}

/// In a new child, before its target runs: every argument first claims its place, then
/// each lets go of what belongs to the parent alone (a connection closes its peer end,
/// unless the peer is an argument too).
template <class... A>
void adopt_arguments(A&... args) noexcept {
    (claim_in_child(args), ...);
    (adopt_in_child(args), ...);
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
