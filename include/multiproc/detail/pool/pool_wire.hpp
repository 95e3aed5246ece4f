// Not part of the API: what a pool and its workers share, the messages they exchange, how a
// worker finds the code of a task (the invoker registry), and the worker's main loop.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/runtime/code_registry.hpp>
#include <multiproc/detail/pool/byte_ring.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/pool/pool_codec.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

// ---------------------------------------------------------------------------------------
// Shared memory.

/// One page shared by the parent and every worker of a pool: who is collecting results.
struct pool_shared {
    alignas(64) std::atomic<std::uint32_t> watchers;     // parent threads collecting now (the engine when awake)
    alignas(64) std::atomic<std::uint32_t> attention;    // a worker published something since the last drain began
    alignas(64) std::atomic<std::uint32_t> wake_pending; // a worker has signalled the eventfd; the engine has not run since
};

/// The shared part of one worker: its two rings and where it is.
struct worker_shared {
    ring_indices tasks;   // parent -> worker
    ring_indices results; // worker -> parent
    alignas(64) std::atomic<std::uint64_t> unit; // the unit being run (its number on this worker), 0 before the first
    std::atomic<std::uint64_t> element;          // the element of that unit's chunk being run
    std::atomic<std::uint64_t> started_ns;       // when that unit started (steady clock)
    std::atomic<std::uint64_t> element_started_ns; // when `element` started: each element of a timed unit, else the unit
    std::atomic<std::uint32_t> stop;             // set by the parent: leave once no task is left
    std::atomic<std::uint32_t> phase;            // worker_starting, worker_in_initializer, worker_running
    std::atomic<std::int32_t> lost_link;         // set by a worker that left because its link was gone: why
    std::atomic<std::int32_t> lost_fd;           // and the descriptor it found so
};

/// Where a worker is (worker_shared::phase): a death tells the parent what failed.
enum : std::uint32_t { worker_starting = 0, worker_in_initializer = 1, worker_running = 2 };

/// worker_shared::stop: 1, leave once no task is left; worker_stop_now, leave before the next
/// task (how a thread worker, which cannot be killed, is terminated).
inline constexpr std::uint32_t worker_stop_now = 2;

enum : std::uint32_t { msg_task = 1, msg_result = 2, msg_init_failed = 3 };

/// A chunk of tasks: header, callable bytes, then `count` encoded elements. The worker runs
/// elements [lo, hi) and skips the others (a chunk split after its worker died). Messages
/// are padded to a multiple of 8 bytes, so that every header in a ring is aligned.
struct task_header {
    std::uint32_t size; // of the whole message
    std::uint32_t kind; // msg_task
    std::uint64_t seq;  // the unit's number on its worker, from 1
    std::uint64_t signature;
    std::uint32_t invoker;
    std::uint32_t callable_size;
    std::uint32_t count;
    std::uint32_t lo, hi;
    std::uint32_t claim; // claim_free, then claim_taken by the worker or claim_withdrawn by the parent
    std::uint32_t flags; // task_timed: the worker records when each element starts
    std::uint64_t arena; // start::thread: the job's box_arena, which the results made go to (else 0)
    std::uint64_t code;  // the invoker's address in the submitting process (see run_task)
};

/// task_header::flags. A unit of a job with a task timeout is timed: the parent stops an
/// element that runs too long, so it must know when each one started (one clock read per
/// element, paid only there).
enum : std::uint32_t { task_timed = 1 };

/// Who owns a unit that sits in a worker's task ring: the first to move `claim` from
/// claim_free wins. The parent withdraws units queued behind a long-running one, to give
/// them to an idle worker; the worker skips a withdrawn unit.
enum : std::uint32_t { claim_free = 0, claim_taken = 1, claim_withdrawn = 2 };

inline std::atomic_ref<std::uint32_t> claim_of(std::byte* header) noexcept {
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(header + offsetof(task_header, claim)));
}

/// Pads a message that started at `at` to a multiple of 8 bytes.
inline void pad_message(byte_buffer& out, std::size_t at) {
    static constexpr std::byte zeros[8] = {};
    out.append(zeros, (8 - (out.size() - at) % 8) % 8);
}

/// The results of a unit: header, the encoded values of the elements that succeeded, in
/// order, then `errors` entries {u32 element, u32 type length, u32 what length, type, what}.
struct result_header {
    std::uint32_t size;
    std::uint32_t kind; // msg_result, or msg_init_failed (with one error entry)
    std::uint64_t seq;
    std::uint64_t busy_ns; // how long the unit ran
    std::uint32_t errors;
    std::uint32_t errors_at; // offset of the error entries from the message's start
};

