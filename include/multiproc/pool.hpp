/// @file pool.hpp
/// Process pools (Python: multiprocessing.Pool and multiprocessing.pool.AsyncResult).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/pool/pool_codec.hpp>
#include <multiproc/detail/pool/pool_core.hpp>
#include <multiproc/detail/pool/pool_jobs.hpp>
#include <multiproc/detail/pool/pool_tasks.hpp>
#include <multiproc/detail/pool/pool_wire.hpp>
#include <multiproc/detail/util/format.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// How a pool is made (Python: the keywords of Pool()).
struct pool_options {
    /// How many workers; empty means cpu_count() (Python: processes=None).
    std::optional<int> processes{};
    /// Run once in each worker before its first task, e.g. to open a connection (Python:
    /// initializer and initargs; bind the arguments into it). Under start::fork it may be
    /// any callable. If it throws, the pool breaks: every task fails with broken_pool.
    std::function<void()> initializer{};
    /// Each worker leaves after this many tasks (chunks) and is replaced; empty: never
    /// (Python: maxtasksperchild=None).
    std::optional<int> maxtasksperchild{};
    /// The longest a task may run (each element of a map's chunk counts alone). A task past
    /// it fails with timeout_error naming the task and its worker, which is killed and
    /// replaced; the pool goes on, and under worker_death::retry<N> the task runs again.
    /// Empty: no limit. `submit(task_options{.timeout = ...}, f, args...)` overrides it for
    /// one call. (CPython's pool has none; pebble's `schedule(timeout=)` is the model.)
    std::optional<std::chrono::nanoseconds> task_timeout{};
    /// Told what happens to the tasks: queued, started, finished, failed, cancelled, with
    /// the worker (see pool_event and pool_observer; pool_progress counts them). Empty: the
    /// pool pays one untaken branch per chunk. (CPython's pool has none.)
    pool_observer observer{};
};

/// A pool observer that counts events, readable from any thread while the pool runs, e.g. to
/// draw a progress line: `pool.observe(std::ref(progress))` (it is not copyable: pass it by
/// reference, and keep it alive as long as the pool).
class pool_progress {
public:
    pool_progress() = default;
    pool_progress(const pool_progress&) = delete;
    pool_progress& operator=(const pool_progress&) = delete;

    /// Counts `e` (what the pool calls).
    void operator()(const pool_event& e) noexcept {
        counts_[static_cast<std::size_t>(e.what)].fetch_add(e.tasks, std::memory_order_relaxed);
    }
    /// Tasks submitted so far.
    [[nodiscard]] std::uint64_t queued() const noexcept { return get(pool_event::kind::queued); }
    /// Times a worker started tasks (a task run again counts again).
    [[nodiscard]] std::uint64_t started() const noexcept { return get(pool_event::kind::started); }
    /// Tasks whose result came back.
    [[nodiscard]] std::uint64_t finished() const noexcept { return get(pool_event::kind::finished); }
    /// Tasks that failed (raised, lost their worker, timed out, or the pool stopped).
    [[nodiscard]] std::uint64_t failed() const noexcept { return get(pool_event::kind::failed); }
    /// Tasks cancelled.
    [[nodiscard]] std::uint64_t cancelled() const noexcept { return get(pool_event::kind::cancelled); }
    /// Tasks that have ended, one way or another: finished + failed + cancelled.
    [[nodiscard]] std::uint64_t done() const noexcept { return finished() + failed() + cancelled(); }

private:
    [[nodiscard]] std::uint64_t get(pool_event::kind k) const noexcept {
        return counts_[static_cast<std::size_t>(k)].load(std::memory_order_relaxed);
    }
    std::atomic<std::uint64_t> counts_[5]{};
};

/// Options of one call (`pool.submit(task_options{...}, f, args...)`).
struct task_options {
    /// This task's timeout, instead of pool_options::task_timeout; zero: none.
    std::optional<std::chrono::nanoseconds> timeout{};
};

/// How async_result::cancel treats a task a worker is running: `queued_only` leaves it
/// running (and cancel returns false, as Python's Future.cancel() does); `kill_running`
/// kills its worker, which the pool replaces, and the task fails with cancelled_error.
enum class cancel_mode { queued_only, kill_running };

/// The callbacks of an asynchronous call (Python: the `callback` and `error_callback`
/// keywords): `callbacks{cb}`, `callbacks{cb, ecb}`, or `callbacks{nullptr, ecb}` (Python's
/// callback=None). `cb(result)` runs when the call succeeds, `ecb(const multiproc::error&)`
/// when it fails, in the pool's engine thread (Python: the result-handler thread), before the
/// result becomes ready. An exception thrown by one is reported on stderr and ignored.
template <class C = std::nullptr_t, class E = std::nullptr_t>
struct callbacks {
    /// Called with the result when the call succeeds (Python: callback).
    C callback;
    /// Called with the error when it fails (Python: error_callback).
    E error_callback;

    callbacks(C c = {}, E e = {}) : callback(std::move(c)), error_callback(std::move(e)) {}
};

