/// @file queue.hpp
/// Queues between processes (Python: multiprocessing.Queue, SimpleQueue, JoinableQueue).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/codec/crossing.hpp>
#include <multiproc/detail/net/resource_sharer.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/ring/ring_channel.hpp>
#include <multiproc/detail/transport/stream/stream_channel.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/serialize.hpp>

#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {
struct queue_reader_access;
}

/// What `wait()` (connection.hpp) watches for a queue: `q.reader()` (Python: the queue's
/// `_reader`, given to multiprocessing.connection.wait). It is ready when a get would not
/// wait now: a message is in the queue, or the queue is shut down (a get raises at once),
/// or this process closed it (a get raises value_error at once). As in Python, with
/// several consumers another one may take the message first. Copyable and cheap; it holds
/// the queue's state in this process as a copy of the queue does. Any number of threads and
/// processes may wait on the same queue.
class queue_reader {
public:
    /// The descriptor `wait` polls: an eventfd, readable when the queue may have become
    /// ready while some wait() watched it (-1 once this process closed the queue).
    [[nodiscard]] int fileno() const noexcept { return ops_->fd(s_.get()); }
    /// Whether a get would not wait now (see above).
    [[nodiscard]] bool ready() const noexcept { return ops_->ready(s_.get()); }
    /// Readers of the same queue (copies of one queue in this process) are equal.
    friend bool operator==(const queue_reader& a, const queue_reader& b) noexcept { return a.s_ == b.s_; }

private:
    friend struct detail::queue_reader_access;
    struct ops_t {
        int (*fd)(const void*) noexcept;
        bool (*ready)(const void*) noexcept;
        void (*watch)(const void*, int) noexcept;
        void (*rearm)(const void*) noexcept;
        void (*look)(const void*) noexcept;
    };
    queue_reader(std::shared_ptr<const void> s, const ops_t* ops) noexcept : s_(std::move(s)), ops_(ops) {}
    std::shared_ptr<const void> s_; // the queue's std::optional<queue_core<...>>
    const ops_t* ops_;
};

namespace detail {

/// Makes queue_readers, and gives wait() the watch/rearm half of their protocol
/// (queue_core's "readiness" section).
struct queue_reader_access {
    template <class Core>
    static queue_reader make(std::shared_ptr<const std::optional<Core>> s) noexcept {
        static constexpr queue_reader::ops_t ops{
            [](const void* p) noexcept { auto c = live<Core>(p); return c ? c->ready_fd() : -1; },
            [](const void* p) noexcept { auto c = live<Core>(p); return c ? c->ready_now() : true; },
            [](const void* p, int d) noexcept {
                if (auto c = live<Core>(p)) c->watch(d);
            },
            [](const void* p) noexcept {
                if (auto c = live<Core>(p)) c->rearm();
            },
            [](const void* p) noexcept {
                if (auto c = live<Core>(p)) {
                    MULTIPROC_TRY {
                        const_cast<Core*>(c)->look_after_writer();
                    } MULTIPROC_CATCH_ALL {
                        // (a repair that fails now is tried again by the next put or look)
                    }
                }
            },
        };
        return queue_reader(std::move(s), &ops);
    }
    static void watch(const queue_reader& r, int delta) noexcept { r.ops_->watch(r.s_.get(), delta); }
    static void rearm(const queue_reader& r) noexcept { r.ops_->rearm(r.s_.get()); }
    static void look(const queue_reader& r) noexcept { r.ops_->look(r.s_.get()); }

private:
    template <class Core>
    static const Core* live(const void* p) noexcept {
        const auto& o = *static_cast<const std::optional<Core>*>(p);
        return o ? &*o : nullptr;
    }
};


/// What every queue shares: the engine, the policies, put/get with deadlines, close.
template <class T, class... Ps>
class queue_handle {
public:
    using value_type = T;
    using policies = policy_set<Ps...>;
    using serializer = typename policies::serialize;
    using transport = typename policies::transport;
    static_assert(can_carry<T, serializer>());
    /// Whether messages are objects with descriptors (connections, queues, locks, shared
    /// memory, or vectors and tuples holding them), which cross through the sender's
    /// resource sharer (detail/net/resource_sharer.hpp).
    static constexpr bool shares_descriptors = crosses_with_descriptors<T, serializer>;

