/// @file views/imap.hpp
/// Lazy `imap` as range-v3 adaptors (Python: Pool.imap and Pool.imap_unordered, which read
/// all of their input first; these read at most a bounded window ahead).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/pool/pool_core.hpp>
#include <multiproc/detail/pool/pool_jobs.hpp>
#include <multiproc/detail/pool/pool_tasks.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/pool.hpp>

#include <range/v3/iterator/default_sentinel.hpp>
#include <range/v3/range/access.hpp>
#include <range/v3/range/concepts.hpp>
#include <range/v3/range/traits.hpp>
#include <range/v3/view/all.hpp>
#include <range/v3/view/facade.hpp>
#include <range/v3/view/view.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// How an imap splits its input and how far it reads ahead (Python: imap's `chunksize`;
/// the window is ours: CPython reads everything first).
struct imap_options {
    /// Inputs sent to a worker together (Python: chunksize); at least 1.
    std::ptrdiff_t chunksize = 1;
    /// At most this many inputs are read but not yet yielded; by default two chunks per
    /// worker, or 64 inputs per worker if that is more; never less than one chunk.
    std::optional<std::ptrdiff_t> window{};
};

/// A pool that views::imap can use: one of the basic_pool types.
template <class P>
concept pool_type = requires(P& p) {
    typename P::codec;
    typename P::policies;
    { p.processes() } -> std::convertible_to<int>;
};

namespace views {

namespace detail_imap {

/// What imap reads: any input range, range-v3's or the standard's. range-v3 0.12's concepts
/// want copyable iterators; a standard input range may have move-only ones
/// (`std::views::istream<int>(in)`), so each range is read with its own library's begin,
/// end and value type.
template <class Rng>
concept input = ranges::input_range<Rng> || std::ranges::input_range<Rng>;

template <class Rng>
decltype(auto) begin_of(Rng& r) {
    if constexpr (ranges::range<Rng>)
        return ranges::begin(r);
    else
        return std::ranges::begin(r);
}
template <class Rng>
decltype(auto) end_of(Rng& r) {
    if constexpr (ranges::range<Rng>)
        return ranges::end(r);
    else
        return std::ranges::end(r);
}
template <class Rng>
using iterator_of = decltype(begin_of(std::declval<Rng&>()));
template <class Rng>
using sentinel_of = decltype(end_of(std::declval<Rng&>()));
template <class Rng>
struct value_of_ {
    using type = std::ranges::range_value_t<Rng>;
};
template <class Rng>
    requires ranges::range<Rng>
struct value_of_<Rng> {
    using type = ranges::range_value_t<Rng>;
};
template <class Rng>
using value_of = typename value_of_<Rng>::type;

} // namespace detail_imap

/// The view that `views::imap`, `views::imap_unordered`, `pool.imap` and
/// `pool.imap_unordered` return: single-pass, lazy; each element is the result of `f` on
/// the corresponding input (in input order if `Ordered`, else as results arrive). A task
/// that threw makes dereferencing its element throw `remote_error`; a lost task throws
/// `broken_pool`. The view refers to the pool, which must outlive the iteration. It and
/// its copies are one iteration, as Python's IMapIterator: a second begin() goes on where
/// the first stopped (a result that was dereferenced is consumed), and nothing is submitted
/// twice.
template <class Pool, class F, class Rng, bool Ordered>
class imap_view : public ranges::view_facade<imap_view<Pool, F, Rng, Ordered>, ranges::unknown> {
    using codec = typename Pool::codec;
    using wire = detail::wire_t<detail_imap::value_of<Rng>>;
    using inv = detail::invoker<codec, F, wire>;
    using result = typename inv::result_type;
    using job_t = detail::imap_job<codec, result, Ordered>;

public:
    /// What each element is: the task's result (std::monostate for a void task).
    using value_type = detail::stored_t<result>;

    imap_view() = default;
    imap_view(Pool& pool, F f, Rng base, imap_options opts)
        : core_(pool.core_), f_(f), sh_(std::make_shared<shared>(std::move(base))), opts_(opts) {
        static_assert(detail::check_task<codec, F, wire>());
        static_assert(detail::check_callable_reaches_workers<F, Pool::policies::start::inherits_memory>::value);
        chunksize_ = detail::checked_chunksize(opts_.chunksize);
        if (opts_.window && *opts_.window < 1)
            detail::raise(value_error("multiproc: an imap window must be at least 1, not " + std::to_string(*opts_.window)));
        // Two chunks per worker, but at least 64 tasks per worker: with small chunks the window
        // must cover the time it takes to wake the iterating thread (see docs/design/pool.md).
        const std::size_t per_worker = std::max<std::size_t>(2 * chunksize_, 64);
        const std::size_t wanted = opts_.window ? static_cast<std::size_t>(*opts_.window)
                                                : per_worker * static_cast<std::size_t>(pool.processes());
        window_ = std::max(wanted, chunksize_);
        core_->check_running();
    }

private:
    friend ranges::range_access;