namespace detail {
/// Defined in <multiproc/views/imap.hpp>: `make(xs, pool, f, chunksize)` is the view that
/// pool.imap (or imap_unordered, if Unordered) returns. F only makes the name dependent.
template <bool Unordered, class F>
struct imap_maker;

template <class T>
inline constexpr bool is_callbacks = false;
template <class C, class E>
inline constexpr bool is_callbacks<callbacks<C, E>> = true;

template <class V, class C, class E>
void set_callbacks(result_state<V>& st, callbacks<C, E>& cb) {
    typename result_state<V>::callback_type on_value;
    std::function<void(const multiproc::error&)> on_error;
    if constexpr (!std::is_same_v<C, std::nullptr_t>) on_value = std::move(cb.callback);
    if constexpr (!std::is_same_v<E, std::nullptr_t>) on_error = std::move(cb.error_callback);
    st.set_callbacks(std::move(on_value), std::move(on_error));
}

/// What CPython calls a pool's workers under start method `start` (Python 3.12: the
/// Process class of the pool's context, ForkProcess, SpawnProcess or ForkServerProcess,
/// renamed ForkPoolWorker-N, SpawnPoolWorker-N or ForkServerPoolWorker-N); PoolWorker
/// under a start method CPython does not have.
constexpr std::string_view pool_worker_class_name(std::string_view start) noexcept {
    if (start == "fork") return "ForkPoolWorker";
    if (start == "spawn") return "SpawnPoolWorker";
    if (start == "forkserver") return "ForkServerPoolWorker";
    return "PoolWorker";
}

/// A process of the pool (Python: the Process objects a Pool makes, renamed
/// ForkPoolWorker-N and so on): a daemon that runs worker_main; it may start processes if
/// the pool's policies include nested::allow.
template <class... Ps>
class pool_worker : public process_base<pool_worker<Ps...>, Ps...> {
    using base = process_base<pool_worker<Ps...>, Ps...>;

public:
    static constexpr std::string_view process_class_name =
        pool_worker_class_name(policy_set<Ps...>::start::name);
    /// What a spawn or forkserver worker makes before it gets its link (fields()).
    pool_worker() = default;
    explicit pool_worker(worker_boot* b) : base(process_options{std::string(), true}), link_(b) {}
    void run() { (void)worker_main(link_.boot()); }
    /// Under spawn and forkserver, what crosses into the worker.
    auto fields() { return std::tie(link_); }

    static process_handle spawn(worker_boot* b) {
        pool_worker w(b);
        w.start();
        return process_handle(std::move(w));
    }

private:
    worker_link link_;
};

/// map's chunksize when none is given, as CPython computes it: about four chunks per worker
/// (chunksize, extra = divmod(len, 4 * processes); rounded up).
constexpr std::size_t default_chunksize(std::size_t n, int processes) noexcept {
    const std::size_t four_each = 4 * static_cast<std::size_t>(processes);
    return n / four_each + (n % four_each ? 1 : 0);
}

template <class T>
concept tuple_like_element = requires { std::tuple_size<std::remove_cvref_t<T>>::value; };

/// The elements of several ranges taken together, as tuples of values, up to the end of the
/// shortest (Python: zip).
template <class... Rs>
auto zip_values(Rs&... rs) {
    std::vector<std::tuple<std::ranges::range_value_t<Rs>...>> out;
    auto its = std::make_tuple(std::ranges::begin(rs)...);
    auto ends = std::make_tuple(std::ranges::end(rs)...);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        while (((std::get<I>(its) != std::get<I>(ends)) && ...)) {
            out.emplace_back(*std::get<I>(its)...);
            (++std::get<I>(its), ...);
        }
    }(std::index_sequence_for<Rs...>{});
    return out;
}

/// Why a pool of start method `S` cannot stop a task that runs too long, or empty if it can.
template <class S>
constexpr std::string_view unstoppable_why() {
    if constexpr (start_runs_threads<S>)
        return "a pool of start::thread cannot stop a task that runs too long (a thread cannot be killed): a task "
               "timeout needs a pool of processes";
    else if constexpr (requires { S::unstoppable_why; })
        return S::unstoppable_why;
    else
        return {};
}

/// A task timeout in nanoseconds (empty stays empty, zero is none); value_error if negative,
/// or if the workers cannot be stopped (`unstoppable` says why).
inline std::optional<std::uint64_t> timeout_ns(std::optional<std::chrono::nanoseconds> t,
                                               std::string_view unstoppable) {
    if (!t) return std::nullopt;
    if (t->count() < 0) detail::raise(value_error("multiproc: a task timeout cannot be negative"));
    if (!unstoppable.empty() && t->count() != 0) detail::raise(value_error("multiproc: " + std::string(unstoppable)));
    // (Capped at about 73 years, so that a start time plus it cannot overflow the clock.)
    return static_cast<std::uint64_t>(std::min<std::int64_t>(t->count(), INT64_MAX / 4));
}
} // namespace detail

namespace detail {
struct result_identity; // (futures.hpp: which results of a group are the same one)
}

/// The result of an asynchronous pool call (Python: multiprocessing.pool.AsyncResult).
/// Copies refer to the same result. `V` is the task's result type (void for none).
template <class V>
class async_result {
public:
    /// An empty result, to assign one to later; everything but assignment is a value_error.
    async_result() = default;

    /// Whether `a` and `b` are the same result (copies are; two empty ones are too), as
    /// Python's futures compare by identity.
    friend bool operator==(const async_result& a, const async_result& b) noexcept { return a.st_ == b.st_; }

