// Not part of the API: the gate a child made by start::fork waits at until its parent holds
// its pidfd, so that the child cannot have ended, and been reaped by a SIGCHLD handler or
// SIG_IGN (its pid free for another process), before its parent can name it for sure.
//
// The gate is a word in a page of shared memory that the process maps once, on its first
// fork start; each start takes a word of its own. Until issue 20's fourth stop it was a socket
// pair per start: making and closing it, and the child's sleep and wake-up on it, cost
// 15-20 µs of a start's ~180 (bench/, "process start + join"). Here the parent
// opens the gate with one store, and the child, which the scheduler puts on another core
// while its parent returns from fork, usually sees it open while it spins: no system call on
// either side. It sleeps on the word (a futex) only when its parent is slow.
//
// A word's value, for one use with `closed` a multiple of 4: `closed` (the child must wait),
// `closed + 1` (it waits asleep: the opener wakes it), `closed + 2` (open), `closed + 3`
// (refused: the child leaves without running anything). A word is used again only once its
// child can no longer look at it as closed: after it was opened (the next use's values are
// all above `closed + 3`, and the child reads any of them as "open"), or once its child is
// dead. Without the socket, a child whose parent dies before opening sees it by
// getppid() changing, checked each time its sleep ends (at most every lost_wake_slice). A
// getppid() of 0 (the child is the first process of a new pid namespace, its parent outside
// it) tells nothing: such a child waits until the gate opens or it is killed.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/futex.hpp> // cpu_relax, lost_wake_slice
#include <multiproc/detail/os/sys.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// The words of this process's gates: one shared page, and which words are in use. Taken
/// under the runtime's lock (held across fork()); given back without it, by an atomic
/// release that the next take's acquire load pairs with (so that the word's last use is
/// over before its next one closes it).
struct fork_gate_words {
    static constexpr std::size_t count = 4096 / sizeof(std::uint32_t);
    std::atomic<std::uint32_t>* page = nullptr; // MAP_SHARED, so that a child sees the stores
    bool inherited = false;                     // set in every forked child: the page is its parent's
    std::atomic<std::uint64_t> busy[count / 64]{};
};
inline constinit fork_gate_words gate_words{};

/// In every child made by fork(), ours or the user's: the page is the parent's, whose words
/// the parent gives out; the child maps a page of its own on its first start (its own gate's
/// word, if it was started by us, stays readable until then).
inline void fork_gate_words_inherited() noexcept { gate_words.inherited = true; }
inline const int fork_gate_handlers = sys::at_fork(nullptr, nullptr, fork_gate_words_inherited);

/// Binds, as the program starts, the libc calls fork_gate::pass() makes, so that a forked
/// child does not bind them lazily anew (see child_exits in tests/process/exit.cpp). At
/// namespace scope, not in a function's static: a lazily initialised static's guard is a
/// lock that a fork can copy held.
inline const bool fork_gate_calls_bound = ::getppid() >= 0 && ::syscall(SYS_getppid) >= 0 && ::sched_yield() == 0;

/// One start's gate: a word of the shared page, or, when all are in use, a page of its own.
class fork_gate {
public:
    fork_gate() = default;
    fork_gate(const fork_gate&) = delete;
    fork_gate& operator=(const fork_gate&) = delete;
    /// Neither opened nor given back: refused, and its word kept in use (its child may live).
    ~fork_gate() { refuse(false); }