template <class T>
T load_pod(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline std::uint32_t checked_size(std::size_t n) {
    if (n > 0xffffffffu)
        detail::raise(value_error("multiproc: a pool message would exceed 4 GiB; use a smaller chunksize"));
    return static_cast<std::uint32_t>(n);
}

/// Appends an error entry.
inline void put_error(byte_buffer& out, std::uint32_t element, const std::string& type, const std::string& what) {
    std::uint32_t h[3] = {element, checked_size(type.size()), checked_size(what.size())};
    out.append(h, sizeof h);
    out.append(type.data(), type.size());
    out.append(what.data(), what.size());
}

/// One error entry read back.
struct error_entry {
    std::uint32_t element = 0;
    std::string type, what;
};

inline error_entry get_error(pool_reader& in) {
    auto h0 = load_pod<std::uint32_t>(in.take(4));
    auto h1 = load_pod<std::uint32_t>(in.take(4));
    auto h2 = load_pod<std::uint32_t>(in.take(4));
    error_entry e;
    e.element = h0;
    const std::byte* t = in.take(h1);
    e.type.assign(reinterpret_cast<const char*>(t), h1);
    const std::byte* w = in.take(h2);
    e.what.assign(reinterpret_cast<const char*>(w), h2);
    return e;
}

// ---------------------------------------------------------------------------------------
// Callables.

template <class F>
inline constexpr bool is_function_pointer = std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

/// A callable a pool can run: the workers were started before the task existed, so the
/// callable may carry no state of its own.
template <class F>
inline constexpr bool is_stateless_callable =
    is_function_pointer<F> || (std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F>);

/// How the callable itself travels. A stateless class is rebuilt by default construction.
/// A function pointer travels as its value: under fork every worker runs the image of the
/// parent, so the address is valid there. This is the only place that relies on that; the
/// spawn and forkserver start methods must replace it with a lookup in a table of functions
/// that the executable registers.
template <class F>
struct callable_wire {
    static constexpr std::size_t size = is_function_pointer<F> ? sizeof(F) : 0;
    static void encode(byte_buffer& out, const F& f) {
        if constexpr (is_function_pointer<F>) out.append(&f, sizeof f);
    }
    static F decode(const std::byte* p) {
        if constexpr (is_function_pointer<F>) {
            return load_pod<F>(p);
        } else if constexpr (is_stateless_callable<F>) {
            return F{};
        } else {
            std::abort(); // never compiled into a program: check_pool_callable rejects F first
        }
    }
};

// ---------------------------------------------------------------------------------------
// The invoker registry: the code a worker runs for a chunk is found by number in a table
// that every process running this executable fills in the same way at start-up, and the
// number is checked against a signature of the invoker's type before it is used.

struct result_sink;
struct task_view {
    const task_header* header;
    const std::byte* callable;
    const std::byte* elements;
    std::size_t elements_size;
};

/// Where a worker publishes the element of its unit it runs: worker_shared::element, and for
/// a timed unit element_started_ns. A value, which an invoker copies into its loop so that
/// the two addresses stay in registers across calls of the task.
struct element_progress {
    std::atomic<std::uint64_t>* element = nullptr;
    std::atomic<std::uint64_t>* started = nullptr; // timed units only

    /// Publishes that element `i` of the chunk starts. Untimed, a relaxed store of the index
    /// alone (one plain store): nothing else is read with it, and it is read after the worker
    /// died, or to name the element a kill would stop (which settles an element that finished
    /// meanwhile by its result). Timed, the start time first and the index with release order,
    /// so that a parent that sees element i sees at least i's start.
    void begin(std::uint32_t i) const noexcept {
        if (started) {
            started->store(static_cast<std::uint64_t>(steady::now().time_since_epoch().count()),
                           std::memory_order_relaxed);
            element->store(i, std::memory_order_release);
        } else {
            element->store(i, std::memory_order_relaxed);
        }
    }
};

/// Where a worker's invoker writes: values of the elements that succeeded, and errors.
struct result_sink {
    byte_buffer& values;
    byte_buffer& errors;
    std::uint32_t error_count = 0;
    element_progress progress;

    void fail_current(std::uint32_t element_index) {
        auto [type, what] = describe_current_exception();
        put_error(errors, element_index, type, what);
        ++error_count;
    }
};

using invoker_fn = void (*)(const task_view&, result_sink&);

inline std::uint32_t register_invoker(std::string_view key, invoker_fn fn) {
    return code_registry<invoker_fn>::instance().add(key, fn).index;
}

/// The invoker with number `id`, if its signature matches; nullptr otherwise.
inline invoker_fn find_invoker(std::uint32_t id, std::uint64_t signature) {
    const invoker_fn* fn = code_registry<invoker_fn>::instance().find(id, signature);
    return fn ? *fn : nullptr;
}

/// The number of invoker `Inv`, registered during static initialization of the program
/// (a variable template's initializer runs before main), so that a worker forked at any
/// time, or a process started from the same executable, has the same table.
template <class Inv>
inline const std::uint32_t invoker_id = register_invoker(type_key<Inv>(), &Inv::run);

/// The signature a lookup of invoker `Inv` must match; computed during static initialisation,
/// not on first use (a lazily initialised static's guard, left "in progress" by another
/// thread, would hang a child forked meanwhile that submits the same task).
template <class Inv>
inline const std::uint64_t invoker_signature_of = key_hash(type_key<Inv>());

template <class Inv>
std::uint64_t invoker_signature() {
    return invoker_signature_of<Inv>;
}

/// What a chunk's elements are: each element is the arguments `A...` encoded one after
/// another; the worker calls `f(a...)` with its own decoded copies, as lvalues.
template <class Codec, class F, class... A>
struct invoker {
    using codec = Codec;
    using result_type = std::remove_cvref_t<std::invoke_result_t<F&, A&...>>;

    static constexpr std::size_t stride() {
        if constexpr (sizeof...(A) == 0)
            return 0;
        else
            return ((Codec::template fixed_size<A>() != 0) && ...) ? (Codec::template fixed_size<A>() + ...) : 0;
    }

    /// Bytes of one result written in place (Codec::in_place), 0 for none (void), else -1:
    /// encoded one by one.
    static constexpr std::ptrdiff_t result_size() {
        if constexpr (std::is_void_v<result_type>)
            return 0;
        else if constexpr (Codec::template in_place<result_type>())
            return static_cast<std::ptrdiff_t>(sizeof(result_type));
        else
            return -1;
    }

    /// Whether a chunk runs on the bare path: every argument and the result are read and
    /// written in place (a map of numbers), with no frame per value.
    static constexpr bool bare() { return (Codec::template in_place<A>() && ...) && result_size() >= 0; }

    static void run(const task_view& t, result_sink& out) {
        F f = callable_wire<F>::decode(t.callable);
        // A thread pool's results are boxes of the job (thread_codec): the header says where.
        [[maybe_unused]] arena_scope<Codec::in_memory> results_go_to(Codec::in_memory ? reinterpret_cast<box_arena*>(t.header->arena)
                                                                     : nullptr);
        const std::uint32_t lo = t.header->lo, hi = t.header->hi;
        if constexpr (bare()) {
            constexpr std::size_t step = stride() != 0 ? stride() : 1; // (no arguments: nothing to read)
            if (lo <= hi && (stride() == 0 || t.elements_size / step >= hi)) {
                run_bare(f, t.elements, lo, hi, out);
                return;
            }
            // (Too short for its count: the framed path below fails the elements it cannot read.)
        }
        run_framed(f, t, lo, hi, out);
    }

private:
    /// Elements [lo, hi) of a chunk whose bytes hold all of them, every value bare. No
    /// bounds check or frame per element, the results written straight into the room made
    /// for them; one `try` for a run of elements: an element that throws fails alone, and the
    /// run goes on after it.
    static void run_bare(F& f, const std::byte* elements, std::uint32_t lo, std::uint32_t hi, result_sink& out) {
        constexpr std::size_t rs = static_cast<std::size_t>(result_size());
        const std::size_t mark = out.values.size();
        std::byte* put = rs ? out.values.grow(static_cast<std::size_t>(hi - lo) * rs) : nullptr;
        std::byte* const room = put;
        const std::byte* at = elements + static_cast<std::size_t>(lo) * stride();
        const element_progress progress = out.progress;
        std::uint32_t i = lo;
        while (i < hi) {
            MULTIPROC_TRY {
                for (; i < hi; ++i, at += stride()) {
                    progress.begin(i);
                    std::tuple<A...> args = load_args(at, std::index_sequence_for<A...>{});
                    if constexpr (rs == 0) {
                        std::apply(f, args);
                    } else {
                        const result_type r = std::apply(f, args);
                        Codec::template store_bare<result_type>(put, r);
                        put += rs;
                    }
                }
            } MULTIPROC_CATCH_ALL {
                out.fail_current(i); // (no value: the ones after it move up)
                ++i;
                at += stride();
            }
        }
        if constexpr (rs != 0) out.values.shrink(mark + static_cast<std::size_t>(put - room));
    }

    /// Where argument K starts in an element's bytes.
    template <std::size_t K>
    static constexpr std::size_t arg_offset() {
        constexpr std::size_t sizes[] = {Codec::template fixed_size<A>()..., 0};
        std::size_t o = 0;
        for (std::size_t j = 0; j < K; ++j) o += sizes[j];
        return o;
    }

    template <std::size_t... K>
    static std::tuple<A...> load_args([[maybe_unused]] const std::byte* at, std::index_sequence<K...>) {
        // (Offsets as constants: GCC 12 at -O0 crashed on a constexpr lambda over a local array.)
        return std::tuple<A...>{Codec::template load_bare<A>(at + std::integral_constant<std::size_t, arg_offset<K>()>::value)...};
    }

    /// Elements [lo, hi) decoded one by one through the serialization policy.
    static void run_framed(F& f, const task_view& t, std::uint32_t lo, std::uint32_t hi, result_sink& out) {
        pool_reader in(t.elements, t.elements_size);
        std::uint32_t i = lo;
        MULTIPROC_TRY {
            if constexpr (stride() != 0 || sizeof...(A) == 0)
                (void)in.take(static_cast<std::size_t>(lo) * stride());
            else
                for (std::uint32_t k = 0; k < lo; ++k) (Codec::template skip<A>(in), ...);
            for (; i < hi; ++i) {
                out.progress.begin(i);
                // Braced initialization decodes the arguments left to right, as encoded.
                std::tuple<A...> args{Codec::template decode<A>(in)...};
                const std::size_t mark = out.values.size();
                MULTIPROC_TRY {
                    if constexpr (std::is_void_v<result_type>) {
                        std::apply(f, args);
                    } else {
                        result_type r = std::apply(f, args);
                        Codec::template encode<result_type>(out.values, std::move(r));
                    }
                } MULTIPROC_CATCH_ALL {
                    out.values.shrink(mark);
                    out.fail_current(i);
                }
            }
        } MULTIPROC_CATCH_ALL {
            // The chunk's bytes could not be decoded: every element not yet run fails alike.
            for (; i < hi; ++i) out.fail_current(i);
        }
    }
};

// ---------------------------------------------------------------------------------------
// Building a task message (in the parent).

/// Starts a task message for invoker `Inv` in `out`; returns its offset. Elements follow.
template <class Inv, class F>
std::size_t begin_task(byte_buffer& out, const F& f) {
    const std::size_t at = out.size();
    task_header h{};
    h.kind = msg_task;
    h.invoker = invoker_id<Inv>;
    h.signature = invoker_signature<Inv>();
    h.code = reinterpret_cast<std::uintptr_t>(&Inv::run);
    h.callable_size = static_cast<std::uint32_t>(callable_wire<F>::size);
    out.append(&h, sizeof h);
    callable_wire<F>::encode(out, f);
    return at;
}

/// Ends the task message that starts at `at`, holding `count` elements (all to be run);
/// `arena`: the job's, where a thread pool's worker puts the results it makes.
inline std::uint32_t end_task(byte_buffer& out, std::size_t at, std::uint32_t count, box_arena* arena = nullptr,
                              std::size_t borrowed = 0) {
    if (borrowed == 0) pad_message(out, at);
    // A unit that borrows its elements (unit_meta::ext_len) has them, and its padding, sent
    // after its own bytes; its size counts them.
    auto size = checked_size((out.size() - at + borrowed + 7) / 8 * 8);
    auto* h = reinterpret_cast<task_header*>(out.data() + at);
    std::memcpy(&h->size, &size, sizeof size);
    std::memcpy(&h->count, &count, sizeof count);
    std::uint32_t zero = 0;
    std::memcpy(&h->lo, &zero, sizeof zero);
    std::memcpy(&h->hi, &count, sizeof count);
    const auto where = reinterpret_cast<std::uintptr_t>(arena);
    const std::uint64_t a = where;
    std::memcpy(&h->arena, &a, sizeof a);
    return size;
}

// ---------------------------------------------------------------------------------------
// The worker.

/// Spins until `pred()` holds or `budget` has passed; returns pred(). Between checks it
/// yields the CPU: when there are more busy threads than cores (other programs included),
/// a spinner that does not yield burns its time slice while the thread it waits for sits in
/// the run queue. Measured here under load: apply's round trip is 3 µs when spinners yield,
/// 42 µs when they yield only after 20 µs of spinning, and 206 µs when they never do.
template <class Pred>
bool spin_until(Pred&& pred, std::chrono::microseconds budget) {
    if (pred()) return true;
    const auto end = steady::now() + budget;
    for (unsigned i = 1;; ++i) {
        cpu_relax();
        if (pred()) return true;
        if ((i & 63) == 0) {
            if (steady::now() >= end) return false;
            sys::yield();
        }
    }
}

/// Waits for `pred()`: a short spin, then asleep on `n` until a notify_*.
template <class Pred>
void spin_then_wait(notifier& n, Pred&& pred, std::chrono::microseconds spin) {
    if (!spin_until(pred, spin)) n.wait_until(pred, std::nullopt, std::chrono::microseconds(0));
}

/// What a worker needs, prepared by the parent before the fork and never changed after.
/// An initializer that reaches workers started as fresh programs: a function registered at
/// static initialization (found by number, checked by signature, as invokers are) and its
/// arguments, encoded by the pool's serialization policy.
struct remote_init {
    std::uint32_t id = 0;
    std::uint64_t signature = 0;
    std::string args;
};

using remote_init_fn = void (*)(const std::byte* args, std::size_t size);

/// Where a worker of another machine runs (ext::start::mpi): its rank in the MPI job, its
/// host and its process there. rank < 0: a worker of this machine.
struct remote_place {
    int rank = -1;
    std::string host;
    pid_t pid = 0;
};

struct worker_boot {
    pool_shared* pool = nullptr;
    worker_shared* self = nullptr;
    byte_ring tasks, results;
    int wake_fd = -1;
    const std::function<void()>* initializer = nullptr;
    std::optional<int> maxtasks;
    std::chrono::microseconds spin{100};
    // What a spawn or forkserver worker maps again (a forked one inherits the mappings).
    int pool_fd = -1;           // the pool_shared page
    const mirrored_region* rings = nullptr; // this worker's header and two rings
    const remote_init* init = nullptr;      // the initializer, when it can cross
    bool in_thread = false; // a thread of the pool's own process (start::thread)
    bool forked = false;    // a fork of the pool's process (start::fork): its code is at the same addresses
    // A thread that stands for a worker of another machine (pool_config::thread_main):
    void* remote = nullptr;        // its start method's link (pool_config::thread_context)
    remote_place* place = nullptr; // where it says the worker runs, before its first result
};

/// How a worker gets its boot: under fork, a pointer into the parent's memory, valid in the
/// copy the child is; under spawn and forkserver, the descriptors and settings crossed with
/// SCM_RIGHTS, mapped again in the child. The initializer never crosses (it is code and
/// state of the parent): such a pool refuses one.
class worker_link {
public:
    worker_link() = default;
    explicit worker_link(const worker_boot* b) noexcept : parent_(b) {}

    [[nodiscard]] const worker_boot& boot() const noexcept { return parent_ ? *parent_ : mine_; }

    void cross_out(crossing_writer& w) const {
        const worker_boot& b = *parent_;
        w.put_fd(b.pool_fd);
        w.put_fd(b.rings->fd());
        w.put_fd(b.wake_fd);
        w.put<std::uint64_t>(b.rings->header_bytes());
        w.put<std::uint64_t>(b.rings->ring_capacity());
        w.put<std::int64_t>(b.maxtasks ? *b.maxtasks : -1);
        w.put<std::int64_t>(b.spin.count());
        w.put<std::uint8_t>(b.init ? 1 : 0);
        if (b.init) {
            w.put(b.init->id);
            w.put(b.init->signature);
            w.put_string(b.init->args);
        }
    }
    static worker_link cross_in(crossing_reader& r) {
        worker_link l;
        auto pool_fd = r.take_fd();
        auto rings_fd = r.take_fd();
        l.wake_ = r.take_fd();
        const auto header = static_cast<std::size_t>(r.get<std::uint64_t>());
        const auto cap = static_cast<std::size_t>(r.get<std::uint64_t>());
        const auto maxtasks = r.get<std::int64_t>();
        const auto spin = r.get<std::int64_t>();
        l.pool_ = std::make_shared<shared_region>(shared_region::attach(pool_fd.release()));
        if (l.pool_->size() < sizeof(pool_shared) || header < sizeof(worker_shared))
            detail::raise(serialization_error("multiproc: a pool worker got regions smaller than the pool's"));
        l.rings_ = std::make_shared<mirrored_region>(
            mirrored_region::attach(std::move(rings_fd), header, cap, 2, "a pool worker's rings"));
        auto* self = std::launder(static_cast<worker_shared*>(l.rings_->header()));
        l.mine_.pool = std::launder(static_cast<pool_shared*>(l.pool_->data()));
        l.mine_.self = self;
        l.mine_.tasks = byte_ring(&self->tasks, l.rings_->ring_data(0), cap);
        l.mine_.results = byte_ring(&self->results, l.rings_->ring_data(1), cap);
        l.mine_.wake_fd = l.wake_.get();
        if (maxtasks > 0) l.mine_.maxtasks = static_cast<int>(maxtasks);
        l.mine_.spin = std::chrono::microseconds(spin);
        if (r.get<std::uint8_t>()) {
            const auto id = r.get<std::uint32_t>();
            const auto signature = r.get<std::uint64_t>();
            const remote_init_fn* found = code_registry<remote_init_fn>::instance().find(id, signature);
            remote_init_fn fn = found ? *found : nullptr;
            if (!fn) detail::raise(error("multiproc: this program does not know the pool's initializer (a different build?)"));
            // On the heap: the link is moved after this, and the boot keeps a pointer to it.
            l.init_ = std::make_shared<std::function<void()>>([fn, args = r.get_string()] {
                fn(reinterpret_cast<const std::byte*>(args.data()), args.size());
            });
            l.mine_.initializer = l.init_.get();
        }
        return l;
    }

private:
    const worker_boot* parent_ = nullptr;
    worker_boot mine_;
    std::shared_ptr<shared_region> pool_;
    std::shared_ptr<mirrored_region> rings_;
    sys::unique_fd wake_;
    std::shared_ptr<std::function<void()>> init_;
};

// ---------------------------------------------------------------------------------------
// The worker's link to the engine. Its rings are shared memory, which no task can take away
// by closing descriptors. What a task can take away is the one descriptor the worker wakes
// the engine with (an eventfd): closed (close_range, closefrom), or replaced (dup2 of
// /dev/null over it, or another file that took its number). The worker checks it only where
// it makes a system call anyway: before it signals the engine, and before it goes to sleep
// waiting for work. One that finds it gone leaves: its exit wakes the engine through the
// pidfd the parent holds, and the parent collects what it published (those results stand)
// and replaces it, as for any dying worker.

/// Why a worker left because its link was gone (worker_shared::lost_link): the errno of the
/// check (EBADF: closed), or link_replaced (the descriptor is now another file).
inline constexpr std::int32_t link_replaced = -1;

/// The wake-up descriptor as the worker found it when it started (one worker per process).
struct wake_fd_record {
    int fd = -1;
    bool known = false;
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t type = 0;
    int fd_flags = 0;
};
inline wake_fd_record worker_wake_fd{};

inline void record_wake_fd(int fd) noexcept {
    struct stat st {};
    const int flags = sys::fcntl(fd, F_GETFD);
    const bool known = sys::fstat(fd, &st) == 0 && flags >= 0;
    worker_wake_fd = {fd, known, st.st_dev, st.st_ino, static_cast<mode_t>(st.st_mode & S_IFMT), flags};
}

/// 0 while the wake-up descriptor is the one the worker started with; otherwise why not.
/// (dup2 over it clears FD_CLOEXEC, which tells even another eventfd from ours.)
inline std::int32_t check_wake_fd() noexcept {
    const wake_fd_record& w = worker_wake_fd;
    if (!w.known) return 0;
    struct stat st {};
    if (sys::fstat(w.fd, &st) != 0) return errno;
    const int flags = sys::fcntl(w.fd, F_GETFD);
    if (flags < 0) return errno;
    if (st.st_dev != w.dev || st.st_ino != w.ino || (st.st_mode & S_IFMT) != w.type || flags != w.fd_flags)
        return link_replaced;
    return 0;
}

/// Leaves the pool because its link is gone (`why`): what it published stands, and its exit
/// wakes the engine, which replaces it.
[[noreturn]] inline void leave_lost_link(const worker_boot& b, std::int32_t why) noexcept {
    b.self->lost_fd.store(worker_wake_fd.fd, std::memory_order_relaxed);
    b.self->lost_link.store(why, std::memory_order_release);
    (void)std::fflush(nullptr); // what the tasks printed
    ::_exit(1);
}

/// Leaves the pool if the worker's link is gone.
/// (Not a thread worker: the descriptor is its own process's, and leaving would end it.)
inline void check_link(const worker_boot& b) noexcept {
    if (b.in_thread) return;
    if (const std::int32_t why = check_wake_fd()) leave_lost_link(b, why);
}

/// Tells the parent that something was published (results, or room in the task ring),
/// with a system call only if no parent thread is collecting and none is already coming.
inline void wake_parent(const worker_boot& b) noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (b.pool->attention.load(std::memory_order_relaxed) == 0) b.pool->attention.store(1, std::memory_order_seq_cst);
    if (b.pool->watchers.load(std::memory_order_seq_cst) == 0 &&
        b.pool->wake_pending.exchange(1, std::memory_order_seq_cst) == 0) {
        check_link(b);
        if (sys::eventfd_signal(b.wake_fd) != 0 && !b.in_thread) leave_lost_link(b, errno != 0 ? errno : EIO);
    }
}

