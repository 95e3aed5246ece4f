/// @file sync.hpp
/// Synchronization between processes (Python: multiprocessing.Lock, RLock, Semaphore,
/// BoundedSemaphore, Event, Condition and Barrier, from multiprocessing.synchronize).
///
/// Every object lives in anonymous shared memory and is passed to a child as a process
/// argument: copies refer to the same object. Unlike CPython's, a process that dies holding
/// a lock or a semaphore's unit does not deadlock the others: the next acquirer takes it
/// over, and `owner_died()` tells it so (a flag, never an exception, so that
/// `std::lock_guard` stays exception-safe).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/sync/arena.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/sync/liveness.hpp>
#include <multiproc/detail/sync/lock_word.hpp>
#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/sync/semaphore_state.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/policies/resolve.hpp>

#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {

/// A deadline on the steady clock for a time point on any clock. One of a floating-point
/// duration goes through deadline_in, as a timeout would (a NaN is value_error; one too far
/// to represent is none), since a cast of it to steady's integer ticks could overflow.
template <class Clock, class Duration>
std::optional<steady::time_point> steady_deadline(std::chrono::time_point<Clock, Duration> t) {
    if constexpr (std::is_same_v<Clock, steady> && std::numeric_limits<typename Duration::rep>::is_integer)
        return std::chrono::time_point_cast<steady::duration>(t);
    else
        return deadline_in(t - Clock::now());
}

/// Python's acquire() spellings and the standard Lockable / TimedLockable members, for a
/// class with `bool acquire_until(std::optional<steady::time_point>)` and `void release()`.
template <class Derived>
class lockable {
public:
    /// Blocks until acquired; returns true (Python: acquire()).
    bool acquire() { return self().acquire_until(std::nullopt); }
    /// `acquire(false)` does not block: whether it was acquired at once (Python: acquire(False)).
    template <std::same_as<bool> B>
    bool acquire(B block) {
        return self().acquire_until(block ? std::nullopt : std::optional<steady::time_point>(no_wait));
    }
    /// Waits at most `timeout`; false if it ran out (Python: acquire(timeout=t)). A negative
    /// timeout does not wait, as in Python.
    template <class Rep, class Period>
    bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return self().acquire_until(deadline_in(timeout));
    }
    /// Python: acquire(block, timeout); the timeout counts only when blocking.
    template <std::same_as<bool> B, class Rep, class Period>
    bool acquire(B block, std::chrono::duration<Rep, Period> timeout) {
        return block ? acquire(timeout) : acquire(false);
    }

    /// Blocks until acquired (for std::lock_guard, std::unique_lock, std::scoped_lock).
    void lock() { self().acquire_until(std::nullopt); }
    /// Releases (the standard spelling of release()).
    void unlock() { self().release(); }
    /// Acquires only if that needs no waiting.
    bool try_lock() { return acquire(false); }
    /// Waits at most `timeout` (for std::unique_lock's timed locking).
    template <class Rep, class Period>
    bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
        return acquire(timeout);
    }
    /// Waits until `t` at the latest, on any clock.
    template <class Clock, class Duration>
    bool try_lock_until(std::chrono::time_point<Clock, Duration> t) {
        return self().acquire_until(steady_deadline(t));
    }

private:
    Derived& self() { return static_cast<Derived&>(*this); }
};

// The two ways to hold a pid_lock, shared by lock, rlock and condition.

// A plain lock records its holding thread too, for its repr and for a condition over it,
// which only the holding thread may wait on or notify (any thread or process may release it).
inline bool plain_acquire(pid_lock& s, std::optional<steady::time_point> deadline) {
    if (s.acquire(deadline) == lock_status::timed_out) return false;
    s.owner_thread.store(self_thread_id(), std::memory_order_relaxed);
    return true;
}

inline void plain_release(pid_lock& s) {
    s.owner_thread.store(0, std::memory_order_relaxed);
    if (!s.release()) detail::raise(value_error("semaphore or lock released too many times"));
}

inline bool recursive_acquire(pid_lock& s, std::optional<steady::time_point> deadline) {
    if (s.held_by_this_thread()) {
        // (Only this thread changes the depth while it holds the lock.)
        if (s.depth.load(std::memory_order_relaxed) == std::numeric_limits<std::uint32_t>::max())
            detail::raise(state_error("Internal lock count overflowed: an rlock held " +
                                      std::to_string(std::numeric_limits<std::uint32_t>::max()) +
                                      " times by one thread cannot be acquired once more"));
        s.depth.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    if (s.acquire(deadline) == lock_status::timed_out) return false;
    // A process killed from here on holds the lock in the word: the next acquirer takes it
    // over and sets the thread and depth afresh.
    sys::step();
    s.owner_thread.store(self_thread_id(), std::memory_order_relaxed);
    sys::step();
    s.depth.store(1, std::memory_order_relaxed);
    return true;
}

inline void recursive_release(pid_lock& s) {
    if (!s.held_by_this_thread()) detail::raise(state_error("attempt to release recursive lock not owned by thread"));
    if (s.depth.fetch_sub(1, std::memory_order_relaxed) > 1) return;
    sys::step();
    s.owner_thread.store(0, std::memory_order_relaxed);
    sys::step();
    s.release();
}

/// Who holds a lock, as Python's repr names it: None, SomeOtherProcess, SomeOtherThread (of
/// this process), or this process's name, with `|Thread-<tid>` unless this is its main thread.
inline std::string owner_name(const pid_lock& s) {
    holder_id h = s.holder();
    if (h == 0) return "None";
    if (h != self_holder_id()) return "SomeOtherProcess";
    if (!s.held_by_this_thread()) return "SomeOtherThread";
    return rt().self.name + thread_suffix();
}

/// Python's repr of a Lock, `<Lock(owner=None)>`, or of an RLock, `<RLock(MainProcess, 2)>`.
inline std::ostream& print_lock(std::ostream& os, const pid_lock& s, bool recursive) {
    std::string who = owner_name(s);
    if (!recursive) return os << "<Lock(owner=" << who << ")>";
    os << "<RLock(" << who << ", ";
    if (who == "None")
        os << 0;
    else if (s.held_by_this_thread())
        os << s.depth.load(std::memory_order_relaxed);
    else
        os << "nonzero";
    return os << ")>";
}

} // namespace detail

