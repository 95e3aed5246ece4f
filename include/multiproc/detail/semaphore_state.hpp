// Not part of the API: a counting semaphore in shared memory that gives back the units a
// dead process was holding.
//
// Units are of two kinds. Resource units are the initial value: taking one makes the
// taker its holder (counted in a table of holder slots, one per process), and releasing
// it, from the holder or any other process, hands it back. Signal units are made by a
// release when no process holds a resource unit: taking one holds nothing. So a semaphore
// that guards resources gets the units of a dead holder back, while one used to signal
// (Semaphore(0), released here and acquired there) never makes up units for a consumer that
// has gone. Acquire takes resource units first.
#pragma once

#include <multiproc/detail/futex.hpp>
#include <multiproc/detail/liveness.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <new>

namespace multiproc::detail {

/// One process's holdings of a semaphore's resource units.
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
    /// At most this many processes' holdings are tracked at once; beyond, units are untracked.
    static constexpr std::uint32_t max_slots = 64;
    /// A holder slot being emptied by whoever found its process dead.
    static constexpr holder_id reclaiming = holder_id{1} << 30;

    std::atomic<std::uint64_t> units{0}; // low half: resource units; high half: signal units
    notifier changed{};
    std::uint32_t maxvalue;
    std::uint32_t nslots;
    std::atomic<std::uint32_t> recovered{0}; // units given back by dead holders, not yet taken
    std::atomic<std::int64_t> next_check{0};

    /// Bytes needed after the state for the holder slots of a semaphore of `value`.
    static std::size_t extra_for(std::uint32_t value) noexcept {
        return sizeof(holder_slot) * std::min(value, max_slots);
    }

    semaphore_state(std::uint32_t value, std::uint32_t max) noexcept
        : units(value), maxvalue(max), nslots(std::min(value, max_slots)) {
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

    /// The slot holding this process's units, claimed if `claim` and there is none yet.
    holder_slot* find_slot(holder_id me, bool claim) {
        if (nslots == 0) return nullptr;
        std::uint32_t start = static_cast<std::uint32_t>(holder_pid(me)) % nslots;
        for (std::uint32_t i = 0; i < nslots; ++i) {
            auto& s = slot((start + i) % nslots);
            if (s.who.load(std::memory_order_relaxed) == me) return &s;
        }
        if (!claim) return nullptr;
        for (int round = 0; round < 2; ++round) {
            for (std::uint32_t i = 0; i < nslots; ++i) {
                auto& s = slot((start + i) % nslots);
                holder_id none = 0;
                if (s.who.compare_exchange_strong(none, me, std::memory_order_relaxed)) return &s;
            }
            // Full: free the slots of processes that have died, once in a while.
            if (round > 0 || !claim_check(next_check, steady::now()) || recover_dead(true) == 0) break;
        }
        return nullptr; // untracked: this process's units are not given back if it dies
    }

    /// Takes a unit if one is free: a resource unit (recorded in `mine`) before a signal one.
    bool try_take(holder_slot* mine) noexcept {
        auto u = units.load(std::memory_order_relaxed);
        for (;;) {
            std::uint64_t next;
            if (resource(u) > 0)
                next = u - 1;
            else if (signal(u) > 0)
                next = u - one_signal;
            else
                return false;
            if (units.compare_exchange_weak(u, next, std::memory_order_acquire, std::memory_order_relaxed)) {
                if (resource(u) > 0 && mine) mine->held.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
        }
    }

    /// Whether the unit just taken counts as one given back by a dead holder.
    bool take_recovered() noexcept { return decrement_if_positive(recovered); }

    /// Releases a unit: one this process holds, else one another process holds, else a new
    /// signal unit. Throws value_error when the count would pass `maxvalue`.
    void give(holder_slot* mine) {
        holder_slot* from = mine && decrement_if_positive(mine->held) ? mine : held_elsewhere();
        auto u = units.load(std::memory_order_relaxed);
        for (;;) {
            if (resource(u) + signal(u) >= maxvalue) {
                if (from) from->held.fetch_add(1, std::memory_order_relaxed);
                throw value_error("semaphore or lock released too many times");
            }
            std::uint64_t next = from ? u + 1 : u + one_signal;
            if (units.compare_exchange_weak(u, next, std::memory_order_release, std::memory_order_relaxed)) break;
        }
        changed.notify_one();
    }

    /// Gives back the units of holders that have died (and frees their slots, also empty
    /// ones if `empty_too`); returns how many slots it freed.
    std::uint32_t recover_dead(bool empty_too) {
        std::uint32_t freed = 0, units_back = 0;
        for (std::uint32_t i = 0; i < nslots; ++i) {
            auto& s = slot(i);
            holder_id who = s.who.load(std::memory_order_relaxed);
            if (who == 0 || who == reclaiming) continue;
            if (!empty_too && s.held.load(std::memory_order_relaxed) == 0) continue;
            if (!process_gone(who) || !s.who.compare_exchange_strong(who, reclaiming, std::memory_order_acquire))
                continue;
            units_back += s.held.exchange(0, std::memory_order_relaxed);
            s.who.store(0, std::memory_order_release);
            ++freed;
        }
        if (units_back > 0) {
            auto u = units.load(std::memory_order_relaxed);
            std::uint32_t add = 0;
            for (;;) {
                std::uint32_t room = maxvalue - std::min(maxvalue, resource(u) + signal(u));
                add = std::min(units_back, room);
                if (units.compare_exchange_weak(u, u + add, std::memory_order_release, std::memory_order_relaxed)) break;
            }
            recovered.fetch_add(add, std::memory_order_relaxed);
            changed.notify_all();
        }
        return freed;
    }

private:
    holder_slot* slot_storage() noexcept { return reinterpret_cast<holder_slot*>(this + 1); }

    // A slot of another process that holds a unit, with that unit taken off its count.
    holder_slot* held_elsewhere() noexcept {
        for (std::uint32_t i = 0; i < nslots; ++i)
            if (decrement_if_positive(slot(i).held)) return &slot(i);
        return nullptr;
    }
};

static_assert(sizeof(semaphore_state) % alignof(holder_slot) == 0);

} // namespace multiproc::detail
