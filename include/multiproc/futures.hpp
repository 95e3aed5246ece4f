/// @file futures.hpp
/// Waiting on many pool results at once (Python: concurrent.futures.wait and as_completed):
/// `wait(results, timeout, return_when)` and the lazy range `as_completed(results, timeout)`.
/// A result is an `async_result<V>` from any pool (`submit`, `apply_async`, `map_async`, ...).
/// Both are built on `async_result::add_done_callback`: no thread and no polling per result.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp> // deadline_after
#include <multiproc/detail/util/chrono.hpp>
#include <multiproc/error.hpp>
#include <multiproc/pool.hpp>

#include <condition_variable>
#include <cstddef>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// When `wait` returns (Python: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class return_when { first_completed, first_exception, all_completed };

/// What `wait` returns (Python: DoneAndNotDoneFutures): the results complete when it
/// returned, and the others, each in the order given and once (a result given twice, or a
/// copy of one, counts once, as Python's sets of futures do).
template <class V>
struct done_and_not_done {
    std::vector<async_result<V>> done;
    std::vector<async_result<V>> not_done;
};

namespace detail {
/// Which results of a group are the same one (copies of one async_result).
struct result_identity {
    /// `rs` with each result once, where it first appears (Python takes set(fs)).
    template <class V>
    static std::vector<async_result<V>> distinct(const std::vector<async_result<V>>& rs) {
        std::unordered_set<const void*> seen;
        std::vector<async_result<V>> out;
        out.reserve(rs.size());
        for (const auto& r : rs)
            if (seen.insert(r.st_.get()).second) out.push_back(r);
        return out;
    }
};

/// The order in which a group of results completed, filled by their done callbacks (in the
/// pools' engine threads, or at once for results complete already).
struct completion_board {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::size_t> order; // indices into the group, as they completed
    std::size_t failed = 0;

    template <class V>
    static std::shared_ptr<completion_board> watch(const std::vector<async_result<V>>& rs) {
        auto b = std::make_shared<completion_board>();
        b->order.reserve(rs.size());
        for (std::size_t i = 0; i < rs.size(); ++i) {
            auto r = rs[i]; // add_done_callback is not const: a copy refers to the same result
            r.add_done_callback([b, i](const async_result<V>& done) {
                // (Python's FIRST_EXCEPTION does not count a cancelled result as failed.)
                const bool failed = !done.successful() && done.exception().code() != errc::cancelled_error;
                std::lock_guard lk(b->mu);
                b->order.push_back(i);
                b->failed += failed ? 1 : 0;
                b->cv.notify_all();
            });
        }
        return b;
    }

    /// Waits until `pred()` (called under the lock) or the deadline; returns pred().
    template <class Pred>
    bool wait_until(Pred pred, std::optional<steady::time_point> deadline) {
        std::unique_lock lk(mu);
        if (pred()) return true;
        // The board is filled in the pools' engine threads: waiting in one would wait forever.
        if (pool_core::in_some_engine_thread())
            detail::raise(state_error("multiproc: wait and as_completed cannot wait in a pool callback or a coroutine "
                                      "resumed by a pool: callbacks run in the thread that delivers results"));
        if (!deadline) {
            cv.wait(lk, pred);
            return true;
        }
        return cv.wait_until(lk, *deadline, pred);
    }
};

} // namespace detail

