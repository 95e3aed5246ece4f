/// @file ext/start/mpi.hpp
/// `ext::start::mpi`: a pool whose workers are the other ranks of an MPI job (Python:
/// mpi4py.futures.MPIPoolExecutor), so that a pool written for one machine runs across many
/// by changing its start policy and the launch command. Needs an MPI implementation's C API
/// (Open MPI from Debian: libopenmpi-dev, openmpi-bin; CMake target multiproc::mpi); not
/// part of multiproc/multiproc.hpp.
///
///     int main() {
///         multiproc::freeze_support(); // ranks 1.. serve tasks here and never return
///         multiproc::basic_pool<multiproc::ext::start::mpi<multiproc::ext::start::in_rank>> pool;
///         auto squares = pool.map(multiproc::fn<&square>, std::views::iota(0, 100));
///     }
///
///     mpiexec -n 5 ./app   # rank 0 runs main(); ranks 1-4 run the tasks
///
/// Launch is static: `mpiexec -n 1+R ./app`. freeze_support() initializes MPI when the
/// program was started by an MPI launcher, checks that every rank runs the same build, and
/// sends ranks 1..R into their serve loop, which ends when rank 0 leaves main() (or exit()s).
/// On rank 0, a pool of this policy has one worker per serving rank by default; each worker
/// is a thread of rank 0 that carries units of work to its rank and results back, on a
/// communicator of multiproc's own. Everything of the pool's API works unchanged: apply,
/// map, imap (lazy, over infinite input), the async forms, callbacks, cancel, observers,
/// ordering, worker_death and pool_exit policies, initializers. The rules of start::spawn
/// apply (stateless targets, `fn<&f>`, arguments as data); remote_error names the rank and
/// host where a task raised.
///
/// Losing a rank cannot be survived by an MPI job without fault tolerance (ULFM), which
/// Debian's Open MPI lacks: if any rank dies (a task that crashes its rank, a rank killed
/// from outside, an exception leaving main() on rank 0), the MPI launcher ends the whole job
/// and says which rank died. Nothing hangs.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/pool/pool_core.hpp>
#include <multiproc/detail/pool/pool_wire.hpp>
#include <multiproc/detail/start/bootstrap.hpp>
#include <multiproc/detail/sync/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/policies/kinds.hpp>
#include <multiproc/policies/start.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include <poll.h>
#include <time.h>
#include <unistd.h>

#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1 // the C API only (Open MPI's deprecated C++ bindings are not needed)
#endif
#include <mpi.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail::mpi {

// ---------------------------------------------------------------------------------------
// The messages. A worker rank hears from rank 0 only, on multiproc's own communicator: on
// the control tag, msg_exit; on a channel's tag (one per worker of a pool, not reused before
// MPI_TAG_UB channels have been opened), msg_open once, then the pool's task messages
// (pool_wire's task_header), each answered on the same tag by a result message
// (result_header), and in the end msg_close (the worker has done its share) or msg_kill (it
// was told to stop now), which the rank answers with msg_closed, its last message on the
// channel: rank 0 receives and drops whatever comes on a channel until then, so that no
// answer of a rank waits for a receiver that has left. Every message starts with its size
// and kind, as the pool's do; one over piece_bytes travels as several MPI messages.
//
// A channel whose tasks run in a local worker process of the rank (ext::start::mpi<forkserver
// or spawn>): msg_close lets the process exit, msg_kill kills it (terminate(), a timeout,
// cancel(kill_running)); the rank says msg_died if the process dies on its own (with its
// status and the unit and element it was on), and msg_progress when a timed unit moves to
// its next element. (Under in_rank, msg_kill is msg_close: the rank finishes its unit first.)

enum : std::uint32_t {
    msg_open = 16, msg_opened = 17, msg_exit = 18, msg_close = 19, msg_kill = 20, msg_died = 21, msg_progress = 22,
    msg_closed = 23
};

/// Where a channel's tasks run on its rank: in the rank itself, or in a worker process of the
/// rank started by forkserver or spawn.
enum : std::uint32_t { run_in_rank = 0, run_in_forkserver_child = 1, run_in_spawn_child = 2 };
inline constexpr int control_tag = 0;
/// MPI counts are ints: a message travels in pieces of at most this many bytes (1 GiB; a
/// test build sets MULTIPROC_MPI_PIECE_BYTES smaller, to split messages of a few MiB).
#ifdef MULTIPROC_MPI_PIECE_BYTES
inline constexpr std::size_t piece_bytes = MULTIPROC_MPI_PIECE_BYTES;
#else
inline constexpr std::size_t piece_bytes = std::size_t{1} << 30;
#endif

/// A channel opens: the pool's initializer, if it has one, runs on the rank first.
struct open_header {
    std::uint32_t size;
    std::uint32_t kind; // msg_open
    std::uint32_t has_init;
    std::uint32_t init_id;
    std::uint64_t init_signature;
    std::uint64_t args_size; // then the initializer's encoded arguments
    std::uint32_t runs_in;   // run_in_rank, run_in_forkserver_child, run_in_spawn_child
    std::uint32_t reserved;
};