    /// Whether the call has completed (Python: ready()).
    [[nodiscard]] bool ready() const { return st().is_ready(); }
    /// Whether the call has completed, cancelled or not (Python: Future.done()).
    [[nodiscard]] bool done() const { return ready(); }
    /// Whether a worker runs the task now (Python: Future.running()).
    [[nodiscard]] bool running() const { return !ready() && core_->running(st()); }
    /// Whether cancel() succeeded (Python: Future.cancelled()).
    [[nodiscard]] bool cancelled() const {
        auto& s = st();
        return core_->locked([&] { return s.dropped; });
    }

    /// Cancels the call (Python: Future.cancel()): what no worker has started yet is dropped
    /// and the call fails at once with cancelled_error. A task that is running is left to
    /// run unless `mode` is cancel_mode::kill_running: then its worker is killed (and
    /// replaced) and the task fails with cancelled_error. Returns whether the call is now
    /// cancelled: false once it has completed, or if a task runs and is not to be killed.
    bool cancel(cancel_mode mode = cancel_mode::queued_only) {
        return core_->cancel_job(st(), mode == cancel_mode::kill_running);
    }

    /// The error the call failed with, after waiting for it; empty if it succeeded (Python:
    /// Future.exception()). A cancelled call's is a cancelled_error.
    [[nodiscard]] error_ptr exception() const {
        wait();
        return st().failure;
    }
    /// As above, waiting at most `timeout` (then timeout_error).
    template <class Rep, class Period>
    [[nodiscard]] error_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
        wait_or_throw(timeout);
        return st().failure;
    }

    /// A descriptor that polls readable once the call has completed (an eventfd, made on
    /// first use and closed with the last copy of this result): for poll/epoll, Asio's
    /// `posix::stream_descriptor::async_wait` (on a dup of it) or any event loop. Nothing is
    /// to be read from it.
    [[nodiscard]] int sentinel() const { return core_->ready_fd(st()); }

    /// `co_await r` in a C++20 coroutine: suspends until the call has completed, then gives
    /// its value (or throws its error), as get() would, without a thread per wait. The
    /// coroutine resumes in the pool's engine thread (where done callbacks run; it may submit
    /// and co_await further calls there, but not block on get()), or goes on at once if the
    /// call is complete already. To resume elsewhere, wait on sentinel() in your event loop.
    auto operator co_await() const {
        struct awaiter {
            async_result r;
            [[nodiscard]] bool await_ready() const { return r.ready(); }
            bool await_suspend(std::coroutine_handle<> h) const {
                std::function<void()> resume = [h] { h.resume(); };
                return r.core_->on_done_later(r.st(), resume);
            }
            auto await_resume() const {
                if constexpr (std::is_void_v<V>)
                    r.get();
                else
                    return V(r.get());
            }
        };
        return awaiter{*this};
    }

    /// Calls `f(r)`, with `r` a copy of this result, once the call has completed (Python:
    /// Future.add_done_callback): in the pool's engine thread, after the result is ready,
    /// or at once in this thread if it is ready already. An exception `f` throws is
    /// reported on stderr and ignored.
    template <class F>
        requires std::invocable<F&, const async_result&>
    void add_done_callback(F f) {
        auto& s = st();
        core_->on_done(s, [f = std::move(f), st = std::weak_ptr<detail::result_state<V>>(st_),
                           core = std::weak_ptr<detail::pool_core>(core_)]() mutable {
            if (auto r = st.lock()) f(async_result(std::move(r), core.lock()));
        });
    }

    /// Whether it completed without an error (Python: successful()); value_error if not ready.
    [[nodiscard]] bool successful() const {
        if (!ready()) detail::raise(value_error("<multiproc::async_result> not ready"));
        return !st().failure;
    }

    /// Waits until it is ready (Python: wait()).
    void wait() const { wait_until(std::nullopt); }
    /// Waits at most `timeout`; ask ready() after (Python: wait(timeout)).
    template <class Rep, class Period>
    void wait(std::chrono::duration<Rep, Period> timeout) const {
        wait_until(detail::deadline_after(std::optional(timeout)));
    }

    /// The result, once ready (Python: get()): the task's value, or the task's exception
    /// rethrown as remote_error (a lost task: broken_pool). A `const V&` to the value that
    /// the copies share.
    decltype(auto) get() const& {
        wait();
        return value();
    }
    /// As above, from a temporary (`pool.map_async(f, xs).get()`, or `std::move(r).get()`):
    /// the value itself, so that `const auto& v = pool.map_async(f, xs).get();` keeps it alive
    /// (moved out if no copy of this async_result is left to share it, copied otherwise).
    auto get() && {
        wait();
        return take();
    }
    /// As get(), but throws timeout_error if not ready within `timeout` (Python: get(timeout)).
    template <class Rep, class Period>
    decltype(auto) get(std::chrono::duration<Rep, Period> timeout) const& {
        wait_or_throw(timeout);
        return value();
    }
    /// As get(timeout), from a temporary: the value itself, as get() && gives it.
    template <class Rep, class Period>
    auto get(std::chrono::duration<Rep, Period> timeout) && {
        wait_or_throw(timeout);
        return take();
    }

    /// As get(), but the task's failure (remote_error, broken_pool) comes back in the result
    /// instead of being raised: the form for builds without exceptions. A copy of the value.
    result<detail::stored_t<V>> try_get() const {
        wait();
        return try_value();
    }
    /// As try_get(), with timeout_error in the result if not ready within `timeout`.
    template <class Rep, class Period>
    result<detail::stored_t<V>> try_get(std::chrono::duration<Rep, Period> timeout) const {
        wait(timeout);
        if (!ready()) return timeout_error("multiproc: the result was not ready within the timeout");
        return try_value();
    }

