// Not part of the API: the parent's side of a pool (Python: the three handler threads of
// multiprocessing.Pool and its cache). One engine thread per pool forks the workers (so
// that PR_SET_PDEATHSIG, which follows the forking thread, lasts as long as the pool),
// watches their pidfds and an eventfd, replaces dead workers, and runs callbacks. Tasks do
// not go through it: the thread that submits work writes it straight into a worker's task
// ring, and a thread waiting for a result collects results itself while it spins.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/start/bootstrap.hpp>
#include <multiproc/detail/pool/byte_ring.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/pool/pool_codec.hpp>
#include <multiproc/detail/pool/pool_wire.hpp>
#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <condition_variable>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <string.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// One thing that happened to a pool's tasks, as a pool observer sees it
/// (pool_options::observer, basic_pool::observe). Counts are of tasks: a map's chunk counts
/// its elements.
struct pool_event {
    /// What happened: `queued` (submitted; no worker yet), `started` (a worker began them: known
    /// when they are handed to an idle worker, or when the work before them on that worker
    /// finished), `finished` (a result came back), `failed` (the task raised, its worker
    /// died, it ran past its timeout, or the pool stopped), `cancelled` (cancelled_error).
    /// Tasks taken back from a busy worker, or run again after their worker died
    /// (worker_death::retry), start again; at the end, queued = finished + failed + cancelled.
    enum class kind : std::uint8_t { queued, started, finished, failed, cancelled };
    kind what;
    /// How many tasks.
    std::uint64_t tasks;
    /// The worker concerned (its pid and name, e.g. ForkPoolWorker-3); 0 and empty when none is.
    pid_t worker;
    std::string_view worker_name;
};

/// Watches a pool's tasks. Called with the pool's lock held, so calls never overlap, before
/// the results concerned can be seen, from the thread that made the event happen (one that
/// submits, cancels, or collects results: the pool's engine, or a thread waiting for a
/// result): it must be quick, must not take a lock a caller of the pool may hold, and must
/// not call into the pool (state_error if it does). An exception it throws is reported on
/// stderr and ignored.
using pool_observer = std::function<void(const pool_event&)>;

namespace detail {

struct job_core;

/// A piece of work as the parent tracks it: elements [lo, hi) of a chunk whose element 0
/// has index `first` in its job's input. Its message is `size` bytes: the first `own` of
/// them live in a byte queue beside it (the pool's queue, then its worker's log); then, for
/// a unit that borrows its elements (a blocking map over contiguous plain values), `ext_len`
/// bytes of its job's input at `ext` (job_core::source), never copied before they go into
/// the worker's ring; then zeros to `size`.
struct unit_meta {
    job_core* job = nullptr;
    std::uint64_t first = 0;
    std::uint32_t lo = 0, hi = 0;
    std::uint32_t attempts = 0; // times a worker died running one of its elements
    std::uint32_t size = 0;     // bytes of its message
    std::uint32_t own = 0;      // of which in the byte queue (all of them, unless it borrows)
    std::uint32_t ext_len = 0;  // of which borrowed from the job's input, after the `own` ones
    std::uint64_t ext = 0;      // where in the job's input those start
    std::uint64_t seq = 0;      // its number on the worker it was sent to
    std::uint64_t stream_pos = 0; // where its message starts in the worker's stream of task bytes
    std::uint64_t log_pos = 0;    // where its own bytes start in the worker's log (a log position)
    bool withdrawn = false;       // taken back from that worker, to be skipped there
};

/// The worker a result came from, as its errors name it: its pid (on its own machine) and,
/// for a worker of another machine, where it runs.
struct worker_ref {
    pid_t pid = 0;
    const remote_place* place = nullptr;
};

/// What a kind of job does with results, as function pointers (no virtual dispatch).
struct job_ops {
    /// Decodes the results of unit `u` from its result message (called under the pool's lock).
    void (*deliver)(job_core&, const unit_meta& u, const std::byte* msg, std::size_t size, const worker_ref& worker);
    /// Element `index` ends without a result: its worker died, or the pool stopped.
    void (*fail)(job_core&, std::uint64_t index, error_ptr);
    /// Runs the user's callbacks once the job is complete (in the engine thread), or null.
    void (*callbacks)(job_core&);
};

/// The part of every job the pool sees. Guarded by the pool's lock except `ready` and
/// `changed`, which waiters read without it.
struct job_core {
    explicit job_core(const job_ops* o) noexcept : ops(o) {}
    job_core(const job_core&) = delete;
    job_core& operator=(const job_core&) = delete;

    const job_ops* ops;
    std::uint64_t outstanding = 0; // elements submitted and not yet delivered or failed
    bool open = false;             // more elements may still be submitted (imap reading input)
    bool cancelled = false;        // nobody wants the results any more
    bool has_callbacks = false;
    bool notify_each = false;      // wake waiters on every element, not only at the end
    bool dropped = false;          // cancelled by the caller: every element ends in cancelled_error
    bool settled = false;          // ready, and its done callbacks taken (add_done_callback runs at once)
    /// The longest an element may run before its worker is killed; empty: the pool's
    /// task_timeout, 0: none.
    std::optional<std::uint64_t> timeout_ns;
    std::vector<std::function<void()>> on_done; // add_done_callback, run once the job is ready
    sys::unique_fd ready_fd; // made on demand (async_result::sentinel): an eventfd readable once ready
    std::atomic<std::uint32_t> ready{0};
    notifier changed{};
    job_core* prev = nullptr;
    job_core* next = nullptr;
    std::shared_ptr<job_core> keep; // the pool's reference while the job is listed
    box_arena boxes; // start::thread: the arguments and results its messages point at
    /// The input its borrowing units take their elements from (the caller's, while a blocking
    /// map waits; `source_copy` once that caller has left early), `source_size` bytes.
    const std::byte* source = nullptr;
    std::size_t source_size = 0;
    byte_buffer source_copy;

    /// Called under the pool's lock (as ready_fd is made).
    void mark_ready() noexcept {
        ready.store(1, std::memory_order_release);
        if (ready_fd) (void)sys::eventfd_signal(ready_fd.get());
        changed.notify_all();
    }
    [[nodiscard]] bool is_ready() const noexcept { return ready.load(std::memory_order_acquire) != 0; }
};

/// Bytes appended at the back and dropped from the front.
class byte_fifo {
public:
    [[nodiscard]] std::size_t size() const noexcept { return buf_.size() - front_; }
    [[nodiscard]] const std::byte* data() const noexcept { return buf_.data() + front_; }
    [[nodiscard]] std::byte* data() noexcept { return buf_.data() + front_; }
    void append(const void* p, std::size_t n) { buf_.append(p, n); }
    void pop_front(std::size_t n) noexcept {
        front_ += n;
        if (front_ >= buf_.size()) {
            buf_.clear();
            front_ = 0;
        } else if (front_ >= (std::size_t{1} << 16) && front_ * 2 >= buf_.size()) {
            buf_.erase_front(front_);
            front_ = 0;
        }
    }
    void clear() noexcept {
        buf_.clear();
        front_ = 0;
    }
    void swap(byte_fifo& o) noexcept {
        std::swap(buf_, o.buf_);
        std::swap(front_, o.front_);
    }
    /// Takes `b`'s bytes as the whole content (this must be empty); `b` gets the old storage.
    void adopt(byte_buffer& b) noexcept {
        std::swap(buf_, b);
        b.clear();
        front_ = 0;
    }

private:
    byte_buffer buf_;
    std::size_t front_ = 0;
};

/// A pool worker that is a thread of the pool's process (start::thread): it runs worker_main
/// and, when that returns, makes its sentinel (an eventfd) readable, as a process's pidfd
/// becomes when it ends, so that the engine watches both alike.
class thread_worker {
public:
    /// Starts the thread; returns once it has its thread id. os_error if there is no
    /// descriptor for its sentinel, std::system_error if the thread cannot start.
    thread_worker(const worker_boot* b, std::string name, int (*body)(const worker_boot&) = &worker_main)
        : name_(std::move(name)) {
        done_ = sys::unique_fd(sys::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!done_) sys::fail("eventfd for a pool thread");
        std::thread t([this, b, body] {
            tid_.store(sys::gettid(), std::memory_order_release);
            tid_.notify_all();
            code_ = body(*b);
            (void)sys::eventfd_signal(done_.get());
        });
        thread_ = std::move(t);
        tid_.wait(0, std::memory_order_acquire);
    }
    thread_worker(const thread_worker&) = delete;
    thread_worker& operator=(const thread_worker&) = delete;
    ~thread_worker() {
        if (::getpid() != owner_) {
            // An inherited copy (a child forked from the pool's process): the thread is not
            // here, and neither joining nor destroying its handle would be right. Let it go.
            ::new (static_cast<void*>(&thread_)) std::thread();
            return;
        }
        if (thread_.joinable()) thread_.join();
    }

