// Not part of the API: a mutex in shared memory that survives the death of its owner.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <multiproc/detail/util/chrono.hpp>
#include <optional>

#include <pthread.h>
#include <time.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What a lock attempt found.
enum class lock_status {
    acquired,    ///< locked normally
    owner_died,  ///< locked, but the previous owner died holding it: the data it guards may be half-changed
    timed_out,   ///< not locked: the deadline passed
};

/// A process-shared, robust pthread mutex, to be placed in shared memory and initialized
/// once by the creator. If the owner dies holding it, the next locker gets it with
/// `owner_died` and the mutex is made consistent again. Only the owner may unlock.
struct robust_mutex {
    pthread_mutex_t m;

    void init() {
        pthread_mutexattr_t a;
        ::pthread_mutexattr_init(&a);
        ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        int r = ::pthread_mutex_init(&m, &a);
        ::pthread_mutexattr_destroy(&a);
        if (r != 0) sys::fail("pthread_mutex_init of a process-shared mutex", r);
    }

    /// Locks, waiting at most until `deadline` if given. Sleeps at most lost_wake_slice at a
    /// time: an owner killed inside pthread_mutex_unlock, after it released the word and
    /// before its futex wake, leaves the waiters asleep on a free mutex (seen on Linux 6.18
    /// with glibc 2.36), and only a timed wait gets them out.
    lock_status lock(std::optional<steady::time_point> deadline = std::nullopt) {
        int r;
        for (;;) {
            auto until = steady::now() + lost_wake_slice;
            bool last = deadline && *deadline <= until;
            if (last) until = *deadline;
            // pthread_mutex_clocklock takes an absolute CLOCK_MONOTONIC time, as steady_clock is.
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count();
            timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
            r = ::pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts);
            if (r != ETIMEDOUT || last) break;
        }
        if (r == 0) return lock_status::acquired;
        if (r == ETIMEDOUT) return lock_status::timed_out;
        if (r == EOWNERDEAD) {
            ::pthread_mutex_consistent(&m);
            return lock_status::owner_died;
        }
        sys::fail("locking a process-shared mutex", r);
    }

    /// Locks only if free at once.
    lock_status try_lock() {
        int r = ::pthread_mutex_trylock(&m);
        if (r == 0) return lock_status::acquired;
        if (r == EBUSY) return lock_status::timed_out;
        if (r == EOWNERDEAD) {
            ::pthread_mutex_consistent(&m);
            return lock_status::owner_died;
        }
        sys::fail("locking a process-shared mutex", r);
    }

    void unlock() {
        int r = ::pthread_mutex_unlock(&m);
        if (r != 0) sys::fail("unlocking a process-shared mutex", r);
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