private:
    result<detail::stored_t<V>> try_value() const {
        auto& s = st();
        if (s.failure) return s.failure;
        if constexpr (std::is_void_v<V>)
            return detail::stored_t<V>{};
        else
            return *s.value;
    }

    template <class...>
    friend class basic_pool;
    async_result(std::shared_ptr<detail::result_state<V>> s, std::shared_ptr<detail::pool_core> core)
        : st_(std::move(s)), core_(std::move(core)) {}

    detail::result_state<V>& st() const {
        if (!st_) detail::raise(value_error("multiproc: an empty async_result"));
        return *st_;
    }
    void wait_until(std::optional<detail::steady::time_point> deadline) const {
        auto& s = st();
        if (!s.is_ready()) core_->wait(s, [&] { return s.is_ready(); }, deadline);
    }
    template <class Rep, class Period>
    void wait_or_throw(std::chrono::duration<Rep, Period> timeout) const {
        wait(timeout);
        if (!ready()) detail::raise(timeout_error("multiproc: the result was not ready within the timeout"));
    }
    decltype(auto) value() const {
        auto& s = st();
        if (s.failure) (s.failure).raise();
        if constexpr (std::is_void_v<V>)
            return;
        else
            return static_cast<const V&>(*s.value);
    }
    /// The value for a temporary: moved out when this is the only reference left, copied
    /// while another copy of this async_result (or, for a moment, the pool) still holds one.
    auto take() {
        auto& s = st();
        if (s.failure) (s.failure).raise();
        if constexpr (std::is_void_v<V>)
            return;
        else if (st_.use_count() == 1)
            return V(std::move(*s.value));
        else
            return V(*s.value);
    }

    friend struct detail::result_identity;
    std::shared_ptr<detail::result_state<V>> st_;
    std::shared_ptr<detail::pool_core> core_;
};

/// A pool of worker processes (Python: multiprocessing.Pool). Tasks are stateless callables
/// (functions, function pointers, lambdas without captures) and arguments that can be sent
/// to a process; their results come back, and their exceptions come back as remote_error.
/// Workers are daemons named as CPython names them (ForkPoolWorker-N under start::fork,
/// SpawnPoolWorker-N, ForkServerPoolWorker-N); one that dies is replaced, and the task it was
/// running fails with broken_pool (or runs again, under worker_death::retry<N>). Policies:
/// order (what imap yields), worker_death, pool_exit (what the destructor does), serialize,
/// nested (under nested::allow, tasks may start processes and pools of their own).
template <class... Ps>
class basic_pool {
public:
    /// The pool's policies, one per kind (order, worker_death, pool_exit, serialize, ...).
    using policies = policy_set<Ps...>;
    /// Whether the workers are threads of this process (start::thread) rather than processes.
    static constexpr bool threads = start_runs_threads<typename policies::start>;
    /// How arguments and results reach the workers: as bytes, by the serialization policy;
    /// under start::thread, moved in memory (only what the policy sends as its object
    /// representation, such as numbers, is copied as bytes).
    using codec = std::conditional_t<threads, detail::thread_codec<typename policies::serialize>,
                                     detail::pool_codec<typename policies::serialize>>;
    /// Whether the workers run on other machines, each one stood for by a thread of this
    /// process that carries its tasks and results (ext::start::mpi).
    static constexpr bool remote_workers = start_runs_remote<typename policies::start>;

private:
    static constexpr std::string_view unstoppable = detail::unstoppable_why<typename policies::start>();

public:

    /// A pool of cpu_count() workers (Python: Pool()).
    basic_pool() : basic_pool(pool_options{}) {}
    /// A pool of `processes` workers (Python: Pool(processes)); value_error if < 1.
    explicit basic_pool(int processes) : basic_pool(pool_options{processes, {}, {}}) {}
    /// Python: Pool(processes, initializer, initargs, maxtasksperchild). Each worker calls
    /// `initializer(initargs...)` once before its first task.
    /// Under start::spawn and start::forkserver the initializer must be stateless (a lambda
    /// without captures, or `fn<&function>`) and `initargs` data the serialization policy
    /// can send: the workers are fresh programs that rebuild both.
    template <class Init, class... IArgs>
    basic_pool(int processes, Init initializer, std::tuple<IArgs...> initargs = {},
               std::optional<int> maxtasksperchild = {})
        : basic_pool(pool_options{processes,
                                  [init = initializer, args = initargs]() mutable { std::apply(init, args); },
                                  maxtasksperchild},
                     remote_initializer<Init, IArgs...>(initargs)) {}
    /// A pool made from named options: `pool p(pool_options{.processes = 4, .maxtasksperchild = 100})`.
    /// Under start::spawn and start::forkserver, `initializer` cannot be given here (it is a
    /// std::function of this process): use the constructor that takes the initializer.
    explicit basic_pool(pool_options opts) : basic_pool(std::move(opts), std::nullopt) {}

private:
    template <class Init, class... IArgs>
    struct init_entry {
        static void run(const std::byte* p, std::size_t n) {
            detail::span_reader r({p, n});
            auto args = policies::serialize::template decode<std::tuple<IArgs...>>(r);
            std::apply(Init{}, args);
        }
    };