    // The iteration: input read in the iterating thread only, a bounded window ahead.
    struct state {
        std::shared_ptr<detail::pool_core> core;
        F f;
        detail_imap::iterator_of<Rng> it;
        detail_imap::sentinel_of<Rng> end;
        std::size_t chunksize, window;
        std::shared_ptr<job_t> job = std::make_shared<job_t>();
        std::uint64_t pulled = 0, yielded = 0;
        bool input_done = false, input_closed = false;
        error_ptr input_error; // the input itself threw: yielded after the chunks before the one it broke
        std::deque<detail::outcome<result>> ready;
        detail::outcome<result> current;
        bool fresh = false; // `current` is a result not yet read
        bool stale = false; // moved past `current`: the next result is fetched when it is read or compared with the end
        bool at_end = false;
        detail::byte_buffer buf;
        std::vector<detail::unit_meta> units;

        state(std::shared_ptr<detail::pool_core> c, F fn, Rng& base, std::size_t cs, std::size_t w)
            : core(std::move(c)), f(fn), it(detail_imap::begin_of(base)), end(detail_imap::end_of(base)), chunksize(cs),
              window(w) {}
        state(const state&) = delete;
        state& operator=(const state&) = delete;
        ~state() {
            MULTIPROC_TRY {
                core->cancel(*job);
            } MULTIPROC_CATCH_ALL {
            }
        }

        // Reads inputs until the window is full, in whole chunks, and submits them at once.
        void fill() {
            if (input_done) return;
            buf.clear();
            units.clear();
            detail::box_arena* arena = codec::in_memory ? &job->boxes : nullptr;
            detail::arena_scope<codec::in_memory> values_go_to(arena); // (start::thread)
            while (!input_done && pulled - yielded + chunksize <= window) {
                const std::size_t at = detail::begin_task<inv>(buf, f);
                std::uint32_t count = 0;
                MULTIPROC_TRY {
                    while (count < chunksize && it != end) {
                        codec::template encode<wire>(buf, detail::to_wire(*it));
                        ++it;
                        ++count;
                    }
                    if (it == end) input_done = true;
                } MULTIPROC_CATCH_ALL {
                    // CPython: an exception from the input takes the place of the chunk it
                    // broke, and ends the iteration; the inputs of that chunk read before it
                    // are never run (CPython builds a chunk whole, with tuple(islice(...))).
                    count = 0;
                    input_error = error_ptr::current();
                    input_done = true;
                }
                if (count == 0) {
                    buf.shrink(at);
                    break;
                }
                detail::unit_meta u;
                u.job = job.get();
                u.first = pulled;
                u.hi = count;
                u.size = detail::end_task(buf, at, count, arena);
                u.own = u.size;
                units.push_back(u);
                pulled += count;
            }
            if (!units.empty()) core->submit(job, buf, units);
            if (input_done && !input_closed) {
                input_closed = true;
                core->close_input(*job);
            }
        }

        /// An iterator's ++: moves past the result it stands on without waiting for the next
        /// one (so take(n) waits for n results, not n + 1: Python's islice calls next() n
        /// times), topping the window up. A result never fetched that it moves past (++
        /// twice) is fetched, and dropped.
        void step() {
            settle();
            move_on();
        }

        /// Marks the result the iteration stands on passed (or, before the first, the start),
        /// and tops the window up.
        void move_on() {
            fresh = false;
            if (at_end) return;
            stale = true;
            top_up();
        }

        // Top up in batches (when half the window is free): one lock and one dispatch for
        // many tasks.
        void top_up() {
            if (pulled - yielded <= window / 2) fill();
        }

        /// The result the iteration stands on, fetched if it moved past the last one.
        void settle() {
            if (stale) (void)advance();
        }

        /// Moves to the next result; false if `deadline` passed first (nothing moved). What
        /// throws (a pool stopped, a call from another process) moves nothing either: the
        /// iteration still stands where it stood, `stale` included.
        bool advance(std::optional<detail::steady::time_point> deadline = std::nullopt) {
            if (!fetch(deadline)) return false;
            stale = false;
            return true;
        }