/// Writes a whole message to the result ring, waiting for room as the parent reads.
inline void send_to_parent(const worker_boot& b, const byte_buffer& msg) {
    std::size_t off = 0;
    const byte_ring& r = b.results;
    while (off < msg.size()) {
        std::size_t room = r.writable();
        if (room == 0) {
            spin_then_wait(r.indices().writable, [&] { return r.writable() > 0; }, b.spin);
            continue;
        }
        std::size_t n = std::min(room, msg.size() - off);
        r.write(msg.data() + off, n);
        off += n;
        wake_parent(b);
    }
}

/// Frees task bytes; if the parent is waiting for room to send more, wakes it.
inline void consume_task_bytes(const worker_boot& b, std::size_t n) {
    b.tasks.consume(n);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto& w = b.tasks.indices().writer_waiting;
    if (w.load(std::memory_order_relaxed) != 0 && w.exchange(0, std::memory_order_seq_cst) != 0) wake_parent(b);
}

/// Publishes that the worker has begun unit `h` (worker_shared::unit and its clocks, which
/// running(), task timeouts and a death's report read); returns when.
inline steady::time_point note_unit_start(const worker_boot& b, const task_header& h) noexcept {
    const auto t0 = steady::now();
    b.self->element.store(h.lo, std::memory_order_relaxed);
    b.self->started_ns.store(static_cast<std::uint64_t>(t0.time_since_epoch().count()), std::memory_order_relaxed);
    b.self->element_started_ns.store(static_cast<std::uint64_t>(t0.time_since_epoch().count()),
                                     std::memory_order_relaxed);
    b.self->unit.store(h.seq, std::memory_order_release);
    return t0;
}