    template <class Init, class... IArgs>
    static std::optional<detail::remote_init> remote_initializer(const std::tuple<IArgs...>& args) {
        if constexpr (policies::start::inherits_memory) {
            return std::nullopt;
        } else {
            static_assert(detail::check_callable_reaches_workers<Init, false>::value);
            static_assert(detail::is_stateless_callable<Init>,
                          "multiproc: under start::spawn and start::forkserver a pool's initializer must be "
                          "stateless (a lambda without captures, or multiproc::fn<&function>): the workers are fresh "
                          "programs; pass what it needs in initargs");
            static_assert(detail::check_serializable<std::tuple<IArgs...>, typename policies::serialize>());
            using entry = init_entry<Init, IArgs...>;
            // (Not function-local statics: see detail::never_destroyed on forks and guards.)
            detail::remote_init ri;
            ri.id = registered_init<entry>;
            ri.signature = detail::key_hash(detail::type_key<entry>());
            std::vector<std::byte> bytes;
            detail::vector_writer w(bytes);
            policies::serialize::encode(args, w);
            ri.args.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            return ri;
        }
    }

    // Registered during static initialization, so that every run of the program (a spawned
    // worker, the forkserver's children) has the same numbers.
    template <class Entry>
    static inline const std::uint32_t registered_init =
        detail::code_registry<detail::remote_init_fn>::instance().add(detail::type_key<Entry>(), &Entry::run).index;

    basic_pool(pool_options opts, std::optional<detail::remote_init> remote) {
        if (opts.processes && *opts.processes < 1) detail::raise(value_error("Number of processes must be at least 1"));
        if (opts.maxtasksperchild && *opts.maxtasksperchild < 1)
            detail::raise(value_error("maxtasksperchild must be a positive int or None"));
        if (!policies::start::inherits_memory && opts.initializer && !remote)
            detail::raise(value_error(std::string("multiproc: a pool's initializer cannot reach start::") +
                              std::string(policies::start::name) +
                              " workers as a std::function (it is code and state of this process): pass a stateless "
                              "initializer and its initargs to basic_pool(processes, initializer, initargs)"));
        detail::pool_config cfg;
        cfg.processes = opts.processes.value_or(cpu_count());
        cfg.maxtasks = opts.maxtasksperchild;
        cfg.initializer = std::move(opts.initializer);
        cfg.remote_initializer = std::move(remote);
        cfg.retries = policies::worker_death::retries;
        if (opts.task_timeout) cfg.task_timeout_ns = *detail::timeout_ns(opts.task_timeout, unstoppable);
        cfg.observer = std::move(opts.observer);
        if constexpr (threads)
            cfg.threads = true;
        else if constexpr (remote_workers)
            policies::start::configure_pool(cfg, opts.processes.has_value()); // (threads that stand for workers)
        else
            cfg.spawn = &detail::pool_worker<Ps...>::spawn;
        cfg.forks_workers = policies::start::inherits_memory && !threads;
        cfg.ring_capacity = std::clamp<std::size_t>((std::size_t{8} << 20) / static_cast<std::size_t>(cfg.processes),
                                                    std::size_t{256} << 10, std::size_t{1} << 20);
        core_ = std::make_shared<detail::pool_core>(std::move(cfg));
    }

public:
    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;

    /// Under pool_exit::drain (the default): close(), then join(), so submitted work
    /// finishes. Under pool_exit::terminate: terminate(), then join() (Python: leaving
    /// `with Pool()`).
    ~basic_pool() {
        MULTIPROC_TRY {
            if constexpr (policies::pool_exit::terminates) {
                core_->terminate();
            } else {
                core_->close();
            }
            core_->join();
        } MULTIPROC_CATCH_ALL {
        }
    }

    /// The number of workers the pool keeps.
    [[nodiscard]] int processes() const noexcept { return core_->processes(); }

    /// Makes `observer` the pool's observer (pool_options::observer), or none if it is empty.
    /// Events from before the call are not replayed.
    void observe(pool_observer observer) { core_->set_observer(std::move(observer)); }

    /// Runs `f(args...)` in a worker and returns its result (Python: apply(f, args)).
    /// Arguments are copied (under start::thread, moved from rvalues); the worker gets its
    /// own copies as lvalues.
    template <class F, class... Args>
        requires(!detail::is_callbacks<F>)
    auto apply(F f, Args&&... args) {
        using R = typename detail::invoker<codec, F, detail::wire_t<Args>...>::result_type;
        auto job = submit_apply_with(f, [](auto&) {}, std::forward<Args>(args)...);
        core_->wait(*job, [&] { return job->is_ready(); }, std::nullopt);
        if (job->failure) (job->failure).raise();
        if constexpr (!std::is_void_v<R>) return R(std::move(*job->value));
    }

