// Not part of the API: a lock in shared memory that records which process holds it, so
// that when the holder dies the next acquirer can take it over. Unlike a robust pthread
// mutex, any process may release it (Python's Lock is a binary semaphore).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/sync/liveness.hpp>
#include <multiproc/detail/sync/robust_mutex.hpp> // lock_status

#include <atomic>
#include <cstdint>
#include <optional>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// Passed as a deadline, makes an acquisition not wait at all.
inline constexpr steady::time_point no_wait = steady::time_point::min();

/// The shared state of a lock; zeroed memory is an unlocked one. Uncontended, acquire is
/// one compare-and-swap and release one exchange: the waiters flag in the word tells the
/// releaser whether anyone may be asleep. Waiters sleep on `changed` and, now and then
/// (see check_schedule), look whether the holder is still alive; if not, one of them takes
/// the lock over and records whom it was taken from in `died`.
struct pid_lock {
    static constexpr std::uint64_t waiters = std::uint64_t{1} << 31;

    std::atomic<std::uint64_t> word{0};         // holder_id | waiters; 0 when free
    notifier changed{};                         // bumped by a release that saw waiters
    std::atomic<std::uint64_t> owner_thread{0}; // rlock: the holding thread of the holder
    std::atomic<std::uint32_t> depth{0};        // rlock: how often that thread acquired it
    std::atomic<holder_id> died{0};             // the dead holder this holding was taken from
    std::atomic<std::int64_t> next_check{0};    // see claim_check

    /// The holding process, or 0.
    [[nodiscard]] holder_id holder() const noexcept { return word.load(std::memory_order_relaxed) & ~waiters; }

    /// Locks, waiting until `deadline` at the most (no deadline: forever; `no_wait`: not at all).
    lock_status acquire(std::optional<steady::time_point> deadline = std::nullopt) {
        holder_id me = self_holder_id();
        std::uint64_t expected = 0;
        if (word.compare_exchange_strong(expected, me, std::memory_order_acquire, std::memory_order_relaxed))
            [[likely]] {
            return lock_status::acquired;
        }
        return acquire_slow(me, deadline);
    }

    /// Unlocks, whoever holds it; false if it was not locked.
    bool release() noexcept {
        died.store(0, std::memory_order_relaxed);
        std::uint64_t old = word.exchange(0, std::memory_order_release);
        if (old & waiters) changed.notify_one();
        return old != 0;
    }

    /// Whether this thread of this process holds it (an rlock's holder; a plain lock's, for a
    /// condition over it and for its repr). The word is read with acquire order: a plain lock
    /// may be released by another thread and taken again by a third, and the releaser clears
    /// the thread before its release of the word, so a reader that sees the new holding in
    /// the word sees that clearing or the new thread, never its own old holding.
    [[nodiscard]] bool held_by_this_thread() const noexcept {
        return (word.load(std::memory_order_acquire) & ~waiters) == self_holder_id() &&
               owner_thread.load(std::memory_order_relaxed) == self_thread_id();
    }

private:
    lock_status acquire_slow(holder_id me, std::optional<steady::time_point> deadline) {
        check_schedule sched;
        for (;;) {
            std::uint64_t cur = word.load(std::memory_order_relaxed);
            if (cur == 0) {
                // Others may be asleep: acquire with the flag set, so our release wakes one.
                if (word.compare_exchange_weak(cur, me | waiters, std::memory_order_acquire, std::memory_order_relaxed))
                    return lock_status::acquired;
                continue;
            }
            if (!(cur & waiters)) {
                if (!word.compare_exchange_weak(cur, cur | waiters, std::memory_order_relaxed)) continue;
                cur |= waiters;
            }
            auto now = steady::now();
            bool expired = deadline && now >= *deadline;
            if (expired || sched.due(now)) {
                if (take_from_dead(cur, me, now)) return lock_status::owner_died;
                if (expired) return lock_status::timed_out;
                continue;
            }
            changed.wait_until([&] { return word.load(std::memory_order_relaxed) != cur; }, sched.wake_at(deadline));
        }
    }

    // If the holder recorded in `cur` has died, takes the lock from it.
    bool take_from_dead(std::uint64_t cur, holder_id me, steady::time_point now) noexcept {
        holder_id dead = cur & ~waiters;
        if (dead == me || !claim_check(next_check, now) || !process_gone(dead)) return false;
        if (!word.compare_exchange_strong(cur, me | waiters, std::memory_order_acquire, std::memory_order_relaxed))
            return false;
        died.store(dead, std::memory_order_relaxed);
        return true;
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