        // advance() but for `stale`.
        bool fetch(std::optional<detail::steady::time_point> deadline) {
            for (;;) {
                if (!ready.empty()) {
                    current = std::move(ready.front());
                    ready.pop_front();
                    ++yielded;
                    fresh = true;
                    return true;
                }
                top_up();
                if (yielded == pulled) {
                    if (input_error) {
                        current = detail::outcome<result>{std::nullopt, std::exchange(input_error, {})};
                        fresh = true;
                        return true;
                    }
                    at_end = true;
                    return true;
                }
                if (!core->wait(*job, [&] { return job->available.load(std::memory_order_acquire) != 0; }, deadline))
                    return false;
                core->locked([&] { job->take(ready); });
            }
        }
    };

    // What every copy of the view shares (range-v3's adaptors copy the view they adapt): the
    // input, and the one iteration once begun, whose iterators point into that input.
    struct shared {
        explicit shared(Rng b) : base(std::move(b)) {}
        Rng base;
        std::optional<state> st; // (declared after base: destroyed first)
    };

    struct cursor {
        std::shared_ptr<shared> sh; // (keeps the input too: an iterator may outlive the view)
        using single_pass = std::true_type;

        value_type& read() const {
            state& st = *sh->st;
            st.settle();
            st.fresh = false; // read: a later begin() or next() goes on after it
            if (st.current.failure) (st.current.failure).raise();
            return *st.current.value;
        }
        void next() { sh->st->step(); }
        bool equal(ranges::default_sentinel_t) const {
            sh->st->settle();
            return sh->st->at_end;
        }
    };

    /// The one iteration of this view and its copies, begun at the first begin() or next()
    /// (Python: an IMapIterator is its own iterator, so a second loop goes on where the first
    /// stopped, after an islice of it too).
    state& iteration() {
        if (!core_) detail::raise(value_error("multiproc: an imap view made without a pool cannot be iterated"));
        if (!sh_->st) sh_->st.emplace(core_, f_, sh_->base, chunksize_, window_);
        return *sh_->st;
    }

    cursor begin_cursor() {
        state& s = iteration();
        // (The first result, or the one after the last read; fetched when it is asked for.)
        if (!s.fresh && !s.at_end && !s.stale) s.move_on();
        return cursor{sh_};
    }

public:
    /// The next result, waiting for it at most `timeout` (Python: IMapIterator.next(timeout)):
    /// empty once every result has been given; timeout_error if none was ready in time (the
    /// view stays usable: ask again). A task's error is thrown, as iteration throws it. This
    /// and begin() go on with one iteration: the result an iterator stands on and has not
    /// given (dereferenced) comes next.
    template <class Rep, class Period>
    std::optional<value_type> next(std::chrono::duration<Rep, Period> timeout) {
        return next_until(detail::deadline_after(std::optional(timeout)));
    }
    /// As above, waiting as long as it takes (Python: next(it)).
    std::optional<value_type> next() { return next_until(std::nullopt); }

private:
    std::optional<value_type> next_until(std::optional<detail::steady::time_point> deadline) {
        state& s = iteration();
        if (!s.fresh && !s.at_end && !s.advance(deadline))
            detail::raise(timeout_error("multiproc: the next imap result was not ready within the timeout"));
        if (s.at_end) return std::nullopt;
        s.fresh = false;
        if (s.current.failure) (s.current.failure).raise();
        return std::move(*s.current.value);
    }