/// A lock shared between processes (Python: multiprocessing.Lock): a binary semaphore, so
/// any process may release it, not only the one that acquired it. If the process holding it
/// dies, the next acquirer takes it over and `owner_died()` is true until release. Copies
/// refer to the same lock. `multiproc::lock` is `basic_lock<>`.
template <class... Ps>
class basic_lock : public detail::lockable<basic_lock<Ps...>> {
public:
    using policies = policy_set<Ps...>;
    static_assert(sizeof(policies) > 0); // checks the policies, with policy_set's sentences

    /// A new, unlocked lock.
    basic_lock() : s_(detail::shared_ptr_in_arena<detail::pid_lock>::make(0)) {}

    /// Releases the lock, whichever process holds it (Python: release()). Releasing an
    /// unlocked lock throws value_error("semaphore or lock released too many times").
    void release() { detail::plain_release(*s_); }

    /// Whether some thread of some process holds the lock now (Python 3.14: Lock.locked()).
    /// A lock whose holder died counts as held until the next acquirer takes it over.
    [[nodiscard]] bool locked() const noexcept { return s_->holder() != 0; }

    /// While held: whether it was taken over from a process that died holding it, so the
    /// data it guards may be half-changed. A flag rather than an error, so that the
    /// constructor of std::lock_guard never throws after locking. Cleared by release().
    [[nodiscard]] bool owner_died() const noexcept { return s_->died.load(std::memory_order_relaxed) != 0; }

    /// The pid of the process that died holding it, while `owner_died()`; else 0.
    [[nodiscard]] pid_t dead_owner_pid() const noexcept {
        return detail::holder_pid(s_->died.load(std::memory_order_relaxed));
    }