/// msg_close, msg_kill (rank 0 to a rank), msg_closed, msg_died, msg_progress (a rank to rank 0).
struct channel_note {
    std::uint32_t size; // 32
    std::uint32_t kind;
    std::int32_t status;   // msg_died: the process's exit status, negative for the signal that ended it
    std::uint32_t phase;   // msg_died: where it was (worker_starting, worker_in_initializer, worker_running)
    std::uint64_t unit;    // msg_died, msg_progress: the unit it was on (its number on the channel)
    std::uint64_t element; // and the element of that unit's chunk
};

/// The rank's answer when the initializer ran (or there was none): where the worker runs.
struct opened_header {
    std::uint32_t size;
    std::uint32_t kind; // msg_opened
    std::int32_t pid;
    std::uint32_t host_size; // then the host name
};

/// What a rank tells rank 0 at start, so that a job of mixed builds stops before it runs.
struct build_card {
    char build_id[128];
    std::uint64_t targets, invokers, initializers; // hashes of the code registries
};

// ---------------------------------------------------------------------------------------
// The job, as this process sees it.

struct job_state {
    bool hook_ran = false; // freeze_support() ran in this program
    bool running = false;  // MPI was initialized by it (the program was started by an MPI launcher)
    pid_t pid = 0;         // the process that did (a child forked from rank 0 is not the rank)
    int rank = 0;
    int size = 1;
    int tag_ub = 32767;
    MPI_Comm comm = MPI_COMM_NULL;
    std::string host;
    int served_rank = -1;   // in a rank's local worker process: that rank (and `size` the job's)
    std::mutex mu;          // guards what follows
    std::vector<int> load;  // workers of rank 0's pools per rank
    int next_channel = 1;   // tags handed out so far
    int next_name = 1;      // RankWorker-N
};

inline job_state& job() noexcept {
    static job_state j; // (made by freeze_support() at the latest, before any thread or fork of ours)
    return j;
}

/// Whether this process was started by an MPI launcher (Open MPI's mpiexec, or a PMI one).
inline bool under_launcher() noexcept {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(v)) return true;
    return false;
}

[[noreturn]] inline void abort_job(const std::string& why) noexcept {
    const std::string line = why + "\n";
    (void)sys::write_all(2, line.data(), line.size());
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1); // (MPI_Abort does not return)
}

/// Waits with little CPU: spins a little (a reply to a short task comes within
/// microseconds), then sleeps, longer and longer up to 1 ms (an idle rank wakes ~1000
/// times a second and costs well under 1% of a core).
class backoff {
public:
    /// How long to wait this round: 0 while spinning, then 2 us, doubling up to 1 ms.
    std::uint64_t next_ns() noexcept {
        if (++rounds_ < 64) return 0;
        return std::min<std::uint64_t>(std::uint64_t{1000} << std::min(rounds_ / 64, 10U), 1'000'000);
    }
    void operator()() noexcept {
        const std::uint64_t ns = next_ns();
        if (ns == 0) {
            cpu_relax();
            return;
        }
        timespec ts{0, static_cast<long>(ns)};
        (void)::nanosleep(&ts, nullptr);
    }

private:
    unsigned rounds_ = 0;
};

/// Sends one message to `dest` on `tag`, in pieces if it is larger than piece_bytes; returns
/// once its bytes may be reused (the receiver always takes every message in the end).
inline void send(int dest, int tag, const std::byte* p, std::size_t n) {
    const MPI_Comm comm = job().comm;
    do {
        const std::size_t k = std::min(n, piece_bytes);
        MPI_Request req;
        MPI_Isend(p, static_cast<int>(k), MPI_BYTE, dest, tag, comm, &req);
        int done = 0;
        for (backoff wait;; wait()) {
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done) break;
        }
        p += k;
        n -= k;
    } while (n > 0);
}

inline void send(int dest, int tag, const byte_buffer& msg) { send(dest, tag, msg.data(), msg.size()); }

inline void send_note(int dest, int tag, std::uint32_t kind, std::int32_t status = 0, std::uint64_t unit = 0,
                      std::uint64_t element = 0, std::uint32_t phase = 0) {
    channel_note n{};
    n.size = sizeof n;
    n.kind = kind;
    n.status = status;
    n.phase = phase;
    n.unit = unit;
    n.element = element;
    send(dest, tag, reinterpret_cast<const std::byte*>(&n), sizeof n);
}

