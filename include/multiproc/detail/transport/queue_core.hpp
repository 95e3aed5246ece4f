// Not part of the API: the engine under queue, simple_queue and joinable_queue, over any
// channel (a stream of chunks: a kernel pipe or socket with a staging area, or a ring in
// shared memory). docs/design/queues.md explains the protocol and what it guarantees.
//
// Shared state lives in one memfd region: the control block below, then the channel's
// area. Producers serialize on `wlock`, consumers on `rlock` (robust: a holder that dies
// hands the lock on with `owner_died`). Each side keeps its state in a journal of two
// slots and commits a change by storing the slot index, so a process killed at any
// instruction leaves its side's state either before or after each change; a new holder
// that finds `owner_died` repairs from there. Counters read without a lock (qsize) are
// copies published after each commit and re-published by the repair.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/util/function_ref.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/sync/robust_mutex.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What a writer's repair can tell about a chunk that was being written when it died.
enum class fate { no, yes, unknown };

/// A chunk a channel found: its header, its payload (valid until it is consumed), and the
/// read position after it.
struct chunk_ref {
    chunk_header h;
    const std::byte* payload;
    std::uint64_t next;
};

/// State committed by one store of `cur`: the lock holder writes the other slot, then
/// switches. Zeroed memory is a valid journal.
template <class S>
struct journal {
    S slot[2];
    std::atomic<std::uint32_t> cur;

    /// A copy of the committed state (a reference would see the slot change at the update
    /// after next).
    [[nodiscard]] S get() const noexcept { return slot[cur.load(std::memory_order_acquire) & 1]; }
    template <class F>
    void update(F&& f) {
        std::uint32_t c = cur.load(std::memory_order_relaxed) & 1;
        S next = slot[c];
        f(next);
        slot[c ^ 1] = next;
        cur.store(c ^ 1, std::memory_order_release);
    }
};

struct writer_state {
    std::uint64_t puts;        // messages whose last chunk is in the channel
    std::uint64_t seq;         // the last sequence number handed out
    std::uint64_t busy;        // the message being written; of a batch, its last (0: none)
    std::uint64_t mark;        // the channel's write position before the write in flight
    std::uint64_t disputed;    // the (last) message of a write that may or may not have happened
    std::uint64_t disputed_count; // ... and how many messages that write finishes
    std::uint32_t in_flight;   // a write has been started and not seen to finish
    std::uint32_t final_chunk; // ... and it finishes messages:
    std::uint32_t count;       // ... this many (a batch of one-chunk messages: put_many)
    std::uint32_t spare;
};

struct reader_state {
    std::uint64_t pos;      // where the next chunk is: ring position or staging offset
    std::uint64_t end;      // staging: bytes read into it (stream channels)
    chunk_position last;    // the last chunk consumed
    std::uint64_t gets;     // messages finished: delivered, or their rest skipped
    std::uint64_t adjust;   // disputed messages that turned out to have arrived
    std::uint64_t resolved; // the last disputed message settled
};

struct queue_control {
    std::int64_t maxsize; // <= 0: no limit
    robust_mutex wlock;
    robust_mutex rlock;
    alignas(64) journal<writer_state> w;
    std::atomic<std::uint64_t> puts_pub;
    std::atomic<std::uint64_t> dispute_pub; // the last dispute: its seq and count in one word (dispute_word)
    alignas(64) journal<reader_state> r;
    std::atomic<std::uint64_t> gets_pub;
    std::atomic<std::uint64_t> adjust_pub;
    std::atomic<std::uint64_t> resolved_pub;
    alignas(64) std::atomic<std::uint64_t> done; // task_done() calls
    notifier slots;                              // a get made room (bounded queues)
    notifier tasks;                              // task_done() or a settled dispute (join)
    alignas(64) std::atomic<std::uint32_t> shut; // a shutdown_state; never goes back
    std::atomic<std::uint32_t> watchers;         // wait() calls watching the queue's readiness
};

/// A dispute as published: the (last) message of the write in question, and how many
/// messages that write finishes (at most 2^count_bits - 1), in one word, so that a reader
/// never pairs one dispute's message with another's count.
struct dispute_word {
    static constexpr unsigned count_bits = 10;
    std::uint64_t seq = 0;
    std::uint64_t count = 0;
    [[nodiscard]] std::uint64_t pack() const noexcept { return (seq << count_bits) | count; }
    static dispute_word unpack(std::uint64_t w) noexcept {
        return {w >> count_bits, w & ((std::uint64_t{1} << count_bits) - 1)};
    }
};

/// Whether a queue was shut down (Python 3.13: Queue.shutdown): puts are refused from
/// `shut_draining` on; gets take what is left and then refuse, or refuse at once from
/// `shut_immediate`.
enum shutdown_state : std::uint32_t { shut_open = 0, shut_draining = 1, shut_immediate = 2 };