    /// Whether no message is in the queue (Python: Queue.empty()). Once this process closed
    /// the queue: `os_error` EBADF "handle is closed", as Python's (whose `empty()` asks the
    /// queue's pipe, closed by then; it still answers for a queue never put on here, whose
    /// close() closes nothing).
    [[nodiscard]] bool empty() const { return core_or(closed_os_error).qsize() == 0; }

    /// Releases this process's hold on the queue (its descriptors and mapping), for every
    /// copy of it here; put and get then raise `value_error` (a simple_queue: `os_error`
    /// EBADF, as Python's). Other processes, and messages already put, are unaffected
    /// (Python: Queue.close()). Closing twice is harmless; do not close a queue while another
    /// thread of this process uses it (a `wait()` on it counts as using it).
    void close() noexcept {
        if (s_) s_->reset();
    }

    /// What `wait()` watches for this queue (Python: Queue._reader): see queue_reader.
    /// `value_error` if this process closed the queue.
    [[nodiscard]] queue_reader reader() const {
        (void)core();
        return queue_reader_access::make<core_t>(s_);
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same queue (its descriptors travel with SCM_RIGHTS); `value_error`
    /// if this process closed it.
    void cross_out(crossing_writer& w) const { core().cross_out(w); }

protected:
    using core_t = queue_core<typename transport::queue_channel>;

    /// `simple`: a simple_queue, whose uses once closed fail as Python's SimpleQueue's.
    queue_handle(std::ptrdiff_t maxsize, std::size_t buffer, bool simple)
        : s_(std::make_shared<std::optional<core_t>>()), simple_(simple) {
        s_->emplace(maxsize > 0 ? maxsize : 0, buffer);
    }
    /// In a child: the queue cross_out sent.
    queue_handle(crossing_reader& r, bool simple)
        : s_(std::make_shared<std::optional<core_t>>(core_t::cross_in(r))), simple_(simple) {}

    /// How a use of a closed queue fails: as Python's Queue (ValueError "Queue is closed")
    /// or as its SimpleQueue, and Queue.empty(), which reach a closed pipe end (OSError).
    enum closed_as : bool { closed_value_error, closed_os_error };

    core_t& core() const { return core_or(simple_ ? closed_os_error : closed_value_error); }
    core_t& core_or(closed_as how) const {
        if (!*s_) {
            if (how == closed_os_error) detail::raise(os_error("multiproc: handle is closed", EBADF));
            detail::raise(value_error("Queue is closed"));
        }
        return **s_;
    }

    /// Puts `v`: done, timed_out if there was no room before `deadline`, or shut_down.
    op_status try_put_until(const T& v, std::optional<steady::time_point> deadline) {
        core_t& q = core();
        if constexpr (shares_descriptors) {
            crossing_writer w;
            cross_save<serializer>(w, v);
            shared_message m(w); // withdrawn unless the message is in the queue
            const op_status s = q.put_bytes(m.bytes(), deadline);
            if (s) m.sent();
            return s;
        } else
        // Encoded here, before any lock: a value that cannot be sent fails in the caller.
        if (auto n = detail::encoded_size<serializer>(v); n && *n <= q.max_payload()) {
            return q.put_in_place(
                *n,
                [&](std::span<std::byte> dst, std::size_t) {
                    span_writer w(dst);
                    serializer::encode(v, w);
                },
                deadline);
        } else {
            return q.put_bytes(encode_to_scratch<serializer>(v), deadline);
        }
    }

    /// Puts `values` in order: runs of values that the serializer can size and that fit one
    /// chunk go in batches (queue_core::put_many: many per lock hold and per write), any
    /// other value by itself. `put` counts those that went in (a prefix of `values`).
    op_status try_put_many_until(std::span<const T> values, std::optional<steady::time_point> deadline,
                                 std::size_t& put) {
        put = 0;
        core_t& q = core();
        if constexpr (!shares_descriptors) {
            std::vector<std::uint32_t> sizes; // of the run being put
            while (put < values.size()) {
                sizes.clear();
                const std::size_t run = std::min<std::size_t>(values.size() - put, 4096);
                while (sizes.size() < run) {
                    auto n = detail::encoded_size<serializer>(values[put + sizes.size()]);
                    if (!n || *n > q.max_payload()) break;
                    sizes.push_back(static_cast<std::uint32_t>(*n));
                }
                if (sizes.empty()) { // a value that is large or of unknown size
                    if (auto s = try_put_until(values[put], deadline); !s) return s;
                    ++put;
                    continue;
                }
                const T* base = values.data() + put;
                auto size = [&](std::size_t i) -> std::size_t { return sizes[i]; };
                auto fill = [&](std::size_t i, std::span<std::byte> dst) {
                    span_writer w(dst);
                    serializer::encode(base[i], w);
                };
                std::size_t done = 0;
                const op_status s = q.put_many({sizes.size(), size, fill}, deadline, done);
                put += done;
                if (!s) return s;
            }
        } else {
            for (; put < values.size(); ++put)
                if (auto s = try_put_until(values[put], deadline); !s) return s;
        }
        return {op_status::done};
    }

    /// put_many's count: all of `values` unless the deadline passed or the queue was shut
    /// down on the way; the error (queue_full, queue_shut_down) if none went in. Reported as
    /// a result (with exceptions, any other error of the put is caught into it too);
    /// put_many raises it (`.value()`).
    result<std::size_t> try_put_many_at(std::span<const T> values, std::optional<steady::time_point> deadline) {
        return capture([&]() -> result<std::size_t> {
            std::size_t put = 0;
            if (auto s = try_put_many_until(values, deadline, put); !s && put == 0) return failure(s, true);
            return put;
        });
    }

    /// Up to `max` messages: the first waited for until `deadline` (else queue_empty, or
    /// queue_shut_down), then those already there. Reported as a result; get_many raises it.
    result<std::vector<T>> try_get_many_at(std::size_t max, std::optional<steady::time_point> deadline) {
        return capture([&]() -> result<std::vector<T>> {
            std::vector<T> out;
            if (max == 0) return out;
            op_status s{op_status::done};
            if constexpr (shares_descriptors) {
                std::string raw;
                if (s = get_raw(raw, deadline); s) out.push_back(load_shared(raw));
            } else {
                out.reserve(std::min<std::size_t>(max, 1024));
                auto take = [&](std::span<const std::byte> b) {
                    span_reader r(b);
                    out.push_back(serializer::template decode<T>(r));
                };
                std::size_t got = 0;
                s = core().get_many(take, max, deadline, got);
            }
            if (!s) return failure(s, false);
            return out;
        });
    }

    /// The error of a put (`full`) or get (`!full`) that ended with `s`, not done.
    static error_ptr failure(op_status s, bool full) {
        if (s.k == op_status::shut_down) return queue_shut_down("multiproc: queue is shut down");
        if (full) return queue_full("multiproc: queue is full");
        return queue_empty("multiproc: queue is empty");
    }

    void put_until(const T& v, std::optional<steady::time_point> deadline) {
        if (auto s = try_put_until(v, deadline); !s) failure(s, true).raise();
    }

    T get_until(std::optional<steady::time_point> deadline) {
        if constexpr (shares_descriptors) {
            std::string raw;
            if (auto s = get_raw(raw, deadline); !s) failure(s, false).raise();
            return load_shared(raw);
        } else
        return decode_from<serializer, T>([&](auto take) {
            if (auto s = core().get(take, deadline); !s) failure(s, false).raise();
        });
    }

    /// The next message, or queue_empty if none came before `deadline` (queue_shut_down if
    /// the queue is shut down): reported as a result in every build. With exceptions, any
    /// other error of the get is caught into it too.
    result<T> try_get_until(std::optional<steady::time_point> deadline) {
        return capture([&]() -> result<T> {
            if constexpr (shares_descriptors) {
                std::string raw;
                if (auto s = get_raw(raw, deadline); !s) return failure(s, false);
                return load_shared(raw);
            } else {
                std::optional<T> out;
                if (auto s = core().get(decode_into<serializer>(out), deadline); !s) return failure(s, false);
                return std::move(*out);
            }
        });
    }

    /// A message of an object with descriptors, copied out of the queue: its descriptors
    /// are taken from the sender after the queue's lock is released.
    op_status get_raw(std::string& raw, std::optional<steady::time_point> deadline) {
        return core().get([&](std::span<const std::byte> b) { raw.assign(reinterpret_cast<const char*>(b.data()), b.size()); },
                          deadline);
    }
    /// The object a message of get_raw holds, with its descriptors taken from the sender.
    static T load_shared(const std::string& raw) {
        crossing_reader r = claim_message(raw);
        return cross_load<serializer, T>(r);
    }

    /// Puts `v`, or queue_full if there was no room before `deadline` (queue_shut_down if
    /// the queue is shut down), as try_get_until.
    result<void> try_put_at(const T& v, std::optional<steady::time_point> deadline) {
        return capture([&]() -> result<void> {
            if (auto s = try_put_until(v, deadline); !s) return failure(s, true);
            return {};
        });
    }

    template <class Rep, class Period>
    static std::optional<steady::time_point> after(std::chrono::duration<Rep, Period> timeout) {
        return deadline_after(std::optional<std::chrono::duration<Rep, Period>>(timeout));
    }

    std::shared_ptr<std::optional<core_t>> s_; // shared by the copies in this process
    bool simple_;
};

} // namespace detail

/// A FIFO queue between any number of producer and consumer processes (Python:
/// multiprocessing.Queue). Copies, and copies in children made by fork, are the same queue.
/// `put` serializes the value in the caller and returns once the bytes are in the transport,
/// so nothing put is lost when the producer exits; there is no feeder thread. A consumer
/// killed inside `get` loses at most the message it was taking; the others go on.
template <class T, class... Ps>
class basic_queue : public detail::queue_handle<T, Ps...> {
    using base = detail::queue_handle<T, Ps...>;

public:
    /// A queue holding at most `maxsize` messages (<= 0: no limit, as in Python). `buffer`
    /// sizes the transport's buffer in bytes (0: its default). An unbounded queue's put
    /// still waits while that buffer is full.
    explicit basic_queue(std::ptrdiff_t maxsize = 0, std::size_t buffer = 0) : base(maxsize, buffer, false) {}