/// Takes the next message from `src` on `tag` (any tag: MPI_ANY_TAG) into `out` if one has
/// come; returns its tag, or -1 if none has.
inline int try_receive(int src, int tag, byte_buffer& out) {
    const MPI_Comm comm = job().comm;
    MPI_Message m;
    MPI_Status st;
    int found = 0;
    MPI_Improbe(src, tag, comm, &found, &m, &st);
    if (!found) return -1;
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    out.clear();
    MPI_Mrecv(out.grow(static_cast<std::size_t>(count)), count, MPI_BYTE, &m, MPI_STATUS_IGNORE);
    if (out.size() < 8) abort_job("multiproc: rank " + std::to_string(job().rank) + " got a message of " +
                                  std::to_string(out.size()) + " bytes from rank " + std::to_string(st.MPI_SOURCE) +
                                  " (not one of multiproc's)");
    const std::size_t total = load_pod<std::uint32_t>(out.data());
    while (out.size() < total) { // (the rest of a message larger than piece_bytes)
        const std::size_t k = std::min(total - out.size(), piece_bytes);
        MPI_Recv(out.grow(k), static_cast<int>(k), MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
    }
    return st.MPI_TAG;
}

/// Receives the next message from `src` on `tag` (any tag: MPI_ANY_TAG) into `out`; returns
/// its tag, or -1 if `stop()` became true first.
template <class Stop>
int receive(int src, int tag, byte_buffer& out, Stop&& stop) {
    for (backoff wait;; wait()) {
        if (const int t = try_receive(src, tag, out); t >= 0) return t;
        if (stop()) return -1;
    }
}

inline std::uint32_t kind_of(const byte_buffer& msg) noexcept { return load_pod<std::uint32_t>(msg.data() + 4); }

// ---------------------------------------------------------------------------------------
// A worker rank.

/// Runs the initializer an open message carries, if any; builds the answer in `out`: where
/// the worker runs (`host`, this process), or msg_init_failed.
inline void open_channel(const std::byte* in, std::size_t size, byte_buffer& out, const std::string& host) {
    out.clear();
    MULTIPROC_TRY {
        if (size < sizeof(open_header)) detail::raise(serialization_error("multiproc: a malformed open message"));
        const auto h = load_pod<open_header>(in);
        if (h.has_init) {
            if (h.args_size > size - sizeof h) detail::raise(serialization_error("multiproc: a malformed open message"));
            const remote_init_fn* fn = code_registry<remote_init_fn>::instance().find(h.init_id, h.init_signature);
            if (!fn)
                detail::raise(error("multiproc: a worker on rank " + std::to_string(job().rank) +
                                    " does not know the pool's initializer (a different build?)"));
            (*fn)(in + sizeof h, static_cast<std::size_t>(h.args_size));
        }
    } MULTIPROC_CATCH_ALL {
        init_failed_message(out);
        return;
    }
    opened_header r{};
    r.kind = msg_opened;
    r.pid = ::getpid();
    r.host_size = checked_size(host.size());
    out.append(&r, sizeof r);
    out.append(host.data(), host.size());
    pad_message(out, 0);
    r.size = checked_size(out.size());
    std::memcpy(out.data(), &r.size, sizeof r.size);
}

/// The worker_shared of a rank's local worker process, in memory it shares with its rank:
/// run_task keeps `element` there, which the rank reads when the process dies (and, for a
/// timed unit, as it goes). Crosses into the process as an argument.
class progress_cell {
public:
    [[nodiscard]] static progress_cell make() {
        progress_cell c;
        c.cell_ = shared_ptr_in_arena<worker_shared>::make(0);
        return c;
    }
    [[nodiscard]] worker_shared& operator*() const noexcept { return *cell_; }
    void cross_out(crossing_writer& w) const { cell_.cross_out(w); }
    static progress_cell cross_in(crossing_reader& r) {
        progress_cell c;
        c.cell_ = shared_ptr_in_arena<worker_shared>::cross_in(r);
        return c;
    }

private:
    shared_ptr_in_arena<worker_shared> cell_;
};

/// How a rank and its local worker process talk: raw messages, the same bytes as over MPI.
using local_link = basic_connection<std::vector<std::byte>>;

inline std::span<const std::byte> bytes_of(const byte_buffer& b) noexcept { return {b.data(), b.size()}; }

/// The life of a rank's local worker process (one per channel): open (the initializer),
/// then tasks, each answered, until msg_close. Ctrl-C is for rank 0 to act on, as in a pool
/// worker; SIGTERM ends it.
inline void local_worker_main(local_link link, progress_cell cell, std::string host, int rank, int size) {
    (void)sys::ignore_sigint_in_worker();
    job().served_rank = rank; // (what mpi_rank() says in its tasks)
    job().size = size;
    worker_boot b;
    b.self = &*cell;
    b.in_thread = true; // (no wake descriptor, no rings: it answers through `link`)
    byte_buffer out, errors;
    for (;;) {
        const std::vector<std::byte> in = link.recv_bytes(); // (eof_error if the rank is gone)
        const std::uint32_t kind = in.size() >= 8 ? load_pod<std::uint32_t>(in.data() + 4) : 0;
        if (kind == msg_open) {
            if (in.size() >= sizeof(open_header) && load_pod<open_header>(in.data()).has_init)
                (*cell).phase.store(worker_in_initializer, std::memory_order_release);
            open_channel(in.data(), in.size(), out, host);
            (*cell).phase.store(worker_running, std::memory_order_release);
            link.send_bytes(bytes_of(out));
            if (kind_of(out) == msg_init_failed) return;
        } else if (kind == msg_task && in.size() >= sizeof(task_header)) {
            run_task(b, in.data(), in.size(), errors, out);
            link.send_bytes(bytes_of(out));
        } else {
            return; // msg_close
        }
    }
}

/// A rank's local worker process, and what the rank knows of it.
struct local_worker {
    int tag = 0; // its channel
    std::variant<std::monostate, basic_process<multiproc::start::forkserver>, basic_process<multiproc::start::spawn>> proc;
    std::optional<local_link> link; // (set once the process is started)
    progress_cell cell = progress_cell::make();
    bool dead = false;           // it died (rank 0 was told); the channel stays until rank 0 ends it
    bool timed = false;          // it runs a unit whose elements are timed: tell rank 0 each one
    std::uint64_t told_unit = 0; // the unit and element rank 0 last heard of
    std::uint64_t told_element = 0;

    /// Kills it (if `kill`) and waits for it; its exit status, negative for a signal.
    int end(bool kill) {
        return std::visit([&](auto& p) -> int {
            if constexpr (requires { p.join(); }) {
                MULTIPROC_TRY {
                    if (kill) p.kill();
                    p.join();
                    return p.exitcode().value_or(-SIGKILL);
                } MULTIPROC_CATCH(const error&, unnamed_) {
                }
                return -SIGKILL;
            } else {
                return 0;
            }
        }, proc);
    }
};

template <class Start>
void start_local_worker(local_worker& w, local_link theirs) {
    process_options o;
    o.name = "RankWorker-" + std::to_string(w.tag) + " (rank " + std::to_string(job().rank) + ")";
    o.daemon = true; // (it dies with its rank)
    auto& p = w.proc.template emplace<basic_process<Start>>(o, fn<&local_worker_main>, theirs, w.cell, job().host,
                                                              job().rank, job().size);
    p.start();
}

/// Starts a worker process for the channel that `open` opens, and hands it the message (it
/// runs the initializer and answers). Returns it, or nothing if it could not start: then the
/// channel's answer (msg_init_failed naming why) has been sent.
inline std::unique_ptr<local_worker> open_local(int tag, const byte_buffer& open, byte_buffer& out) {
    MULTIPROC_TRY {
        auto w = std::make_unique<local_worker>();
        w->tag = tag;
        auto [mine, theirs] = multiproc::pipe<std::vector<std::byte>>();
        w->link.emplace(std::move(mine));
        if (load_pod<open_header>(open.data()).runs_in == run_in_spawn_child)
            start_local_worker<multiproc::start::spawn>(*w, theirs);
        else
            start_local_worker<multiproc::start::forkserver>(*w, theirs);
        theirs.close(); // (so that its end of file is the process's)
        w->link->send_bytes(bytes_of(open));
        return w;
    } MULTIPROC_CATCH_ALL {
        // The pool breaks, naming why (its engine takes it as a failed start of the worker).
        auto [type, what] = describe_current_exception();
        init_failed_message(out, type,
                            "multiproc: rank " + std::to_string(job().rank) +
                                " could not start a worker process for the pool's tasks: " + what);
        send(0, tag, out);
    }
    return nullptr;
}

/// Writes `msg` to a local worker's pipe; if the process has died, its end of file says so
/// when the rank next looks.
inline void tell(local_worker& w, const byte_buffer& msg) {
    MULTIPROC_TRY {
        w.link->send_bytes(bytes_of(msg));
    } MULTIPROC_CATCH(const error&, unnamed_) {
    }
}

/// Hands what rank 0 sent on a local worker's channel to it: a task, or the channel's end.
/// Returns false once the channel is over. (A task for a worker that has died is dropped:
/// rank 0 hears of the death before any answer, and settles the task.)
inline bool pass_to_local(local_worker& w, const byte_buffer& msg) {
    const std::uint32_t kind = kind_of(msg);
    if (w.dead) {
        if (kind != msg_close && kind != msg_kill) return true;
        send_note(0, w.tag, msg_closed);
        return false;
    }
    if (kind == msg_task && msg.size() >= sizeof(task_header)) {
        const auto h = load_pod<task_header>(msg.data());
        w.timed = (h.flags & task_timed) != 0;
        w.told_unit = h.seq;
        w.told_element = h.lo;
        tell(w, msg);
        return true;
    }
    if (kind == msg_close) tell(w, msg);
    (void)w.end(kind != msg_close); // msg_close: it leaves at once (it is idle); msg_kill: killed
    send_note(0, w.tag, msg_closed);
    return false;
}

/// Carries what a local worker sent to rank 0: a result, or its death (the unit and element
/// it was on, as run_task left them in its progress cell).
inline void pass_from_local(local_worker& w) {
    std::vector<std::byte> m;
    bool got = false;
    MULTIPROC_TRY {
        m = w.link->recv_bytes();
        got = m.size() >= 8;
    } MULTIPROC_CATCH(const error&, unnamed_) {
    }
    if (got) {
        if (load_pod<std::uint32_t>(m.data() + 4) == msg_result) w.timed = false; // (no progress left to tell)
        send(0, w.tag, m.data(), m.size());
        return;
    }
    // End of file: the process died (a task crashed it, or it was killed from outside).
    const worker_shared& c = *w.cell;
    const std::uint64_t unit = c.unit.load(std::memory_order_acquire);
    const std::uint64_t element = c.element.load(std::memory_order_acquire);
    const std::uint32_t phase = c.phase.load(std::memory_order_acquire);
    w.dead = true;
    w.timed = false;
    // (Killed too: a process that closed its end of the pipe and went on would keep the rank
    // waiting for it.)
    send_note(0, w.tag, msg_died, w.end(true), unit, element, phase);
}

/// What tend_locals polls, kept from one call to the next (the agent's idle loop calls it
/// about a thousand times a second).
struct local_poll {
    std::vector<pollfd> fds;
    std::vector<local_worker*> who;
};

/// The local workers of a rank: waits at most `ns` for one to say something, carries what
/// they say to rank 0, and tells rank 0 where a timed unit is. Returns whether any spoke.
inline bool tend_locals(std::vector<std::unique_ptr<local_worker>>& locals, std::uint64_t ns, local_poll& polled) {
    bool spoke = false;
    for (auto& w : locals) {
        if (!w->timed || w->dead) continue;
        const worker_shared& c = *w->cell;
        if (c.unit.load(std::memory_order_acquire) != w->told_unit) continue;
        const std::uint64_t e = c.element.load(std::memory_order_acquire);
        if (e != w->told_element) {
            w->told_element = e;
            send_note(0, w->tag, msg_progress, 0, w->told_unit, e);
        }
    }
    auto& [fds, who] = polled;
    fds.clear();
    who.clear();
    for (auto& w : locals) {
        if (w->dead) continue;
        fds.push_back({w->link->fileno(), POLLIN, 0});
        who.push_back(w.get());
    }
    if (sys::poll_for(fds.data(), fds.size(), ns) <= 0) return spoke;
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        spoke = true;
        pass_from_local(*who[i]);
    }
    return spoke;
}

