/// @file context.hpp
/// `context<Ps...>`: makes objects that share a set of policies (Python:
/// multiprocessing.get_context(method), whose methods make processes, queues, pools, ...).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/fwd.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <multiproc/detail/util/chrono.hpp>
#include <array>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN

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

    /// A pool with this context's policies (Python: ctx.Pool(processes, ...)); the
    /// arguments are those of basic_pool's constructors.
    template <class... Args>
    [[nodiscard]] basic_pool<Ps...> pool(Args&&... args) const {
        return basic_pool<Ps...>(std::forward<Args>(args)...);
    }

    /// A lock (Python: ctx.Lock()).
    [[nodiscard]] basic_lock<Ps...> lock() const { return basic_lock<Ps...>(); }
    /// A recursive lock (Python: ctx.RLock()).
    [[nodiscard]] multiproc::rlock rlock() const { return multiproc::rlock(); }
    /// A semaphore with `value` units (Python: ctx.Semaphore(value=1)).
    [[nodiscard]] multiproc::semaphore semaphore(int value = 1) const { return multiproc::semaphore(value); }
    /// A bounded semaphore (Python: ctx.BoundedSemaphore(value=1)).
    [[nodiscard]] multiproc::bounded_semaphore bounded_semaphore(int value = 1) const {
        return multiproc::bounded_semaphore(value);
    }
    /// An event (Python: ctx.Event()).
    [[nodiscard]] multiproc::event event() const { return multiproc::event(); }
    /// A condition over a new rlock (Python: ctx.Condition()).
    [[nodiscard]] multiproc::condition condition() const { return multiproc::condition(); }
    /// A condition over `l`, a lock or an rlock (Python: ctx.Condition(lock)).
    template <class Lock>
    [[nodiscard]] multiproc::condition condition(const Lock& l) const {
        return multiproc::condition(l);
    }
    /// A barrier (Python: ctx.Barrier(parties, action=None, timeout=None)).
    [[nodiscard]] multiproc::barrier barrier(std::size_t parties, std::function<void()> action = {},
                                             std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const {
        return multiproc::barrier(parties, std::move(action), timeout);
    }
    /// A T in shared memory with an rlock (Python: ctx.Value(typecode, init)).
    template <class T>
    [[nodiscard]] multiproc::value<T> value(const T& init = T{}) const {
        return multiproc::value<T>(init);
    }
    /// `n` Ts in shared memory with an rlock (Python: ctx.Array(typecode, n)).
    template <class T>
    [[nodiscard]] multiproc::array<T> array(std::size_t n) const {
        return multiproc::array<T>(n);
    }
    /// The Ts given, in shared memory with an rlock (Python: ctx.Array(typecode, [...])).
    template <class T>
    [[nodiscard]] multiproc::array<T> array(std::initializer_list<T> init) const {
        return multiproc::array<T>(init);
    }
    /// A T in shared memory with no lock (Python: ctx.RawValue(typecode, init)).
    template <class T>
    [[nodiscard]] multiproc::raw_value<T> raw_value(const T& init = T{}) const {
        return multiproc::raw_value<T>(init);
    }
    /// `n` Ts in shared memory with no lock (Python: ctx.RawArray(typecode, n)).
    template <class T>
    [[nodiscard]] multiproc::raw_array<T> raw_array(std::size_t n) const {
        return multiproc::raw_array<T>(n);
    }
};

/// The names of the start methods this platform offers, the default first (Python:
/// multiprocessing.get_all_start_methods(), which on Linux in 3.12 returns the same list):
/// the names that `context<start::X>::start_method()` returns.
[[nodiscard]] constexpr std::array<std::string_view, 3> get_all_start_methods() noexcept {
    static_assert(std::is_same_v<default_policy<kind::start>::type, start::fork>, "the default start method comes first");
    return {start::fork::name, start::spawn::name, start::forkserver::name};
}

MULTIPROC_ABI_END } // namespace multiproc