/// Waits until the results given are complete, as `when` says, or until `timeout` has
/// passed (Python: concurrent.futures.wait). `first_exception` returns once one has failed,
/// or once all are complete if none fails. Running out of time is not an error: the
/// results not yet complete are in `not_done`.
template <class V, class Rep = std::int64_t, class Period = std::ratio<1>>
done_and_not_done<V> wait(const std::vector<async_result<V>>& results,
                          std::optional<std::chrono::duration<Rep, Period>> timeout = std::nullopt,
                          return_when when = return_when::all_completed) {
    const auto deadline = detail::deadline_after(timeout); // (a NaN raises before anything is watched)
    const auto distinct = detail::result_identity::distinct(results);
    auto board = detail::completion_board::watch(distinct);
    const std::size_t n = distinct.size();
    (void)board->wait_until(
        [&] {
            switch (when) {
            case return_when::first_completed: return n == 0 || !board->order.empty();
            case return_when::first_exception: return board->failed != 0 || board->order.size() == n;
            case return_when::all_completed: break;
            }
            return board->order.size() == n;
        },
        deadline);
    done_and_not_done<V> out;
    for (const auto& r : distinct) (r.ready() ? out.done : out.not_done).push_back(r);
    return out;
}
/// As above, with a timeout given as a duration (`wait(rs, 2s, return_when::first_completed)`).
template <class V, class Rep, class Period>
done_and_not_done<V> wait(const std::vector<async_result<V>>& results, std::chrono::duration<Rep, Period> timeout,
                          return_when when = return_when::all_completed) {
    return wait(results, std::optional<std::chrono::duration<Rep, Period>>(timeout), when);
}
/// As above, with no timeout.
template <class V>
done_and_not_done<V> wait(const std::vector<async_result<V>>& results, return_when when) {
    return wait(results, std::optional<std::chrono::seconds>(), when);
}

/// The lazy range that `as_completed` returns: each result once (given twice: still once,
/// as Python's), in the order they
/// complete (those complete already first). Single-pass. Advancing past the last complete
/// result waits for the next; if the deadline passes first, timeout_error ("multiproc: 2 (of
/// 5) results unfinished", Python's TimeoutError).
template <class V>
class as_completed_range {
public:
    as_completed_range(std::vector<async_result<V>> results, std::optional<detail::steady::time_point> deadline)
        : results_(detail::result_identity::distinct(results)), board_(detail::completion_board::watch(results_)),
          deadline_(deadline) {}

    class iterator {
    public:
        using value_type = async_result<V>;
        using difference_type = std::ptrdiff_t;
        using iterator_concept = std::input_iterator_tag;

        iterator() = default;
        explicit iterator(as_completed_range* r) : r_(r) { r_->next(); }

        const async_result<V>& operator*() const { return r_->results_[r_->current_]; }
        iterator& operator++() {
            r_->next();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.r_ || it.r_->finished(); }

    private:
        as_completed_range* r_ = nullptr;
    };

    /// Waits for the first result to complete (timeout_error past the deadline).
    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() const noexcept { return {}; }

    /// Whether every result has been taken (the iteration is over).
    [[nodiscard]] bool finished() const noexcept { return finished_; }

private:
    void next() {
        const std::size_t n = results_.size();
        if (taken_ == n) {
            finished_ = true;
            return;
        }
        if (!board_->wait_until([&] { return board_->order.size() > taken_; }, deadline_)) {
            detail::raise(timeout_error("multiproc: " + std::to_string(n - taken_) + " (of " + std::to_string(n) +
                                        ") results unfinished"));
        }
        std::lock_guard lk(board_->mu);
        current_ = board_->order[taken_++];
    }

    std::vector<async_result<V>> results_;
    std::shared_ptr<detail::completion_board> board_;
    std::optional<detail::steady::time_point> deadline_;
    std::size_t taken_ = 0;
    std::size_t current_ = 0;
    bool finished_ = false;
};

/// The results given, lazily, in the order they complete (Python:
/// concurrent.futures.as_completed): `for (auto& r : as_completed(rs)) use(r.get());`.
/// With a timeout, measured from this call, a step that would wait past it throws
/// timeout_error.
template <class V>
as_completed_range<V> as_completed(std::vector<async_result<V>> results) {
    return as_completed_range<V>(std::move(results), std::nullopt);
}
/// As above, with a timeout.
template <class V, class Rep, class Period>
as_completed_range<V> as_completed(std::vector<async_result<V>> results, std::chrono::duration<Rep, Period> timeout) {
    return as_completed_range<V>(std::move(results), detail::deadline_after(std::optional(timeout)));
}

MULTIPROC_ABI_END } // namespace multiproc