    [[nodiscard]] pid_t tid() const noexcept { return tid_.load(std::memory_order_acquire); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Readable once worker_main has returned.
    [[nodiscard]] int sentinel() const noexcept { return done_.get(); }
    /// Waits for the thread; then its exit code: 0, or 1 if the initializer threw (a thread
    /// that stands for a remote process: that process's status, negative for a signal).
    int join() {
        if (thread_.joinable()) thread_.join();
        return code_;
    }

private:
    std::string name_;
    pid_t owner_ = ::getpid();
    sys::unique_fd done_;
    std::atomic<pid_t> tid_{0};
    int code_ = 0;
    std::thread thread_;
};

/// The name of the next thread worker: CPython's ThreadPool workers are threading.Thread
/// objects named "Thread-N (worker)", numbered with the process's other threads; ours are
/// numbered among themselves.
inline std::string next_thread_worker_name() {
    static std::atomic<int> n{0};
    return "Thread-" + std::to_string(n.fetch_add(1, std::memory_order_relaxed) + 1) + " (worker)";
}

/// Everything the parent knows of one worker.
struct pool_slot {
    std::optional<process_handle> proc;
    pid_t pid = 0;
    std::string name;
    mirrored_region region;
    worker_shared* shared = nullptr;
    worker_boot boot;
    byte_fifo log;                 // the own bytes of the messages sent (or being sent) and not yet answered, oldest first
    std::deque<unit_meta> inflight; // the units of `log`, in order
    std::size_t live = 0;          // units of `inflight` not withdrawn
    std::uint64_t assigned_bytes = 0; // stream position after the last unit assigned
    std::uint64_t pushed_bytes = 0;   // stream position up to which the task ring has been written
    std::uint64_t log_assigned = 0;   // log position after the last unit assigned
    std::uint64_t log_popped = 0;     // log position of the front of `log`
    byte_buffer rx;                // a result bigger than the ring, being gathered
    std::size_t rx_need = 0;
    std::uint64_t next_seq = 1;
    std::uint64_t told_started = 0; // the last unit whose start the observer was told
    std::uint64_t sent = 0;      // units ever sent (maxtasksperchild)
    std::uint64_t last_done = 0; // when it last finished a unit (a tick of the pool)
    std::optional<error_entry> init_error;
    remote_place place; // where the worker runs, if on another machine (set by its thread)
    bool exited = false;   // its sentinel polled readable
    bool stopping = false; // told to leave once idle
    bool abandoned = false; // its units were failed when the pool stopped: what it sends now is dropped
    std::optional<std::string> violation; // why the parent stopped trusting it and killed it
    /// The pool killed the worker to stop one element of the unit it was running (it ran past
    /// its timeout, or its caller cancelled it): settle_exit ends that element with `error`
    /// (or runs it again, if `retry` and the pool's worker_death policy allows), and sends
    /// the unit's other elements elsewhere.
    struct stop_order {
        std::uint64_t seq;
        std::uint32_t element; // in the unit's chunk
        error_ptr error;
        bool retry;
    };
    std::optional<stop_order> stop_task;
    /// Under start::thread, the jobs of units failed while the thread may still read their
    /// values (terminate()): kept until it has left.
    std::vector<std::shared_ptr<job_core>> pinned;
    /// Instead of proc, under start::thread. Last, so that it is joined before the rings
    /// and the boot it reads are destroyed.
    std::unique_ptr<thread_worker> thread;
};

/// The settings a pool's engine runs with.
struct pool_config {
    int processes = 1;
    std::optional<int> maxtasks;
    std::function<void()> initializer;
    /// The initializer again, as it crosses into spawn and forkserver workers.
    std::optional<remote_init> remote_initializer;
    unsigned retries = 0;
    /// The longest an element may run before its worker is killed and replaced (0: no limit).
    std::uint64_t task_timeout_ns = 0;
    /// Bytes in each of a worker's two rings: 1 MiB for up to 8 workers (map's default chunks
    /// of a few hundred KiB then travel whole), less with more workers, never below 256 KiB.
    std::size_t ring_capacity = std::size_t{1} << 20;
    std::chrono::microseconds worker_spin{100};
    std::chrono::microseconds caller_spin{100};
    /// Told what happens to the tasks (pool_options::observer); empty: nobody is.
    pool_observer observer;
    /// The workers are threads of this process (start::thread), not processes: then
    /// `spawn` is not used.
    bool threads = false;
    /// With `threads`: what each thread runs instead of worker_main, given the boot (whose
    /// `remote` is `thread_context`), and how the threads are named. A start method whose
    /// workers run on other machines (ext::start::mpi) sets these: each thread then stands
    /// for one remote worker, carrying its units there and its results back.
    int (*thread_main)(const worker_boot&) = nullptr;
    void* thread_context = nullptr;
    std::string (*thread_name)() = nullptr;
    /// With `thread_main`: each thread stands for a process elsewhere that can be killed
    /// (told worker_stop_now, the thread has it killed and leaves), and that may die while
    /// it runs a unit: the thread then returns that process's exit status (negative: the
    /// signal) with worker_shared::element naming the element it was on, and the engine
    /// settles the unit as a process worker's (retry, broken_pool, timeouts, kill_running).
    bool threads_stoppable = false;
    /// The workers are forked from the engine thread (a start method that inherits memory).
    bool forks_workers = false;
    /// Starts a pool worker process that runs worker_main(*boot); called in the engine thread.
    process_handle (*spawn)(worker_boot* boot) = nullptr;
};

enum class pool_state { run, close, terminate, broken };

inline std::string describe_exit(std::optional<int> exitcode) {
    if (!exitcode) return "ended (its exit status was collected by someone else: is SIGCHLD ignored?)";
    const int code = *exitcode;
    if (code < 0) {
        const char* abbrev = ::sigabbrev_np(-code);
        return "was killed by signal " + std::to_string(-code) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    return "exited with code " + std::to_string(code);
}

/// Whether a process that ended so was killed from outside (by a user, the OOM killer, a
/// hostile test) rather than failing by itself: a worker killed while it starts is replaced,
/// one that exits or crashes before it starts would do so again, forever.
inline bool killed_from_outside(std::optional<int> exitcode) noexcept {
    if (!exitcode || *exitcode >= 0) return false;
    const int sig = -*exitcode;
    return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

/// How a worker that left because its link was gone found it (see check_wake_fd).
inline std::string describe_lost_link(std::int32_t why, std::int32_t fd) {
    const std::string channel = "descriptor " + std::to_string(fd) + ", its wake-up channel";
    if (why == EBADF) return "lost its link to the pool (a task closed " + channel + ")";
    if (why == link_replaced) return "lost its link to the pool (a task replaced " + channel + ", with another file)";
    return "lost its link to the pool (" + channel + ", failed: " + std::string(::strerror(why)) + ")";
}

/// Writes one line to stderr (Python: the "Exception in thread ..." report of a dying thread).
inline void report_to_stderr(const std::string& line) noexcept {
    std::string s = line + "\n";
    (void)sys::write_all(2, s.data(), s.size());
}

/// Reports an exception thrown by a user's callback (or observer: `whose`) and goes on
/// (Python prints the traceback of the dying result-handler thread, and the pool hangs).
inline void report_callback_exception(const char* whose = "callback") noexcept {
    MULTIPROC_TRY {
        auto [type, what] = describe_current_exception();
        report_to_stderr(std::string("multiproc: exception in a pool ") + whose + " (ignored; the pool carries on): " + type +
                         (what.empty() ? "" : ": " + what));
    } MULTIPROC_CATCH_ALL {
    }
}

/// The pool's lock: a std::mutex that a thread running the pool's observer (which holds it)
/// cannot take again: state_error instead of a deadlock.
class pool_mutex {
public:
    void lock() {
        check();
        m_.lock();
    }
    bool try_lock() {
        check();
        return m_.try_lock();
    }
    void unlock() noexcept { m_.unlock(); }
    /// The lock whose pool's observer this thread is running, if any.
    static const pool_mutex*& observing() noexcept {
        thread_local const pool_mutex* p = nullptr;
        return p;
    }

private:
    void check() const {
        if (observing() == this)
            detail::raise(state_error("multiproc: a pool observer cannot call into its pool: it runs under the "
                                      "pool's lock, which this thread holds"));
    }
    std::mutex m_;
};

class pool_core {
public:
    /// Starts the engine thread, which starts the workers; throws what starting failed with.
    explicit pool_core(pool_config cfg) : cfg_(std::move(cfg)) {
        shared_mem_ = shared_region::create(sizeof(pool_shared), "multiproc-pool");
        shared_ = shared_mem_.construct<pool_shared>();
        wake_fd_ = sys::unique_fd(sys::eventfd(0, EFD_NONBLOCK));
        if (!wake_fd_) sys::fail("eventfd for a pool");
        shared_->watchers.store(1); // the engine, awake from the start
        engine_ = std::make_unique<std::thread>([this] { engine_main(); });
        std::unique_lock lk(mu_);
        started_cv_.wait(lk, [&] { return started_; });
        if (startup_error_) {
            lk.unlock();
            engine_->join();
            (startup_error_).raise();
        }
        lk.unlock();
        finalizer_ = register_finalizer(15, [](void* self) { static_cast<pool_core*>(self)->terminate(); }, this);
    }

    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    ~pool_core() {
        if (::getpid() != owner_) {
            // An inherited copy: its thread does not exist here, so the handle is let go
            // (destroying a std::thread that looks joinable would std::terminate).
            (void)engine_.release();
            return;
        }
        unregister_finalizer(finalizer_);
        if (engine_->joinable()) {
            terminate();
            join_engine();
        }
    }

    [[nodiscard]] int processes() const noexcept { return cfg_.processes; }

    /// Throws unless new work may be submitted (Python: Pool._check_running).
    void check_running() {
        std::lock_guard lk(mu_);
        check_running_locked(false);
    }

    /// Adds the units of `msgs` (their own bytes back to back, in order) to `job`, listing
    /// the job first if it is not yet; then sends what the workers have room for. With
    /// `take`, the bytes may be taken over rather than copied (a big map's input).
    void submit(const std::shared_ptr<job_core>& job, byte_buffer& msgs, const std::vector<unit_meta>& units,
                bool take = false) {
        std::lock_guard lk(mu_);
        check_running_locked(job->keep != nullptr);
        if (!job->keep) link(job);
        if (timeout_of(*job) != 0) { // the workers record when each element starts
            std::size_t at = 0;
            for (const auto& u : units) {
                const std::uint32_t flags = task_timed;
                std::memcpy(msgs.data() + at + offsetof(task_header, flags), &flags, sizeof flags);
                at += u.own;
            }
        }
        std::uint64_t n = 0;
        for (const auto& u : units) {
            n += u.hi - u.lo;
            pending_meta_.push_back(u);
        }
        job->outstanding += n;
        observe(pool_event::kind::queued, n, nullptr);
        if (take && pending_bytes_.size() == 0)
            pending_bytes_.adopt(msgs);
        else
            pending_bytes_.append(msgs.data(), msgs.size());
        finish_if_done(*job);
        dispatch_locked();
        after_drive_locked();
    }

    /// The caller whose input `job`'s units borrow (a blocking map) is leaving: if any of
    /// them may still be sent or sent again, the input is copied for them first. With no
    /// memory for the copy, it waits for the job to complete instead; from a callback, where
    /// it may not wait, the process ends with a message saying why.
    void end_borrow(job_core& job) noexcept {
        {
            std::lock_guard lk(mu_);
            if (!job.source || job.source == job.source_copy.data()) return;
            if (!job.keep || job.outstanding == 0) {
                job.source = nullptr; // complete: only units withdrawn from a worker remain, sent as zeros
                return;
            }
            if (job.source_copy.try_assign(job.source, job.source_size)) {
                job.source = job.source_copy.data();
                return;
            }
        }
        if (on_engine_thread()) {
            static constexpr char why[] = "multiproc: a pool.map called from a pool callback has no memory to copy "
                                          "its input for the tasks still to be sent; aborting\n";
            (void)!::write(2, why, sizeof why - 1); // (no allocation: there is no memory)
            std::abort();
        }
        (void)job.changed.wait_until([&] { return job.is_ready(); }, std::nullopt, std::chrono::microseconds(0));
    }

    /// Marks an imap job's input as exhausted: it completes once its results are in.
    void close_input(job_core& job) {
        std::lock_guard lk(mu_);
        job.open = false;
        finish_if_done(job);
        after_drive_locked();
    }

    /// Nobody wants the rest of the job's results (an imap view was dropped early): what no
    /// worker has started is dropped (cancelled_error, which nobody sees), what runs
    /// completes and is discarded; so later calls, and the pool's end, do not wait behind
    /// the window the view had read ahead. Nothing in another process than the pool's owner
    /// (a forked child's copy of a view: nothing of the pool is its own there).
    void cancel(job_core& job) {
        if (::getpid() != owner_) return;
        std::lock_guard lk(mu_);
        job.cancelled = true;
        job.open = false;
        (void)drop_unwanted_locked(job);
        finish_if_done(job);
        redispatch_after_drop();
        after_drive_locked();
    }

    /// Cancels what is left of `job` (Python: Future.cancel()): its queued elements end at
    /// once in cancelled_error. An element a worker is running is stopped only if `kill`:
    /// its worker is killed (and replaced) and the element ends in cancelled_error; without
    /// `kill`, a job with a running element is not cancelled. Returns whether the job is
    /// now cancelled; false once it has completed.
    bool cancel_job(job_core& job, bool kill) {
        check_owner();
        std::lock_guard lk(mu_);
        if (!job.keep || job.outstanding == 0) return job.dropped; // complete (or completing)
        drive_locked(); // results already published count as complete
        kill = kill && (!cfg_.threads || cfg_.threads_stoppable); // (a thread cannot be killed: a running task finishes)
        const bool cancelled_now = job.keep && job.outstanding != 0 ? cancel_locked(job, kill) : job.dropped;
        redispatch_after_drop();
        after_drive_locked();
        return cancelled_now;
    }

    /// Nobody wants `job`'s results any more (Executor.map past its timeout): what no worker
    /// has started is dropped (cancelled_error), what runs completes and is discarded.
    /// Returns whether anything of it was still outstanding.
    bool abandon(job_core& job) {
        check_owner();
        std::lock_guard lk(mu_);
        const bool outstanding = drop_unwanted_locked(job);
        redispatch_after_drop();
        after_drive_locked();
        return outstanding;
    }

    /// What cancel and abandon share, under the lock: after collecting what the workers
    /// published (those results count as complete), marks `job` unwanted and drops what no
    /// worker has started. Returns whether anything of it was still outstanding.
    bool drop_unwanted_locked(job_core& job) {
        drive_locked();
        const bool outstanding = job.keep && job.outstanding != 0;
        if (outstanding) {
            job.cancelled = true;
            (void)drop_queued(job);
        }
        return outstanding;
    }

    /// Python: Executor.shutdown(cancel_futures=True). Every task no worker has started
    /// fails at once with cancelled_error; running ones go on.
    void cancel_queued() {
        check_owner();
        std::lock_guard lk(mu_);
        drive_locked();
        for (job_core* j = jobs_; j;) {
            job_core* next = j->next; // (dropping may complete and unlink it)
            std::shared_ptr<job_core> keep = j->keep;
            // Wholly cancelled (nothing of it runs): cancelled() says so.
            if (drop_queued(*j).dropped != 0 && j->outstanding == 0) j->dropped = true;
            j = next;
        }
        redispatch_after_drop();
        after_drive_locked();
    }

    /// Whether a worker is running an element of `job` now (Python: Future.running()).
    bool running(const job_core& job) {
        std::lock_guard lk(mu_);
        for (auto& p : slots_) {
            if (p->exited || p->abandoned) continue;
            const std::uint64_t seq = p->shared->unit.load(std::memory_order_acquire);
            for (const auto& u : p->inflight)
                if (u.job == &job && !u.withdrawn && u.seq == seq) return true;
        }
        return false;
    }

    /// A descriptor that polls readable once `job` is ready (an eventfd, made on first use,
    /// closed with the job). os_error if the system has no descriptor left.
    int ready_fd(job_core& job) {
        std::lock_guard lk(mu_);
        if (!job.ready_fd) {
            sys::unique_fd fd(sys::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
            if (!fd) sys::fail("eventfd for a pool result");
            if (job.is_ready()) (void)sys::eventfd_signal(fd.get());
            job.ready_fd = std::move(fd);
        }
        return job.ready_fd.get();
    }

    /// Queues `f` to run once `job` is ready and returns true; false, without calling `f`,
    /// if the job's done callbacks have run already (it is ready).
    bool on_done_later(job_core& job, std::function<void()>& f) {
        std::lock_guard lk(mu_);
        if (job.settled) return false;
        job.on_done.push_back(std::move(f));
        return true;
    }

    /// Runs `f` once `job` is ready, in the engine thread; at once, here, if it is already.
    void on_done(job_core& job, std::function<void()> f) {
        if (!on_done_later(job, f)) run_done_callback(f);
    }

    /// Runs `f()` under the pool's lock (what job state is guarded by).
    template <class F>
    decltype(auto) locked(F&& f) {
        std::lock_guard lk(mu_);
        return f();
    }

    /// Waits until `done()` holds or `deadline` passes; returns done(). Spins first,
    /// collecting results itself, then sleeps on the job's notifier.
    template <class Pred>
    bool wait(job_core& job, Pred done, std::optional<steady::time_point> deadline) {
        if (done()) return true;
        check_owner();
        if (on_engine_thread())
            detail::raise(state_error("multiproc: a pool callback cannot wait for a pool result: callbacks run in the "
                              "thread that delivers results"));
        shared_->watchers.fetch_add(1, std::memory_order_seq_cst);
        auto spin_end = steady::now() + cfg_.caller_spin;
        if (deadline && *deadline < spin_end) spin_end = *deadline;
        (void)spin_until(
            [&] {
                if (shared_->attention.load(std::memory_order_relaxed) != 0 && mu_.try_lock()) {
                    std::lock_guard lk(mu_, std::adopt_lock);
                    drive_locked();
                    after_drive_locked();
                }
                return done();
            },
            std::chrono::duration_cast<std::chrono::microseconds>(spin_end - steady::now()));
        stop_watching();
        if (done()) return true;
        return job.changed.wait_until(done, deadline, std::chrono::microseconds(0));
    }

    /// Replaces the observer (empty: none).
    void set_observer(pool_observer f) {
        std::lock_guard lk(mu_);
        std::swap(cfg_.observer, f); // (the old one is destroyed outside the lock)
    }

    /// Python: Pool.close(). No new work; the workers leave once the work in hand is done.
    void close() {
        check_owner();
        log(10, "closing pool");
        std::lock_guard lk(mu_);
        if (state_ == pool_state::run) state_ = pool_state::close;
        (void)sys::eventfd_signal(wake_fd_.get());
    }

    /// Python: Pool.terminate(). Stops the workers at once; results not yet in fail with
    /// broken_pool. Returns once the workers are gone (at once if called from a callback).
    /// With `kill`, the workers get SIGKILL at once (Python 3.14: kill_workers()).
    void terminate(bool kill = false) {
        check_owner();
        log(10, "terminating pool");
        {
            std::lock_guard lk(mu_);
            if (state_ != pool_state::broken) state_ = pool_state::terminate;
            if (kill) kill_now_ = true;
            (void)sys::eventfd_signal(wake_fd_.get());
        }
        if (!on_engine_thread()) join_engine();
    }

    /// Python: Pool.join(). Waits for the workers to leave; only after close() or terminate().
    void join() {
        check_owner();
        log(10, "joining pool");
        {
            std::lock_guard lk(mu_);
            if (state_ == pool_state::run) detail::raise(value_error("Pool is still running"));
        }
        if (on_engine_thread()) detail::raise(state_error("multiproc: a pool cannot be joined from one of its callbacks"));
        join_engine();
    }

private:
    // ---- state, all under mu_ unless noted
    pool_config cfg_;
    shared_region shared_mem_;
    pool_shared* shared_ = nullptr;
    sys::unique_fd wake_fd_;
    pool_mutex mu_;
    std::condition_variable_any started_cv_;
    bool started_ = false;
    error_ptr startup_error_;
    pool_state state_ = pool_state::run;
    std::string broken_reason_;
    std::vector<std::unique_ptr<pool_slot>> slots_; // changed only by the engine thread, under mu_
    byte_fifo pending_bytes_;
    std::deque<unit_meta> pending_meta_;
    std::deque<std::pair<unit_meta, byte_buffer>> requeued_; // units of dead workers, sent first
    job_core* jobs_ = nullptr;                               // listed jobs (intrusive list)
    std::vector<std::shared_ptr<job_core>> callbacks_due_;
    bool wake_engine_ = false;
    std::uint64_t tick_ = 0;
    std::uint64_t ema_ns_ = 0; // how long a unit takes, smoothed
    std::unique_ptr<std::thread> engine_;
    std::mutex join_mu_;
    unsigned long finalizer_ = 0;
    pid_t owner_ = ::getpid();
    std::optional<steady::time_point> rebalance_at_; // when the engine means to look again
    std::optional<steady::time_point> timeout_at_;   // when an element may run past its timeout
    std::size_t timed_jobs_ = 0; // listed jobs with a task timeout: only then does the engine look for one
    // engine thread only
    std::optional<steady::time_point> kill_at_;
    bool signalled_ = false;
    bool kill_now_ = false; // under mu_: terminate(kill) skips SIGTERM

    static pool_core*& engine_of_this_thread() {
        thread_local pool_core* p = nullptr;
        return p;
    }
    [[nodiscard]] bool on_engine_thread() const noexcept { return engine_of_this_thread() == this; }

public:
    /// Whether this thread is a pool's engine thread (a callback, or a coroutine resumed there).
    static bool in_some_engine_thread() noexcept { return engine_of_this_thread() != nullptr; }

private:

    void join_engine() {
        std::lock_guard lk(join_mu_);
        if (engine_->joinable()) engine_->join();
    }

    /// A child forked from the pool's process inherits the pool object but not its engine
    /// thread or its workers: there, every use is an error (Python: pools cannot be passed
    /// to other processes).
    void check_owner() const {
        if (sys::self_pid() != owner_) // (cached: this is on every call)
            detail::raise(state_error("multiproc: a pool can only be used by the process that created it"));
    }

    void check_running_locked(bool job_listed) {
        check_owner();
        if (state_ == pool_state::broken) detail::raise(broken_pool(broken_reason_));
        if (state_ == pool_state::run) return;
        // An imap job that was running when close() came may go on feeding its input.
        if (job_listed && state_ == pool_state::close) return;
        detail::raise(value_error("Pool not running"));
    }

    // ---- jobs

    void link(const std::shared_ptr<job_core>& job) {
        if (timeout_of(*job) != 0) ++timed_jobs_;
        job->keep = job;
        job->prev = nullptr;
        job->next = jobs_;
        if (jobs_) jobs_->prev = job.get();
        jobs_ = job.get();
    }

    void unlink(job_core& j) {
        if (timeout_of(j) != 0) --timed_jobs_;
        if (j.prev) j.prev->next = j.next;
        else jobs_ = j.next;
        if (j.next) j.next->prev = j.prev;
        j.prev = j.next = nullptr;
    }

    /// Completes the job if nothing more can come for it.
    void finish_if_done(job_core& j) {
        if (j.notify_each) j.changed.notify_all();
        if (j.outstanding != 0 || j.open || !j.keep) return;
        unlink(j);
        if (!jobs_ && state_ == pool_state::close) wake_engine_ = true; // time to let the workers go
        std::shared_ptr<job_core> keep = std::move(j.keep);
        if (j.has_callbacks && !j.cancelled && j.ops->callbacks) { // ready after they run (Python's order)
            callbacks_due_.push_back(std::move(keep));
            wake_engine_ = true;
        } else if (!j.on_done.empty()) { // ready now (done() is true), done callbacks after
            j.mark_ready();
            callbacks_due_.push_back(std::move(keep));
            wake_engine_ = true;
        } else {
            j.settled = true;
            j.mark_ready();
        }
    }

    /// After drop_queued, once the caller has dropped all it meant to (not between: a worker
    /// could start what is about to be dropped): units withdrawn from a worker's ring may
    /// leave a worker that had all it may take (maxtasksperchild, its depth) free for more,
    /// and the zeros of what was withdrawn must still reach it. The queue goes out again
    /// here, as no result may ever come to make the engine do it (an outside trial: imaps
    /// cut short on a closing pool with maxtasksperchild hung for ever, their workers idle
    /// and units queued).
    void redispatch_after_drop() { dispatch_locked(); }

    /// What drop_queued did: units failed, and units that a worker holds and could not be
    /// withdrawn (claimed, about to run, or sent in part), which run.
    struct drop_result {
        std::size_t dropped = 0;
        std::vector<std::pair<pool_slot*, const unit_meta*>> held;
    };

    /// Fails at once, with cancelled_error, every unit of `job` that no worker has started:
    /// those queued in the pool are cut out of its queues (one pass), those in a worker's
    /// task ring withdrawn there.
    drop_result drop_queued(job_core& job) {
        drop_result r;
        const error_ptr e = cancelled("cancelled before it ran");
        std::vector<unit_meta> failed;
        if (std::any_of(pending_meta_.begin(), pending_meta_.end(), [&](const unit_meta& u) { return u.job == &job; })) {
            byte_fifo kept_bytes;
            std::deque<unit_meta> kept;
            std::size_t at = 0;
            for (const unit_meta& u : pending_meta_) {
                if (u.job == &job)
                    failed.push_back(u);
                else {
                    kept_bytes.append(pending_bytes_.data() + at, u.own);
                    kept.push_back(u);
                }
                at += u.own;
            }
            pending_meta_.swap(kept);
            pending_bytes_.swap(kept_bytes);
        }
        for (auto it = requeued_.begin(); it != requeued_.end();) {
            if (it->first.job != &job) {
                ++it;
                continue;
            }
            failed.push_back(it->first);
            it = requeued_.erase(it);
        }
        for (auto& p : slots_) {
            if (p->exited || p->abandoned) continue;
            const std::uint64_t seq = p->shared->unit.load(std::memory_order_acquire);
            for (auto& u : p->inflight) {
                if (u.job != &job || u.withdrawn || u.seq <= seq) continue;
                if (try_withdraw(*p, u, seq)) {
                    failed.push_back(u);
                    --p->sent;
                } else {
                    r.held.emplace_back(p.get(), &u);
                }
            }
            observe_next_start(*p); // if the one it was to run next was taken back
        }
        r.dropped = failed.size();
        for (const unit_meta& u : failed) fail_unit(u, e);
        return r;
    }

    /// cancel_job under the lock, after collecting what the workers published.
    bool cancel_locked(job_core& job, bool kill) {
        if (job.dropped) {
            if (!kill) return true;
        } else {
            // Not to be killed: a job a worker runs, or has claimed (its claim word taken),
            // is not cancelled (Python: Future.cancel() on a running future).
            if (!kill && worker_holds(job)) return false;
            job.dropped = true;
        }
        drop_result r = drop_queued(job);
        if (!kill) return true; // what a worker took in the last instant runs; its result turns into cancelled_error
        // Running (or claimed, or sent in part): the worker is killed; settle_exit fails the
        // element it ran and every other element of the job (dropped) it held.
        for (auto& p : slots_) {
            if (p->exited || p->abandoned) continue;
            const std::uint64_t seq = p->shared->unit.load(std::memory_order_acquire);
            for (const auto& u : p->inflight)
                if (u.job == &job && !u.withdrawn && u.seq == seq) r.held.emplace_back(p.get(), &u);
        }
        for (auto [p, u] : r.held) {
            if (p->stop_task) continue; // being stopped already: settling it fails the job's elements
            const std::uint64_t seq = p->shared->unit.load(std::memory_order_acquire);
            auto at = static_cast<std::uint32_t>(
                u->seq == seq
                    ? std::clamp<std::uint64_t>(p->shared->element.load(std::memory_order_acquire), u->lo, u->hi - 1)
                    : u->lo);
            p->stop_task = pool_slot::stop_order{u->seq, at, cancelled("cancelled while it ran in " + who(*p) +
                                                                          ", which was killed"),
                                                false};
            log(10, "cancelling task {}: killing {} (pid {})", u->first + at, p->name, p->pid);
            signal_worker(*p, SIGKILL);
        }
        return true;
    }

    /// Whether a worker runs a unit of `job`, or has claimed one it is about to run.
    bool worker_holds(const job_core& job) const {
        for (auto& p : slots_) {
            if (p->exited || p->abandoned) continue;
            const std::uint64_t seq = p->shared->unit.load(std::memory_order_acquire);
            const std::uint64_t tail = p->boot.tasks.indices().tail.load(std::memory_order_relaxed);
            for (const auto& u : p->inflight) {
                if (u.job != &job || u.withdrawn || u.seq < seq) continue;
                if (u.seq == seq) return true;
                const std::uint64_t claim_pos = u.stream_pos + offsetof(task_header, claim);
                if (claim_pos + sizeof(std::uint32_t) > tail) continue; // not in the ring whole: the parent's
                // Read past (consumed only after a claim), or claimed: the worker has it.
                if (u.stream_pos < p->boot.tasks.indices().head.load(std::memory_order_acquire) ||
                    claim_of(p->boot.tasks.at(u.stream_pos)).load(std::memory_order_acquire) != claim_free)
                    return true;
            }
        }
        return false;
    }

    [[nodiscard]] std::uint64_t timeout_of(const job_core& j) const noexcept {
        return j.timeout_ns.value_or(cfg_.task_timeout_ns);
    }

    /// "ForkPoolWorker-3 (pid 812)", "Thread-2 (worker) (thread 815)", or for a worker of
    /// another machine once it has said where it runs, "RankWorker-1 (pid 4711 on rank 1,
    /// host node7)". (Its thread writes `place` before it runs a unit, and has ended or is
    /// running one wherever this is called.)
    static std::string who(const pool_slot& s) {
        if (s.place.rank >= 0)
            return s.name + " (pid " + std::to_string(s.place.pid) + " on rank " + std::to_string(s.place.rank) +
                   ", host " + s.place.host + ")";
        return s.name + (s.thread ? " (thread " : " (pid ") + std::to_string(s.pid) + ")";
    }

    static error_ptr cancelled(const std::string& how) {
        return error_ptr(cancelled_error("multiproc: the task was " + how));
    }

    void deliver(const unit_meta& u, const std::byte* msg, std::size_t size, const pool_slot& s) {
        job_core& j = *u.job;
        if (j.dropped) { // cancelled while it ran, and it completed before the kill landed
            fail_unit(u, cancelled("cancelled while it ran"), &s);
            return;
        }
        const std::uint32_t n = u.hi - u.lo;
        if (cfg_.observer) [[unlikely]] { // (told first: whoever sees a result finds it counted)
            const std::uint32_t failed = std::min(load_pod<result_header>(msg).errors, n);
            observe(pool_event::kind::finished, n - failed, &s);
            observe(pool_event::kind::failed, failed, &s);
        }
        if (!j.cancelled)
            j.ops->deliver(j, u, msg, size,
                           s.place.rank >= 0 ? worker_ref{s.place.pid, &s.place} : worker_ref{s.pid, nullptr});
        j.outstanding -= n;
        finish_if_done(j);
    }

    /// Element `index` of `j` ends with error `e` (on worker `s`, if one was concerned).
    void fail_element(job_core& j, std::uint64_t index, const error_ptr& e, const pool_slot* s = nullptr) {
        observe(outcome_of(e), 1, s);
        end_element(j, index, e);
    }

    void fail_unit(const unit_meta& u, const error_ptr& e, const pool_slot* s = nullptr) {
        observe(outcome_of(e), u.hi - u.lo, s);
        for (std::uint32_t i = u.lo; i < u.hi; ++i) end_element(*u.job, u.first + i, e);
    }

    void end_element(job_core& j, std::uint64_t index, const error_ptr& e) {
        if (!j.cancelled) j.ops->fail(j, index, e);
        --j.outstanding;
        finish_if_done(j);
    }

    static pool_event::kind outcome_of(const error_ptr& e) noexcept {
        return e.code() == errc::cancelled_error ? pool_event::kind::cancelled : pool_event::kind::failed;
    }

    // ---- the observer

    /// Tells the observer, if there is one, that `n` tasks had `what` happen (on worker `s`).
    void observe(pool_event::kind what, std::uint64_t n, const pool_slot* s) {
        if (!cfg_.observer || n == 0) [[likely]]
            return;
        const pool_mutex*& in = pool_mutex::observing();
        const pool_mutex* const outer = in; // (an observer of another pool that called into this one)
        in = &mu_;
        MULTIPROC_TRY {
            cfg_.observer(pool_event{what, n, s ? s->pid : 0, s ? std::string_view(s->name) : std::string_view()});
        } MULTIPROC_CATCH_ALL {
            report_callback_exception("observer");
        }
        in = outer;
    }

    /// Tells the start of the unit the worker runs now or next (its oldest not withdrawn),
    /// unless told already: called as a unit is handed to it, as one finishes, and as units
    /// are taken back from it.
    void observe_next_start(pool_slot& s) {
        if (!cfg_.observer) [[likely]]
            return;
        for (const auto& u : s.inflight) {
            if (u.withdrawn) continue;
            if (u.seq > s.told_started) {
                s.told_started = u.seq;
                observe(pool_event::kind::started, u.hi - u.lo, &s);
            }
            return;
        }
    }

    // ---- collecting results

    /// Collects what every worker has published, then sends what they have room for.
    void drive_locked() {
        shared_->attention.exchange(0, std::memory_order_seq_cst);
        for (auto& s : slots_) drain(*s);
        dispatch_locked();
    }

    /// After a thread other than the engine drove the pool: callbacks are for the engine,
    /// and so is a rebalance due sooner than the engine knows.
    void after_drive_locked() {
        if (on_engine_thread()) return;
        if (auto at = next_rebalance(); at && (!rebalance_at_ || *at < *rebalance_at_)) {
            rebalance_at_ = at;
            wake_engine_ = true;
        }
        if (wake_engine_) {
            wake_engine_ = false;
            (void)sys::eventfd_signal(wake_fd_.get());
        }
    }

    /// Leaves the set of threads collecting results. Whatever a worker published before it
    /// saw us leave is collected here; whatever it publishes after wakes the engine.
    void stop_watching() {
        shared_->watchers.fetch_sub(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (shared_->attention.load(std::memory_order_seq_cst) != 0) {
            std::lock_guard lk(mu_);
            drive_locked();
            after_drive_locked();
        }
    }

    /// Drops the oldest unit of a worker (answered, or withdrawn and skipped there).
    static unit_meta pop_front(pool_slot& s) {
        unit_meta u = s.inflight.front();
        s.inflight.pop_front();
        s.log.pop_front(u.own);
        s.log_popped += u.own;
        if (!u.withdrawn) --s.live;
        return u;
    }

    /// Drops every unit of a worker (failed or queued again already): nothing more is sent.
    static void forget_units(pool_slot& s) noexcept {
        s.inflight.clear();
        s.live = 0;
        s.log.clear();
        s.log_popped = s.log_assigned;
        s.pushed_bytes = s.assigned_bytes;
    }

    /// Drops withdrawn units at the front once the worker has read past them.
    static void forget_skipped(pool_slot& s) {
        // (Never past what was sent: the head is the worker's to move, and may be wrong.)
        const std::uint64_t head =
            std::min(s.boot.tasks.indices().head.load(std::memory_order_acquire), s.pushed_bytes);
        while (!s.inflight.empty() && s.inflight.front().withdrawn &&
               s.inflight.front().stream_pos + s.inflight.front().size <= head)
            pop_front(s);
    }

    /// A worker broke the protocol: its memory is corrupt, or a task wrote over the pool's.
    /// Nothing more is read from it or written to it; it is killed, and settle_exit fails
    /// the task it was running with broken_pool naming `why`, as for any worker that dies.
    void reject_worker(pool_slot& s, std::string why) {
        if (s.violation) return;
        report_to_stderr("multiproc: " + who(s) + " " + why + "; killing it");
        s.violation = std::move(why);
        signal_worker(s, SIGKILL);
    }

    /// The room in the worker's task ring, counted from the head the worker moves (read
    /// once); nothing if the worker was rejected, or is now because that head is impossible:
    /// past the tail we wrote, or more than a ring behind it.
    std::optional<std::size_t> task_ring_room(pool_slot& s) {
        if (s.violation) return std::nullopt;
        const ring_indices& t = s.boot.tasks.indices();
        const std::uint64_t cap = s.boot.tasks.capacity();
        const std::uint64_t head = t.head.load(std::memory_order_acquire);
        const std::uint64_t tail = t.tail.load(std::memory_order_relaxed);
        if (head > tail || tail - head > cap) {
            reject_worker(s, "moved the head of its task ring to byte " + std::to_string(head) + ", with " +
                                 std::to_string(tail) + " sent and room for " + std::to_string(cap));
            return std::nullopt;
        }
        return static_cast<std::size_t>(cap - (tail - head));
    }

    void drain(pool_slot& s) {
        if (!task_ring_room(s)) return;
        const byte_ring& r = s.boot.results;
        bool consumed = false;
        for (;;) {
            // What the worker says it published (the tail it moves): never more than its ring holds.
            const std::size_t avail = r.readable();
            if (avail > r.capacity())
                return reject_worker(s, "published " + std::to_string(avail) + " bytes in a result ring of " +
                                            std::to_string(r.capacity()));
            if (s.rx_need) { // gathering a result bigger than the ring
                std::size_t n = std::min(avail, s.rx_need - s.rx.size());
                if (n == 0) break;
                s.rx.append(r.read_ptr(), n);
                r.consume(n);
                consumed = true;
                if (s.rx.size() < s.rx_need) continue;
                handle_message(s, s.rx.data(), s.rx.size());
                s.rx.clear();
                s.rx_need = 0;
                if (s.violation) return;
                continue;
            }
            if (avail < sizeof(std::uint32_t)) break;
            const auto size = load_pod<std::uint32_t>(r.read_ptr());
            if (size < sizeof(result_header) || size % 8 != 0) // (a size of 0 would be consumed as nothing, forever)
                return reject_worker(s, "sent a result message of " + std::to_string(size) +
                                            " bytes (one is at least " + std::to_string(sizeof(result_header)) +
                                            " bytes, a multiple of 8)");
            if (size > r.capacity()) {
                s.rx.clear();
                s.rx_need = size;
                continue;
            }
            if (avail < size) break;
            handle_message(s, r.read_ptr(), size);
            if (s.violation) return;
            r.consume(size);
            consumed = true;
        }
        if (consumed) r.indices().writable.notify_all();
        forget_skipped(s);
    }

    /// Takes one result message (drain checked its size: at least a header, a multiple of 8).
    void handle_message(pool_slot& s, const std::byte* msg, std::size_t size) {
        const auto h = load_pod<result_header>(msg);
        if (h.kind != msg_result && h.kind != msg_init_failed)
            return reject_worker(s, "sent a message of unknown kind " + std::to_string(h.kind));
        if (h.errors_at < sizeof h || h.errors_at > size)
            return reject_worker(s, "sent a message whose error entries start at byte " + std::to_string(h.errors_at) +
                                        " of " + std::to_string(size));
        if (h.kind == msg_init_failed) {
            if (s.shared->phase.load(std::memory_order_acquire) != worker_in_initializer)
                return reject_worker(s, "sent an initializer error while not running the initializer");
            MULTIPROC_TRY {
                pool_reader in(msg + h.errors_at, size - h.errors_at);
                s.init_error = get_error(in);
            } MULTIPROC_CATCH(const error&, unnamed_) {
                return reject_worker(s, "sent an initializer error that cannot be decoded");
            }
            return;
        }
        // A result that races terminate() (or the pool breaking) is for a unit that has been
        // failed already: expected, and dropped without a word.
        if (s.abandoned) return;
        std::size_t k = 0; // (withdrawn units before it were skipped there)
        while (k < s.inflight.size() && s.inflight[k].withdrawn && s.inflight[k].seq != h.seq) ++k;
        if (k == s.inflight.size() || s.inflight[k].seq != h.seq || s.inflight[k].withdrawn)
            return reject_worker(s, "sent a result for a task it was not given"); // its memory is corrupt
        if (s.inflight[k].stream_pos + s.inflight[k].size > s.pushed_bytes)
            return reject_worker(s, "sent a result for a task it had not been sent whole");
        for (; k != 0; --k) (void)pop_front(s);
        unit_meta u = pop_front(s);
        s.last_done = ++tick_;
        // (Capped at an hour, so that no time a worker claims can overflow the average.)
        const std::uint64_t busy = std::min<std::uint64_t>(h.busy_ns, std::uint64_t{3600} * 1000000000);
        ema_ns_ = ema_ns_ == 0 ? std::max<std::uint64_t>(busy, 1) : (ema_ns_ * 7 + busy) / 8 + 1;
        deliver(u, msg, size, s);
        observe_next_start(s);
    }

    // ---- sending work

    /// How many units a worker may hold at once: enough to cover ~300 µs of work, so that
    /// short tasks are pipelined, while long tasks go one at a time to whichever worker is
    /// free (as from a shared queue). Until a unit has finished, one.
    [[nodiscard]] std::size_t depth() const noexcept {
        constexpr std::uint64_t most = 64;
        if (pacing_held()) return most;
        if (ema_ns_ == 0) return 1;
        std::uint64_t d = 300000 / ema_ns_ + 1;
        return static_cast<std::size_t>(std::clamp<std::uint64_t>(d, 1, most));
    }

    /// Whether a test holds the pacing below (sys::call::pacing); never without fault injection.
    static bool pacing_held() noexcept { return sys::injected(sys::call::pacing) != 0; }

    /// Whether the worker has been running its current unit for much longer than units
    /// usually take: then nothing more is queued behind it, and what is queued is withdrawn
    /// for idle workers (a shared queue, as CPython's, never leaves work behind a long task).
    [[nodiscard]] bool stuck(const pool_slot& s, std::uint64_t now_ns) const noexcept {
        return s.live != 0 && now_ns > stuck_at(s) && !pacing_held();
    }
    /// When the worker's current unit will count as running long.
    [[nodiscard]] std::uint64_t stuck_at(const pool_slot& s) const noexcept {
        return s.shared->started_ns.load(std::memory_order_relaxed) + std::max<std::uint64_t>(1000000, 8 * ema_ns_);
    }

    /// When the engine must look again because a worker with units queued behind its
    /// current one may by then count as stuck while another worker idles; or nothing.
    [[nodiscard]] std::optional<steady::time_point> next_rebalance() const {
        if (pacing_held()) return std::nullopt;
        bool idle = false;
        for (auto& p : slots_) idle |= usable(*p) && p->live == 0;
        if (!idle) return std::nullopt;
        std::optional<std::uint64_t> at;
        for (auto& p : slots_)
            if (!p->exited && p->live >= 2) at = std::min(at.value_or(UINT64_MAX), stuck_at(*p) + 1);
        if (!at) return std::nullopt;
        return steady::time_point(steady::duration(static_cast<steady::rep>(*at)));
    }

    static std::uint64_t now_ns() noexcept {
        return static_cast<std::uint64_t>(steady::now().time_since_epoch().count());
    }

    [[nodiscard]] bool usable(const pool_slot& s) const noexcept {
        return !s.exited && !s.stopping && !s.violation &&
               (!cfg_.maxtasks || s.sent < static_cast<std::uint64_t>(*cfg_.maxtasks));
    }

    /// The worker to send the next unit to: the least loaded with room, the one that
    /// finished most recently among equals (it is likely still spinning, not asleep).
    pool_slot* pick(std::uint64_t now) {
        if (state_ == pool_state::terminate || state_ == pool_state::broken) return nullptr;
        const std::size_t d = depth();
        pool_slot* best = nullptr;
        for (auto& p : slots_) {
            pool_slot& s = *p;
            if (!usable(s) || s.live >= d || (s.live > 0 && stuck(s, now))) continue;
            if (!best || s.live < best->live || (s.live == best->live && s.last_done > best->last_done)) best = &s;
        }
        return best;
    }

    /// Takes back the units queued behind a stuck worker's current one, while another worker
    /// is idle, and queues them again (ahead of new work, in order).
    void rebalance(std::uint64_t now) {
        bool idle = false;
        for (auto& p : slots_) idle |= usable(*p) && p->live == 0;
        if (!idle) return;
        for (auto& p : slots_) {
            pool_slot& s = *p;
            if (s.exited || s.live < 2 || !stuck(s, now)) continue;
            const std::uint64_t running = s.shared->unit.load(std::memory_order_acquire);
            std::vector<std::pair<unit_meta, byte_buffer>> back;
            for (auto it = s.inflight.rbegin(); it != s.inflight.rend(); ++it) {
                unit_meta& u = *it;
                if (u.withdrawn) continue;
                if (!try_withdraw(s, u, running)) break;
                byte_buffer copy;
                copy.append(logged(s, u), u.own);
                claim_of(copy.data()).store(claim_free, std::memory_order_relaxed);
                --s.sent;
                back.emplace_back(u, std::move(copy));
            }
            for (auto& [u, bytes] : back) { // newest first: pushing each to the front keeps the order
                unit_meta again = u;
                again.withdrawn = false;
                requeued_.emplace_front(again, std::move(bytes));
            }
        }
    }

    /// Takes back unit `u` of worker `s` (whose unit `running` is the one it runs or ran last)
    /// if the worker has not started it: marks it withdrawn, here and, if it is in the task
    /// ring, there (the worker skips it). False if the worker started it or may have.
    bool try_withdraw(pool_slot& s, unit_meta& u, std::uint64_t running) {
        if (u.seq <= running || u.size > s.boot.tasks.capacity()) return false; // started, or never in the ring whole
        const std::uint64_t tail = s.boot.tasks.indices().tail.load(std::memory_order_relaxed);
        const std::uint64_t claim_pos = u.stream_pos + offsetof(task_header, claim);
        if (claim_pos + sizeof(std::uint32_t) <= tail) {
            // In the ring. The worker consumes a unit only after claiming it, so if it has
            // read past this one, it has started it; else whoever claims first wins.
            if (u.stream_pos < s.boot.tasks.indices().head.load(std::memory_order_acquire)) return false;
            std::uint32_t expected = claim_free;
            if (!claim_of(s.boot.tasks.at(u.stream_pos))
                     .compare_exchange_strong(expected, claim_withdrawn, std::memory_order_acq_rel))
                return false;
        } else if (claim_pos >= tail) { // not sent yet: only the parent sees it
            claim_of(logged(s, u)).store(claim_withdrawn, std::memory_order_relaxed);
        } else {
            return false; // half sent: leave it
        }
        u.withdrawn = true;
        --s.live;
        return true;
    }

    /// Where unit `u` of worker `s` has its own bytes (its header first).
    static std::byte* logged(pool_slot& s, const unit_meta& u) noexcept {
        return s.log.data() + (u.log_pos - s.log_popped);
    }

    void assign(pool_slot& s, unit_meta u, const std::byte* bytes) {
        u.seq = s.next_seq++;
        u.stream_pos = s.assigned_bytes;
        s.assigned_bytes += u.size;
        u.log_pos = s.log_assigned;
        s.log_assigned += u.own;
        const std::size_t at = s.log.size();
        s.log.append(bytes, u.own);
        std::byte* h = s.log.data() + at;
        std::memcpy(h + offsetof(task_header, seq), &u.seq, sizeof u.seq);
        std::memcpy(h + offsetof(task_header, lo), &u.lo, sizeof u.lo);
        std::memcpy(h + offsetof(task_header, hi), &u.hi, sizeof u.hi);
        s.inflight.push_back(u);
        ++s.live;
        ++s.sent;
        observe_next_start(s); // an idle worker starts it now
        if (timeout_of(*u.job) != 0) wake_engine_ = true; // to watch its time
    }

    void dispatch_locked() {
        const std::uint64_t now = now_ns();
        if (slots_.size() > 1) rebalance(now);
        while (!requeued_.empty() || !pending_meta_.empty()) {
            pool_slot* s = pick(now);
            if (!s) break;
            if (!requeued_.empty()) {
                auto& [u, bytes] = requeued_.front();
                assign(*s, u, bytes.data());
                requeued_.pop_front();
            } else {
                unit_meta u = pending_meta_.front();
                assign(*s, u, pending_bytes_.data());
                pending_bytes_.pop_front(u.own);
                pending_meta_.pop_front();
            }
        }
        for (auto& s : slots_) pump(*s);
    }

    /// Copies what fits of the worker's unsent messages into its task ring: each unit's own
    /// bytes from the log, then the elements it borrows straight from its job's input (zeros
    /// for a unit withdrawn meanwhile, which the worker skips: its job may be gone), then its
    /// padding. Never blocks: when the ring is full, the worker wakes us as it frees room.
    void pump(pool_slot& s) {
        const byte_ring& t = s.boot.tasks;
        bool wrote = false;
        auto u = s.inflight.begin();
        while (s.pushed_bytes < s.assigned_bytes) {
            const std::optional<std::size_t> room = task_ring_room(s);
            if (!room) break;
            if (*room == 0) {
                t.indices().writer_waiting.store(1, std::memory_order_seq_cst);
                std::atomic_thread_fence(std::memory_order_seq_cst);
                if (t.writable() == 0) break;
                continue;
            }
            while (u != s.inflight.end() && u->stream_pos + u->size <= s.pushed_bytes) ++u; // (sent whole)
            if (u == s.inflight.end() || u->stream_pos > s.pushed_bytes) break; // (never: a unit goes once sent whole)
            const std::uint64_t off = s.pushed_bytes - u->stream_pos;
            const std::byte* from = nullptr; // null: zeros
            std::uint64_t left = 0;
            if (off < u->own) {
                from = logged(s, *u) + off;
                left = u->own - off;
                // Units that borrow nothing lie in the log as in the stream: one copy for the run.
                if (u->ext_len == 0)
                    for (auto v = std::next(u); v != s.inflight.end() && v->ext_len == 0; ++v) left += v->size;
            } else if (off < std::uint64_t{u->own} + u->ext_len) {
                const std::uint64_t in = off - u->own;
                if (!u->withdrawn)
                    from = u->job->source + u->ext + in;
                else
                    (void)sys::injected(sys::call::zeros);
                left = u->ext_len - in;
            } else {
                left = u->size - off;
            }
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(*room, left));
            if (from)
                t.write(from, n);
            else
                t.write_zeros(n);
            s.pushed_bytes += n;
            wrote = true;
        }
        if (wrote) t.indices().readable.notify_one();
    }

    // ---- workers (engine thread)

    /// What to poll to see a worker end: its handle's sentinel (-1, never ready, if none).
    static int sentinel_of(const pool_slot& s) noexcept {
        if (s.thread) return s.thread->sentinel();
        MULTIPROC_TRY {
            return s.proc ? s.proc->sentinel() : -1;
        } MULTIPROC_CATCH_ALL { // closed: settled already
            return -1;
        }
    }

    /// Signals a worker through its process handle (its sentinel is a pidfd only under fork
    /// and spawn; under forkserver it is the server's status connection).
    /// A thread cannot be killed: it is told to leave before its next task.
    static void signal_worker(pool_slot& s, int sig) noexcept {
        if (s.thread) {
            s.shared->stop.store(worker_stop_now, std::memory_order_release);
            s.shared->tasks.readable.notify_all();
            return;
        }
        if (!s.proc) return;
        MULTIPROC_TRY {
            if (sig == SIGKILL)
                s.proc->kill();
            else
                s.proc->terminate();
        } MULTIPROC_CATCH_ALL { // already reaped, or the kernel refused: nothing more to do
        }
    }

    void start_worker() {
        auto s = std::make_unique<pool_slot>();
        s->region = mirrored_region::create(sizeof(worker_shared), cfg_.ring_capacity, 2, "multiproc-pool-worker");
        s->shared = ::new (s->region.header()) worker_shared();
        const std::size_t cap = s->region.ring_capacity();
        s->boot.pool = shared_;
        s->boot.self = s->shared;
        s->boot.tasks = byte_ring(&s->shared->tasks, s->region.ring_data(0), cap);
        s->boot.results = byte_ring(&s->shared->results, s->region.ring_data(1), cap);
        s->boot.wake_fd = wake_fd_.get();
        s->boot.initializer = &cfg_.initializer;
        s->boot.maxtasks = cfg_.maxtasks;
        s->boot.spin = cfg_.worker_spin;
        s->boot.pool_fd = shared_mem_.fd();
        s->boot.rings = &s->region;
        s->boot.init = cfg_.remote_initializer ? &*cfg_.remote_initializer : nullptr;
        if (cfg_.threads) {
            s->boot.in_thread = true;
            s->boot.remote = cfg_.thread_context;
            s->boot.place = &s->place;
            s->thread = std::make_unique<thread_worker>(
                &s->boot, cfg_.thread_name ? cfg_.thread_name() : next_thread_worker_name(),
                cfg_.thread_main ? cfg_.thread_main : &worker_main);
            s->pid = s->thread->tid();
            s->name = s->thread->name();
        } else {
            // A forked worker inherits the parent's SIGTERM handler until worker_main resets
            // it: it starts with SIGTERM blocked instead (not under spawn or forkserver, whose
            // fresh programs have default handlers, and whose server must not inherit a mask).
            std::optional<sys::signal_block> term;
            if (cfg_.forks_workers) term.emplace(SIGTERM);
            s->boot.forked = cfg_.forks_workers;
            process_handle h = cfg_.spawn(&s->boot);
            term.reset();
            s->pid = *h.pid();
            s->name = h.name();
            s->proc.emplace(std::move(h));
        }
        log(10, "added worker {} (pid {})", s->name, s->pid);
        slots_.push_back(std::move(s));
    }

    /// Requeues `u` (elements [lo, hi) of its chunk), taking its bytes from `bytes`.
    void requeue(unit_meta u, const std::byte* bytes, std::uint32_t lo, std::uint32_t hi, bool retried) {
        if (lo >= hi) return;
        u.lo = lo;
        u.hi = hi;
        if (u.job->dropped) { // cancelled: nothing of it runs again
            fail_unit(u, cancelled("cancelled before it ran"));
            return;
        }
        if (retried) ++u.attempts;
        byte_buffer b;
        b.append(bytes, u.own);
        requeued_.emplace_back(u, std::move(b));
    }

    /// A worker has ended: collect what it published, reap it, and settle its units. The
    /// unit it was running loses the element it was on (or retries it); the rest of that
    /// chunk, and every unit it had not started, goes to other workers.
    void settle_exit(pool_slot& s) {
        drain(s);
        std::optional<int> code;
        if (s.thread) {
            code = s.thread->join();
        } else {
            MULTIPROC_TRY {
                s.proc->join();
                code = s.proc->exitcode();
            } MULTIPROC_CATCH(const error&, unnamed_) {
            }
        }
        const std::optional<int> exitcode = code;
        const std::int32_t lost = s.shared->lost_link.load(std::memory_order_acquire);
        const std::string how = s.violation ? "was killed by the pool because it " + *s.violation
                                : lost      ? describe_lost_link(lost, s.shared->lost_fd.load(std::memory_order_relaxed))
                                            : describe_exit(exitcode);
        log(10, "cleaning up worker {} (pid {}): {}", s.name, s.pid, how);
        // Only an initializer that really failed breaks the pool: it threw, or its worker died
        // while running it. A worker killed before its initializer started, or after it
        // completed, is an ordinary dying worker and is replaced. One that ended on its own
        // (an exit status, or a crash) before it started could not start at all: a
        // replacement would fail alike, forever (CPython respawns it forever).
        const std::uint32_t phase = s.shared->phase.load(std::memory_order_acquire);
        const bool pool_stopped = state_ == pool_state::terminate || state_ == pool_state::broken;
        const bool in_initializer = phase == worker_in_initializer && cfg_.initializer;
        const bool never_started = phase == worker_starting && exitcode && !killed_from_outside(exitcode);
        if ((s.init_error || in_initializer) && !pool_stopped) {
            std::string why = s.init_error ? "raised " + s.init_error->type +
                                                 (s.init_error->what.empty() ? "" : ": " + s.init_error->what)
                                           : "did not complete: the worker " + (s.violation ? how : describe_exit(exitcode));
            break_pool("multiproc: the pool's initializer " + why + " in " + who(s) + "; the pool is broken and runs no more tasks");
        } else if (never_started && !pool_stopped) {
            break_pool("multiproc: " + who(s) + " " + describe_exit(exitcode) +
                       " before it could run tasks; the pool is broken and runs no more tasks");
        } else if (lost && !pool_stopped) {
            // A task broke the worker: say so (CPython's worker dies with a traceback).
            report_to_stderr("multiproc: " + who(s) + " " + how +
                             " and left; what it had sent stands" +
                             (state_ == pool_state::run ? ", and a new worker takes its place" : ""));
        }
        const std::uint64_t running = s.shared->unit.load(std::memory_order_acquire);
        for (const unit_meta& u : s.inflight) {
            const std::byte* bytes = logged(s, u);
            if (u.withdrawn) continue; // already queued again
            if (state_ == pool_state::terminate || state_ == pool_state::broken) {
                fail_unit(u, stopped_error(), &s);
                continue;
            }
            if (u.seq != running) {
                requeue(u, bytes, u.lo, u.hi, false);
                continue;
            }
            if (s.stop_task) {
                stop_element(s, u, bytes);
                continue;
            }
            if (s.thread && !cfg_.threads_stoppable) {
                // A thread left in the middle of a unit (it is never stopped there): the values
                // of the elements it took are gone from their boxes, so none runs again.
                fail_unit(u, error_ptr(broken_pool("multiproc: " + who(s) + " " + how + " while running task " +
                                                   std::to_string(u.first + u.lo))),
                          &s);
                continue;
            }
            auto c = static_cast<std::uint32_t>(
                std::clamp<std::uint64_t>(s.shared->element.load(std::memory_order_relaxed), u.lo, u.hi - 1));
            requeue(u, bytes, u.lo, c, false);
            if (u.attempts < cfg_.retries) {
                log(20, "{} (pid {}) {} while running task {}; running it again", s.name, s.pid, how, u.first + c);
                requeue(u, bytes, c, c + 1, true);
            } else {
                std::string msg = "multiproc: " + who(s) + " " + how +
                                  " while running task " + std::to_string(u.first + c);
                if (u.attempts) msg += " (its worker died on each of " + std::to_string(u.attempts + 1) + " attempts)";
                fail_element(*u.job, u.first + c,
                             error_ptr(broken_pool(msg, s.place.rank >= 0 ? s.place.pid : s.pid, exitcode, u.first + c)), &s);
            }
            requeue(u, bytes, c + 1, u.hi, false);
        }
        forget_units(s);
        if (s.proc) {
            MULTIPROC_TRY {
                s.proc->close();
            } MULTIPROC_CATCH(const error&, unnamed_) {
            }
        }
    }

    /// Settles unit `u`, which worker `s` was running when the pool killed it to stop one of
    /// its elements (s.stop_task): that element ends with the stop's error, or runs again if
    /// the stop allows a retry and the worker_death policy has one left; the unit's other
    /// elements run elsewhere. If the worker had moved on to another unit before the kill
    /// landed, that unit did nothing wrong: it runs again, whole.
    void stop_element(pool_slot& s, const unit_meta& u, const std::byte* bytes) {
        const pool_slot::stop_order& st = *s.stop_task;
        if (st.seq != u.seq) {
            requeue(u, bytes, u.lo, u.hi, false);
            return;
        }
        const std::uint32_t c = std::clamp(st.element, u.lo, u.hi - 1);
        requeue(u, bytes, u.lo, c, false);
        if (st.retry && u.attempts < cfg_.retries && !u.job->dropped) {
            log(20, "{} (pid {}) was stopped while running task {}: {}; running it again", s.name, s.pid, u.first + c,
                st.error.what());
            requeue(u, bytes, c, c + 1, true);
        } else if (u.attempts != 0 && st.error.code() == errc::timeout_error) {
            fail_element(*u.job, u.first + c,
                         error_ptr(timeout_error(std::string(st.error.what()) + " (on each of " +
                                                 std::to_string(u.attempts + 1) + " attempts)")),
                         &s);
        } else {
            fail_element(*u.job, u.first + c, st.error, &s);
        }
        requeue(u, bytes, c + 1, u.hi, false);
    }

    /// Kills the workers whose current element has run past its job's timeout; returns when
    /// to look again (the earliest deadline of an element running or queued), or nothing.
    std::optional<std::uint64_t> check_timeouts(std::uint64_t now) {
        std::optional<std::uint64_t> next;
        auto at = [&](std::uint64_t t) { next = std::min(next.value_or(UINT64_MAX), t); };
        for (auto& p : slots_) {
            pool_slot& s = *p;
            if (s.exited || s.abandoned || s.violation || s.stop_task || s.live == 0) continue;
            const std::uint64_t seq = s.shared->unit.load(std::memory_order_acquire);
            for (const auto& u : s.inflight) {
                if (u.withdrawn) continue;
                const std::uint64_t limit = timeout_of(*u.job);
                if (limit == 0) continue;
                if (u.seq > seq) { // not started: it cannot run past its time before now + limit
                    at(now + limit);
                    continue;
                }
                if (u.seq != seq) continue; // (answered; its result not yet collected)
                const auto c = static_cast<std::uint32_t>(
                    std::clamp<std::uint64_t>(s.shared->element.load(std::memory_order_acquire), u.lo, u.hi - 1));
                const std::uint64_t started = s.shared->element_started_ns.load(std::memory_order_relaxed);
                if (now < started + limit) {
                    at(started + limit);
                    continue;
                }
                // Past its time, unless it has just finished: collect what the worker published
                // and look again (drain may drop this unit from inflight: stop iterating it).
                const std::uint64_t first = u.first, useq = u.seq;
                drain(s);
                if (s.violation || s.shared->unit.load(std::memory_order_acquire) != useq ||
                    std::none_of(s.inflight.begin(), s.inflight.end(),
                                 [&](const unit_meta& v) { return v.seq == useq && !v.withdrawn; }) ||
                    s.shared->element.load(std::memory_order_acquire) != std::uint64_t{c}) {
                    at(now); // look again at once
                    break;
                }
                std::string msg = "multiproc: task " + std::to_string(first + c) + " ran longer than its timeout of " +
                                  describe_ns(limit) + " in " + who(s) + ", which was killed";
                if (state_ == pool_state::run) msg += "; a new worker takes its place";
                log(20, "{}", msg);
                s.stop_task = pool_slot::stop_order{useq, c, error_ptr(timeout_error(msg)), true};
                signal_worker(s, SIGKILL);
                break;
            }
        }
        return next;
    }

    static std::string describe_ns(std::uint64_t ns) {
        if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + " s";
        if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + " ms";
        if (ns % 1000 == 0) return std::to_string(ns / 1000) + " us";
        return std::to_string(ns) + " ns";
    }

    error_ptr stopped_error() const {
        if (state_ == pool_state::broken) return error_ptr(broken_pool(broken_reason_));
        return error_ptr(broken_pool("multiproc: the pool was terminated before the task completed"));
    }

    /// Fails every queued unit of every job (the pool is stopping or broken).
    void fail_queued() {
        auto e = stopped_error();
        while (!requeued_.empty()) {
            unit_meta u = requeued_.front().first;
            requeued_.pop_front();
            fail_unit(u, e);
        }
        while (!pending_meta_.empty()) {
            unit_meta u = pending_meta_.front();
            pending_meta_.pop_front();
            fail_unit(u, e);
        }
        pending_bytes_.clear();
    }

    void break_pool(std::string reason) {
        if (state_ == pool_state::broken) return;
        report_to_stderr(reason);
        state_ = pool_state::broken;
        broken_reason_ = std::move(reason);
    }

    /// Stops every worker: SIGTERM now, SIGKILL if it has not gone a second later.
    void signal_workers() {
        if (!signalled_) {
            signalled_ = true;
            kill_at_ = steady::now() + (kill_now_ ? std::chrono::seconds(0) : std::chrono::seconds(1));
            for (auto& s : slots_)
                if (!s->exited) signal_worker(*s, kill_now_ ? SIGKILL : SIGTERM);
        } else if (kill_at_ && steady::now() >= *kill_at_) {
            kill_at_.reset();
            for (auto& s : slots_)
                if (!s->exited) signal_worker(*s, SIGKILL);
        }
    }

    /// One round of the engine under the lock; true when the engine is done.
    bool step_locked() {
        for (std::size_t i = 0; i < slots_.size();) {
            if (slots_[i]->exited) {
                settle_exit(*slots_[i]);
                slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
        drive_locked();
        switch (state_) {
        case pool_state::run:
            maintain();
            return false;
        case pool_state::close:
            if (!jobs_ && pending_meta_.empty() && requeued_.empty()) {
                for (auto& s : slots_)
                    if (!s->stopping) {
                        s->stopping = true;
                        s->shared->stop.store(1, std::memory_order_release);
                        s->shared->tasks.readable.notify_all();
                    }
                return slots_.empty();
            }
            maintain();
            return false;
        case pool_state::terminate:
        case pool_state::broken:
            // A thread may still be reading the values of the units it holds, which their
            // jobs own: they are kept until it has left (taken before anything is failed,
            // which may complete a job and let it go).
            for (auto& s : slots_)
                if (s->thread)
                    for (const auto& u : s->inflight)
                        if (!u.withdrawn && u.job->keep) s->pinned.push_back(u.job->keep);
            fail_queued();
            for (auto& s : slots_) {
                for (const auto& u : s->inflight)
                    if (!u.withdrawn) fail_unit(u, stopped_error(), s.get());
                forget_units(*s);
                s->abandoned = true;
            }
            signal_workers();
            return slots_.empty();
        }
        return false;
    }

    /// Starts a worker; one killed from outside before it took its work (start() reports it
    /// ended before it received its target) is not a failure to start: another is started.
    void start_worker_despite_kills() {
        for (;;) {
            child_ended_before_target().reset();
            MULTIPROC_TRY {
                start_worker();
                return;
            } MULTIPROC_CATCH(const error&, unnamed_) {
                if (!killed_from_outside(child_ended_before_target())) MULTIPROC_RETHROW;
                log(10, "a starting pool worker was killed (exit code {}); starting another",
                    *child_ended_before_target());
            }
        }
    }

    /// Keeps `processes` workers while the pool has a use for them.
    void maintain() {
        while (static_cast<int>(slots_.size()) < cfg_.processes && state_ != pool_state::broken) {
            MULTIPROC_TRY {
                start_worker_despite_kills();
            } MULTIPROC_CATCH(const std::exception&, e) {
                break_pool(std::string("multiproc: could not start a pool worker: ") + e.what() +
                           "; the pool is broken and runs no more tasks");
            }
        }
        dispatch_locked();
    }

    /// Runs a done callback; what it throws is reported and ignored (Python logs it).
    static void run_done_callback(std::function<void()>& f) noexcept {
        MULTIPROC_TRY {
            f();
        } MULTIPROC_CATCH_ALL {
            report_callback_exception();
        }
    }

    void run_callbacks(std::vector<std::shared_ptr<job_core>>& due) {
        for (auto& j : due) {
            if (j->has_callbacks && !j->cancelled && j->ops->callbacks) j->ops->callbacks(*j);
            std::vector<std::function<void()>> done;
            {
                std::lock_guard lk(mu_);
                j->mark_ready();
                j->settled = true;
                done.swap(j->on_done);
            }
            for (auto& f : done) run_done_callback(f);
        }
        due.clear();
    }

    void engine_main() {
        engine_of_this_thread() = this;
        (void)sys::prctl(PR_SET_NAME, reinterpret_cast<unsigned long>("multiproc-pool")); // as top and gdb show it
        MULTIPROC_TRY {
            std::lock_guard lk(mu_);
            for (int i = 0; i < cfg_.processes; ++i) start_worker_despite_kills();
        } MULTIPROC_CATCH_ALL {
            startup_error_ = error_ptr::current();
        }
        if (startup_error_) {
            for (auto& s : slots_) signal_worker(*s, SIGKILL);
            for (auto& s : slots_) {
                if (s->thread) { // (told to stop: it leaves before any task)
                    (void)s->thread->join();
                    continue;
                }
                MULTIPROC_TRY {
                    s->proc->join();
                    s->proc->close();
                } MULTIPROC_CATCH(const error&, unnamed_) {
                }
            }
            slots_.clear();
        }
        {
            std::lock_guard lk(mu_);
            started_ = true;
        }
        started_cv_.notify_all();
        if (startup_error_) return;

        std::vector<pollfd> fds;
        std::vector<std::shared_ptr<job_core>> due;
        std::vector<pool_slot*> ended; // pidfds that polled readable, marked under the lock
        for (;;) {
            bool done;
            std::optional<steady::time_point> until;
            {
                std::lock_guard lk(mu_);
                for (pool_slot* s : ended) s->exited = true;
                ended.clear();
                done = step_locked();
                // After the step, which may have given units to workers it started.
                timeout_at_.reset();
                if (!done && timed_jobs_ != 0 && (state_ == pool_state::run || state_ == pool_state::close))
                    if (auto t = check_timeouts(now_ns()))
                        timeout_at_ = steady::time_point(steady::duration(static_cast<steady::rep>(*t)));
                wake_engine_ = false;
                due.swap(callbacks_due_);
                rebalance_at_ = next_rebalance();
                until = kill_at_;
                if (rebalance_at_ && (!until || *rebalance_at_ < *until)) until = rebalance_at_;
                if (timeout_at_ && (!until || *timeout_at_ < *until)) until = timeout_at_;
            }
            run_callbacks(due);
            if (done) break;
            {
                // A callback (or a coroutine resumed there) may have given work to the workers
                // or completed a job with callbacks: go round again rather than sleep on it.
                std::lock_guard lk(mu_);
                if (wake_engine_ || !callbacks_due_.empty()) continue;
            }

            fds.clear();
            fds.push_back({wake_fd_.get(), POLLIN, 0});
            // Asked afresh each time, as a replaced worker's slot has a new handle.
            for (auto& s : slots_) fds.push_back({sentinel_of(*s), POLLIN, 0});
            shared_->wake_pending.store(0, std::memory_order_seq_cst);
            shared_->watchers.fetch_sub(1, std::memory_order_seq_cst);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (shared_->attention.load(std::memory_order_seq_cst) == 0) {
                int n = until ? sys::poll_until(fds.data(), fds.size(), *until, false)
                              : sys::poll_until(fds.data(), fds.size(), {}, true);
                if (n < 0) report_to_stderr("multiproc: poll in a pool's engine failed: " + std::string(::strerror(errno)));
            }
            shared_->watchers.fetch_add(1, std::memory_order_seq_cst);
            (void)sys::eventfd_drain(wake_fd_.get());
            for (std::size_t i = 1; i < fds.size(); ++i)
                if (fds[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ended.push_back(slots_[i - 1].get());
        }
        log(10, "pool engine exiting");
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
