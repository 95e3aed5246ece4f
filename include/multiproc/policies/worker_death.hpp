/// @file policies/worker_death.hpp
/// What a pool does with the task of a worker that dies while running it (Python: nothing
/// comparable; multiprocessing.Pool hangs, concurrent.futures breaks the whole pool).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <concepts>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace worker_death {
/// The task that was running fails with `broken_pool`, naming the worker's pid, its signal
/// or exit code and the task; the pool replaces the worker and runs everything else. The default.
struct fail {
    using policy_kind = kind::worker_death;
    static constexpr unsigned retries = 0;
};
/// The task that was running is run again on another worker, up to `N` more times; if
/// its worker dies every time, it fails with `broken_pool` as under `fail`.
template <unsigned N>
struct retry {
    using policy_kind = kind::worker_death;
    static constexpr unsigned retries = N;
};
} // namespace worker_death

template <>
struct default_policy<kind::worker_death> {
    using type = worker_death::fail;
};

/// What a worker-death policy provides: how many times a task is `retries`-ed after the
/// worker running it died (0: it fails at once).
template <class P>
concept worker_death_policy = policy_of_kind<P, kind::worker_death> && requires {
    { P::retries } -> std::convertible_to<unsigned>;
};

MULTIPROC_ABI_END } // namespace multiproc