    /// Puts `v`, waiting for room as long as it takes (Python: Queue.put(obj)).
    void put(const T& v) { this->put_until(v, std::nullopt); }
    /// Puts `v`, waiting at most `timeout` for room; `queue_full` after that
    /// (Python: Queue.put(obj, timeout=t)).
    template <class Rep, class Period>
    void put(const T& v, std::chrono::duration<Rep, Period> timeout) {
        this->put_until(v, base::after(timeout));
    }
    /// Puts `v` only if there is room now, else `queue_full` (Python: Queue.put_nowait()).
    void put_nowait(const T& v) { this->put_until(v, detail::steady::now()); }

    /// Puts every value of `values` (a vector, an array, a span of T) in order, waiting for
    /// room as put() does, and returns how many it put: all of them, unless the queue was
    /// shut down on the way (`queue_shut_down` if before the first). No Python counterpart:
    /// it is put() in a loop, only much faster for small messages, because a run of them
    /// goes in under one hold of the producers' lock, as few writes as the transport allows
    /// (one kernel write of up to 4 KiB on a pipe or socket, one publish of the ring on shm)
    /// and one journal commit per write. A producer killed inside it leaves each write's
    /// messages all in or all out (docs/design/queues.md); other producers wait while it
    /// holds the lock.
    std::size_t put_many(std::span<const T> values) { return this->try_put_many_at(values, std::nullopt).value(); }
    /// As put_many(values), waiting at most `timeout` in all: returns how many went in by
    /// then, or raises `queue_full` if none did.
    template <class Rep, class Period>
    std::size_t put_many(std::span<const T> values, std::chrono::duration<Rep, Period> timeout) {
        return this->try_put_many_at(values, base::after(timeout)).value();
    }

