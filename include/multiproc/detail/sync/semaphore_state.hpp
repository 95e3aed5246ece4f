// Not part of the API: a counting semaphore in shared memory that gives back the units a
// dead process was holding, whatever step of its bookkeeping it died at.
//
// Units are of two kinds. Resource units are the initial value: taking one makes the
// taker its holder (counted in a table of holder slots, one per holding process), and
// releasing it, from the holder or any other process, hands it back. Signal units are made
// by a release when no process holds a resource unit: taking one holds nothing. So a
// semaphore that guards resources gets the units of a dead holder back, while one used to
// signal (Semaphore(0), released here and acquired there) never makes up units for a
// consumer that has gone. Acquire takes resource units first.
//
// Crash-consistency. Every change is made under `mu`, a pid_lock, which the next process
// takes over if its holder dies. The truth is in words that a change commits with a single
// store: each slot's `held`, `untracked` (units held by processes that found no slot) and
// the signal units (the high half of `units`). The free resource units, the low half of
// `units` (which waiters read without the lock), are derived: initial - sum(held) -
// untracked. A process that takes `mu` over from a dead one recomputes them first, so a
// death between any two steps neither loses a unit nor makes one up.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/sync/liveness.hpp>
#include <multiproc/detail/sync/lock_word.hpp>
#include <multiproc/detail/os/sys.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <new>
#include <optional>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// One process's holdings of a semaphore's resource units. A slot whose `held` is 0 is
/// free: any process may claim it (under the semaphore's lock).
struct holder_slot {
    std::atomic<holder_id> who{0};
    std::atomic<std::uint32_t> held{0};
    std::uint32_t unused = 0;
};

/// Takes one from `n` unless it is 0; returns whether it did.
inline bool decrement_if_positive(std::atomic<std::uint32_t>& n) noexcept {
    std::uint32_t v = n.load(std::memory_order_relaxed);
    while (v > 0)
        if (n.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) return true;
    return false;
}

struct semaphore_state {
    /// The most a semaphore can count (Python: SEM_VALUE_MAX).
    static constexpr std::uint32_t value_max = INT_MAX;
    /// At most this many processes' holdings are tracked at once. A semaphore whose initial
    /// value is at most this has a slot per unit, so every holder is tracked: no more
    /// processes can hold resource units at once than there are units. (1000 slots keep the
    /// state within 16 KiB, in the arena.)
    static constexpr std::uint32_t max_slots = 1000;

    pid_lock mu{};                             // guards every change below
    std::atomic<std::uint64_t> units{0};       // low half: free resource units; high half: signal units
    notifier changed{};                        // bumped when units are given back
    std::uint32_t initial;                     // the resource units
    std::uint32_t maxvalue;
    std::uint32_t nslots;
    std::atomic<std::uint32_t> untracked{0};   // resource units held by processes without a slot
    std::atomic<std::uint32_t> recovered{0};   // units given back by dead holders, not yet taken
    std::atomic<std::int64_t> next_check{0};   // see claim_check

    /// Bytes needed after the state for the holder slots of a semaphore of `value`.
    static std::size_t extra_for(std::uint32_t value) noexcept {
        return sizeof(holder_slot) * std::min(value, max_slots);
    }

    semaphore_state(std::uint32_t value, std::uint32_t max) noexcept
        : units(value), initial(value), maxvalue(max), nslots(std::min(value, max_slots)) {
        for (std::uint32_t i = 0; i < nslots; ++i) ::new (slot_storage() + i) holder_slot();
    }

    static std::uint32_t resource(std::uint64_t u) noexcept { return static_cast<std::uint32_t>(u); }
    static std::uint32_t signal(std::uint64_t u) noexcept { return static_cast<std::uint32_t>(u >> 32); }
    static constexpr std::uint64_t one_signal = std::uint64_t{1} << 32;

    /// The number of units free now (Python: get_value()).
    [[nodiscard]] std::uint32_t value() const noexcept {
        auto u = units.load(std::memory_order_relaxed);
        return resource(u) + signal(u);
    }

    holder_slot& slot(std::uint32_t i) noexcept { return *std::launder(slot_storage() + i); }

    /// Holds `mu` for a scope; if it was taken from a process that died holding it, the
    /// derived counts are repaired first. `locked()` is false if `deadline` passed first.
    class guard {
    public:
        explicit guard(semaphore_state& s, std::optional<steady::time_point> deadline = std::nullopt) : s_(s) {
            auto st = s.mu.acquire(deadline);
            locked_ = st != lock_status::timed_out;
            if (st == lock_status::owner_died) s.repair();
            if (locked_) sys::step();
        }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;
        ~guard() {
            if (locked_) s_.mu.release();
        }
        [[nodiscard]] bool locked() const noexcept { return locked_; }

    private:
        semaphore_state& s_;
        bool locked_;
    };

    /// With `mu` held: takes a unit if one is free, a resource unit (recorded as held by
    /// `me`) before a signal one. `from_dead` says whether it came back from a dead holder.
    /// `hint` remembers the index of `me`'s slot between calls.
    bool take(holder_id me, std::atomic<std::uint32_t>& hint, bool& from_dead) noexcept {
        std::uint64_t u = units.load(std::memory_order_relaxed);
        from_dead = false;
        if (resource(u) > 0) {
            if (holder_slot* s = slot_of(me, hint, true))
                bump(s->held, 1); // the commit: the unit is held by `me`
            else
                bump(untracked, 1);
            sys::step();
            units.store(u - 1, std::memory_order_relaxed);
            sys::step();
            from_dead = decrement_if_positive(recovered);
            return true;
        }
        if (signal(u) == 0) return false;
        units.store(u - one_signal, std::memory_order_relaxed);
        return true;
    }