/// The message a worker whose initializer could not run sends instead of results:
/// msg_init_failed with one error entry, `type` and `what`.
inline void init_failed_message(byte_buffer& out, const std::string& type, const std::string& what) {
    result_header r{};
    r.kind = msg_init_failed;
    r.errors = 1;
    r.errors_at = sizeof r;
    out.clear();
    out.append(&r, sizeof r);
    put_error(out, 0, type, what);
    pad_message(out, 0);
    r.size = checked_size(out.size());
    std::memcpy(out.data(), &r.size, sizeof r.size);
}

/// The message a worker whose initializer threw sends instead of results: msg_init_failed
/// with the exception being handled as its one error entry.
inline void init_failed_message(byte_buffer& out) {
    auto [type, what] = describe_current_exception();
    init_failed_message(out, type, what);
}

/// The invoker a task message names: the registered one of its number and signature; in a
/// worker forked before that number was registered (a pool made during static
/// initialisation, e.g. at namespace scope, whose workers fork before the registrations of
/// the translation units initialised after it), the address the parent sent, which is the
/// same code in a fork, if it lies in an object this worker has loaded (not so for code of a
/// library the parent loaded after the fork). nullptr if neither applies.
inline invoker_fn task_invoker(const worker_boot& b, const task_header& h) {
    if (invoker_fn fn = find_invoker(h.invoker, h.signature)) return fn;
    const auto as_fn = [&] { return reinterpret_cast<invoker_fn>(static_cast<std::uintptr_t>(h.code)); };
    // The address checked last (a map's chunks, an imap's tasks, name the same code): the
    // walk over the loaded objects below is paid once per invoker, not once per chunk.
    thread_local std::uint64_t checked = 0;
    if (b.forked && h.code != 0 && h.code == checked) return as_fn();
    if (!b.forked || h.code == 0 || h.invoker < code_registry<invoker_fn>::instance().size()) return nullptr;
    // In the code (an executable segment) of an object loaded here?
    struct probe {
        std::uint64_t at;
        bool found = false;
    } p{h.code};
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto& q = *static_cast<probe*>(data);
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& ph = info->dlpi_phdr[i];
                const std::uint64_t lo = info->dlpi_addr + ph.p_vaddr;
                if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && q.at >= lo && q.at - lo < ph.p_memsz) {
                    q.found = true;
                    return 1;
                }
            }
            return 0;
        },
        &p);
    if (!p.found) return nullptr;
    checked = h.code;
    return as_fn();
}

