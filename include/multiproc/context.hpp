/// @file context.hpp
/// `context<Ps...>`: makes objects that share a set of policies (Python:
/// multiprocessing.get_context(method), whose methods make processes, queues, pools, ...).
#pragma once

#include <multiproc/fwd.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <cstddef>
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

    /// A queue of T with this context's transport and serializer (Python: ctx.Queue(maxsize)).
    template <class T>
    [[nodiscard]] basic_queue<T, Ps...> queue(std::ptrdiff_t maxsize = 0, std::size_t buffer = 0) const {
        return basic_queue<T, Ps...>(maxsize, buffer);
    }
    /// A simple queue of T (Python: ctx.SimpleQueue()).
    template <class T>
    [[nodiscard]] basic_simple_queue<T, Ps...> simple_queue(std::size_t buffer = 0) const {
        return basic_simple_queue<T, Ps...>(buffer);
    }
    /// A joinable queue of T (Python: ctx.JoinableQueue(maxsize)).
    template <class T>
    [[nodiscard]] basic_joinable_queue<T, Ps...> joinable_queue(std::ptrdiff_t maxsize = 0, std::size_t buffer = 0) const {
        return basic_joinable_queue<T, Ps...>(maxsize, buffer);
    }
    /// Two connected ends of a pipe carrying T (Python: ctx.Pipe(duplex)).
    template <class T>
    [[nodiscard]] std::pair<basic_connection<T, Ps...>, basic_connection<T, Ps...>> pipe(bool duplex = true,
                                                                                          std::size_t buffer = 0) const {
        return multiproc::pipe<T, Ps...>(duplex, buffer);
    }
};

} // namespace multiproc
