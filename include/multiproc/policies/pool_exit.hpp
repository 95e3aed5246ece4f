/// @file policies/pool_exit.hpp
/// What a pool's destructor does (Python: `with Pool() as p:` calls terminate() on exit).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace pool_exit {
/// The destructor lets submitted work finish: close(), then join(). The default, unlike
/// CPython's `with Pool()`, which throws away outstanding work.
struct drain {
    using policy_kind = kind::pool_exit;
    static constexpr bool terminates = false;
};
/// The destructor stops the workers at once: terminate(), then join() (Python: leaving
/// `with Pool()`). Results not yet delivered fail with `broken_pool`.
struct terminate {
    using policy_kind = kind::pool_exit;
    static constexpr bool terminates = true;
};
} // namespace pool_exit

template <>
struct default_policy<kind::pool_exit> {
    using type = pool_exit::drain;
};

/// What a pool-exit policy provides: whether the destructor `terminates` (else it drains).
template <class P>
concept pool_exit_policy = policy_of_kind<P, kind::pool_exit> && requires {
    { P::terminates } -> std::convertible_to<bool>;
};

MULTIPROC_ABI_END } // namespace multiproc