    /// Python's repr: `<Lock(owner=None)>`, `<Lock(owner=MainProcess)>` (held by this thread;
    /// `MainProcess|Thread-<tid>` from a thread other than the main one),
    /// `<Lock(owner=SomeOtherThread)>`, `<Lock(owner=SomeOtherProcess)>`.
    friend std::ostream& operator<<(std::ostream& os, const basic_lock& l) {
        return detail::print_lock(os, *l.s_, false);
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same lock (its shared memory's descriptor travels with SCM_RIGHTS).
    void cross_out(crossing_writer& w) const { s_.cross_out(w); }
    /// In the child: the lock cross_out sent.
    static basic_lock cross_in(crossing_reader& r) { return basic_lock(decltype(s_)::cross_in(r)); }

private:
    friend class detail::lockable<basic_lock>;
    friend class condition;

    explicit basic_lock(detail::shared_ptr_in_arena<detail::pid_lock> s) : s_(std::move(s)) {}

    bool acquire_until(std::optional<detail::steady::time_point> deadline) { return detail::plain_acquire(*s_, deadline); }

    detail::shared_ptr_in_arena<detail::pid_lock> s_;
};

/// A recursive lock shared between processes (Python: multiprocessing.RLock): the thread
/// holding it may acquire it again, and must release it as often; only that thread may
/// release it. If the holding process dies, the next acquirer takes it over, as for `lock`.
class rlock : public detail::lockable<rlock> {
public:
    /// A new, unlocked recursive lock.
    rlock() : s_(detail::shared_ptr_in_arena<detail::pid_lock>::make(0)) {}

    /// Releases one level (Python: release()); state_error("attempt to release recursive
    /// lock not owned by thread") from any thread but the holder.
    void release() { detail::recursive_release(*s_); }

    /// Whether some thread of some process holds the lock now, at any depth (Python 3.14:
    /// RLock.locked()). A holder that died counts as holding it until it is taken over.
    [[nodiscard]] bool locked() const noexcept { return s_->holder() != 0; }

    /// While held: whether it was taken over from a process that died holding it (see `lock`).
    [[nodiscard]] bool owner_died() const noexcept { return s_->died.load(std::memory_order_relaxed) != 0; }
    /// The pid of the process that died holding it, while `owner_died()`; else 0.
    [[nodiscard]] pid_t dead_owner_pid() const noexcept {
        return detail::holder_pid(s_->died.load(std::memory_order_relaxed));
    }

    /// Python's repr: `<RLock(None, 0)>`, `<RLock(MainProcess, 2)>` (this thread holds it, as
    /// for `lock`), `<RLock(SomeOtherThread, nonzero)>`, `<RLock(SomeOtherProcess, nonzero)>`.
    friend std::ostream& operator<<(std::ostream& os, const rlock& l) { return detail::print_lock(os, *l.s_, true); }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same recursive lock (its shared memory's descriptor travels with SCM_RIGHTS).
    void cross_out(crossing_writer& w) const { s_.cross_out(w); }
    /// In the child: the recursive lock cross_out sent.
    static rlock cross_in(crossing_reader& r) { return rlock(decltype(s_)::cross_in(r)); }

private:
    friend class detail::lockable<rlock>;
    friend class condition;

    explicit rlock(detail::shared_ptr_in_arena<detail::pid_lock> s) : s_(std::move(s)) {}

    bool acquire_until(std::optional<detail::steady::time_point> deadline) {
        return detail::recursive_acquire(*s_, deadline);
    }

    detail::shared_ptr_in_arena<detail::pid_lock> s_;
};

/// A counting semaphore shared between processes (Python: multiprocessing.Semaphore).
/// `acquire` takes a unit, waiting while there is none; `release` gives one, from any
/// process. A process that dies holding units acquired from the initial value gives them
/// back, whatever it was doing when it died: the next acquirer gets them within
/// milliseconds and sees `owner_died()`. Units made by releases beyond the initial value
/// (signalling) are never made up. See docs/design/sync.md.
class semaphore : public detail::lockable<semaphore> {
public:
    /// A semaphore with `value` units (Python: Semaphore(value=1)); value_error if negative.
    explicit semaphore(int value = 1) : semaphore(checked(value), detail::semaphore_state::value_max) {}

    semaphore(const semaphore& o) : s_(o.s_), told_(o.told_.load(std::memory_order_relaxed)) {}
    semaphore& operator=(const semaphore& o) {
        s_ = o.s_;
        told_.store(o.told_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        return *this;
    }
    ~semaphore() = default;

    /// Gives a unit back (Python: release()), from any process.
    void release() {
        auto& s = *s_;
        bool given = false;
        {
            detail::semaphore_state::guard g(s);
            given = s.give(detail::self_holder_id(), cached_);
        }
        if (!given) detail::raise(value_error("semaphore or lock released too many times"));
        s.changed.notify_one();
    }

    /// The units free now (Python: get_value()).
    [[nodiscard]] int get_value() const noexcept { return static_cast<int>(s_->value()); }

    /// Whether the last successful acquire through this object, in this process, got a unit
    /// back from a process that died holding it. Threads sharing one object share the flag.
    [[nodiscard]] bool owner_died() const noexcept { return told_.load(std::memory_order_relaxed); }

    /// Python's repr: `<Semaphore(value=2)>`.
    friend std::ostream& operator<<(std::ostream& os, const semaphore& s) {
        return os << "<Semaphore(value=" << s.get_value() << ")>";
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same semaphore (its shared memory's descriptor travels with SCM_RIGHTS).
    void cross_out(crossing_writer& w) const { s_.cross_out(w); }
    /// In the child: the semaphore cross_out sent.
    static semaphore cross_in(crossing_reader& r) { return semaphore(crossed(r)); }

protected:
    explicit semaphore(detail::shared_ptr_in_arena<detail::semaphore_state> s) : s_(std::move(s)) {}
    semaphore(std::uint32_t value, std::uint32_t max)
        : s_(detail::shared_ptr_in_arena<detail::semaphore_state>::make(detail::semaphore_state::extra_for(value),
                                                                         value, max)) {}

    static std::uint32_t checked(int value) {
        if (value < 0) detail::raise(value_error("semaphore initial value must be >= 0"));
        return static_cast<std::uint32_t>(value);
    }

    // A semaphore's state as a spawned child maps it, checked to lie, slots and all, within
    // the memory that came with it.
    static detail::shared_ptr_in_arena<detail::semaphore_state> crossed(crossing_reader& r) {
        auto s = detail::shared_ptr_in_arena<detail::semaphore_state>::cross_in(r);
        const auto& b = s.block();
        std::size_t room = b.chunk->region.size() - b.offset() - sizeof(detail::semaphore_state);
        if (s->nslots > detail::semaphore_state::max_slots || room < s->nslots * sizeof(detail::holder_slot))
            detail::raise(serialization_error("multiproc: a semaphore sent to the child lies outside its memory"));
        return s;
    }

    detail::shared_ptr_in_arena<detail::semaphore_state> s_;

private:
    friend class detail::lockable<semaphore>;

    bool acquire_until(std::optional<detail::steady::time_point> deadline) {
        auto& s = *s_;
        const detail::holder_id me = detail::self_holder_id();
        // The state's lock is held for a few stores; it is waited for until the deadline, if
        // there is a real one (a process stopped while holding it must not outlast a timeout).
        const auto lock_deadline = deadline == detail::no_wait ? std::nullopt : deadline;
        auto took = [&] {
            detail::semaphore_state::guard g(s, lock_deadline);
            bool from_dead = false;
            if (!g.locked() || !s.take(me, cached_, from_dead)) return false;
            told_.store(from_dead, std::memory_order_relaxed);
            return true;
        };
        if (took()) return true;
        detail::check_schedule sched;
        for (;;) {
            auto now = detail::steady::now();
            bool expired = deadline && now >= *deadline;
            if ((expired || sched.due(now)) && detail::claim_check(s.next_check, now) && s.recover_dead() > 0 &&
                took())
                return true;
            if (expired) return false;
            // Woken by a release, or on the check schedule; taking the lock then also takes
            // it over from a process that died holding it, which repairs the counts.
            s.changed.wait_until([&] { return s.value() > 0; }, sched.wake_at(deadline));
            if (took()) return true;
        }
    }

    std::atomic<bool> told_{false};
    std::atomic<std::uint32_t> cached_{UINT32_MAX}; // this process's holder slot, as last found
};

/// A semaphore that may not be released above its initial value (Python:
/// multiprocessing.BoundedSemaphore): such a release throws value_error("semaphore or lock
/// released too many times").
class bounded_semaphore : public semaphore {
public:
    /// A bounded semaphore with `value` units, the most it may hold (Python: BoundedSemaphore(value=1)).
    explicit bounded_semaphore(int value = 1) : semaphore(checked(value), checked(value)) {}

    /// The bound (Python: the maxvalue of the repr).
    [[nodiscard]] int max_value() const noexcept { return static_cast<int>(s_->maxvalue); }

    /// Python's repr: `<BoundedSemaphore(value=2, maxvalue=2)>`.
    friend std::ostream& operator<<(std::ostream& os, const bounded_semaphore& s) {
        return os << "<BoundedSemaphore(value=" << s.get_value() << ", maxvalue=" << s.max_value() << ")>";
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same bounded semaphore (its shared memory's descriptor travels with SCM_RIGHTS).
    void cross_out(crossing_writer& w) const { s_.cross_out(w); }
    /// In the child: the bounded semaphore cross_out sent.
    static bounded_semaphore cross_in(crossing_reader& r) { return bounded_semaphore(crossed(r)); }

private:
    explicit bounded_semaphore(detail::shared_ptr_in_arena<detail::semaphore_state> s) : semaphore(std::move(s)) {}
};

namespace detail {
/// An event's shared state: bit 0 is the flag, the rest counts the times it was set, so a
/// waiter woken by set() returns true even if clear() came right after (as threading.Event).
struct event_state {
    std::atomic<std::uint32_t> word{0};
    notifier changed{};
};
} // namespace detail

/// A flag shared between processes (Python: multiprocessing.Event). No lock is involved, so
/// no process can die holding one.
class event {
public:
    /// A new event, not set.
    event() : s_(detail::shared_ptr_in_arena<detail::event_state>::make(0)) {}

    /// Whether the flag is set (Python: is_set()).
    [[nodiscard]] bool is_set() const noexcept { return s_->word.load(std::memory_order_acquire) & 1U; }

    /// Sets the flag and wakes every waiter (Python: set()).
    void set() {
        auto& w = s_->word;
        auto v = w.load(std::memory_order_relaxed);
        do {
            if (v & 1U) return;
        } while (!w.compare_exchange_weak(v, (v + 2U) | 1U, std::memory_order_release, std::memory_order_relaxed));
        s_->changed.notify_all();
    }

    /// Clears the flag (Python: clear()).
    void clear() noexcept { s_->word.fetch_and(~1U, std::memory_order_relaxed); }

    /// Waits until the flag is set; returns true (Python: wait()).
    bool wait() { return wait_until(std::nullopt); }
    /// Waits at most `timeout`; returns whether the flag was set meanwhile (Python: wait(timeout)).
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait_until(detail::deadline_in(timeout));
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same event (its shared memory's descriptor travels with SCM_RIGHTS).
    void cross_out(crossing_writer& w) const { s_.cross_out(w); }
    /// In the child: the event cross_out sent.
    static event cross_in(crossing_reader& r) { return event(decltype(s_)::cross_in(r)); }

private:
    explicit event(detail::shared_ptr_in_arena<detail::event_state> s) : s_(std::move(s)) {}

    bool wait_until(std::optional<detail::steady::time_point> deadline) {
        auto& w = s_->word;
        auto start = w.load(std::memory_order_acquire);
        if (start & 1U) return true;
        return s_->changed.wait_until(
            [&] {
                auto v = w.load(std::memory_order_acquire);
                return (v & 1U) || (v >> 1) != (start >> 1);
            },
            deadline);
    }

    detail::shared_ptr_in_arena<detail::event_state> s_;
};

namespace detail {
/// A condition's shared state, guarded by its lock. Waiters take tickets in turn; notify(n)
/// moves `woken` past the next n tickets still waiting, so a waiter that comes later never
/// takes a wake-up meant for one already there. A waiter that times out withdraws its
/// ticket (kept in `cancelled`, which notify skips).
struct condition_state {
    static constexpr std::uint32_t max_cancelled = 32;

    notifier changed{};
    std::atomic<std::uint32_t> woken{0};       // tickets before this one are woken
    std::atomic<std::uint32_t> next_ticket{0}; // (atomics only so that the repr may read them)
    std::atomic<std::uint32_t> ncancelled{0};
    std::uint32_t cancelled[max_cancelled] = {};

    [[nodiscard]] bool passed(std::uint32_t ticket) const noexcept {
        return static_cast<std::int32_t>(woken.load(std::memory_order_acquire) - ticket) > 0;
    }
    std::uint32_t take_ticket() noexcept { return next_ticket.fetch_add(1, std::memory_order_relaxed); }
    bool drop_cancelled(std::uint32_t ticket) noexcept {
        std::uint32_t n = ncancelled.load(std::memory_order_relaxed);
        for (std::uint32_t i = 0; i < n; ++i)
            if (cancelled[i] == ticket) {
                cancelled[i] = cancelled[n - 1];
                ncancelled.store(n - 1, std::memory_order_relaxed);
                return true;
            }
        return false;
    }
    void cancel(std::uint32_t ticket) noexcept {
        std::uint32_t next = next_ticket.load(std::memory_order_relaxed);
        if (ticket + 1 == next) {
            --next;
            while (next != woken.load(std::memory_order_relaxed) && drop_cancelled(next - 1)) --next;
            next_ticket.store(next, std::memory_order_relaxed);
        } else if (std::uint32_t n = ncancelled.load(std::memory_order_relaxed); n < max_cancelled) {
            cancelled[n] = ticket;
            ncancelled.store(n + 1, std::memory_order_relaxed);
        } // else the ticket stays, and one later notify() is spent on it
    }
    /// Wakes up to `n` waiters (all for `n` = 0).
    void wake(std::size_t n) {
        std::uint32_t w = woken.load(std::memory_order_relaxed), first = w;
        std::uint32_t end = next_ticket.load(std::memory_order_relaxed);
        if (n == 0) {
            w = end;
            ncancelled.store(0, std::memory_order_relaxed);
        }
        while (n > 0 && w != end) {
            if (!drop_cancelled(w)) --n;
            ++w;
        }
        if (w == first) return;
        woken.store(w, std::memory_order_release);
        changed.notify_all();
    }
    [[nodiscard]] std::uint32_t waiting() const noexcept {
        return next_ticket.load(std::memory_order_relaxed) - woken.load(std::memory_order_relaxed) -
               ncancelled.load(std::memory_order_relaxed);
    }
};
} // namespace detail

/// A condition variable shared between processes (Python: multiprocessing.Condition), over
/// an `rlock` (the default) or a `lock`. If a process dies holding its lock, the next
/// acquirer takes the lock over and `owner_died()` says so; a waiter that dies may absorb
/// one notify() (never a notify_all()), where CPython's notifier would hang.
class condition : public detail::lockable<condition> {
public:
    /// A condition with a new rlock (Python: Condition()).
    condition() : condition(rlock()) {}
    /// A condition over `l` (Python: Condition(lock)).
    explicit condition(const rlock& l) : l_(l.s_), recursive_(true), c_(make_state()) {}
    /// A condition over `l` (Python: Condition(lock)).
    template <class... Ps>
    explicit condition(const basic_lock<Ps...>& l) : l_(l.s_), recursive_(false), c_(make_state()) {}

    /// Releases the lock (Python: release()).
    void release() {
        if (recursive_)
            detail::recursive_release(*l_);
        else
            detail::plain_release(*l_);
    }
    /// While holding the lock: whether it was taken over from a process that died holding it.
    [[nodiscard]] bool owner_died() const noexcept { return l_->died.load(std::memory_order_relaxed) != 0; }

    /// Releases the lock, waits for a notify, and acquires the lock again; returns true
    /// (Python: wait()). state_error("must acquire() condition before using wait()")
    /// unless the lock is held.
    bool wait() { return wait_until(std::nullopt); }
    /// As wait(), for at most `timeout`; false if it ran out (Python: wait(timeout)).
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait_until(detail::deadline_in(timeout));
    }

    /// Waits until `pred()` is true; returns its last value (Python: wait_for(predicate)).
    template <class Pred>
    auto wait_for(Pred pred) -> std::decay_t<std::invoke_result_t<Pred&>> {
        auto r = pred();
        while (!r) {
            wait();
            r = pred();
        }
        return r;
    }
    /// As above, for at most `timeout` in all (Python: wait_for(predicate, timeout)).
    template <class Pred, class Rep, class Period>
    auto wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) -> std::decay_t<std::invoke_result_t<Pred&>> {
        auto deadline = detail::deadline_in(timeout);
        auto r = pred();
        while (!r) {
            if (deadline && detail::steady::now() >= *deadline) break;
            wait_until(deadline);
            r = pred();
        }
        return r;
    }

    /// Wakes up to `n` waiting processes (Python: notify(n=1)); state_error("lock is not
    /// owned") unless the lock is held.
    void notify(std::size_t n = 1) {
        require_owned("lock is not owned"); // (notify(0) too, as CPython's)
        if (n == 0) return;
        c_->wake(n);
    }
    /// Wakes every waiting process (Python: notify_all()).
    void notify_all() {
        require_owned("lock is not owned");
        c_->wake(0);
    }

    /// Python's repr: `<Condition(<RLock(None, 0)>, 0)>`, with the number of waiters.
    friend std::ostream& operator<<(std::ostream& os, const condition& c) {
        os << "<Condition(";
        return detail::print_lock(os, *c.l_, c.recursive_) << ", " << c.c_->waiting() << ")>";
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same condition and its lock.
    void cross_out(crossing_writer& w) const {
        l_.cross_out(w);
        w.put<std::uint8_t>(recursive_ ? 1 : 0);
        c_.cross_out(w);
    }
    /// In the child: the condition cross_out sent.
    static condition cross_in(crossing_reader& r) {
        auto l = decltype(l_)::cross_in(r);
        const bool recursive = r.get<std::uint8_t>() != 0;
        return condition(std::move(l), recursive, decltype(c_)::cross_in(r));
    }

private:
    friend class detail::lockable<condition>;

    condition(detail::shared_ptr_in_arena<detail::pid_lock> l, bool recursive,
              detail::shared_ptr_in_arena<detail::condition_state> c)
        : l_(std::move(l)), recursive_(recursive), c_(std::move(c)) {}

    bool acquire_until(std::optional<detail::steady::time_point> deadline) {
        return recursive_ ? detail::recursive_acquire(*l_, deadline) : detail::plain_acquire(*l_, deadline);
    }
    static detail::shared_ptr_in_arena<detail::condition_state> make_state() {
        return detail::shared_ptr_in_arena<detail::condition_state>::make(0);
    }
    /// Held by this thread of this process (a plain lock records its holding thread too), as
    /// CPython's SemLock._is_mine: another thread of the holding process may not wait or
    /// notify, or its wait() would let go of the holder's lock.
    [[nodiscard]] bool owned() const noexcept { return l_->held_by_this_thread(); }
    void require_owned(const char* what) const {
        if (!owned()) detail::raise(state_error(what));
    }

    bool wait_until(std::optional<detail::steady::time_point> deadline) {
        require_owned("must acquire() condition before using wait()");
        auto& c = *c_;
        std::uint32_t ticket = c.take_ticket();
        // Release the lock entirely (every level of an rlock), remembering the depth.
        std::uint32_t depth = recursive_ ? l_->depth.load(std::memory_order_relaxed) : 1;
        if (recursive_) {
            l_->depth.store(1, std::memory_order_relaxed);
            detail::recursive_release(*l_);
        } else {
            detail::plain_release(*l_);
        }
        bool woken = c.changed.wait_until([&] { return c.passed(ticket); }, deadline);
        acquire_until(std::nullopt);
        if (recursive_) l_->depth.store(depth, std::memory_order_relaxed);
        if (!woken) {
            woken = c.passed(ticket);
            if (!woken) c.cancel(ticket);
        }
        return woken;
    }

    detail::shared_ptr_in_arena<detail::pid_lock> l_;
    bool recursive_;
    detail::shared_ptr_in_arena<detail::condition_state> c_;
};

namespace detail {
/// A barrier's shared state (CPython's Barrier algorithm, guarded by `mu`), plus, after it,
/// the ids of the parties inside wait() by arrival index, so that a party that dies there
/// can be found. `why` and `dead` say why it broke, for the message.
struct barrier_state {
    enum phase_t : std::int32_t { filling = 0, draining = 1, resetting = -1, broken = -2 };
    enum why_t : std::uint32_t { none, aborted, timed_out, action_threw, party_died, died_inside };

    pid_lock mu{};
    notifier changed{};
    std::atomic<std::uint32_t> epoch{0}; // bumped with every change waiters look at
    std::atomic<std::int32_t> phase{filling};
    std::atomic<std::uint32_t> count{0}; // parties inside wait()
    std::uint32_t parties;
    std::uint32_t why = none;
    pid_t dead = 0;
    std::atomic<std::int64_t> next_check{0};
    std::atomic<std::int64_t> round_started{0}; // when this round's first party arrived (steady ns)
    // Who runs the action now (holder, thread), with `mu` held: its abort() and reset() of
    // this barrier take `mu` no second time (CPython's lock here is an RLock).
    std::atomic<holder_id> acting{0};
    std::atomic<std::uint64_t> acting_thread{0};

    explicit barrier_state(std::uint32_t n) noexcept : parties(n) {
        for (std::uint32_t i = 0; i < n; ++i) ::new (inside_storage() + i) std::atomic<holder_id>(0);
    }

    std::atomic<holder_id>& inside(std::uint32_t i) noexcept { return *std::launder(inside_storage() + i); }

    /// Whether the calling thread runs the barrier's action (and so holds `mu`).
    [[nodiscard]] bool acting_here() const noexcept {
        return acting.load(std::memory_order_relaxed) == self_holder_id() &&
               acting_thread.load(std::memory_order_relaxed) == self_thread_id();
    }
    void act(bool on) noexcept {
        acting_thread.store(on ? self_thread_id() : 0, std::memory_order_relaxed);
        acting.store(on ? self_holder_id() : 0, std::memory_order_relaxed);
    }
    /// Marks the calling thread as running the action for its lifetime (however it ends).
    struct acting_scope {
        barrier_state& b;
        explicit acting_scope(barrier_state& s) noexcept : b(s) { b.act(true); }
        ~acting_scope() { b.act(false); }
        acting_scope(const acting_scope&) = delete;
        acting_scope& operator=(const acting_scope&) = delete;
    };

    [[nodiscard]] std::int32_t get_phase() const noexcept { return phase.load(std::memory_order_relaxed); }
    void set_phase(std::int32_t p) noexcept { phase.store(p, std::memory_order_relaxed); }
    [[nodiscard]] std::uint32_t get_count() const noexcept { return count.load(std::memory_order_relaxed); }

    void notify() {
        epoch.fetch_add(1, std::memory_order_release);
        changed.notify_all();
    }
    void break_(std::uint32_t reason, pid_t pid = 0) {
        set_phase(broken);
        why = reason;
        dead = pid;
        notify();
    }
    /// A party leaves wait(): the last one out of a draining or resetting barrier refills it.
    void leave(std::uint32_t index) {
        inside(index).store(0, std::memory_order_relaxed);
        std::uint32_t n = count.fetch_sub(1, std::memory_order_relaxed) - 1;
        if (n == 0 && (get_phase() == draining || get_phase() == resetting)) {
            set_phase(filling);
            notify();
        }
    }
    /// Removes the parties that died inside wait(); one that died waiting breaks the
    /// barrier. Returns whether any was found. Called with `mu` held.
    bool remove_dead() {
        bool any = false;
        holder_id me = self_holder_id();
        for (std::uint32_t i = 0; i < parties; ++i) {
            holder_id h = inside(i).load(std::memory_order_relaxed);
            if (h == 0 || h == me || !process_gone(h)) continue;
            any = true;
            if (get_phase() == filling) break_(party_died, holder_pid(h));
            leave(i);
        }
        return any;
    }
    /// After taking `mu` from a process that died holding it: the counts may be half-updated,
    /// so recount the parties inside from the ids, and break the barrier.
    void recover(holder_id dead_holder) {
        std::uint32_t n = 0;
        for (std::uint32_t i = 0; i < parties; ++i) {
            holder_id h = inside(i).load(std::memory_order_relaxed);
            if (h != 0 && process_gone(h)) inside(i).store(0, std::memory_order_relaxed), h = 0;
            n += h != 0;
        }
        count.store(n, std::memory_order_relaxed);
        act(false); // (if it died in the action)
        break_(died_inside, holder_pid(dead_holder));
    }
    [[nodiscard]] std::string broken_message() const {
        switch (why) {
        case aborted: return "barrier is broken: abort() was called";
        case timed_out: return "barrier is broken: a party timed out waiting for the others";
        case action_threw: return "barrier is broken: its action threw an exception";
        case party_died: return "barrier is broken: party pid " + std::to_string(dead) + " died while waiting";
        case died_inside: return "barrier is broken: pid " + std::to_string(dead) + " died while using it";
        default: return "barrier is broken";
        }
    }

private:
    std::atomic<holder_id>* inside_storage() noexcept { return reinterpret_cast<std::atomic<holder_id>*>(this + 1); }
};
} // namespace detail

/// A barrier for a fixed number of processes (Python: multiprocessing.Barrier): each
/// party's wait() blocks until `parties` have called it, then all return, each with a
/// different index in [0, parties). Better than CPython: a party that dies while waiting
/// breaks the barrier (the others get broken_barrier_error naming its pid) instead of
/// leaving them hanging; a party that dies before it arrives cannot be told from a slow
/// one, so give such waits a timeout.
class barrier {
public:
    /// Python: Barrier(parties, action=None, timeout=None). `action` is run by the last
    /// party to arrive, in its own process, before the others are released; `timeout` is
    /// the default for wait(). value_error unless 1 <= parties <= 65536.
    explicit barrier(std::size_t parties, std::function<void()> action = {},
                     std::optional<std::chrono::nanoseconds> timeout = std::nullopt)
        : s_(make(parties)), action_(std::move(action)), timeout_(timeout) {}
    /// Python: Barrier(parties, timeout=t).
    barrier(std::size_t parties, std::chrono::nanoseconds timeout) : barrier(parties, {}, timeout) {}

    /// Waits for the other parties, for at most the default timeout (Python: wait()).
    /// Returns this party's index; throws broken_barrier_error if the barrier is or becomes
    /// broken, or is reset while waiting. A timeout breaks the barrier.
    std::size_t wait() {
        return wait_until(timeout_ ? detail::deadline_in(*timeout_) : std::optional<detail::steady::time_point>());
    }
    /// As wait(), for at most `timeout` (Python: wait(timeout)).
    template <class Rep, class Period>
    std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
        return wait_until(detail::deadline_in(timeout));
    }

    /// Returns the barrier to its initial state; parties waiting get broken_barrier_error
    /// (Python: reset()). Called by the barrier's action, the round still ends as if it had
    /// not been: the parties are released (as CPython).
    void reset() {
        guard g(*s_);
        auto& b = *s_;
        if (b.get_count() > 0) {
            if (b.get_phase() == b.filling || b.get_phase() == b.broken) b.set_phase(b.resetting);
        } else {
            b.set_phase(b.filling);
        }
        b.why = b.none;
        b.notify();
    }
    /// Breaks the barrier: waiting and later parties get broken_barrier_error until reset()
    /// (Python: abort()). Called by the barrier's action, the round still ends: the parties
    /// are released and the barrier is not broken (CPython's `_release` sets it draining after
    /// the action, whatever the action did).
    void abort() {
        guard g(*s_);
        s_->break_(s_->aborted);
    }

    /// The number of parties needed (Python: parties).
    [[nodiscard]] std::size_t parties() const noexcept { return s_->parties; }
    /// The parties waiting now (Python: n_waiting).
    [[nodiscard]] std::size_t n_waiting() const noexcept {
        return s_->get_phase() == s_->filling ? s_->get_count() : 0;
    }
    /// Whether the barrier is broken (Python: broken).
    [[nodiscard]] bool broken() const noexcept { return s_->get_phase() == s_->broken; }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same barrier and its default timeout. A barrier with an action cannot
    /// cross (the action is code and state of this process): serialization_error.
    void cross_out(crossing_writer& w) const {
        if (action_)
            detail::raise(serialization_error("multiproc: a barrier with an action cannot cross into a start::spawn or "
                                      "start::forkserver child (the action lives in this process); make the "
                                      "barrier without one, or use start::fork"));
        s_.cross_out(w);
        w.put<std::int64_t>(timeout_ ? timeout_->count() : -1);
    }
    /// In the child: the barrier cross_out sent.
    static barrier cross_in(crossing_reader& r) {
        auto s = decltype(s_)::cross_in(r);
        const auto t = r.get<std::int64_t>();
        return barrier(std::move(s), t < 0 ? std::nullopt : std::optional(std::chrono::nanoseconds(t)));
    }

private:
    using state = detail::barrier_state;

    barrier(detail::shared_ptr_in_arena<state> s, std::optional<std::chrono::nanoseconds> timeout)
        : s_(std::move(s)), timeout_(timeout) {}

    static detail::shared_ptr_in_arena<state> make(std::size_t parties) {
        if (parties < 1) detail::raise(value_error("parties must be >= 1"));
        if (parties > 65536) detail::raise(value_error("parties must be at most 65536"));
        auto n = static_cast<std::uint32_t>(parties);
        return detail::shared_ptr_in_arena<state>::make(n * sizeof(std::atomic<detail::holder_id>), n);
    }

    // Holds the barrier's own lock; if it is taken from a dead process, repairs and breaks.
    class guard {
    public:
        /// (Taken no second time by the thread that runs the action, which holds it.)
        explicit guard(state& b) : b_(b), nested_(b.acting_here()) {
            if (!nested_) lock();
        }
        ~guard() {
            if (!nested_) b_.mu.release();
        }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;

        /// Lets go of the lock until the barrier changes or `deadline` passes (then false),
        /// looking now and then for parties that died inside wait().
        bool wait_change(std::optional<detail::steady::time_point> deadline) {
            auto seen = b_.epoch.load(std::memory_order_acquire);
            detail::check_schedule sched;
            for (;;) {
                b_.mu.release();
                b_.changed.wait_until([&] { return b_.epoch.load(std::memory_order_acquire) != seen; },
                                      sched.wake_at(deadline));
                lock();
                if (b_.epoch.load(std::memory_order_acquire) != seen) return true;
                auto now = detail::steady::now();
                if (sched.due(now) && detail::claim_check(b_.next_check, now) && b_.remove_dead()) return true;
                if (deadline && now >= *deadline) return false;
            }
        }

    private:
        void lock() {
            if (b_.mu.acquire() == detail::lock_status::owner_died) b_.recover(b_.mu.died.load(std::memory_order_relaxed));
        }
        state& b_;
        bool nested_;
    };

    std::size_t wait_until(std::optional<detail::steady::time_point> deadline) {
        auto& b = *s_;
        if (b.acting_here()) // (CPython waits out the timeout, or for ever, and breaks it)
            detail::raise(state_error("multiproc: a barrier's action cannot wait on its own barrier: the parties are "
                                      "released only once it returns"));
        guard g(b);
        while (b.get_phase() == b.draining || b.get_phase() == b.resetting) g.wait_change(std::nullopt);
        // The last to arrive first looks for parties that died waiting: counted, they would
        // let the others go with one missing (it breaks the barrier, naming the dead one).
        // Only if a party sleeps on the barrier, or the round is as old as a waiter's first
        // look of its own (check_schedule::first: a waiter wakes to look, and spins a little
        // before it sleeps again). A look reads /proc once per party, which made a busy round
        // of two processes 8x slower; a party still in the first spin of its wait (~20 us)
        // is alive, or died as good as at the release.
        const std::int64_t now_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(detail::steady::now().time_since_epoch()).count();
        if (b.get_count() + 1 == b.parties && b.get_count() != 0 &&
            (b.changed.sleepers.load(std::memory_order_seq_cst) != 0 ||
             now_ns - b.round_started.load(std::memory_order_relaxed) >=
                 std::chrono::nanoseconds(detail::check_schedule::first).count()))
            (void)b.remove_dead();
        if (b.get_phase() == b.broken) detail::raise(broken_barrier_error(b.broken_message()));
        std::uint32_t index = b.get_count();
        if (index == 0) b.round_started.store(now_ns, std::memory_order_relaxed);
        b.inside(index).store(detail::self_holder_id(), std::memory_order_relaxed);
        b.count.store(index + 1, std::memory_order_relaxed);
        MULTIPROC_TRY {
            if (index + 1 == b.parties) {
                if (action_) {
                    MULTIPROC_TRY {
                        state::acting_scope acting(b);
                        action_();
                    } MULTIPROC_CATCH_ALL {
                        b.break_(b.action_threw);
                        MULTIPROC_RETHROW;
                    }
                }
                b.set_phase(b.draining);
                b.notify();
            } else {
                while (b.get_phase() == b.filling)
                    if (!g.wait_change(deadline)) b.break_(b.timed_out);
                if (b.get_phase() == b.resetting) detail::raise(broken_barrier_error("barrier was reset while waiting"));
                if (b.get_phase() == b.broken) detail::raise(broken_barrier_error(b.broken_message()));
            }
        } MULTIPROC_CATCH_ALL {
            b.leave(index);
            MULTIPROC_RETHROW;
        }
        b.leave(index);
        return index;
    }

    detail::shared_ptr_in_arena<state> s_;
    std::function<void()> action_;
    std::optional<std::chrono::nanoseconds> timeout_;
};

MULTIPROC_ABI_END } // namespace multiproc