    /// A page of anonymous memory a forked child shares with its parent; null with errno if
    /// none could be mapped.
    static std::atomic<std::uint32_t>* map_page() noexcept {
        return static_cast<std::atomic<std::uint32_t>*>(
            sys::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    }

    /// Takes a word and closes it; call with the runtime's lock held. false with errno if
    /// no shared page could be mapped.
    bool take() noexcept {
        auto& w = gate_words;
        if (w.page && w.inherited) {
            (void)sys::munmap(w.page, 4096);
            w.page = nullptr;
            for (auto& b : w.busy) b.store(0, std::memory_order_relaxed);
        }
        if (!w.page) {
            if (!(w.page = map_page())) return false;
            w.inherited = false;
        }
        for (std::size_t i = 0; i < fork_gate_words::count / 64; ++i) {
            std::uint64_t b = w.busy[i].load(std::memory_order_acquire);
            if (b == ~std::uint64_t{0}) continue;
            const unsigned bit = static_cast<unsigned>(__builtin_ctzll(~b));
            w.busy[i].fetch_or(std::uint64_t{1} << bit, std::memory_order_relaxed);
            index_ = i * 64 + bit;
            word_ = &w.page[index_];
            return close_word();
        }
        // Every word is in use (over a thousand starts in flight): this start maps its own.
        if (!(word_ = map_page())) return false;
        own_page_ = true;
        return close_word();
    }

    /// In the parent: lets the child run its target.
    void open() noexcept { finish(closed_ + 2, true); }
    /// In the parent: tells the child to leave without running anything, and gives the word
    /// back only if `child_dead` (else a later use's values would read as "open" to it).
    void refuse(bool child_dead) noexcept { finish(closed_ + 3, child_dead); }
    /// In the parent, when fork failed: there is no child.
    void forget() noexcept { release(); }

    /// In the child: waits until the gate opens (true), is refused, or `parent` has ended
    /// without opening it (false).
    [[nodiscard]] bool pass(pid_t parent) const noexcept { return pass(*word_, closed_, parent); }

    /// The wait of pass() on `w`, closed at `closed` for the child that waits.
    [[nodiscard]] static bool pass(std::atomic<std::uint32_t>& w, std::uint32_t closed, pid_t parent) noexcept {
        // Tens of µs at most: the parent, on another core, usually opens it first. On the
        // parent's core (every other one busy), hand the core over now and then.
        for (int i = 1; i <= 2048; ++i) {
            const std::uint32_t v = w.load(std::memory_order_acquire);
            if (v != closed) return v != closed + 3;
            cpu_relax();
            if (i % 512 == 0) sys::yield();
        }
        std::uint32_t expect = closed;
        (void)w.compare_exchange_strong(expect, closed + 1, std::memory_order_seq_cst);
        for (;;) {
            const std::uint32_t v = w.load(std::memory_order_acquire);
            if (v != closed && v != closed + 1) return v != closed + 3;
            timespec slice{0, std::chrono::nanoseconds(lost_wake_slice).count()};
            (void)sys::futex_wait(&w, closed + 1, &slice);
            const pid_t now = ::getppid();
            if (now != parent && now != 0) { // 0: a parent outside our pid namespace; see above
                const std::uint32_t last = w.load(std::memory_order_acquire);
                return last != closed && last != closed + 1 && last != closed + 3;
            }
        }
    }

    /// The word this gate holds (null if none) and the value that closes it: for tests.
    [[nodiscard]] std::atomic<std::uint32_t>* word() const noexcept { return word_; }
    [[nodiscard]] std::uint32_t closed_value() const noexcept { return closed_; }

private:
    bool close_word() noexcept {
        // Past every value the word's last use can have had (see the file's comment).
        closed_ = (word_->load(std::memory_order_relaxed) | 3u) + 1u;
        word_->store(closed_, std::memory_order_release);
        return true;
    }
    void finish(std::uint32_t value, bool give_back) noexcept {
        if (!word_) return;
        if (word_->exchange(value, std::memory_order_seq_cst) == closed_ + 1) sys::futex_wake(word_, 1);
        if (give_back) release();
        else word_ = nullptr; // kept busy: its child may still read it
    }
    void release() noexcept {
        if (!word_) return;
        if (own_page_) (void)sys::munmap(word_, 4096); // the child keeps its own mapping
        else gate_words.busy[index_ / 64].fetch_and(~(std::uint64_t{1} << (index_ % 64)), std::memory_order_release);
        word_ = nullptr;
        own_page_ = false;
    }

    std::atomic<std::uint32_t>* word_ = nullptr;
    std::size_t index_ = 0;
    std::uint32_t closed_ = 0;
    bool own_page_ = false;
};

MULTIPROC_ABI_END } } // namespace multiproc::detail
