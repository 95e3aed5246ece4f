/// @file policies/daemon.hpp
/// Daemon policies (Python: Process(daemon=...) and the inherited default).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace daemon {
/// New processes are not daemons: the creator waits for them at exit. The default.
struct no {
    using policy_kind = kind::daemon;
    static constexpr bool value = false;
};
/// New processes are daemons: terminated when their creator exits normally, killed if it
/// dies, and not allowed to have children of their own (unless made under nested::allow,
/// policies/nested.hpp).
struct yes {
    using policy_kind = kind::daemon;
    static constexpr bool value = true;
};
} // namespace daemon

template <>
struct default_policy<kind::daemon> {
    using type = daemon::no;
};

/// What a daemon policy provides: the default daemon flag as `value`.
template <class P>
concept daemon_policy = policy_of_kind<P, kind::daemon> && requires {
    { P::value } -> std::convertible_to<bool>;
};

MULTIPROC_ABI_END } // namespace multiproc