    /// Starts `f(args...)` in a worker and returns a handle on it at once (Python:
    /// concurrent.futures.Executor.submit). The same as apply_async: the async_result can be
    /// waited on, cancelled, and given done callbacks.
    template <class F, class... Args>
        requires(!detail::is_callbacks<F> && !std::is_same_v<std::remove_cvref_t<F>, task_options>)
    auto submit(F f, Args&&... args) {
        return apply_async(callbacks<>{}, f, std::forward<Args>(args)...);
    }
    /// As above, with options for this call (its timeout).
    template <class F, class... Args>
    auto submit(task_options opts, F f, Args&&... args) {
        using R = typename detail::invoker<codec, F, detail::wire_t<Args>...>::result_type;
        auto job = submit_apply_with(
            f, [&](auto& j) { j.timeout_ns = detail::timeout_ns(opts.timeout, unstoppable); }, std::forward<Args>(args)...);
        return async_result<R>(std::move(job), core_);
    }

    /// Starts `f(args...)` in a worker and returns at once (Python: apply_async).
    template <class F, class... Args>
        requires(!detail::is_callbacks<F>)
    auto apply_async(F f, Args&&... args) {
        return apply_async(callbacks<>{}, f, std::forward<Args>(args)...);
    }
    /// As above, with a callback and an error callback (Python: callback=, error_callback=).
    template <class C, class E, class F, class... Args>
    auto apply_async(callbacks<C, E> cb, F f, Args&&... args) {
        using R = typename detail::invoker<codec, F, detail::wire_t<Args>...>::result_type;
        auto job = submit_apply_with(f, [&](auto& j) { detail::set_callbacks(j, cb); }, std::forward<Args>(args)...);
        return async_result<R>(std::move(job), core_);
    }

    /// `f` applied to every element of `xs`, in order (Python: map(f, xs, chunksize)). `xs` is
    /// any input range (views of values made on the fly and of proxies included); each element
    /// is sent as the range's value type. The input is sent in chunks of `chunksize` elements;
    /// by default about four chunks per worker, as CPython chooses. Returns std::vector of the
    /// results (nothing for void f). A contiguous input of values that travel as their own
    /// bytes is sent from `xs` itself while map waits: nothing may write to it meanwhile.
    template <class F, std::ranges::input_range Rng>
    auto map(F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        // It waits for every result, so a contiguous input of plain values is not copied: the
        // chunks are sent from `xs` itself. If it leaves early (it throws, from the moment
        // the job exists), the input is copied for the units that may still be sent.
        struct lease {
            detail::pool_core& core;
            std::shared_ptr<detail::job_core> job; // set before anything is queued
            ~lease() {
                if (job) core.end_borrow(*job);
            }
        } borrowed{*core_, nullptr};
        return finish(map_with<true>(callbacks<>{}, f, std::forward<Rng>(xs), chunksize, &borrowed.job));
    }
    /// `f(a, b, ...)` for the elements of several ranges taken together, up to the end of the
    /// shortest (Python: Executor.map(f, *iterables), and the builtin map(f, xs, ys));
    /// std::vector of the results, in order. The same as starmap over their zip.
    template <class F, std::ranges::input_range R1, std::ranges::input_range R2, std::ranges::input_range... Rs>
    auto map(F f, R1&& a, R2&& b, Rs&&... rest) {
        return starmap(f, detail::zip_values(a, b, rest...));
    }

    /// Python: Executor.map(f, *iterables, timeout=...): map(f, xs) or map(f, xs, ys, ...),
    /// but if the results are not all in `timeout` after the call, timeout_error, and the
    /// tasks no worker has started are cancelled (those running complete; their results are
    /// dropped). The pool goes on.
    template <class Rep, class Period, class F, std::ranges::input_range... Rs>
        requires(sizeof...(Rs) >= 1)
    auto map(std::chrono::duration<Rep, Period> timeout, F f, Rs&&... rs) {
        detail::check_timeout(timeout); // (a NaN: value_error before anything is queued)
        auto r = [&] {
            if constexpr (sizeof...(Rs) == 1)
                return map_async(f, std::forward<Rs>(rs)...);
            else
                return starmap_async(f, detail::zip_values(rs...));
        }();
        r.wait(timeout);
        if (!r.ready() && core_->abandon(*r.st_))
            detail::raise(timeout_error(
                "multiproc: map's results were not all in within its timeout of " +
                std::to_string(static_cast<long long>(std::max(
                    0.0, std::chrono::duration<double, std::milli>(timeout).count()))) + // (a negative one: 0)
                " ms; the tasks no worker had started are cancelled"));
        return finish(std::move(r));
    }

    /// Asynchronous map (Python: map_async): an async_result of the std::vector.
    template <class F, std::ranges::input_range Rng>
        requires(!detail::is_callbacks<F>)
    auto map_async(F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        return map_async(callbacks<>{}, f, std::forward<Rng>(xs), chunksize);
    }
    /// As above, with callbacks; the callback receives the whole vector.
    template <class C, class E, class F, std::ranges::input_range Rng>
    auto map_async(callbacks<C, E> cb, F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        return map_with<false>(cb, f, std::forward<Rng>(xs), chunksize);
    }