    /// Takes up to `max` messages: waits for the first as get() does, then takes those that
    /// are in the queue already, without waiting for more. No Python counterpart: get() in a
    /// loop, only much faster, as runs of small messages are taken under one hold of the
    /// consumers' lock and one journal commit. A consumer killed inside it loses at most the
    /// messages it had taken (docs/design/queues.md). `max` 0: an empty vector at once.
    std::vector<T> get_many(std::size_t max) { return this->try_get_many_at(max, std::nullopt).value(); }
    /// As get_many(max), waiting at most `timeout` for the first; `queue_empty` after that.
    template <class Rep, class Period>
    std::vector<T> get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
        return this->try_get_many_at(max, base::after(timeout)).value();
    }
    /// As get_many(max), only if a message is there now, else `queue_empty`.
    std::vector<T> get_many_nowait(std::size_t max) { return this->try_get_many_at(max, detail::steady::now()).value(); }

    /// As put_many and get_many, reporting queue_full, queue_empty and queue_shut_down (and,
    /// with exceptions, any other error) in the result: the forms for builds without
    /// exceptions.
    result<std::size_t> try_put_many(std::span<const T> values) { return this->try_put_many_at(values, std::nullopt); }
    template <class Rep, class Period>
    result<std::size_t> try_put_many(std::span<const T> values, std::chrono::duration<Rep, Period> timeout) {
        return this->try_put_many_at(values, base::after(timeout));
    }
    result<std::vector<T>> try_get_many(std::size_t max) { return this->try_get_many_at(max, std::nullopt); }
    template <class Rep, class Period>
    result<std::vector<T>> try_get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
        return this->try_get_many_at(max, base::after(timeout));
    }
    result<std::vector<T>> try_get_many_nowait(std::size_t max) {
        return this->try_get_many_at(max, detail::steady::now());
    }

    /// Takes the next message, waiting as long as it takes (Python: Queue.get()).
    T get() { return this->get_until(std::nullopt); }
    /// Takes the next message, waiting at most `timeout` for one to start arriving;
    /// `queue_empty` after that (Python: Queue.get(timeout=t)).
    template <class Rep, class Period>
    T get(std::chrono::duration<Rep, Period> timeout) {
        return this->get_until(base::after(timeout));
    }
    /// Takes a message only if one is there now, else `queue_empty` (Python: Queue.get_nowait()).
    T get_nowait() { return this->get_until(detail::steady::now()); }

    /// As `get()`, `get(timeout)` and `get_nowait()`, but reporting `queue_empty` (and, with
    /// exceptions, any other error) in the result instead of raising it: the form for
    /// builds without exceptions. `if (auto r = q.try_get(1s)) use(*r);`
    result<T> try_get() { return this->try_get_until(std::nullopt); }
    template <class Rep, class Period>
    result<T> try_get(std::chrono::duration<Rep, Period> timeout) {
        return this->try_get_until(base::after(timeout));
    }
    result<T> try_get_nowait() { return this->try_get_until(detail::steady::now()); }

    /// As `put(v)`, `put(v, timeout)` and `put_nowait(v)`, reporting `queue_full` (and, with
    /// exceptions, any other error) in the result.
    result<void> try_put(const T& v) { return this->try_put_at(v, std::nullopt); }
    template <class Rep, class Period>
    result<void> try_put(const T& v, std::chrono::duration<Rep, Period> timeout) {
        return this->try_put_at(v, base::after(timeout));
    }
    result<void> try_put_nowait(const T& v) { return this->try_put_at(v, detail::steady::now()); }

    /// Shuts the queue down, for every process that uses it (Python 3.13: Queue.shutdown()):
    /// every put from now on raises `queue_shut_down`, and so does a put waiting for room,
    /// here or in another process. Gets take the messages left, then raise
    /// `queue_shut_down` instead of waiting (a get already waiting is woken to raise it).
    /// With `immediate` the messages left are discarded (and count as done for a joinable
    /// queue's join()), and every get raises at once. The try_ forms report the same error
    /// in their result. Calling it again is harmless; an immediate call after a plain one
    /// discards what the consumers have not taken yet.
    void shutdown(bool immediate = false) { this->core().shutdown(immediate); }

    /// Whether the queue was shut down, by any process (Python: Queue.is_shutdown, an
    /// attribute of queue.Queue in 3.13).
    [[nodiscard]] bool is_shutdown() const { return this->core().shutdown_state() != detail::shut_open; }

    /// Messages in the queue: put completely and not yet taken (Python: Queue.qsize()).
    /// Exact when no process is killed mid-put or mid-get (docs/design/queues.md says what
    /// a kill can do to it). `value_error` once this process closed the queue, as its other
    /// uses: CPython's still answers, from a semaphore its close() leaves open, where this
    /// close() lets go of the shared memory the count is kept in.
    [[nodiscard]] std::size_t qsize() const { return this->core().qsize(); }

    /// Whether the queue holds maxsize messages; always false without a limit (Python:
    /// Queue.full()). `value_error` once this process closed the queue (see qsize()).
    [[nodiscard]] bool full() const {
        auto m = this->core().maxsize();
        return m > 0 && qsize() >= static_cast<std::size_t>(m);
    }

    /// In a start::spawn or start::forkserver child: the queue cross_out sent.
    static basic_queue cross_in(crossing_reader& r) { return basic_queue(r); }