/// Runs one task message; builds the result message in `out`, the values in place after
/// its header (no copy), the errors in `errors` until they are appended.
inline void run_task(const worker_boot& b, const std::byte* msg, std::size_t size, byte_buffer& errors,
                     byte_buffer& out) {
    task_header h = load_pod<task_header>(msg);
    const auto t0 = note_unit_start(b, h);
    out.clear();
    (void)out.grow(sizeof(result_header)); // filled in below
    errors.clear();
    result_sink sink{out, errors, 0,
                     {&b.self->element, (h.flags & task_timed) != 0 ? &b.self->element_started_ns : nullptr}};
    if (invoker_fn fn = task_invoker(b, h);
        fn && size >= sizeof h + h.callable_size) {
        task_view v{&h, msg + sizeof h, msg + sizeof h + h.callable_size, size - sizeof h - h.callable_size};
        fn(v, sink);
    } else {
        for (std::uint32_t i = h.lo; i < h.hi; ++i) {
            put_error(errors, i, "multiproc::serialization_error",
                      "multiproc: a worker got a task whose code this executable does not register "
                      "(invoker " + std::to_string(h.invoker) + ")");
            ++sink.error_count;
        }
    }
    auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - t0).count();
    result_header r{};
    r.kind = msg_result;
    r.seq = h.seq;
    r.busy_ns = static_cast<std::uint64_t>(busy);
    r.errors = sink.error_count;
    r.errors_at = checked_size(out.size());
    out.append(errors.data(), errors.size());
    pad_message(out, 0);
    r.size = checked_size(out.size());
    std::memcpy(out.data(), &r, sizeof r);
}