    /// Like map, with each element a tuple (or pair, or other tuple-like value such as a zip's
    /// tuple of references) of arguments: f(a, b) for (a, b) (Python: starmap).
    template <class F, std::ranges::input_range Rng>
    auto starmap(F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        return finish(starmap_async(f, std::forward<Rng>(xs), chunksize));
    }
    /// Asynchronous starmap (Python: starmap_async).
    template <class F, std::ranges::input_range Rng>
        requires(!detail::is_callbacks<F>)
    auto starmap_async(F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        return starmap_async(callbacks<>{}, f, std::forward<Rng>(xs), chunksize);
    }
    /// As above, with callbacks.
    template <class C, class E, class F, std::ranges::input_range Rng>
    auto starmap_async(callbacks<C, E> cb, F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize = {}) {
        using T = std::ranges::range_value_t<Rng>;
        static_assert(detail::tuple_like_element<T>,
                      "multiproc: starmap needs elements that are tuples or pairs of arguments");
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            using inv = detail::invoker<codec, F, detail::wire_t<std::tuple_element_t<I, T>>...>;
            static_assert(detail::check_task<codec, F, detail::wire_t<std::tuple_element_t<I, T>>...>());
            static_assert(detail::check_callable_reaches_workers<F, policies::start::inherits_memory>::value);
            return submit_map<inv>(cb, f, std::forward<Rng>(xs), chunksize, [](auto& out, auto&& e) {
                (codec::template encode<detail::wire_t<std::tuple_element_t<I, T>>>(out, detail::to_wire(std::get<I>(std::forward<decltype(e)>(e)))),
                 ...);
            });
        }(std::make_index_sequence<std::tuple_size_v<T>>{});
    }

    /// `f` over `xs`, lazily, `chunksize` inputs per task (Python: imap). The same view as
    /// `xs | views::imap(pool, f)`: results in input order (unless the pool's policy is
    /// order::unordered), at most a window of inputs read ahead. The view is a range-v3 view,
    /// defined in <multiproc/views/imap.hpp>: include it to call imap (pool.hpp alone does not
    /// read range-v3; <multiproc/multiproc.hpp> includes it).
    template <class F, class Rng>
    auto imap(F f, Rng&& xs, std::ptrdiff_t chunksize = 1) {
        return make_imap<false, F>(std::forward<Rng>(xs), f, chunksize);
    }
    /// As imap, with results as they are ready (Python: imap_unordered).
    template <class F, class Rng>
    auto imap_unordered(F f, Rng&& xs, std::ptrdiff_t chunksize = 1) {
        return make_imap<true, F>(std::forward<Rng>(xs), f, chunksize);
    }

    /// Python: concurrent.futures.Executor.shutdown(wait, cancel_futures). No more tasks may
    /// be submitted (close()); with `cancel_futures`, every task no worker has started fails
    /// at once with cancelled_error; with `wait`, returns once the work in hand is done and
    /// the workers have left (join()). May be called again.
    void shutdown(bool wait = true, bool cancel_futures = false) {
        core_->close(); // first: nothing is submitted after the cancelling
        if (cancel_futures) core_->cancel_queued();
        if (wait) core_->join();
    }

    /// No more tasks may be submitted; the workers leave once the work in hand is done
    /// (Python: close()).
    void close() { core_->close(); }
    /// Stops the workers at once; calls not yet complete fail with broken_pool (Python:
    /// terminate()). Returns once the workers are gone.
    void terminate() { core_->terminate(); }
    /// Python 3.14: ProcessPoolExecutor.terminate_workers(). The same as terminate(): SIGTERM
    /// to every worker (SIGKILL a second later to one still there); calls not yet complete
    /// fail with broken_pool. Returns once the workers are gone.
    void terminate_workers() { core_->terminate(); }
    /// Python 3.14: ProcessPoolExecutor.kill_workers(). As terminate_workers(), with SIGKILL
    /// at once.
    void kill_workers() { core_->terminate(/*kill=*/true); }
    /// Waits for the workers to leave; value_error("Pool is still running") unless close()
    /// or terminate() came first (Python: join()).
    void join() { core_->join(); }