    /// With `mu` held: releases a unit, one `me` holds, else one another process holds, else
    /// a new signal unit. False (and nothing changed) if the count would pass `maxvalue`.
    bool give(holder_id me, std::atomic<std::uint32_t>& hint) noexcept {
        std::uint64_t u = units.load(std::memory_order_relaxed);
        if (resource(u) + signal(u) >= maxvalue) return false;
        holder_slot* from = slot_of(me, hint, false);
        if (!from || from->held.load(std::memory_order_relaxed) == 0) from = held_elsewhere();
        std::atomic<std::uint32_t>* count = from ? &from->held : untracked.load(std::memory_order_relaxed) ? &untracked : nullptr;
        if (!count) {
            units.store(u + one_signal, std::memory_order_relaxed);
            return true;
        }
        bump(*count, -1); // the commit: the unit is free
        sys::step();
        units.store(u + 1, std::memory_order_relaxed);
        return true;
    }

    /// Gives back the units of holders that have died; returns how many. /proc is read
    /// without `mu`; each dead holder's units are then taken back under it.
    std::uint32_t recover_dead() {
        std::uint32_t back = 0;
        for (std::uint32_t i = 0; i < nslots; ++i) {
            auto& s = slot(i);
            holder_id who = s.who.load(std::memory_order_relaxed);
            if (who == 0 || s.held.load(std::memory_order_relaxed) == 0 || !process_gone(who)) continue;
            guard g(*this);
            // Still the dead process's? (A slot changes hands only once it holds nothing.)
            std::uint32_t n = s.held.load(std::memory_order_relaxed);
            if (s.who.load(std::memory_order_relaxed) != who || n == 0) continue;
            s.held.store(0, std::memory_order_relaxed); // the commit
            sys::step();
            units.store(units.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
            sys::step();
            bump(recovered, static_cast<int>(n));
            back += n;
        }
        if (back > 0) changed.notify_all();
        return back;
    }

    /// After taking `mu` over from a process that died holding it: recomputes the free
    /// resource units from what is held, the one count that may be half-updated.
    void repair() noexcept {
        std::uint64_t held = untracked.load(std::memory_order_relaxed);
        for (std::uint32_t i = 0; i < nslots; ++i) held += slot(i).held.load(std::memory_order_relaxed);
        std::uint32_t free = held >= initial ? 0 : initial - static_cast<std::uint32_t>(held);
        std::uint64_t u = units.load(std::memory_order_relaxed);
        units.store((u & ~std::uint64_t{0xffffffff}) | free, std::memory_order_relaxed);
        if (recovered.load(std::memory_order_relaxed) > free) recovered.store(free, std::memory_order_relaxed);
    }

private:
    holder_slot* slot_storage() noexcept { return reinterpret_cast<holder_slot*>(this + 1); }

    // Adds `d` to a count that only the holder of `mu` changes: one store, so that a process
    // killed around it leaves either the old value or the new one.
    static void bump(std::atomic<std::uint32_t>& n, int d) noexcept {
        n.store(n.load(std::memory_order_relaxed) + static_cast<std::uint32_t>(d), std::memory_order_relaxed);
    }

    // With `mu` held: `me`'s slot; if it has none and `claim`, a free one made its own.
    holder_slot* slot_of(holder_id me, std::atomic<std::uint32_t>& hint, bool claim) noexcept {
        if (nslots == 0) return nullptr;
        std::uint32_t h = hint.load(std::memory_order_relaxed);
        if (h < nslots && slot(h).who.load(std::memory_order_relaxed) == me) return &slot(h);
        std::uint32_t start = static_cast<std::uint32_t>(holder_pid(me)) % nslots;
        holder_slot* free = nullptr;
        for (std::uint32_t i = 0; i < nslots; ++i) {
            std::uint32_t k = (start + i) % nslots;
            auto& s = slot(k);
            if (s.who.load(std::memory_order_relaxed) == me) {
                hint.store(k, std::memory_order_relaxed);
                return &s;
            }
            if (!free && s.held.load(std::memory_order_relaxed) == 0) free = &s;
        }
        if (!claim || !free) return nullptr; // untracked: this process's units are lost if it dies
        free->who.store(me, std::memory_order_relaxed); // harmless alone: a slot holding nothing is free
        sys::step();
        hint.store(static_cast<std::uint32_t>(free - &slot(0)), std::memory_order_relaxed);
        return free;
    }

    // With `mu` held: a slot of another process that holds a unit.
    holder_slot* held_elsewhere() noexcept {
        for (std::uint32_t i = 0; i < nslots; ++i)
            if (slot(i).held.load(std::memory_order_relaxed) > 0) return &slot(i);
        return nullptr;
    }
};

static_assert(sizeof(semaphore_state) % alignof(holder_slot) == 0);
static_assert(sizeof(semaphore_state) + sizeof(holder_slot) * semaphore_state::max_slots <= 16 * 1024,
              "multiproc: a semaphore's state must fit an arena slot");

} MULTIPROC_ABI_END } // namespace multiproc::detail