/// How a put or get ended. Converts to true when it was done, so that callers that only
/// tell done from not done can test it as a bool.
struct [[nodiscard]] op_status {
    enum kind : std::uint8_t { done, timed_out, shut_down } k;
    explicit operator bool() const noexcept { return k == done; }
};

/// How long a consumer in the middle of a message waits for its next chunk before it
/// checks whether the producer is still there (and how often join() checks the same).
inline constexpr std::chrono::milliseconds liveness_slice{100};
/// How long put_nowait (or put with a deadline already passed) waits for another
/// process's put in progress before it counts the queue as full.
inline constexpr std::chrono::milliseconds lock_grace{1};

template <class Channel>
class queue_core {
public:
    /// Makes the queue: the channel (kernel stream or ring), then the shared region.
    queue_core(std::int64_t maxsize, std::size_t buffer) : ch_(Channel::open(buffer)) {
        std::size_t head = align_up(sizeof(queue_control), 4096);
        region_ = shared_region::create(head + ch_.shared_bytes(), "multiproc-queue");
        ctl_ = region_.construct<queue_control>();
        ctl_->maxsize = maxsize;
        ctl_->wlock.init();
        ctl_->rlock.init();
        ch_.bind(static_cast<std::byte*>(region_.data()) + head, true);
        ready_.reset(sys::eventfd(0, EFD_NONBLOCK));
        if (!ready_) sys::fail("eventfd for a queue's readiness (wait)");
    }

    /// For a spawn or forkserver child: the shared region's descriptor, the readiness
    /// eventfd, then the channel.
    void cross_out(crossing_writer& w) const {
        w.put_fd(region_.fd());
        w.put_fd(ready_.get());
        ch_.cross_out(w);
    }
    /// In the child: the same queue, mapped from what cross_out sent.
    static queue_core cross_in(crossing_reader& r) {
        auto fd = r.take_fd();
        auto ready = r.take_fd();
        return queue_core(shared_region::attach(fd.release()), std::move(ready), Channel::cross_in(r));
    }

    // ---- readiness, for wait() ------------------------------------------------------------
    //
    // `ready_` is an eventfd that polls readable when a get may not have to wait. Producers
    // (and shutdown, and the repairs that complete a message) add to it after publishing,
    // but only while some wait() watches (`watchers`), so puts pay one fence and one load
    // otherwise. A watcher raises `watchers` before it looks at the counts, a producer
    // publishes before it looks at `watchers` (both sequentially consistent), so one of
    // them sees the other: no wake-up is lost. The eventfd is a hint: a watcher that polls
    // it readable resets it and asks ready() (and signals it again for the other watchers
    // when the answer is yes), so a stale count costs one look, never a false answer.