    std::shared_ptr<detail::pool_core> core_;
    F f_{};
    std::shared_ptr<shared> sh_; // the input and the iteration, shared by copies
    imap_options opts_{};
    std::size_t chunksize_ = 1, window_ = 1;
};

namespace detail_imap {

/// A container or standard view given to imap as an rvalue, kept alive (shared) by the view.
template <class C>
class owning : public ranges::view_base {
public:
    owning() = default;
    explicit owning(C&& c) : c_(std::make_shared<C>(std::move(c))) {}
    auto begin() const { return begin_of(*c_); }
    auto end() const { return end_of(*c_); }

private:
    std::shared_ptr<C> c_;
};

/// A standard range given as an lvalue that range-v3 cannot view (its iterators are
/// move-only): referred to, as an lvalue container is; it must outlive the view.
template <class C>
class borrowed : public ranges::view_base {
public:
    borrowed() = default;
    explicit borrowed(C& c) : c_(&c) {}
    auto begin() const { return begin_of(*c_); }
    auto end() const { return end_of(*c_); }

private:
    C* c_ = nullptr;
};

template <class Rng>
auto as_view(Rng&& rng) {
    if constexpr (ranges::viewable_range<Rng>)
        return ranges::views::all(std::forward<Rng>(rng));
    else if constexpr (std::is_lvalue_reference_v<Rng>)
        return borrowed<std::remove_reference_t<Rng>>(rng);
    else
        return owning<std::remove_cvref_t<Rng>>(std::move(rng));
}

template <bool Unordered>
struct imap_base_fn {
    template <class Rng, class Pool, class F>
        requires input<Rng> && pool_type<Pool>
    auto operator()(Rng&& rng, Pool* pool, F f, imap_options opts) const {
        constexpr bool ordered = !Unordered && Pool::policies::order::is_ordered;
        using view_t = imap_view<Pool, F, decltype(as_view(std::forward<Rng>(rng))), ordered>;
        return view_t(*pool, f, as_view(std::forward<Rng>(rng)), opts);
    }
};

/// What `views::imap(pool, f, opts)` binds: applied to a range, the view.
template <bool Unordered, class Pool, class F>
struct imap_bound {
    Pool* pool = nullptr;
    F f{};
    imap_options opts{};

    template <class Rng>
        requires input<Rng>
    auto operator()(Rng&& rng) const {
        return imap_base_fn<Unordered>{}(std::forward<Rng>(rng), pool, f, opts);
    }
};

/// `std_view | views::imap(pool, f)`. range-v3 0.12 counts only its own views as views, and
/// deletes `|` for a standard view given as an rvalue (`std::views::iota(0, 9) | ...`), or
/// for any whose iterators are move-only (`std::views::istream<int>(in) | ...`); the view is
/// then kept by the imap view, as range-v3 keeps its own (or referred to, if an lvalue).
template <class Rng, bool Unordered, class Pool, class F>
    requires std::ranges::viewable_range<Rng> && (!ranges::viewable_range<Rng>) && std::ranges::input_range<Rng>
auto operator|(Rng&& rng, const ranges::views::view_closure<imap_bound<Unordered, Pool, F>>& closure) {
    return closure(std::forward<Rng>(rng));
}

template <bool Unordered>
struct imap_fn : imap_base_fn<Unordered> {
    /// `xs | views::imap(pool, f)`: a closure to apply to a range.
    template <class Pool, class F>
        requires pool_type<Pool>
    auto operator()(Pool& pool, F f, imap_options opts = {}) const {
        (void)detail::check_pool_callable<F>::value; // rejects a capturing lambda here, where it is written
        return ranges::make_view_closure(imap_bound<Unordered, Pool, F>{&pool, f, opts});
    }
    /// `views::imap(xs, pool, f)`: the view at once (an rvalue container is kept by the view).
    template <class Rng, class Pool, class F>
        requires input<Rng> && pool_type<Pool>
    auto operator()(Rng&& rng, Pool& pool, F f, imap_options opts = {}) const {
        return imap_base_fn<Unordered>::operator()(std::forward<Rng>(rng), &pool, f, opts);
    }
};

} // namespace detail_imap

/// `xs | multiproc::views::imap(pool, f)`: f applied to each element of xs in the pool's
/// workers, lazily (Python: pool.imap(f, xs)). Results come in input order unless the pool's
/// policy is order::unordered. At most a window of inputs is read ahead, so infinite input
/// works: `views::iota(0) | views::imap(pool, f) | ranges::views::take(5)`.
inline constexpr detail_imap::imap_fn<false> imap{};

/// As `imap`, with results in the order they are ready (Python: pool.imap_unordered).
inline constexpr detail_imap::imap_fn<true> imap_unordered{};

} // namespace views

namespace detail {
/// What pool.imap and pool.imap_unordered return (declared in pool.hpp).
template <bool Unordered, class F>
struct imap_maker {
    template <class Rng, class Pool>
    static auto make(Rng&& xs, Pool& pool, F f, std::ptrdiff_t chunksize) {
        if constexpr (Unordered)
            return views::imap_unordered(std::forward<Rng>(xs), pool, f, imap_options{chunksize, {}});
        else
            return views::imap(std::forward<Rng>(xs), pool, f, imap_options{chunksize, {}});
    }
};
} // namespace detail
MULTIPROC_ABI_END } // namespace multiproc