/// The loop of a pool worker, after its initializer: takes the task messages of `b`'s ring in
/// order (skipping those the parent withdrew, gathering one bigger than the ring), has
/// `run(msg, size, out)` build each one's result message in `out` and sends it, until told
/// to stop or `maxtasks` units are done. `run` returns false to leave at once (a remote
/// worker told to stop while its unit runs elsewhere); the unit then has no result.
template <class Run>
int serve_tasks(const worker_boot& b, Run&& run) {
    worker_shared& self = *b.self;
    byte_buffer out, big;
    const byte_ring& tasks = b.tasks;
    const std::size_t cap = tasks.capacity();
    int done = 0;
    for (;;) {
        auto have = [&](std::size_t n) { return tasks.readable() >= n; };
        const auto work_or_stop = [&] {
            return have(sizeof(std::uint32_t)) || self.stop.load(std::memory_order_acquire) != 0;
        };
        // (Only a thread is told to stop now: the rest of a unit it is reading may never come.)
        const auto stop_now = [&] { return self.stop.load(std::memory_order_acquire) == worker_stop_now; };
        if (stop_now()) break;
        if (!spin_until(work_or_stop, b.spin)) {
            check_link(b); // before sleeping: the engine must be able to hear from this worker
            tasks.indices().readable.wait_until(work_or_stop, std::nullopt, std::chrono::microseconds(0));
        }
        if (!have(sizeof(std::uint32_t))) break; // told to stop, and nothing is left
        const auto size = load_pod<std::uint32_t>(tasks.read_ptr());
        if (size <= cap) {
            spin_then_wait(tasks.indices().readable, [&] { return have(size) || stop_now(); }, b.spin);
            if (!have(size)) break;
            std::byte* msg = const_cast<std::byte*>(tasks.read_ptr());
            std::uint32_t expected = claim_free;
            if (!claim_of(msg).compare_exchange_strong(expected, claim_taken, std::memory_order_acq_rel)) {
                consume_task_bytes(b, size); // withdrawn by the parent: another worker runs it
                continue;
            }
            const bool ran = run(static_cast<const std::byte*>(msg), std::size_t{size}, out);
            consume_task_bytes(b, size);
            if (!ran) break;
        } else { // (never withdrawn: it is not all in the ring at once)
            // Bigger than the ring: gather it as the parent sends it.
            big.clear();
            while (big.size() < size) {
                spin_then_wait(tasks.indices().readable, [&] { return have(1) || stop_now(); }, b.spin);
                if (!have(1)) return 0;
                std::size_t n = std::min<std::size_t>(tasks.readable(), size - big.size());
                big.append(tasks.read_ptr(), n);
                consume_task_bytes(b, n);
            }
            if (!run(static_cast<const std::byte*>(big.data()), big.size(), out)) break;
        }
        send_to_parent(b, out);
        if (b.maxtasks && ++done >= *b.maxtasks) break;
    }
    return 0;
}

