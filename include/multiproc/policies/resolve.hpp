/// @file policies/resolve.hpp
/// `policy_set<Ps...>`: resolves any number of policies, in any order, to one per kind
/// (Python: get_context() and keyword defaults; here it all happens at compile time).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/daemon.hpp>
#include <multiproc/policies/kinds.hpp>
#include <multiproc/policies/nested.hpp>
#include <multiproc/policies/order.hpp>
#include <multiproc/policies/pool_exit.hpp>
#include <multiproc/policies/serialize.hpp>
#include <multiproc/policies/start.hpp>
#include <multiproc/policies/transport.hpp>
#include <multiproc/policies/worker_death.hpp>

#include <cstddef>
#include <type_traits>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {

// Instantiated once per template argument, so that the compiler's "required from" note
// names the offending type right above this sentence.
template <class P>
struct check_is_policy {
    static_assert(policy<P>,
                  "multiproc: every template argument must be a policy, such as start::spawn or "
                  "transport::shm; a type of your own becomes one by declaring "
                  "`using policy_kind = multiproc::kind::...;` (the offending type is named in the "
                  "instantiation above)");
    static constexpr bool value = true;
};

// Policy resolution is plain fold expressions: Boost.Hana's tuples and algorithms cost more
// to compile than they save here (docs/design/errors.md says where Hana stays).
template <class P, class K>
constexpr bool is_of_kind() {
    if constexpr (policy<P>)
        return std::is_same_v<typename P::policy_kind, K>;
    else
        return false;
}

template <class K, class... Ps>
constexpr std::size_t count_of_kind = (std::size_t{0} + ... + (is_of_kind<Ps, K>() ? 1 : 0));

template <class K>
constexpr bool is_builtin_kind =
    std::is_same_v<K, kind::start> || std::is_same_v<K, kind::daemon> || std::is_same_v<K, kind::nested> ||
    std::is_same_v<K, kind::transport> ||
    std::is_same_v<K, kind::serialize> || std::is_same_v<K, kind::order> || std::is_same_v<K, kind::worker_death> ||
    std::is_same_v<K, kind::pool_exit>;

// Kinds of the user's own: at most one policy each (the built-in kinds have their own sentences).
template <class P, class... Ps>
constexpr bool kind_unique() {
    if constexpr (policy<P>) {
        using K = typename P::policy_kind;
        return is_builtin_kind<K> || count_of_kind<K, Ps...> <= 1;
    } else {
        return true;
    }
}

template <class... Ps>
constexpr bool user_kinds_unique = (kind_unique<Ps, Ps...>() && ...);

// The first policy of kind K among Ps..., or the kind's default.
template <class K, class... Ps>
struct resolve;
template <class K>
struct resolve<K> {
    using type = typename default_policy<K>::type;
};
template <class K, class P, class... Ps>
struct resolve<K, P, Ps...> {
    using type = typename std::conditional_t<is_of_kind<P, K>(), std::type_identity<P>, resolve<K, Ps...>>::type;
};

} // namespace detail

/// The policies of a class, one per kind: the one given, or the kind's `default_policy`.
/// Rejects non-policies and two policies of one kind with a sentence naming the fix.
template <class... Ps>
struct policy_set {
    static_assert((detail::check_is_policy<Ps>::value && ...));
    static_assert(detail::count_of_kind<kind::start, Ps...> <= 1,
                  "multiproc: at most one start-method policy (start::fork | start::spawn | start::forkserver)");
    static_assert(detail::count_of_kind<kind::daemon, Ps...> <= 1,
                  "multiproc: at most one daemon policy (daemon::no | daemon::yes)");
    static_assert(detail::count_of_kind<kind::nested, Ps...> <= 1,
                  "multiproc: at most one nesting policy (nested::forbid | nested::allow)");
    static_assert(detail::count_of_kind<kind::transport, Ps...> <= 1,
                  "multiproc: at most one transport policy (transport::pipe | transport::socketpair | transport::shm)");
    static_assert(detail::count_of_kind<kind::serialize, Ps...> <= 1,
                  "multiproc: at most one serialization policy (serialize::bitwise | serialize::binary | "
                  "ext::serialize::cereal)");
    static_assert(detail::count_of_kind<kind::order, Ps...> <= 1,
                  "multiproc: at most one ordering policy (order::ordered | order::unordered)");
    static_assert(detail::count_of_kind<kind::worker_death, Ps...> <= 1,
                  "multiproc: at most one worker-death policy (worker_death::fail | worker_death::retry<N>)");
    static_assert(detail::count_of_kind<kind::pool_exit, Ps...> <= 1,
                  "multiproc: at most one pool-exit policy (pool_exit::drain | pool_exit::terminate)");
    static_assert(detail::user_kinds_unique<Ps...>,
                  "multiproc: at most one policy of each kind; two of the policies given share a policy_kind");

    /// The policy of kind `K`.
    template <class K>
    using get = typename detail::resolve<K, Ps...>::type;

    using start = get<kind::start>;
    using daemon = get<kind::daemon>;
    using nested = get<kind::nested>;
    using transport = get<kind::transport>;
    using serialize = get<kind::serialize>;
    using order = get<kind::order>;
    using worker_death = get<kind::worker_death>;
    using pool_exit = get<kind::pool_exit>;

    static_assert(start_policy<start>, "multiproc: the start-method policy must satisfy multiproc::start_policy");
    static_assert(daemon_policy<daemon>, "multiproc: the daemon policy must satisfy multiproc::daemon_policy");
    static_assert(nested_policy<nested>, "multiproc: the nesting policy must satisfy multiproc::nested_policy");
    static_assert(transport_policy<transport>, "multiproc: the transport policy must satisfy multiproc::transport_policy");
    static_assert(serialize_policy<serialize>, "multiproc: the serialization policy must satisfy multiproc::serialize_policy");
    static_assert(order_policy<order>, "multiproc: the ordering policy must satisfy multiproc::order_policy");
    static_assert(worker_death_policy<worker_death>,
                  "multiproc: the worker-death policy must satisfy multiproc::worker_death_policy");
    static_assert(pool_exit_policy<pool_exit>, "multiproc: the pool-exit policy must satisfy multiproc::pool_exit_policy");
};

/// The policy of kind `K` among `Ps...` (or its default).
template <class K, class... Ps>
using policy_t = typename policy_set<Ps...>::template get<K>;

MULTIPROC_ABI_END } // namespace multiproc
