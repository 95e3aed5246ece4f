// Not part of the API: waiting across processes on a word in shared memory, spinning
// briefly before sleeping in the kernel (a cross-core wake-up costs ~65 µs on the VMs
// this was measured on, so a short spin often wins).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>

#include <algorithm>
#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <climits>
#include <limits>
#include <cstdint>
#include <optional>

#include <time.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

using steady = std::chrono::steady_clock;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// How long waits spin before sleeping; benchmarks may tune it.
inline constexpr std::chrono::microseconds default_spin{20};

/// The longest a wait sleeps in the kernel before it looks at its condition again. A
/// process killed between changing shared state and waking the sleepers (or, for a robust
/// mutex, inside pthread_mutex_unlock between releasing the word and its futex wake) never
/// wakes them, and the kernel does not either; so no wait may rely on a wake-up alone. A
/// wake-up lost that way costs at most this long.
inline constexpr std::chrono::milliseconds lost_wake_slice{100};

/// A wake-up channel in shared memory: state changes are published by `notify_all()`;
/// `wait_until(pred)` returns once `pred()` holds. Waiters register, so notify makes no
/// system call when nobody sleeps. Trivially constructible: zeroed memory is a valid one.
struct notifier {
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint32_t> sleepers{0};

    // A store-then-load handshake on both sides (the notifier publishes the state and then
    // reads `sleepers`; a waiter raises `sleepers` and then reads the state) is correct only
    // with sequentially consistent operations; on x86 they cost what acq_rel costs.

    /// Call after changing the state `pred` looks at.
    void notify_all() noexcept {
        seq.fetch_add(1, std::memory_order_seq_cst);
        if (sleepers.load(std::memory_order_seq_cst) != 0) sys::futex_wake(&seq, INT_MAX);
    }
    void notify_one() noexcept {
        seq.fetch_add(1, std::memory_order_seq_cst);
        if (sleepers.load(std::memory_order_seq_cst) != 0) sys::futex_wake(&seq, 1);
    }

    /// Waits until `pred()` is true (returns true) or `deadline` passes (returns pred()).
    /// No deadline waits forever. Throws os_error if the futex call fails unexpectedly.
    template <class Pred>
    bool wait_until(Pred pred, std::optional<steady::time_point> deadline,
                    std::chrono::microseconds spin = default_spin) {
        if (pred()) return true;
        auto spin_end = steady::now() + spin;
        for (unsigned i = 1;; ++i) {
            cpu_relax();
            if (pred()) return true;
            if ((i & 63) == 0) {
                if (steady::now() >= spin_end) break;
                // With more runnable threads than cores, the process we wait for may need
                // this CPU: hand it over now and then (measured 70x faster pools under load).
                sys::yield();
            }
        }
        for (;;) {
            std::uint32_t seen = seq.load(std::memory_order_acquire);
            sleepers.fetch_add(1, std::memory_order_seq_cst);
            if (pred()) {
                sleepers.fetch_sub(1, std::memory_order_acq_rel);
                return true;
            }
            steady::duration left = lost_wake_slice;
            if (deadline) {
                left = std::min<steady::duration>(left, *deadline - steady::now());
                if (left <= steady::duration::zero()) {
                    sleepers.fetch_sub(1, std::memory_order_acq_rel);
                    return pred();
                }
            }
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
            timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
            int r = sys::futex_wait(&seq, seen, &ts);
            int e = errno;
            sleepers.fetch_sub(1, std::memory_order_acq_rel);
            if (r == -1 && e != EAGAIN && e != EINTR && e != ETIMEDOUT) sys::fail("futex wait", e);
            if (pred()) return true;
        }
    }
};

/// value_error("multiproc: timeout is not a number") if `timeout` is a NaN. CPython's answer
/// depends on the object (ValueError from a Connection's poll, an OSError or a wait of any
/// length from a lock), and no answer but an error is right.
template <class Rep, class Period>
void check_timeout(std::chrono::duration<Rep, Period> timeout) {
    if constexpr (!std::numeric_limits<Rep>::is_integer) {
        const Rep r = timeout.count();
        if (!(r == r)) raise(value_error("multiproc: timeout is not a number"));
    }
}

/// A deadline `timeout` from now: a negative timeout is now (as Python treats it), and one
/// too long to represent, such as `hours::max()`, is none: wait forever. A NaN is
/// value_error (check_timeout).
template <class Rep, class Period>
std::optional<steady::time_point> deadline_in(std::chrono::duration<Rep, Period> timeout) {
    check_timeout(timeout);
    if (!(timeout > timeout.zero())) return steady::now();
    if (std::chrono::duration<double>(timeout).count() > 3e9) return std::nullopt; // ~95 years
    return steady::now() + std::chrono::ceil<steady::duration>(timeout);
}

/// A deadline `timeout` from now, or none (wait forever) if `timeout` is empty.
template <class Rep, class Period>
std::optional<steady::time_point> deadline_after(std::optional<std::chrono::duration<Rep, Period>> timeout) {
    if (!timeout) return std::nullopt;
    return deadline_in(*timeout);
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