protected:
    explicit basic_queue(crossing_reader& r) : base(r, false) {}
};

/// A queue that also counts unfinished tasks (Python: multiprocessing.JoinableQueue): each
/// `put` adds a task, `task_done` finishes one, `join` waits until none is left.
template <class T, class... Ps>
class basic_joinable_queue : public basic_queue<T, Ps...> {
public:
    using basic_queue<T, Ps...>::basic_queue;

    /// Marks a task taken with `get` as done; `value_error("task_done() called too many
    /// times")` when there are more calls than messages put (Python: JoinableQueue.task_done()).
    void task_done() { this->core().task_done(); }
    /// Waits until every message put has been marked done (Python: JoinableQueue.join()).
    /// A consumer killed after taking a task and before task_done() leaves it unfinished.
    void join() { this->core().join(); }

    /// In a start::spawn or start::forkserver child: the queue cross_out sent.
    static basic_joinable_queue cross_in(crossing_reader& r) { return basic_joinable_queue(r); }

private:
    explicit basic_joinable_queue(crossing_reader& r) : basic_queue<T, Ps...>(r) {}
};

/// The simplest queue: unbounded, no timeouts, no counts (Python: multiprocessing.SimpleQueue).
template <class T, class... Ps>
class basic_simple_queue : public detail::queue_handle<T, Ps...> {
    using base = detail::queue_handle<T, Ps...>;

public:
    /// An empty queue; `buffer` sizes the transport's buffer in bytes (0: its default).
    explicit basic_simple_queue(std::size_t buffer = 0) : base(0, buffer, true) {}

    /// Puts `v`, waiting while the transport's buffer is full (Python: SimpleQueue.put()).
    void put(const T& v) { this->put_until(v, std::nullopt); }
    /// Takes the next message, waiting as long as it takes (Python: SimpleQueue.get()).
    T get() { return this->get_until(std::nullopt); }

    /// In a start::spawn or start::forkserver child: the queue cross_out sent.
    static basic_simple_queue cross_in(crossing_reader& r) { return basic_simple_queue(r); }

private:
    explicit basic_simple_queue(crossing_reader& r) : base(r, true) {}
};

MULTIPROC_ABI_END } // namespace multiproc