private:
    template <class, class, class, bool>
    friend class views::imap_view;

    // views::imap, reached through a class template that <multiproc/views/imap.hpp> defines,
    // so that pool.hpp needs no range-v3 until a program asks for the view.
    template <bool Unordered, class F, class Rng>
    auto make_imap(Rng&& xs, F f, std::ptrdiff_t chunksize) {
        using maker = detail::imap_maker<Unordered, F>;
        static_assert(detail::is_complete<maker>,
                      "multiproc: pool.imap and pool.imap_unordered return a range-v3 view: "
                      "#include <multiproc/views/imap.hpp> to use them");
        return maker::make(std::forward<Rng>(xs), *this, f, chunksize);
    }

    template <class F, class Setup, class... Args>
    auto submit_apply_with(F f, Setup&& setup, Args&&... args) {
        using inv = detail::invoker<codec, F, detail::wire_t<Args>...>;
        static_assert(detail::check_task<codec, F, detail::wire_t<Args>...>());
        static_assert(detail::check_callable_reaches_workers<F, policies::start::inherits_memory>::value);
        using R = typename inv::result_type;
        auto job = std::make_shared<detail::value_job<codec, R>>();
        setup(*job);
        auto& buf = detail::scratch_buffer();
        auto& units = detail::scratch_units();
        detail::encode_chunk<inv>(buf, units, job.get(), f, 0, 1, [&](detail::byte_buffer& out) {
            (codec::template encode<detail::wire_t<Args>>(out, detail::to_wire(std::forward<Args>(args))), ...);
        });
        core_->submit(job, buf, units);
        return job;
    }

    /// map_async, or with `Borrow` the start of a blocking map (see submit_map).
    template <bool Borrow, class C, class E, class F, class Rng>
    auto map_with(callbacks<C, E> cb, F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize,
                  std::shared_ptr<detail::job_core>* borrower = nullptr) {
        using W = detail::wire_t<std::ranges::range_value_t<Rng>>;
        static_assert(detail::check_task<codec, F, W>());
        static_assert(detail::check_callable_reaches_workers<F, policies::start::inherits_memory>::value);
        return submit_map<detail::invoker<codec, F, W>, Borrow>(
            cb, f, std::forward<Rng>(xs), chunksize,
            [](auto& out, auto&& e) { codec::template encode<W>(out, detail::to_wire(std::forward<decltype(e)>(e))); },
            borrower);
    }

    /// With `Borrow` (a blocking map), a contiguous input of values that travel as their own
    /// bytes is borrowed, not copied; the job is stored in `*borrower` before anything is
    /// queued, and the caller calls pool_core::end_borrow on it before it returns.
    template <class Inv, bool Borrow = false, class C, class E, class F, class Rng, class EncodeOne>
    auto submit_map(callbacks<C, E>& cb, F f, Rng&& xs, std::optional<std::ptrdiff_t> chunksize, EncodeOne encode_one,
                    std::shared_ptr<detail::job_core>* borrower = nullptr) {
        using R = typename Inv::result_type;
        using V = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;
        static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                      "multiproc: map needs a default-constructible result type (the results are put in "
                      "place as chunks arrive); use imap for others");
        if constexpr (!std::ranges::sized_range<Rng> || !std::ranges::forward_range<Rng>) {
            // Python turns such an iterable into a list first; so do we: a list of values
            // (a zip's tuple of references, vector<bool>'s bit reference, become values).
            std::vector<std::ranges::range_value_t<Rng>> all;
            for (auto&& e : xs) all.emplace_back(std::forward<decltype(e)>(e));
            if constexpr (codec::in_memory) // (the list is ours: its values are moved on)
                return submit_map<Inv>(cb, f, std::move(all), chunksize, encode_one);
            else
                return submit_map<Inv>(cb, f, all, chunksize, encode_one);
        } else {
            core_->check_running();
            const auto n = static_cast<std::size_t>(std::ranges::size(xs));
            std::size_t cs;
            if (chunksize) {
                cs = detail::checked_chunksize(*chunksize);
            } else {
                cs = detail::default_chunksize(n, processes());
            }
            auto job = std::make_shared<detail::map_job<codec, R>>(n);
            detail::set_callbacks(*job, cb);
            detail::byte_buffer buf;
            std::vector<detail::unit_meta> units;
            auto it = std::ranges::begin(xs);
            using E0 = std::remove_cvref_t<std::ranges::range_reference_t<Rng>>;
            using W0 = detail::wire_t<std::ranges::range_value_t<Rng>>;
            // Elements that travel as their own bytes, one after another.
            constexpr bool as_bytes = std::contiguous_iterator<decltype(it)> && std::is_same_v<E0, W0> &&
                                      codec::template fixed_size<W0>() == sizeof(W0) && Inv::stride() == sizeof(W0);
            constexpr bool borrows = Borrow && as_bytes && detail::borrows_aligned<F>;
            if constexpr (borrows) {
                job->source = reinterpret_cast<const std::byte*>(std::to_address(it));
                job->source_size = n * sizeof(W0);
                *borrower = job;
            }
            for (std::size_t start = 0; start < n; start += cs) {
                const auto count = static_cast<std::uint32_t>(std::min(cs, n - start));
                detail::encode_chunk<Inv>(buf, units, job.get(), f, start, count, [&](detail::byte_buffer& out) {
                    if constexpr (borrows) {
                        (void)out; // (the elements are borrowed: encode_chunk's last two arguments)
                    } else if constexpr (as_bytes) {
                        out.append(std::to_address(it), count * sizeof(W0)); // the chunk at once
                        it += count;
                    } else {
                        // A container the caller gave up (map(f, std::move(xs))): a thread
                        // pool moves its elements on instead of copying them.
                        constexpr bool given_up = codec::in_memory && !std::is_lvalue_reference_v<Rng> &&
                                                  !std::ranges::view<std::remove_cvref_t<Rng>>;
                        for (std::uint32_t k = 0; k < count; ++k, ++it) {
                            if constexpr (given_up)
                                encode_one(out, std::ranges::iter_move(it));
                            else
                                encode_one(out, *it);
                        }
                    }
                }, borrows ? start * sizeof(W0) : 0, borrows ? count * sizeof(W0) : 0);
            }
            core_->submit(job, buf, units, /*take=*/true);
            return async_result<V>(std::move(job), core_);
        }
    }

    template <class V>
    static auto finish(async_result<V> r) {
        if constexpr (std::is_void_v<V>) {
            r.get();
        } else {
            r.wait();
            if (r.st_->failure) (r.st_->failure).raise();
            return V(std::move(*r.st_->value));
        }
    }

    std::shared_ptr<detail::pool_core> core_;
};

MULTIPROC_ABI_END } // namespace multiproc