/// The life of ranks 1..R: run what rank 0 sends, in order, until it says the job is over. A
/// channel of ext::start::mpi<in_rank> runs its tasks here, one at a time; one of
/// mpi<forkserver|spawn> in a worker process of its own, so that many run at once and a task
/// that crashes its process fails alone.
inline void serve() {
    worker_shared progress{}; // (run_task records where it is; nobody reads it here)
    worker_boot b;
    b.self = &progress;
    b.in_thread = true;
    byte_buffer in, out, errors;
    std::vector<std::unique_ptr<local_worker>> locals;
    local_poll polled;
    const auto local_of = [&](int tag) -> std::ptrdiff_t {
        for (std::size_t i = 0; i < locals.size(); ++i)
            if (locals[i]->tag == tag) return static_cast<std::ptrdiff_t>(i);
        return -1;
    };
    for (backoff wait;;) {
        const int tag = try_receive(0, MPI_ANY_TAG, in);
        if (tag >= 0) {
            wait = backoff();
            const std::uint32_t kind = kind_of(in);
            if (tag == control_tag) {
                if (kind != msg_exit) continue;
                for (auto& w : locals) (void)w->end(true);
                return;
            }
            if (const std::ptrdiff_t i = local_of(tag); i >= 0) {
                if (!pass_to_local(*locals[static_cast<std::size_t>(i)], in)) locals.erase(locals.begin() + i);
            } else if (kind == msg_open && in.size() >= sizeof(open_header) &&
                       load_pod<open_header>(in.data()).runs_in != run_in_rank) {
                if (auto w = open_local(tag, in, out)) locals.push_back(std::move(w));
            } else if (kind == msg_open) {
                open_channel(in.data(), in.size(), out, job().host);
                send(0, tag, out);
            } else if (kind == msg_task && in.size() >= sizeof(task_header)) {
                run_task(b, in.data(), in.size(), errors, out);
                send(0, tag, out);
            } else if (kind == msg_close || kind == msg_kill) { // (a channel of in_rank, or one never opened here)
                send_note(0, tag, msg_closed);
            } else {
                abort_job("multiproc: rank " + std::to_string(job().rank) + " got a message of kind " +
                          std::to_string(kind) + " from rank 0 (a different build?)");
            }
        }
        if (!locals.empty()) {
            if (tend_locals(locals, tag >= 0 ? 0 : wait.next_ns(), polled)) wait = backoff();
        } else if (tag < 0) {
            wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rank 0: the threads that stand for the workers of a pool.

/// The rank with the fewest workers of rank 0's pools, and a channel of its own.
inline std::pair<int, int> take_slot() {
    job_state& j = job();
    std::lock_guard lk(j.mu);
    int best = 1;
    for (int r = 2; r < j.size; ++r)
        if (j.load[static_cast<std::size_t>(r)] < j.load[static_cast<std::size_t>(best)]) best = r;
    ++j.load[static_cast<std::size_t>(best)];
    if (j.next_channel >= j.tag_ub) j.next_channel = 1; // (after ~8 million workers; a channel long closed)
    return {best, j.next_channel++};
}

inline void give_back_slot(int rank) {
    job_state& j = job();
    std::lock_guard lk(j.mu);
    --j.load[static_cast<std::size_t>(rank)];
}

inline std::string next_worker_name() {
    job_state& j = job();
    std::lock_guard lk(j.mu);
    return "RankWorker-" + std::to_string(j.next_name++);
}

/// The channels rank 0's threads have left, on which a rank may still answer (a unit that was
/// running, a death) until its msg_closed; a thread of rank 0 receives and drops all that, so
/// that no rank waits for a receiver that has left. (Made once, never destroyed: the job's end,
/// an atexit handler, still uses it.)
struct drain_state {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<int, int>> channels; // (rank, tag)
    std::thread thread;
    bool stop = false; // the job ends: leave once every channel is closed
};

inline drain_state& drains() {
    static drain_state& d = *new drain_state;
    return d;
}

inline void drain_main() {
    drain_state& d = drains();
    byte_buffer msg;
    std::unique_lock lk(d.mu);
    for (backoff wait;;) {
        if (d.channels.empty()) {
            if (d.stop) return;
            d.cv.wait(lk, [&] { return d.stop || !d.channels.empty(); });
            wait = backoff();
            continue;
        }
        const std::vector<std::pair<int, int>> now = d.channels;
        lk.unlock();
        bool got = false;
        std::vector<std::pair<int, int>> closed;
        for (const auto& [rank, tag] : now) {
            while (try_receive(rank, tag, msg) >= 0) {
                got = true;
                if (kind_of(msg) == msg_closed) {
                    closed.emplace_back(rank, tag);
                    break;
                }
            }
        }
        if (!got) wait();
        lk.lock();
        if (got) wait = backoff();
        for (const auto& c : closed) std::erase(d.channels, c);
    }
}

/// Ends the channel `tag` to `rank` (msg_close, or msg_kill), and leaves what may still come on
/// it to the drain thread.
inline void end_channel(int rank, int tag, std::uint32_t how) {
    send_note(rank, tag, how);
    drain_state& d = drains();
    std::lock_guard lk(d.mu);
    d.channels.emplace_back(rank, tag);
    if (!d.thread.joinable()) d.thread = std::thread(&drain_main);
    d.cv.notify_one();
}

/// The body of the thread that stands for one worker: opens a channel to a rank (which runs
/// the pool's initializer), then carries each unit of the worker's task ring there and its
/// result back, one unit at a time, so the pool's engine sees a worker like any other.
/// Told to stop now (terminate()), it leaves without waiting for the unit running there (the
/// channel's end, msg_kill, leaves its answer to the drain thread). Where the tasks run in a
/// worker process of the rank (b.remote names how it starts), that ends the process, and if
/// the process dies the thread returns its exit status, with `unit` and `element` saying
/// where it died.
inline int relay_main(const worker_boot& b) {
    const std::uint32_t runs_in = b.remote ? *static_cast<const std::uint32_t*>(b.remote) : run_in_rank;
    const bool local = runs_in != run_in_rank;
    // (Not a structured binding: the lambdas below capture both, which Clang 14 refuses.)
    const std::pair<int, int> slot = take_slot();
    const int rank = slot.first, channel = slot.second;
    struct slot_guard {
        int rank;
        ~slot_guard() { give_back_slot(rank); }
    } guard{rank};
    worker_shared& self = *b.self;
    const auto stop_now = [&] { return self.stop.load(std::memory_order_acquire) == worker_stop_now; };
    byte_buffer msg;
    {
        open_header h{};
        h.kind = msg_open;
        h.runs_in = runs_in;
        if (b.init) {
            h.has_init = 1;
            h.init_id = b.init->id;
            h.init_signature = b.init->signature;
            h.args_size = b.init->args.size();
            self.phase.store(worker_in_initializer, std::memory_order_release);
        }
        msg.append(&h, sizeof h);
        if (b.init) msg.append(b.init->args.data(), b.init->args.size());
        pad_message(msg, 0);
        h.size = checked_size(msg.size());
        std::memcpy(msg.data(), &h.size, sizeof h.size);
    }
    send(rank, channel, msg);
    if (receive(rank, channel, msg, stop_now) < 0) {
        end_channel(rank, channel, msg_kill);
        return local ? -SIGKILL : 0;
    }
    if (kind_of(msg) == msg_died) { // (in its initializer, or before)
        const auto note = load_pod<channel_note>(msg.data());
        self.phase.store(note.phase, std::memory_order_release);
        end_channel(rank, channel, msg_close);
        return note.status;
    }
    if (kind_of(msg) == msg_init_failed) {
        end_channel(rank, channel, msg_close);
        // (Also when the rank could not start the worker process: a failed start of the worker.)
        self.phase.store(worker_in_initializer, std::memory_order_release);
        send_to_parent(b, msg);
        return 1;
    }
    const auto opened = load_pod<opened_header>(msg.data());
    b.place->host.assign(reinterpret_cast<const char*>(msg.data() + sizeof opened), opened.host_size);
    b.place->pid = opened.pid;
    b.place->rank = rank; // (published to the engine with the first result)
    self.phase.store(worker_running, std::memory_order_release);
    std::optional<int> died; // the status of the rank's worker process, if it died
    const int code = serve_tasks(b, [&](const std::byte* m, std::size_t n, byte_buffer& out) {
        const auto h = load_pod<task_header>(m);
        (void)note_unit_start(b, h);
        send(rank, channel, m, n);
        for (;;) {
            if (receive(rank, channel, out, stop_now) < 0) return false;
            const std::uint32_t kind = kind_of(out);
            if (kind != msg_progress && kind != msg_died) return true;
            const auto note = load_pod<channel_note>(out.data());
            if (kind == msg_progress) {
                if (note.unit != h.seq) continue; // (of the unit before, told after its result)
                self.element_started_ns.store(static_cast<std::uint64_t>(steady::now().time_since_epoch().count()),
                                              std::memory_order_relaxed);
                self.element.store(note.element, std::memory_order_release);
                continue;
            }
            // Died: on this unit, at that element; or (killed from outside while idle) before
            // it started this one, which then runs elsewhere, whole.
            self.element.store(note.element, std::memory_order_relaxed);
            self.unit.store(note.unit, std::memory_order_release);
            died = note.status;
            return false;
        }
    });
    if (stop_now() && !died) {
        end_channel(rank, channel, msg_kill);
        return local ? -SIGKILL : code;
    }
    end_channel(rank, channel, msg_close);
    return died.value_or(code);
}

// ---------------------------------------------------------------------------------------
// The start of every rank.

/// Rank 0 leaves: every worker rank leaves its serve loop, and MPI ends on all of them.
inline void finish_rank0() noexcept {
    job_state& j = job();
    if (!j.running || ::getpid() != j.pid) return; // (a forked child that runs atexit handlers is not rank 0)
    j.running = false;
    { // What rank 0's threads left on their channels: taken until every rank has closed them
      // (under in_rank, once the unit a rank still runs is over).
        drain_state& d = drains();
        std::unique_lock lk(d.mu);
        d.stop = true;
        d.cv.notify_one();
        lk.unlock();
        if (d.thread.joinable()) d.thread.join();
    }
    const std::uint32_t bye[2] = {8, msg_exit};
    for (int r = 1; r < j.size; ++r) send(r, control_tag, reinterpret_cast<const std::byte*>(bye), sizeof bye);
    MPI_Comm_free(&j.comm);
    MPI_Finalize();
}

/// Every rank tells rank 0 which build it runs; rank 0 ends the job if they differ.
inline void check_same_build() {
    job_state& j = job();
    build_card mine{};
    const std::string id = build_id();
    std::memcpy(mine.build_id, id.data(), std::min(id.size(), sizeof mine.build_id - 1));
    mine.targets = registry_hash();
    mine.invokers = code_registry<invoker_fn>::instance().hash();
    mine.initializers = code_registry<remote_init_fn>::instance().hash();
    std::vector<build_card> all(j.rank == 0 ? static_cast<std::size_t>(j.size) : 0);
    MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, j.comm);
    for (int r = 1; r < static_cast<int>(all.size()); ++r) {
        const build_card& c = all[static_cast<std::size_t>(r)];
        const auto named = [](const build_card& k) {
            return k.build_id[0] ? std::string(k.build_id) : std::string("none");
        };
        if (std::strncmp(c.build_id, mine.build_id, sizeof mine.build_id) != 0 || c.targets != mine.targets ||
            c.invokers != mine.invokers || c.initializers != mine.initializers)
            abort_job("multiproc: rank " + std::to_string(r) + " of this MPI job runs a different build of the program "
                      "than rank 0 (build-id " + named(c) + ", rank 0's " + named(mine) +
                      "): every rank that serves a pool of ext::start::mpi must run the same executable");
    }
}

/// freeze_support()'s part (detail::freeze_support_hook): under an MPI launcher, starts MPI;
/// on ranks 1.. serves tasks and ends the process; on rank 0 returns, and MPI ends with it.
inline void enter() {
    job_state& j = job();
    j.hook_ran = true;
    if (j.running || !under_launcher()) return;
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (provided < MPI_THREAD_MULTIPLE)
        abort_job("multiproc: this MPI library does not allow calls from several threads at once "
                  "(MPI_THREAD_MULTIPLE), which the threads that stand for a pool's workers need");
    MPI_Comm_dup(MPI_COMM_WORLD, &j.comm);
    MPI_Comm_rank(j.comm, &j.rank);
    MPI_Comm_size(j.comm, &j.size);
    void* ub = nullptr;
    int flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
    if (flag && ub) j.tag_ub = *static_cast<int*>(ub);
    char host[MPI_MAX_PROCESSOR_NAME] = {};
    int host_len = 0;
    MPI_Get_processor_name(host, &host_len);
    j.host.assign(host, static_cast<std::size_t>(host_len));
    j.load.assign(static_cast<std::size_t>(j.size), 0);
    j.pid = ::getpid();
    j.running = true;
    check_same_build();
    if (j.rank == 0) {
        std::atexit(&finish_rank0);
        return;
    }
    serve();
    MPI_Comm_free(&j.comm);
    MPI_Finalize();
    std::exit(0);
}

/// Installs enter() as freeze_support()'s hook, before main() runs, in every program that
/// includes this header.
inline const bool hook_installed = (freeze_support_hook = &enter, true);

/// Why a pool of ext::start::mpi cannot start here, or empty if it can.
inline std::string why_no_pool() {
    const job_state& j = job();
    // (First: a worker process of a rank has not run the hook, and a rank's task must not
    // wait on ranks that serve rank 0 and never answer it.)
    if (j.served_rank >= 0 || (j.running && j.rank != 0))
        return "a pool of ext::start::mpi can be made only on rank 0 of the MPI job, whose main() the other ranks "
               "serve; this is " +
               std::string(j.served_rank >= 0 ? "a worker process of " : "") + "rank " +
               std::to_string(j.served_rank >= 0 ? j.served_rank : j.rank) +
               ", which runs rank 0's tasks: a task cannot make a pool of ext::start::mpi (use a pool of another "
               "start method there)";
    if (!j.hook_ran && under_launcher())
        return "a pool of ext::start::mpi needs main() to call multiproc::freeze_support() first: there the ranks "
               "other than 0 start serving the pool's tasks";
    if (!j.running)
        return "a pool of ext::start::mpi runs its workers on the other ranks of an MPI job, but this program was not "
               "started by an MPI launcher: start it as `mpiexec -n 3 <program> [args]` (rank 0 runs main(), ranks 1 "
               "and 2 the tasks), with multiproc::freeze_support() first in main()";
    if (j.size < 2)
        return "a pool of ext::start::mpi needs ranks to run its tasks, but this MPI job has only rank 0: start it with "
               "`mpiexec -n 2` or more";
    return {};
}

} // namespace detail::mpi

namespace ext::start {

/// The Local policy of ext::start::mpi that runs tasks in the rank itself (mpi4py.futures'
/// model): the lowest latency, but a task that crashes its process ends the rank, and with
/// it the whole MPI job (the launcher ends every rank and says which one died); a task
/// cannot be stopped (no task timeout, cancel(kill_running) leaves a running task to finish).
struct in_rank {
    static constexpr std::string_view name = "in_rank";
};

} // namespace ext::start

namespace detail::mpi {
/// What tells a channel's rank how `Local` runs its tasks (pool_config::thread_context).
template <class Local>
inline constexpr std::uint32_t runs_in = std::is_same_v<Local, ext::start::in_rank>        ? run_in_rank
                                         : std::is_same_v<Local, multiproc::start::spawn> ? run_in_spawn_child
                                                                                           : run_in_forkserver_child;
} // namespace detail::mpi

namespace ext::start {

/// A pool's workers are the ranks 1..R of the MPI job this program was started as
/// (`mpiexec -n 1+R ./app`), where `Local` runs the tasks: start::forkserver (the default) or
/// start::spawn, in a worker process of the rank started so, one per worker of the pool, so
/// that a task that crashes its process fails alone (broken_pool naming the task, or run
/// again under worker_death::retry<N>) and a new process takes its place, exactly as on one
/// machine; task timeouts and cancel(kill_running) kill that process. ext::start::in_rank
/// runs the tasks in the rank itself: lower latency, but a crash ends the job. A pool has one
/// worker per rank by default. Only pools take it: a single process cannot be started on
/// another rank.
template <class Local = multiproc::start::forkserver>
struct mpi {
    using policy_kind = multiproc::kind::start;
    static constexpr std::string_view name = "mpi";
    /// The ranks are copies of the program started by the launcher: spawn's rules apply.
    static constexpr bool inherits_memory = false;
    /// The workers are on other ranks (what basic_pool looks for).
    static constexpr bool remote = true;
    using local = Local;
    static_assert(!std::is_same_v<Local, multiproc::start::fork> && !std::is_same_v<Local, multiproc::start::thread>,
                  "multiproc: ext::start::mpi<Local> runs tasks on each rank in a local pool of start method Local, "
                  "which cannot be start::fork (a rank that has started MPI must not fork copies of itself that run "
                  "tasks) nor start::thread: use start::forkserver, start::spawn or ext::start::in_rank");
    static_assert(std::is_same_v<Local, in_rank> || std::is_same_v<Local, multiproc::start::forkserver> ||
                      std::is_same_v<Local, multiproc::start::spawn>,
                  "multiproc: ext::start::mpi<Local> takes start::forkserver, start::spawn or ext::start::in_rank");

    /// Why a task cannot be given a timeout (pool_options::task_timeout, task_options), or
    /// empty if it can.
    static constexpr std::string_view unstoppable_why =
        std::is_same_v<Local, in_rank>
            ? "a pool of ext::start::mpi<in_rank> cannot stop a task that runs too long (it runs in an MPI rank, which "
              "cannot be killed without ending the job): use ext::start::mpi<start::forkserver>"
            : "";

    template <class Child>
    static pid_t launch(Child&) noexcept {
        static_assert(sizeof(Child) == 0,
                      "multiproc: ext::start::mpi starts the workers of a pool on the ranks of an MPI job; a single "
                      "process cannot be started on another rank: use basic_pool<ext::start::mpi<...>>");
        return -1;
    }

    /// Sets up a pool's engine: one worker per serving rank unless `processes` was given,
    /// each a thread of rank 0 running detail::mpi::relay_main. state_error with the reason
    /// if the pool cannot run here (not under an MPI launcher, no freeze_support(), one rank).
    static void configure_pool(detail::pool_config& cfg, bool processes_given) {
        static_cast<void>(detail::mpi::hook_installed);
        if (std::string why = detail::mpi::why_no_pool(); !why.empty()) detail::raise(state_error("multiproc: " + why));
        if (!processes_given) cfg.processes = detail::mpi::job().size - 1;
        cfg.threads = true;
        cfg.thread_main = &detail::mpi::relay_main;
        cfg.thread_name = &detail::mpi::next_worker_name;
        cfg.thread_context = const_cast<std::uint32_t*>(&detail::mpi::runs_in<Local>); // (read only)
        cfg.threads_stoppable = !std::is_same_v<Local, in_rank>;
    }
};

} // namespace ext::start

/// The rank of this process in the MPI job multiproc::freeze_support() started, or -1 if
/// the program was not started by an MPI launcher (or main() does not call it). In a worker
/// process of a rank (ext::start::mpi<forkserver|spawn>), where the tasks of that rank run:
/// the rank.
inline int mpi_rank() noexcept {
    const auto& j = detail::mpi::job();
    if (j.served_rank >= 0) return j.served_rank;
    return j.running && ::getpid() == j.pid ? j.rank : -1;
}
/// The number of ranks of that job (1 when there is none).
inline int mpi_size() noexcept {
    const auto& j = detail::mpi::job();
    return j.running || j.served_rank >= 0 ? j.size : 1;
}

MULTIPROC_ABI_END } // namespace multiproc