    /// The eventfd wait() polls.
    [[nodiscard]] int ready_fd() const noexcept { return ready_.get(); }
    /// Whether a get would not wait now: a message is in the queue, or it is shut down.
    [[nodiscard]] bool ready_now() const noexcept { return qsize() > 0 || shutdown_state() != shut_open; }
    /// A wait() starts (`+1`) or stops (`-1`) watching this queue.
    void watch(int delta) const noexcept {
        ctl_->watchers.fetch_add(static_cast<std::uint32_t>(delta), std::memory_order_seq_cst);
        // (The fence pairs with tell_watchers()'s: the counts read next cannot be older
        // than a producer's that read `watchers` before this raised it.)
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    /// For a watcher whose wait ran a liveness_slice without news: settles a put whose
    /// producer died after its message got in but before it was published (the lock's
    /// next holder would, and there may be none), which also wakes the watchers.
    void look_after_writer() { check_writer(); }
    /// A watcher found the eventfd readable: resets it, and keeps it readable for the other
    /// watchers when the queue is ready.
    void rearm() const noexcept {
        (void)sys::eventfd_drain(ready_.get());
        if (ready_now()) (void)sys::eventfd_signal(ready_.get());
    }

    [[nodiscard]] std::int64_t maxsize() const noexcept { return ctl_->maxsize; }
    [[nodiscard]] const Channel& channel() const noexcept { return ch_; }
    [[nodiscard]] int region_fd() const noexcept { return region_.fd(); }
    [[nodiscard]] std::size_t max_payload() const noexcept { return ch_.max_payload(); }

    // ---- counts -------------------------------------------------------------------------

    /// Messages put (completely in the channel) and not yet taken.
    [[nodiscard]] std::size_t qsize() const noexcept {
        std::uint64_t puts = effective_puts(), gets = ctl_->gets_pub.load(std::memory_order_acquire);
        return puts > gets ? static_cast<std::size_t>(puts - gets) : 0;
    }

    /// Marks one task done; `value_error` if every task put has been marked done.
    void task_done() {
        std::uint64_t d = ctl_->done.load(std::memory_order_relaxed);
        for (;;) {
            if (d >= placed()) detail::raise(value_error("task_done() called too many times"));
            if (ctl_->done.compare_exchange_weak(d, d + 1, std::memory_order_acq_rel)) break;
        }
        ctl_->tasks.notify_all();
    }

    /// Shuts the queue down for every process (Python 3.13: Queue.shutdown(immediate)): puts
    /// are refused from now on, and every wait in a put or get, here or in another process,
    /// is woken to look. With `immediate` the messages left are discarded (counted as done
    /// for join()) and gets refuse at once. Calling it again is harmless; `immediate` then
    /// discards what is left.
    void shutdown(bool immediate) {
        std::uint32_t want = immediate ? shut_immediate : shut_draining;
        std::uint32_t cur = ctl_->shut.load(std::memory_order_acquire);
        while (cur < want && !ctl_->shut.compare_exchange_weak(cur, want, std::memory_order_acq_rel)) {
        }
        ch_.interrupt();
        ctl_->slots.notify_all();
        tell_watchers();
        if (!immediate) return;
        std::uint64_t dropped = 0;
        while (take_next([](std::span<const std::byte>) {}, std::nullopt, true)) ++dropped;
        if (dropped != 0) {
            ctl_->done.fetch_add(dropped, std::memory_order_acq_rel);
            ctl_->tasks.notify_all();
        }
    }

    /// The queue's shutdown_state.
    [[nodiscard]] std::uint32_t shutdown_state() const noexcept { return ctl_->shut.load(std::memory_order_acquire); }

    /// Waits until every task put has been marked done. Checks every liveness_slice
    /// whether a producer died mid-put, so that its message is settled.
    void join() {
        for (;;) {
            if (ctl_->tasks.wait_until([&] { return joined(); }, steady::now() + liveness_slice)) return;
            check_writer();
        }
    }

    // ---- put ----------------------------------------------------------------------------

    /// Fills the span it is given with the payload bytes from the given offset on.
    using filler = function_ref<void(std::span<std::byte>, std::size_t)>;
    /// Takes a whole message's bytes (copy or decode them before returning).
    using taker = function_ref<void(std::span<const std::byte>)>;

    /// Puts one message of `n` bytes that `fill(span, 0)` writes in place (n <= max_payload()).
    /// timed_out if there was no room before `deadline`, shut_down once the queue is shut
    /// down (nothing is put then).
    op_status put_in_place(std::size_t n, filler fill, std::optional<steady::time_point> deadline) {
        return put_locked(n, fill, deadline);
    }

    /// Puts one message whose bytes are ready; cut into chunks if it is large. Ends as
    /// put_in_place.
    op_status put_bytes(std::span<const std::byte> bytes, std::optional<steady::time_point> deadline) {
        return put_locked(
            bytes.size(),
            [&](std::span<std::byte> dst, std::size_t off) {
                if (!dst.empty()) std::memcpy(dst.data(), bytes.data() + off, dst.size()); // (an empty span may be null)
            },
            deadline);
    }

    // ---- get ----------------------------------------------------------------------------

    /// Takes the next message and hands its bytes to `take`; timed_out if none arrives
    /// before `deadline`, shut_down if the queue is shut down and empty (at once after an
    /// immediate shutdown). A message `take` fails on is consumed all the same.
    op_status get(taker take, std::optional<steady::time_point> deadline) { return take_next(take, deadline, false); }

    // ---- batches ------------------------------------------------------------------------

    /// The messages of a put_many: `n` of them, message i of `size(i)` bytes (at most
    /// max_payload(): one chunk each), written in place by `fill(i, span)`.
    struct batch {
        std::size_t n;
        function_ref<std::size_t(std::size_t)> size;
        function_ref<void(std::size_t, std::span<std::byte>)> fill;
    };
    /// At most this many messages go in one write (one publish of a ring, one kernel write).
    static constexpr std::size_t batch_max = 256;
    static_assert(batch_max < (std::size_t{1} << dispute_word::count_bits));
    /// At most this many messages are taken under one hold of the reader lock (get_many):
    /// other consumers get their turn, and a call's vector stays bounded.
    static constexpr std::size_t run_max = 4096;

    /// Puts the messages of `b` in order under one hold of the writer lock, as few writes
    /// as the channel allows: each write (one store of a ring's tail, one kernel-atomic
    /// write of a stream) carries as many whole messages as fit, and is journaled as one,
    /// so that a producer killed at any instruction leaves each write's messages all in
    /// or all out. `put` says how many went in (a prefix of `b`): all of them when done;
    /// fewer when the deadline passed or the queue was shut down on the way.
    op_status put_many(batch b, std::optional<steady::time_point> deadline, std::size_t& put) {
        put = 0;
        if (b.n == 0) return {op_status::done};
        if (shutdown_state() != shut_open) return {op_status::shut_down};
        auto lk = lock_writer(deadline);
        if (!lk) return refused_or(op_status::timed_out);
        if (shutdown_state() != shut_open) return {op_status::shut_down};
        while (put < b.n)
            if (auto s = write_batch(b, put, deadline); !s) return s;
        return {op_status::done};
    }

    /// Takes up to `max` messages (max >= 1): waits for the first as get() does (to its
    /// deadline), then takes the ones that are there already, without waiting, and hands
    /// each one's bytes to `take` in order. Runs of one-chunk messages are taken under one
    /// hold of the reader lock and one journal commit, so a consumer killed inside the call
    /// loses at most the messages it had taken (none if killed before the commit). A message
    /// `take` fails on is taken all the same when it is the first (the failure is raised),
    /// else left for the next get. `got` says how many were handed to `take`.
    op_status get_many(taker take, std::size_t max, std::optional<steady::time_point> deadline, std::size_t& got) {
        got = 0;
        if (max == 0) return {op_status::done};
        {
            reader_lock lk(*this, deadline);
            if (!lk) return refused_or(op_status::timed_out);
            if (shutdown_state() == shut_immediate) return {op_status::shut_down};
            got = take_ready(take, max, false);
        }
        if (got != 0) return {op_status::done};
        // Nothing simple at the front: one message the general way (it waits, assembles a
        // large message, settles disputes, skips markers), then what followed it -- without
        // raising any more: that message is handed over already.
        if (auto s = take_next(take, deadline, false); !s) return s;
        got = 1;
        if (got < max) {
            auto st = ctl_->rlock.try_lock();
            reader_lock lk(*this, st);
            if (lk && shutdown_state() != shut_immediate) got += take_ready(take, max - got, true);
        }
        return {op_status::done};
    }

private:
    /// get, or with `discarding` the drain of an immediate shutdown: it takes messages in
    /// spite of the shutdown, and ends with timed_out when none is left.
    op_status take_next(taker take, std::optional<steady::time_point> deadline, bool discarding) {
        reader_lock lk(*this, deadline);
        if (!lk) return refused_or(op_status::timed_out);
        message_buffer assembly; // (local: take() runs after the lock is released)
        bool assembling = false;
        std::uint64_t aseq = 0;
        auto peek = [&] { return ch_.try_peek(ctl_->r.get(), [&](auto f) { commit_reader(f); }); };
        for (;;) {
            const std::uint32_t shut = shutdown_state();
            if (shut == shut_immediate && !discarding) return {op_status::shut_down};
            auto c = peek();
            if (!c) {
                if (!assembling && shut == shut_open) {
                    if (ch_.wait_data(ctl_->r.get(), deadline, ctl_->shut)) continue;
                    return {op_status::timed_out};
                }
                // Mid-message, or shut down, with nothing more here: a producer is at work
                // (it holds the lock), or it died or gave up. Once the lock was seen free, a
                // chunk can only be one written before (after a shutdown no put starts): if
                // none is here now, the message is dropped, or the shut-down queue is empty.
                if (shut != shut_open) {
                    // Producers were woken by the shutdown and are finishing or giving up.
                    if (!writer_idle(deadline)) return {op_status::timed_out};
                } else if (!writer_gone()) {
                    (void)ch_.wait_data(ctl_->r.get(), steady::now() + liveness_slice, ctl_->shut);
                    continue;
                }
                if (peek()) continue;
                if (!assembling) return {discarding ? op_status::timed_out : op_status::shut_down};
                assembling = false;
                assembly.clear();
                if (deadline && steady::now() >= *deadline) return {op_status::timed_out};
                continue;
            }
            const chunk_header& h = c->h;
            const reader_state& rs = ctl_->r.get();
            bool follows_last = follows(rs.last, h);
            if (h.magic == chunk_nop || !follows_last) { // a sequence marker, or bytes out of place
                consume(*c, false);
                continue;
            }
            if (h.index == 0) {
                assembling = false;
                assembly.clear();
                if (h.length == h.total) { // the whole message in one chunk: decode it in place
                    MULTIPROC_TRY {
                        take(std::span<const std::byte>(c->payload, h.length));
                        consume(*c, true);
                        return {op_status::done};
                    } MULTIPROC_CATCH_ALL {
                        consume(*c, true); // a message that cannot be decoded is still taken
                        MULTIPROC_RETHROW;
                    }
                }
                assembling = true;
                aseq = h.seq;
            } else if (!assembling || h.seq != aseq) { // the rest of a message whose consumer died
                consume(*c, advance(rs.last, h).final);
                continue;
            }
            // (Memory grows as chunks come: `follows` keeps them within the message's total.)
            assembly.append(c->payload, h.length, h.total);
            bool final = advance(rs.last, h).final;
            consume(*c, final);
            if (final) {
                lk.unlock();
                take(assembly.bytes());
                return {op_status::done};
            }
        }
    }

    // ---- locks and repair ---------------------------------------------------------------

    class writer_lock {
    public:
        explicit writer_lock(robust_mutex* m) : m_(m) {}
        explicit operator bool() const noexcept { return m_ != nullptr; }
        writer_lock(writer_lock&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
        ~writer_lock() {
            if (m_) m_->unlock();
        }

    private:
        robust_mutex* m_;
    };

    writer_lock lock_writer(std::optional<steady::time_point> deadline) {
        auto min_deadline = steady::now() + lock_grace;
        auto st = ctl_->wlock.lock(deadline ? std::max(*deadline, min_deadline) : deadline);
        if (st == lock_status::timed_out) return writer_lock(nullptr); // full: another process is putting
        writer_lock lk(&ctl_->wlock);
        if (st == lock_status::owner_died) repair_writer();
        return lk;
    }

    class reader_lock {
    public:
        reader_lock(queue_core& q, std::optional<steady::time_point> deadline)
            : reader_lock(q, q.ctl_->rlock.lock(deadline)) {}
        /// Takes over a lock acquired with status `st` (repairing if its owner died).
        reader_lock(queue_core& q, lock_status st) : q_(q) {
            if (st == lock_status::timed_out) return; // empty: another process is taking
            held_ = true;
            if (st == lock_status::owner_died) q.repair_reader();
        }
        ~reader_lock() { unlock(); }
        explicit operator bool() const noexcept { return held_; }
        void unlock() {
            if (held_) q_.ctl_->rlock.unlock();
            held_ = false;
        }

    private:
        queue_core& q_;
        bool held_ = false;
    };

    /// How many messages the write in flight finishes (0 counts as one).
    static std::uint64_t finished_by(const writer_state& ws) noexcept { return ws.count != 0 ? ws.count : 1; }

    /// A producer died holding the writer lock: settle the message it was writing.
    void repair_writer() {
        const writer_state ws = ctl_->w.get();
        bool open_dispute = false;
        if (ws.busy != 0) {
            fate f = ws.in_flight ? ch_.published_since(ws.mark) : fate::no;
            bool completed = ws.final_chunk && f == fate::yes;
            open_dispute = ws.final_chunk && f == fate::unknown;
            std::uint64_t busy = ws.busy, count = finished_by(ws);
            ctl_->w.update([&](writer_state& s) {
                if (completed) s.puts += count;
                if (open_dispute) {
                    s.disputed = busy;
                    s.disputed_count = count;
                }
                s.busy = 0;
                s.in_flight = 0;
                s.count = 0;
            });
        }
        publish_writer();
        if (open_dispute && !settle_dispute(ws.busy))
            // A marker chunk after the disputed message lets consumers settle it as soon as
            // they read past it. If there is no room now, the next message put does the same.
            write_nop();
    }

    /// Settles a disputed message now if no consumer is busy: it arrived if consumers have
    /// already finished it or the stream holds its last chunk, and died otherwise. False
    /// if that cannot be told now (a consumer holds the lock, or staging has no room).
    bool settle_dispute(std::uint64_t disputed) {
        auto st = ctl_->rlock.try_lock();
        if (st == lock_status::timed_out) return false;
        reader_lock lk(*this, st);
        const reader_state& rs = ctl_->r.get();
        std::optional<bool> arrived;
        if (rs.last.seq == disputed && rs.last.final)
            arrived = true;
        else
            arrived = ch_.holds_final_of(disputed, rs, [&](auto f) { commit_reader(f); });
        if (!arrived) return false;
        const std::uint64_t count = ctl_->w.get().disputed_count;
        commit_reader([&](reader_state& r) {
            if (*arrived) r.adjust += count;
            r.resolved = disputed;
        });
        return true;
    }

    void publish_writer() noexcept {
        const writer_state& ws = ctl_->w.get();
        ctl_->puts_pub.store(ws.puts, std::memory_order_release);
        ctl_->dispute_pub.store(dispute_word{ws.disputed, ws.disputed_count}.pack(), std::memory_order_release);
        tell_watchers();
    }

    /// After publishing a count that can make the queue ready: wakes the wait() calls
    /// watching it, if any (see ready_fd()).
    void tell_watchers() const noexcept {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (ctl_->watchers.load(std::memory_order_relaxed) != 0) (void)sys::eventfd_signal(ready_.get());
    }

    void write_nop() {
        std::uint64_t seq = ctl_->w.get().seq + 1;
        chunk_header h = make_chunk(chunk_nop, seq, 0, 0, 0);
        ctl_->w.update([&](writer_state& s) {
            s.seq = seq;
            s.busy = 0;
        });
        (void)ch_.try_put(h, [](std::span<std::byte>) {});
    }

    /// Whether no producer is writing now (repairing the lock if its holder died).
    bool writer_gone() {
        auto st = ctl_->wlock.try_lock();
        if (st == lock_status::timed_out) return false;
        writer_lock lk(&ctl_->wlock);
        if (st == lock_status::owner_died) repair_writer();
        return true;
    }

    void check_writer() { (void)writer_gone(); }

    /// Waits until no producer is writing, at most until `deadline` (false then).
    bool writer_idle(std::optional<steady::time_point> deadline) { return static_cast<bool>(lock_writer(deadline)); }

    /// shut_down once the queue is shut down, else `s`.
    op_status refused_or(op_status::kind s) const noexcept {
        return {shutdown_state() != shut_open ? op_status::shut_down : s};
    }

    /// Puts one message under the writer lock, unless the queue is shut down.
    op_status put_locked(std::size_t n, filler fill, std::optional<steady::time_point> deadline) {
        if (shutdown_state() != shut_open) return {op_status::shut_down};
        auto lk = lock_writer(deadline);
        if (!lk) return refused_or(op_status::timed_out);
        // Checked again under the lock: a shutdown's reader that finds the lock free
        // after this knows that no message can start any more.
        if (shutdown_state() != shut_open) return {op_status::shut_down};
        return write_message(n, fill, deadline);
    }

    /// A consumer died holding the reader lock: its state is the last one it committed
    /// (the channel may find that a read it made into shared memory did happen).
    void repair_reader() {
        ctl_->r.update([&](reader_state& rs) { ch_.recover_reader(rs); });
        const reader_state& rs = ctl_->r.get();
        ch_.released(rs);
        ctl_->gets_pub.store(rs.gets, std::memory_order_release);
        ctl_->adjust_pub.store(rs.adjust, std::memory_order_release);
        ctl_->resolved_pub.store(rs.resolved, std::memory_order_release);
        ctl_->slots.notify_all();
        ctl_->tasks.notify_all();
        tell_watchers();
    }

    template <class F>
    void commit_reader(F&& f) {
        const reader_state before = ctl_->r.get();
        ctl_->r.update(std::forward<F>(f));
        const reader_state& rs = ctl_->r.get();
        if (rs.pos != before.pos) ch_.released(rs);
        if (rs.gets != before.gets) {
            ctl_->gets_pub.store(rs.gets, std::memory_order_release);
            if (ctl_->maxsize > 0) ctl_->slots.notify_all();
        }
        if (rs.adjust != before.adjust) {
            ctl_->adjust_pub.store(rs.adjust, std::memory_order_release);
            tell_watchers();
        }
        if (rs.resolved != before.resolved) {
            ctl_->resolved_pub.store(rs.resolved, std::memory_order_release);
            ctl_->tasks.notify_all();
            if (ctl_->maxsize > 0) ctl_->slots.notify_all(); // (a run that did not arrive frees its slots)
        }
    }

    /// Consumes chunk `c`; `finishes` says whether it ends a message (counted as got).
    void consume(const chunk_ref& c, bool finishes) {
        const dispute_word d = published_dispute(); // (no structured binding: clang 14 cannot capture one)
        const std::uint64_t disputed = d.seq, count = d.count;
        commit_reader([&](reader_state& rs) {
            // The first chunk after a disputed message settles it: the message (a batch's
            // last, and with it the batch: one write) arrived if and only if it was the
            // last one finished before this chunk.
            if (disputed > rs.resolved && c.h.seq > disputed) {
                if (rs.last.seq == disputed && rs.last.final) rs.adjust += count;
                rs.resolved = disputed;
            }
            rs.last = advance(rs.last, c.h);
            rs.pos = c.next;
            if (finishes) ++rs.gets;
        });
        if (finishes && ctl_->maxsize > 0) ctl_->slots.notify_all();
    }

    // ---- writing ------------------------------------------------------------------------

    [[nodiscard]] std::uint64_t effective_puts() const noexcept {
        return ctl_->puts_pub.load(std::memory_order_acquire) + ctl_->adjust_pub.load(std::memory_order_acquire);
    }
    [[nodiscard]] dispute_word published_dispute() const noexcept {
        return dispute_word::unpack(ctl_->dispute_pub.load(std::memory_order_acquire));
    }
    [[nodiscard]] bool dispute_open() const noexcept {
        return published_dispute().seq > ctl_->resolved_pub.load(std::memory_order_acquire);
    }
    /// Tasks placed in the queue so far: a consumer may take a message a moment before its
    /// producer counts it, so the larger of the two counts is the one to trust.
    [[nodiscard]] std::uint64_t placed() const noexcept {
        return std::max(effective_puts(), ctl_->gets_pub.load(std::memory_order_acquire));
    }
    [[nodiscard]] bool joined() const noexcept {
        return !dispute_open() && ctl_->done.load(std::memory_order_acquire) >= placed();
    }
    [[nodiscard]] std::uint64_t slots_used() const noexcept {
        // The dispute first, the counts after: a consumer settling it raises `adjust` before
        // `resolved`, so this order can count a settled run twice (room found a moment
        // later), never not at all (room that is not there).
        const dispute_word d = published_dispute();
        const std::uint64_t held = d.seq > ctl_->resolved_pub.load(std::memory_order_acquire) ? d.count : 0;
        std::uint64_t used = effective_puts() + held;
        std::uint64_t gets = ctl_->gets_pub.load(std::memory_order_acquire);
        return used > gets ? used - gets : 0;
    }

    /// Leaves nothing in flight when a write gives up (a deadline, a shutdown, a serializer's
    /// failure) unless `ctl` was cleared: consumers drop what part of it they see.
    struct abandon {
        queue_control* ctl;
        ~abandon() {
            if (ctl)
                ctl->w.update([](writer_state& s) {
                    s.busy = 0;
                    s.in_flight = 0;
                    s.count = 0;
                });
        }
    };

    /// A write that finished `k` messages is in: counted and published, watchers told.
    void finish_write(std::uint64_t k) {
        ctl_->w.update([&](writer_state& s) {
            s.puts += k;
            s.busy = 0;
            s.in_flight = 0;
            s.count = 0;
        });
        ctl_->puts_pub.store(ctl_->w.get().puts, std::memory_order_release);
        tell_watchers();
    }

    /// Under the writer lock: waits until a bounded queue has room for a message; done, or
    /// timed_out, or shut_down.
    op_status wait_slot(std::optional<steady::time_point> deadline) {
        if (ctl_->maxsize > 0 && !ctl_->slots.wait_until(
                                     [&] {
                                         return slots_used() < static_cast<std::uint64_t>(ctl_->maxsize) ||
                                                shutdown_state() != shut_open;
                                     },
                                     deadline))
            return {op_status::timed_out};
        if (shutdown_state() != shut_open) return {op_status::shut_down};
        return {op_status::done};
    }

    /// Writes one message under the writer lock. The deadline applies to every wait, and a
    /// shutdown ends each; a message abandoned half-way is dropped by consumers (it was
    /// never counted as put).
    op_status write_message(std::size_t n, filler fill, std::optional<steady::time_point> deadline) {
        if (auto s = wait_slot(deadline); !s) return s;
        std::uint64_t seq = ctl_->w.get().seq + 1;
        ctl_->w.update([&](writer_state& s) {
            s.seq = seq;
            s.busy = seq;
        });
        abandon guard{ctl_};
        const std::size_t maxp = ch_.max_payload();
        std::size_t off = 0;
        std::uint32_t index = 0;
        do {
            std::size_t len = std::min(n - off, maxp);
            bool final = off + len == n;
            chunk_header h = make_chunk(chunk_data, seq, index, static_cast<std::uint32_t>(len), n);
            std::uint64_t mark = ch_.mark();
            ctl_->w.update([&](writer_state& s) {
                s.mark = mark;
                s.in_flight = 1;
                s.final_chunk = final;
                s.count = 1;
            });
            auto slice = [&](std::span<std::byte> dst) { fill(dst, off); };
            while (!ch_.try_put(h, slice)) { // (the guard abandons the message on each return)
                if (shutdown_state() != shut_open) return {op_status::shut_down};
                if (!ch_.wait_room(h, deadline, ctl_->shut)) return refused_or(op_status::timed_out);
            }
            off += len;
            ++index;
            if (!final)
                ctl_->w.update([&](writer_state& s) { s.in_flight = 0; });
        } while (off < n);
        guard.ctl = nullptr;
        finish_write(1);
        return {op_status::done};
    }

    /// Under the reader lock: takes up to `max` (at most run_max) one-chunk messages that are
    /// in the channel now, committing them once at the end (and whenever the channel commits
    /// a change to staging of its own, which then carries the messages taken so far). Stops
    /// at anything else (a larger message, a marker, bytes out of place, a chunk past an open
    /// dispute), which the general path handles. Returns how many were handed to `take`. A
    /// failure (a message that does not decode, a corrupt channel) is raised only if nothing
    /// was handed over in this call yet (`handed`: something was, before this run); else the
    /// run ends before it, and the next call meets it.
    std::size_t take_ready(taker take, std::size_t max, bool handed) {
        reader_state cur = ctl_->r.get();
        if (published_dispute().seq > cur.resolved) return 0;
        max = std::min(max, run_max);
        std::size_t got = 0;
        bool pending = false;
        auto commit_all = [&] {
            commit_reader([&](reader_state& s) { s = cur; });
            pending = false;
        };
        // (A stream channel reading more into staging commits that; the messages taken so
        // far go with it.)
        auto commit = [&](auto f) {
            f(cur);
            commit_all();
        };
        struct flush { // commits what was taken when the loop ends, by any path
            bool& pending;
            decltype(commit_all)& commit;
            ~flush() {
                if (pending) commit();
            }
        } guard{pending, commit_all};
        while (got < max) {
            std::optional<chunk_ref> c;
            MULTIPROC_TRY {
                c = ch_.try_peek(cur, commit);
            } MULTIPROC_CATCH_ALL {
                if (got != 0 || handed) break; // met again by the next call, which raises it
                MULTIPROC_RETHROW;
            }
            if (!c) break;
            const chunk_header h = c->h;
            if (h.magic != chunk_data || h.index != 0 || h.length != h.total || !follows(cur.last, h)) break;
            // A dispute opened since (a producer killed, repaired by another one) is settled by
            // the first chunk after its message: the general path's consume() does that.
            if (const dispute_word d = published_dispute(); d.seq > cur.resolved && h.seq > d.seq) break;
            auto taken = [&] { // (to be committed)
                cur.last = advance(cur.last, h);
                cur.pos = c->next;
                ++cur.gets;
                pending = true;
            };
            MULTIPROC_TRY {
                take(std::span<const std::byte>(c->payload, h.length));
            } MULTIPROC_CATCH_ALL {
                if (got != 0 || handed) break; // left for the next call, which raises it
                taken(); // a message that cannot be decoded is still taken
                MULTIPROC_RETHROW;
            }
            taken();
            ++got;
        }
        return got;
    }

    /// Under the writer lock: puts the next messages of `b` from `put` on in one write of the
    /// channel (after waiting for room and, in a bounded queue, for slots), advancing `put`.
    op_status write_batch(const batch& b, std::size_t& put, std::optional<steady::time_point> deadline) {
        std::size_t want = std::min(b.n - put, batch_max);
        for (;;) { // (slots_used() may be seen higher than wait_slot saw it: a settle in flight)
            if (auto s = wait_slot(deadline); !s) return s;
            if (ctl_->maxsize <= 0) break;
            const std::uint64_t used = slots_used(), cap = static_cast<std::uint64_t>(ctl_->maxsize);
            if (used < cap) {
                want = std::min<std::size_t>(want, cap - used);
                break;
            }
        }
        std::uint32_t lens[batch_max];
        for (std::size_t i = 0; i < want; ++i) {
            const std::size_t n = b.size(put + i);
            if (n > ch_.max_payload())
                detail::raise(error("multiproc: put_many was given a message of " + std::to_string(n) +
                                    " bytes for one chunk, which holds " + std::to_string(ch_.max_payload())));
            lens[i] = static_cast<std::uint32_t>(n);
        }
        std::size_t k;
        while ((k = ch_.batch_fit(std::span<const std::uint32_t>(lens, want))) == 0) {
            if (shutdown_state() != shut_open) return {op_status::shut_down};
            if (!ch_.wait_room(lens[0], deadline, ctl_->shut)) return refused_or(op_status::timed_out);
        }
        const std::span<const std::uint32_t> these(lens, k);
        const std::uint64_t first = ctl_->w.get().seq + 1, last = first + k - 1;
        const std::uint64_t mark = ch_.mark();
        ctl_->w.update([&](writer_state& s) {
            s.seq = last;
            s.busy = last;
            s.mark = mark;
            s.in_flight = 1;
            s.final_chunk = 1;
            s.count = static_cast<std::uint32_t>(k);
        });
        abandon guard{ctl_};
        auto fill = [&](std::size_t i, std::span<std::byte> dst) { b.fill(put + i, dst); };
        std::size_t bytes = 0; // (what a ring waits to have room for: the whole run)
        for (std::uint32_t n : these) bytes += align_up(sizeof(chunk_header) + n);
        for (bool fresh = true; !ch_.try_put_batch(first, these, fill, fresh); fresh = false) {
            if (shutdown_state() != shut_open) return {op_status::shut_down};
            if (!ch_.wait_room(bytes - sizeof(chunk_header), deadline, ctl_->shut))
                return refused_or(op_status::timed_out);
        }
        guard.ctl = nullptr;
        finish_write(k);
        put += k;
        return {op_status::done};
    }

    queue_core(shared_region region, sys::unique_fd ready, Channel ch)
        : ch_(std::move(ch)), region_(std::move(region)), ready_(std::move(ready)) {
        std::size_t head = align_up(sizeof(queue_control), 4096);
        if (region_.size() < head + ch_.shared_bytes())
            detail::raise(serialization_error("multiproc: a queue sent to the child is smaller than its channel needs"));
        ctl_ = std::launder(static_cast<queue_control*>(region_.data()));
        ch_.bind(static_cast<std::byte*>(region_.data()) + head, false);
    }

    Channel ch_;
    shared_region region_;
    queue_control* ctl_ = nullptr;
    sys::unique_fd ready_; // readable when a get may not wait, while watched (ready_fd())
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