/// The body of a pool worker: run the initializer, then chunks as they come, until told to
/// stop or `maxtasks` chunks are done. SIGINT is ignored: Ctrl-C is for the parent to act on
/// (it dies of it by default, and takes the workers with it). SIGTERM gets its default action.
inline int worker_main(const worker_boot& b) {
    if (!b.in_thread) { // (a thread leaves the process's signals and descriptors alone)
        (void)sys::ignore_sigint_in_worker();
        (void)sys::set_signal_disposition(SIGTERM, SIG_DFL); // terminate() must end it, whatever the parent set
        // A forked worker starts with SIGTERM blocked (pool_core::start_worker), so that one
        // sent before this point waits for the default action instead of running a handler
        // of the parent's in the worker; it is delivered here.
        sys::unblock_signal(SIGTERM);
        record_wake_fd(b.wake_fd);
    }
    worker_shared& self = *b.self;
    byte_buffer errors;
    if (b.initializer && *b.initializer) {
        self.phase.store(worker_in_initializer, std::memory_order_release);
        MULTIPROC_TRY {
            (*b.initializer)();
        } MULTIPROC_CATCH_ALL {
            byte_buffer out;
            init_failed_message(out);
            send_to_parent(b, out);
            if (b.in_thread) return 1;
            std::exit(1); // the child's own exit: its exit code is 1, as for an uncaught exception
        }
    }
    self.phase.store(worker_running, std::memory_order_release);
    return serve_tasks(b, [&](const std::byte* msg, std::size_t size, byte_buffer& out) {
        run_task(b, msg, size, errors, out);
        return true;
    });
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
