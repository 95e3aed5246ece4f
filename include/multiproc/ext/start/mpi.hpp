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
#include <multiproc/error.hpp>
#include <multiproc/policies/kinds.hpp>
#include <multiproc/policies/start.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

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
// the control tag, msg_exit; on a channel's tag (one per worker of a pool, never reused),
// msg_open once, then the pool's task messages (pool_wire's task_header), each answered on
// the same tag by a result message (result_header). Every message starts with its size and
// kind, as the pool's do; one over piece_bytes travels as several MPI messages.

enum : std::uint32_t { msg_open = 16, msg_opened = 17, msg_exit = 18 };
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
    void operator()() noexcept {
        if (++rounds_ < 64) {
            cpu_relax();
            return;
        }
        timespec ts{0, static_cast<long>(std::min<std::uint64_t>(std::uint64_t{1000} << std::min(rounds_ / 64, 10U), 1'000'000))};
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

/// Receives the next message from `src` on `tag` (any tag: MPI_ANY_TAG) into `out`; returns
/// its tag, or -1 if `stop()` became true first.
template <class Stop>
int receive(int src, int tag, byte_buffer& out, Stop&& stop) {
    const MPI_Comm comm = job().comm;
    MPI_Message m;
    MPI_Status st;
    int found = 0;
    for (backoff wait;; wait()) {
        MPI_Improbe(src, tag, comm, &found, &m, &st);
        if (found) break;
        if (stop()) return -1;
    }
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

inline std::uint32_t kind_of(const byte_buffer& msg) noexcept { return load_pod<std::uint32_t>(msg.data() + 4); }

// ---------------------------------------------------------------------------------------
// A worker rank.

/// Runs the initializer an open message carries, if any; builds the answer in `out`.
inline void open_channel(const byte_buffer& in, byte_buffer& out) {
    out.clear();
    MULTIPROC_TRY {
        if (in.size() < sizeof(open_header))
            detail::raise(serialization_error("multiproc: a malformed open message"));
        const auto h = load_pod<open_header>(in.data());
        if (h.has_init) {
            if (h.args_size > in.size() - sizeof h)
                detail::raise(serialization_error("multiproc: a malformed open message"));
            const remote_init_fn* fn = code_registry<remote_init_fn>::instance().find(h.init_id, h.init_signature);
            if (!fn)
                detail::raise(error("multiproc: rank " + std::to_string(job().rank) +
                                    " does not know the pool's initializer (a different build?)"));
            (*fn)(in.data() + sizeof h, static_cast<std::size_t>(h.args_size));
        }
    } MULTIPROC_CATCH_ALL {
        init_failed_message(out);
        return;
    }
    opened_header r{};
    r.kind = msg_opened;
    r.pid = ::getpid();
    r.host_size = checked_size(job().host.size());
    out.append(&r, sizeof r);
    out.append(job().host.data(), job().host.size());
    pad_message(out, 0);
    r.size = checked_size(out.size());
    std::memcpy(out.data(), &r.size, sizeof r.size);
}

/// The life of ranks 1..R: run what rank 0 sends, in order, until it says the job is over.
inline void serve() {
    worker_shared progress{}; // (run_task records where it is; nobody reads it here)
    worker_boot b;
    b.self = &progress;
    b.in_thread = true;
    byte_buffer in, out, errors;
    for (;;) {
        const int tag = receive(0, MPI_ANY_TAG, in, [] { return false; });
        const std::uint32_t kind = kind_of(in);
        if (tag == control_tag) {
            if (kind == msg_exit) return;
            continue;
        }
        if (kind == msg_open) {
            open_channel(in, out);
        } else if (kind == msg_task && in.size() >= sizeof(task_header)) {
            run_task(b, in.data(), in.size(), errors, out);
        } else {
            abort_job("multiproc: rank " + std::to_string(job().rank) + " got a message of kind " +
                      std::to_string(kind) + " from rank 0 (a different build?)");
        }
        send(0, tag, out);
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

/// The body of the thread that stands for one worker: opens a channel to a rank (which runs
/// the pool's initializer), then carries each unit of the worker's task ring there and its
/// result back, one unit at a time, so the pool's engine sees a worker like any other.
/// Told to stop now (terminate()), it leaves without waiting for the unit running there.
inline int relay_main(const worker_boot& b) {
    const auto [rank, channel] = take_slot();
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
    if (receive(rank, channel, msg, stop_now) < 0) return 0;
    if (kind_of(msg) == msg_init_failed) {
        send_to_parent(b, msg);
        return 1;
    }
    const auto opened = load_pod<opened_header>(msg.data());
    b.place->host.assign(reinterpret_cast<const char*>(msg.data() + sizeof opened), opened.host_size);
    b.place->pid = opened.pid;
    b.place->rank = rank; // (published to the engine with the first result)
    self.phase.store(worker_running, std::memory_order_release);
    return serve_tasks(b, [&](const std::byte* m, std::size_t n, byte_buffer& out) {
        (void)note_unit_start(b, load_pod<task_header>(m));
        send(rank, channel, m, n);
        return receive(rank, channel, out, stop_now) >= 0;
    });
}

// ---------------------------------------------------------------------------------------
// The start of every rank.

/// Rank 0 leaves: every worker rank leaves its serve loop, and MPI ends on all of them.
inline void finish_rank0() noexcept {
    job_state& j = job();
    if (!j.running || ::getpid() != j.pid) return; // (a forked child that runs atexit handlers is not rank 0)
    j.running = false;
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

/// A pool's workers are the ranks 1..R of the MPI job this program was started as
/// (`mpiexec -n 1+R ./app`), where `Local` runs the tasks: ext::start::in_rank, in the rank
/// itself. (A pool of start::forkserver or start::spawn on each rank, whose workers may
/// crash without ending the job, is not there yet.) A pool has one worker per rank by
/// default. Only pools take it: a single process cannot be started on another rank.
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
    static_assert(std::is_same_v<Local, in_rank>,
                  "multiproc: ext::start::mpi with a local pool of processes on each rank is not implemented yet; use "
                  "ext::start::mpi<ext::start::in_rank>, which runs the tasks in the ranks themselves");

    /// Why a task cannot be given a timeout (pool_options::task_timeout, task_options).
    static constexpr std::string_view unstoppable_why =
        "a pool of ext::start::mpi<in_rank> cannot stop a task that runs too long (it runs in an MPI rank, which "
        "cannot be killed without ending the job)";

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
    }
};

} // namespace ext::start

/// The rank of this process in the MPI job multiproc::freeze_support() started, or -1 if
/// the program was not started by an MPI launcher (or main() does not call it).
inline int mpi_rank() noexcept {
    const auto& j = detail::mpi::job();
    return j.running && ::getpid() == j.pid ? j.rank : -1;
}
/// The number of ranks of that job (1 when there is none).
inline int mpi_size() noexcept { return detail::mpi::job().running ? detail::mpi::job().size : 1; }

MULTIPROC_ABI_END } // namespace multiproc
