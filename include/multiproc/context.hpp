/// @file context.hpp
/// `context<Ps...>`: makes objects that share a set of policies (Python:
/// multiprocessing.get_context(method), whose methods make processes, queues, pools, ...).
#pragma once

#include <multiproc/fwd.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>

#include <utility>

namespace multiproc {

/// A set of policies, resolved once, and factories for objects that use them:
/// `multiproc::context<start::fork, daemon::yes> ctx; auto p = ctx.process(f, 1);`.
template <class... Ps>
class context {
public:
    using policies = policy_set<Ps...>;

    /// The start method's name, as Python's get_start_method() returns it.
    static constexpr auto start_method() noexcept { return policies::start::name; }

    /// A process with this context's policies (Python: ctx.Process(target, args)).
    template <class F, class... Args>
    [[nodiscard]] basic_process<Ps...> process(F&& target, Args&&... args) const {
        return basic_process<Ps...>(std::forward<F>(target), std::forward<Args>(args)...);
    }

    /// A pool with this context's policies (Python: ctx.Pool(processes, ...)); the
    /// arguments are those of basic_pool's constructors.
    template <class... Args>
    [[nodiscard]] basic_pool<Ps...> pool(Args&&... args) const {
        return basic_pool<Ps...>(std::forward<Args>(args)...);
    }
};

} // namespace multiproc
