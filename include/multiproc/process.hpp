/// @file process.hpp
/// Processes (Python: multiprocessing.Process, current_process, parent_process,
/// active_children, cpu_count).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/runtime/child_key.hpp>
#include <multiproc/detail/os/cpu.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/start/fork_gate.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/logging.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/spawn.hpp>

#include <multiproc/detail/util/chrono.hpp>
#include <concepts>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// Options given when a process is made (Python: the `name` and `daemon` keywords of Process).
struct process_options {
    /// The process's name; empty means the default, `Process-N`.
    std::string name{};
    /// Whether it is a daemon; empty means the daemon policy's default, or true when the
    /// creating process is a daemon (Python: inherited from the creating process).
    std::optional<bool> daemon{}; // (default initializers let users name one field under -Wextra)
};

class process_handle;
inline std::vector<process_handle> active_children();

/// A child process that was started by this process (Python: the Process objects that
/// active_children() returns). Copies refer to the same child. Every process object is one.
class process_handle {
public:
    /// The name (Python: Process.name): `Process-N` unless set, `Process-1:2` for the second
    /// child of `Process-1`. Renaming takes effect in the child only if done before start().
    [[nodiscard]] const std::string& name() const { return rec().name; }
    void name(std::string n) { rec().name = std::move(n); }

    /// Whether the process is a daemon (Python: Process.daemon).
    [[nodiscard]] bool daemon() const { return rec().daemon; }
    /// Makes the process a daemon or not; only before start() (Python: Process.daemon = ...).
    void daemon(bool d) {
        auto& c = checked();
        if (c.started()) detail::raise(state_error("process has already started"));
        c.daemon = d;
    }

    /// The pid, or nothing before start() (Python: Process.pid). In the child, the object
    /// it was started from (its copy under fork, the one rebuilt under spawn and forkserver)
    /// is the current process: this is its own pid there, is_alive() is true and exitcode()
    /// empty, as Python's `self is _current_process`.
    [[nodiscard]] std::optional<pid_t> pid() const {
        auto& c = checked();
        if (is_current(c)) return ::getpid();
        return c.started() ? std::optional<pid_t>(c.pid) : std::nullopt;
    }

    /// The same as pid() (Python: Process.ident, an alias of pid).
    [[nodiscard]] std::optional<pid_t> ident() const { return pid(); }

    /// The exit code once the process has ended, or nothing (Python: Process.exitcode):
    /// 0 when the target returned, n for exit(n), 1 for an uncaught exception, -N for signal N.
    /// If the program ignores SIGCHLD (SIG_IGN, SA_NOCLDWAIT) or reaps children in a handler
    /// of its own, the exit status of a fork or spawn child may be gone before this process
    /// could collect it: then, once the process has ended, this throws os_error (ECHILD)
    /// with a sentence naming the cause, rather than make up a code. (Under forkserver the
    /// server collects it, so it is always known.)
    [[nodiscard]] std::optional<int> exitcode() const {
        auto& c = checked();
        if (!c.started() || is_current(c)) return std::nullopt;
        require_child(c, "can only test a child process");
        if (!detail::poll_child(c)) return std::nullopt;
        if (!c.exitcode) detail::raise(os_error(c.status_lost, ECHILD));
        return c.exitcode;
    }

    /// Whether the process has started and not yet ended (Python: Process.is_alive()).
    /// Known whoever reaped it: it watches the process through a pidfd.
    [[nodiscard]] bool is_alive() const {
        auto& c = checked();
        if (is_current(c)) return true;
        require_child(c, "can only test a child process");
        if (!c.started()) return false;
        if (detail::poll_child(c)) {
            detail::forget_finished(detail::rt());
            return false;
        }
        return true;
    }

    /// Waits until the process ends (Python: Process.join()); whoever reaps it.
    void join() {
        auto& c = joinable();
        detail::join_child(c, std::nullopt);
    }
    /// Waits at most `timeout`, then returns either way: ask is_alive() or exitcode() after
    /// (Python: Process.join(timeout)). A negative timeout waits not at all; one too long to
    /// represent as a deadline (`seconds::max()`, `duration<double>(1e300)`) waits as join().
    template <class Rep, class Period>
    void join(std::chrono::duration<Rep, Period> timeout) {
        auto& c = joinable();
        detail::join_child(c, detail::deadline_in(timeout));
    }

    /// Sends SIGTERM (Python: Process.terminate()); nothing happens if it has been reaped.
    void terminate() { detail::signal_child(signalable("terminate"), SIGTERM); }
    /// Sends SIGKILL (Python: Process.kill()).
    void kill() { detail::signal_child(signalable("kill"), SIGKILL); }
    /// Sends SIGINT, as Ctrl-C would (Python 3.14: Process.interrupt()). A child that keeps
    /// SIGINT's default action ends with exitcode -2; one with a handler decides for itself.
    void interrupt() { detail::signal_child(signalable("interrupt"), SIGINT); }

    /// Releases the process's resources; any later use but name() is an error
    /// (Python: Process.close()). The process must have ended.
    void close() {
        auto& c = rec();
        if (c.closed) return; // closing twice is harmless, as in Python
        if (c.started()) {
            if (!detail::poll_child(c))
                detail::raise(value_error("Cannot close a process while it is still running. "
                                  "You should first call join() or terminate()."));
            {
                std::lock_guard lk(c.reap_mu);
                for (int* fd : {&c.pidfd, &c.status_fd}) {
                    if (*fd >= 0) detail::sys::close(*fd);
                    *fd = -1;
                }
            }
            detail::forget_finished(detail::rt());
        }
        c.closed = true;
    }

    /// A descriptor that becomes readable when the process ends, for poll/select
    /// (Python: Process.sentinel). Owned by the process object. Under forkserver it is the
    /// connection on which the server reports the exit code: readable once it has. It is the
    /// same descriptor from start() to close(), whoever reaps the process.
    [[nodiscard]] int sentinel() const {
        auto& c = checked();
        if (!c.started()) detail::raise(value_error("process not started"));
        return c.sentinel();
    }

    /// Python's repr: `<Process name='Process-1' pid=12 parent=11 stopped exitcode=-SIGTERM>`.
    friend std::ostream& operator<<(std::ostream& os, const process_handle& p) {
        auto& c = p.rec();
        std::string status;
        std::optional<int> code;
        const bool current = is_current(c);
        if (current)
            status = "started";
        else if (c.closed)
            status = "closed";
        else if (c.parent_pid != ::getpid())
            status = "unknown";
        else if (!c.started())
            status = "initial";
        else {
            bool ended = false;
            MULTIPROC_TRY {
                ended = detail::poll_child(c);
                code = c.exitcode;
            } MULTIPROC_CATCH(const error&, unnamed_) {
            }
            status = ended ? "stopped" : "started";
        }
        os << '<' << c.class_name << " name=" << detail::python_repr(c.name);
        // (close() forgets it, as Python's drops _popen; the current process's object has none)
        if (c.started() && !c.closed && !current) os << " pid=" << c.pid;
        os << " parent=" << c.parent_pid << ' ' << status;
        if (code) {
            os << " exitcode=";
            if (*code < 0 && ::sigabbrev_np(-*code))
                os << "-SIG" << ::sigabbrev_np(-*code);
            else
                os << *code;
        }
        if (c.daemon) os << " daemon";
        return os << '>';
    }

protected:
    process_handle() = default;
    explicit process_handle(std::shared_ptr<detail::child_record> r) : rec_(std::move(r)) {}

    detail::child_record& rec() const {
        if (!rec_) detail::raise(state_error("process object was moved from"));
        return *rec_;
    }
    detail::child_record& checked() const {
        auto& c = rec();
        if (c.closed) detail::raise(value_error("process object is closed"));
        return c;
    }
    /// Whether `c` is the record of the object this process was started from: the child has
    /// that object's identity and creator (become_child). No other object here has both:
    /// those made here have longer identities and this process as creator; those copied from
    /// the parent under fork, other numbers; those a fresh program (spawn, the forkserver)
    /// made during its static initialisation, numbered from 1 as in a main process, were
    /// made by that program, not by this child's creator.
    static bool is_current(const detail::child_record& c) {
        const auto& self = detail::rt().self;
        return !self.identity.empty() && c.parent_pid == self.parent_pid && c.identity == self.identity;
    }
    static void require_child(const detail::child_record& c, const char* what) {
        if (c.parent_pid != ::getpid()) detail::raise(state_error(what));
    }
    detail::child_record& joinable() const {
        auto& c = checked();
        require_child(c, "can only join a child process");
        if (!c.started()) detail::raise(state_error("can only join a started process"));
        return c;
    }
    detail::child_record& signalable(const char* verb) const {
        auto& c = checked();
        require_child(c, "can only signal a child process");
        if (!c.started()) detail::raise(state_error(std::string("cannot ") + verb + " a process that was never started"));
        return c;
    }

    std::shared_ptr<detail::child_record> rec_;

    friend std::vector<process_handle> active_children();
};

namespace detail {

// What start() hands to the start policy's launch(): the services that start a child.
struct child_start {
    runtime& r;
    const child_record& rec;
    void (*entry)(void*); // runs the target in a child that inherits memory
    void* self;
    target_ref target{};  // identifies the target to a child that does not
    int pidfd = -1;       // set by launchers that get the child's pidfd themselves
    int status_fd = -1;   // set by launchers whose child reports its exit status elsewhere
    fork_gate gate;       // fork: what the child waits at until start() holds its pidfd
    pid_t parent = 0;     // fork: the starting process, whose end the child watches for at the gate
    const char* failed = "fork"; // what failed when launch() returns -1

    child_start(runtime& rt_, const child_record& rec_, void (*entry_)(void*), void* self_) noexcept
        : r(rt_), rec(rec_), entry(entry_), self(self_) {}
    child_start(const child_start&) = delete;
    child_start& operator=(const child_start&) = delete;
    // A gate neither opened nor refused_dead() (no path does that: start() opens it, or
    // kills and reaps the child first) is refused as the object goes, its word kept in use.
    ~child_start() = default;

    /// fork() with the runtime locked across it, so that no other thread holds its lock in
    /// the child. In the child, call run_in_child() next. The child waits at a gate (a word
    /// of shared memory: detail/start/fork_gate.hpp) until open_gate(): start() takes its
    /// pidfd first, so that the child cannot have ended, and been reaped by a SIGCHLD
    /// handler or SIG_IGN, before its parent holds it.
    /// Returns -1 with errno if the gate's page or the fork fails.
    pid_t fork() noexcept {
        (void)fork_gate_handlers;    // (odr-used, so that every program that forks has them)
        (void)fork_gate_calls_bound;
        parent = ::getpid();
        r.mu.lock();
        if (!gate.take()) {
            int e = errno;
            r.mu.unlock();
            failed = "mmap of the fork gate";
            errno = e;
            return -1;
        }
        pid_t pid = sys::fork();
        int e = errno;
        if (pid == 0) return 0;
        r.mu.unlock();
        if (pid < 0) gate.forget();
        errno = e;
        return pid;
    }
    /// Lets a forked child waiting at the gate run its target.
    void open_gate() noexcept { gate.open(); }
    /// Tells a forked child that start() has killed and reaped to leave (it is dead: its
    /// gate's word can be used again).
    void refuse_dead() noexcept { gate.refuse(true); }
    /// The forked child's life: waits at the gate, runs the target and leaves with _exit.
    [[noreturn]] void run_in_child() noexcept {
        r.mu.unlock();
        if (!gate.pass(parent)) ::_exit(1); // the parent could not take it on (and kills it), or died
        if (r.self.parent_sentinel >= 0) sys::close(r.self.parent_sentinel); // ours is our OS parent
        r.self.parent_sentinel = -1;
        child_main(rec, entry, self);
    }
    /// Starts a fresh copy of the program that runs the target (start::spawn).
    pid_t spawn() { return take(spawn_child(rec, target)); }
    /// Has the forkserver fork a child that runs the target (start::forkserver).
    pid_t via_forkserver() { return take(forkserver::request_child(rec, target)); }

private:
    pid_t take(const launch_result& l) noexcept {
        pidfd = l.pidfd;
        status_fd = l.status_fd;
        return l.pid;
    }
};

// ==========================================================================================
// READ THIS IF YOUR COMPILE BREAKS HERE
//
// Under start::spawn and start::forkserver the child is a fresh copy of the program (or a
// fork of a server that was one): it shares no memory with its parent. What crosses is the
// *type* of the target, which the child's copy of the program knows, and the arguments, as
// data. So:
//   - the target must be stateless:
//       a lambda that captures nothing   process p([](int n) { ... }, n);   not [n] { ... }
//       a function named at compile time process p(multiproc::fn<&work>, 1); not work
//       an empty function object         struct job { void operator()(int) const; };
//   - every argument must be data: a trivially copyable value without pointers,
//     std::string, std::vector of those, or a multiproc object that knows how to cross.
//     A pointer (a string literal too), std::string_view or std::span means nothing in the
//     child: pass a std::string, or the value itself.
//   - a process subclass must be default-constructible and list its data members:
//       auto fields() { return std::tie(count, text); }
// Under start::fork (the default) none of this applies: the child is a copy of the parent.
// ==========================================================================================

struct own_target_t {};
inline constexpr own_target_t own_target{};

template <class F>
struct check_target_is_stateless {
    static constexpr bool function_pointer =
        (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) || std::is_member_pointer_v<F>;
    static_assert(!function_pointer,
                  "multiproc: under start::spawn and start::forkserver a function pointer cannot be a target, "
                  "because its value means nothing in the child; name the function at compile time instead: "
                  "multiproc::fn<&your_function> (see READ THIS IF YOUR COMPILE BREAKS HERE in "
                  "multiproc/process.hpp)");
    static_assert(function_pointer || (std::is_empty_v<F> && std::is_default_constructible_v<F>),
                  "multiproc: under start::spawn and start::forkserver the target must be stateless: a capturing "
                  "lambda (even [&] or [=]), std::function, or a function object with data members cannot cross "
                  "into the child; write a lambda that captures nothing and pass what it captured as arguments, "
                  "process p([](int n) { ... }, n) (see READ THIS IF YOUR COMPILE BREAKS HERE in "
                  "multiproc/process.hpp)");
    static constexpr bool value = !function_pointer && std::is_empty_v<F> && std::is_default_constructible_v<F>;
};

// Instantiated per argument, so that the note above the sentence names the offending type.
template <class S, class T>
struct check_argument_crosses {
    static_assert(crossable<S, T>(),
                  "multiproc: under start::spawn and start::forkserver every argument must be data the child "
                  "can rebuild: a value the serialization policy S can send (serialize::binary, the default: "
                  "numbers, std::string, standard containers, aggregates) without pointers, or a multiproc object "
                  "that crosses; a pointer (a string literal too), std::string_view or std::span means nothing in "
                  "the child, so pass a std::string or the value itself (the argument's type T and the policy S "
                  "are named in the instantiation above)");
    static constexpr bool value = crossable<S, T>();
};

template <class S, class F, class... Args>
constexpr bool check_target_crosses() {
    return check_target_is_stateless<F>::value & (check_argument_crosses<S, Args>::value & ... & true);
}

template <class D>
concept has_fields = requires(D& d) { d.fields(); };

template <class S, class Tuple>
struct check_fields_cross;
template <class S, class... Ts>
struct check_fields_cross<S, std::tuple<Ts...>> {
    static constexpr bool value = (check_argument_crosses<S, std::remove_cvref_t<Ts>>::value & ... & true);
};

template <class D, class Base>
constexpr bool check_subclass_crosses() {
    static_assert(std::is_default_constructible_v<D>,
                  "multiproc: under start::spawn and start::forkserver a process subclass must be "
                  "default-constructible: the child makes its own object, then sets the members its fields() "
                  "lists (see READ THIS IF YOUR COMPILE BREAKS HERE in multiproc/process.hpp)");
    static_assert(has_fields<D> || sizeof(D) == sizeof(Base),
                  "multiproc: under start::spawn and start::forkserver a process subclass with data members "
                  "must list them for the child: auto fields() { return std::tie(member1, member2); } (see READ "
                  "THIS IF YOUR COMPILE BREAKS HERE in multiproc/process.hpp)");
    if constexpr (has_fields<D>)
        return std::is_default_constructible_v<D> &&
               check_fields_cross<typename Base::policies::serialize, std::remove_cvref_t<decltype(std::declval<D&>().fields())>>::value;
    else
        return std::is_default_constructible_v<D> && sizeof(D) == sizeof(Base);
}

template <class D>
std::string process_class_name() {
    if constexpr (requires { D::process_class_name; })
        return std::string(D::process_class_name);
    else
        return unqualified_name(type_name<D>());
}

/// The sentinel of parent_process(): a pidfd of the parent, opened at start under
/// forkserver, else on first use while the parent is still our OS parent (checked after
/// opening, so that a reused pid is never watched). If the parent has already ended, an
/// eventfd that is readable at once stands for it.
inline int parent_sentinel() {
    auto& r = rt();
    std::lock_guard lk(r.mu);
    auto& s = r.self;
    if (s.parent_sentinel >= 0) return s.parent_sentinel;
    int fd = sys::pidfd_open(s.parent_pid);
    if (fd < 0 && errno != ESRCH) sys::fail("pidfd_open on the parent process");
    if (fd >= 0 && ::getppid() == s.parent_pid) return s.parent_sentinel = fd;
    if (fd >= 0) sys::close(fd); // the parent ended meanwhile, or its pid is another's now
    fd = sys::eventfd(1, 0);
    if (fd < 0) sys::fail("eventfd for the sentinel of a parent that has ended");
    return s.parent_sentinel = fd;
}

} // namespace detail

/// Base of a process defined by subclassing (Python: subclassing Process and overriding
/// run()): `struct worker : multiproc::process_base<worker> { void run(); };`. start() calls
/// `run()` of the derived class in the child. The default name is the class name with the
/// process number, `worker-1`, as in Python.
template <class Derived, class... Ps>
class process_base : public process_handle {
public:
    using policies = policy_set<Ps...>;

    process_base(const process_base&) = delete;
    process_base& operator=(const process_base&) = delete;
    process_base(process_base&&) noexcept = default;
    process_base& operator=(process_base&&) noexcept = default;
    /// Destroying a started process object neither stops nor waits for the child: it stays
    /// among active_children(), and is joined (terminated first, if a daemon) at exit.
    ~process_base() = default;

    /// Starts the child (Python: Process.start()). Streams are flushed first, so output
    /// buffered before the start is written once. In a daemon, state_error "daemonic processes
    /// are not allowed to have children", unless the daemon was made under nested::allow.
    void start() { try_start().value(); }

    /// As `start()`, but the errors a caller can react to come back in the result instead of
    /// being raised: a lifecycle error (`state_error`) and a failed fork or pidfd_open
    /// (`os_error`, e.g. EAGAIN at the process limit), in every build; with exceptions, any
    /// other error of the start too. The form for builds without exceptions.
    result<void> try_start() {
        return detail::capture([&]() -> result<void> {
            auto& c = checked();
            if (c.started()) return state_error("cannot start a process twice");
            if (c.parent_pid != ::getpid())
                return state_error("can only start a process object created by current process");
            auto& r = detail::rt();
            if (r.self.daemon && !r.self.may_have_children)
                return state_error("daemonic processes are not allowed to have children");
            detail::check_not_bootstrapping();
            detail::reap_children();
            detail::flush_std_streams();
            if constexpr (policies::start::inherits_memory) detail::make_room_for_child(c);
            detail::child_start child{r, c, &entry, static_cast<Derived*>(this)};
            if constexpr (!policies::start::inherits_memory) child.target = static_cast<Derived*>(this)->crossing_target();
            pid_t pid = policies::start::launch(child);
            if (pid < 0) return os_error("multiproc: " + std::string(child.failed) + " for process " + c.name, errno);
            // A forked child waits at its gate until its pidfd is taken; spawn and forkserver
            // launchers take it before the child can have its target, so before it can end.
            int fd = child.pidfd >= 0 ? child.pidfd : detail::sys::pidfd_open(pid);
            if (fd < 0) {
                int e = errno;
                detail::sys::kill(pid, SIGKILL);
                detail::sys::waitpid(pid, nullptr, 0);
                child.refuse_dead();
                return os_error("multiproc: pidfd_open for process " + c.name, e);
            }
            child.open_gate();
            c.pid = pid;
            c.pidfd = fd;
            c.status_fd = child.status_fd;
            std::lock_guard lk(r.mu);
            r.children.push_back(rec_);
            return {};
        });
    }

protected:
    /// Makes a process that is not started; `opts` may name it or set its daemon flag.
    /// Under spawn and forkserver, Derived must be default-constructible (the child makes
    /// its own) and list its data members in `auto fields() { return std::tie(a, b); }`.
    explicit process_base(process_options opts = {}) : process_base(std::move(opts), detail::own_target) {
        if constexpr (!policies::start::inherits_memory) {
            if constexpr (detail::check_subclass_crosses<Derived, process_base>())
                static_cast<void>(detail::registered<subclass_target>);
        }
    }

    /// As above, for a Derived that identifies its target itself (basic_process).
    process_base(process_options opts, detail::own_target_t) {
        auto& r = detail::rt();
        auto c = std::make_shared<detail::child_record>();
        {
            std::lock_guard lk(r.mu);
            c->identity = r.self.identity;
            c->identity.push_back(r.counter++);
        }
        c->class_name = detail::process_class_name<Derived>();
        if (opts.name.empty()) {
            c->name = c->class_name + "-";
            for (std::size_t i = 0; i < c->identity.size(); ++i)
                c->name += (i ? ":" : "") + std::to_string(c->identity[i]);
        } else {
            c->name = std::move(opts.name);
        }
        // Unset: the policy's default, or, in a daemon, a daemon (CPython: "the initial value
        // is inherited from the creating process").
        c->daemon = opts.daemon.value_or(policies::daemon::value || detail::rt().self.daemon);
        c->may_have_children = policies::nested::allowed;
        rec_ = std::move(c);
    }

    /// How a child that does not inherit memory gets this object: Derived's type and the
    /// members its fields() lists. basic_process hides this with its own.
    detail::target_ref crossing_target() const {
        return {detail::target_id<subclass_target>(), &subclass_target::save, static_cast<const Derived*>(this)};
    }

private:
    static void entry(void* self) {
        auto& d = *static_cast<Derived*>(self);
        if constexpr (requires { d.prepare_child(detail::child_key{}); }) d.prepare_child(detail::child_key{});
        d.run();
    }

    // The registry key of a subclass: the child default-constructs Derived, reads the
    // members fields() lists, and takes the name and identity its parent gave it.
    struct subclass_target {
        using S = typename policies::serialize;
        static void save(const void* p, detail::crossing_writer& out) {
            if constexpr (detail::has_fields<Derived>) {
                auto t = const_cast<Derived*>(static_cast<const Derived*>(p))->fields();
                std::apply([&](const auto&... m) { (detail::cross_save<S>(out, m), ...); }, t);
            }
        }
        static void* load(detail::crossing_reader& in, const detail::child_record& self) {
            auto* d = new Derived();
            if constexpr (detail::has_fields<Derived>) {
                auto t = d->fields();
                std::apply([&](auto&... m) { ((m = detail::cross_load<S, std::remove_cvref_t<decltype(m)>>(in)), ...); }, t);
            }
            auto& rec = static_cast<process_base*>(d)->rec();
            rec.name = self.name;
            rec.identity = self.identity;
            rec.daemon = self.daemon;
            rec.may_have_children = self.may_have_children;
            rec.parent_pid = self.parent_pid;
            rec.pid = ::getpid();
            return d;
        }
        static void run(void* p) { entry(p); }
    };
};

/// A process that runs a target (Python: multiprocessing.Process(target, args)). Under
/// `start::fork` any callable works, capturing lambdas included; under `start::spawn` and
/// `start::forkserver` the target must be stateless and the arguments data. The child calls
/// `target(args...)` with its own copies of the arguments, passed as lvalues.
template <class... Ps>
class basic_process : public process_base<basic_process<Ps...>, Ps...> {
    using base = process_base<basic_process<Ps...>, Ps...>;
    friend base;

public:
    static constexpr std::string_view process_class_name = "Process";

    /// Prepares a child that will run `target(args...)`; nothing runs until start().
    template <class F, class... Args>
        requires(!std::same_as<std::remove_cvref_t<F>, process_options> &&
                 !std::same_as<std::remove_cvref_t<F>, basic_process>)
    explicit basic_process(F&& target, Args&&... args)
        : basic_process(process_options{}, std::forward<F>(target), std::forward<Args>(args)...) {}

    /// As above, with a name or daemon flag (Python: Process(name=..., daemon=...)).
    template <class F, class... Args>
    basic_process(process_options opts, F&& target, Args&&... args)
        : base(std::move(opts), detail::own_target),
          target_(make_target(std::forward<F>(target), std::forward<Args>(args)...)) {}

    /// What the child runs: the target with its arguments (Python: Process.run()).
    void run() { target_.call(target_.box.get()); }

    /// For start(): in the child, before run(), the arguments let go of what is the
    /// parent's (a connection closes its peer end unless that is an argument too).
    void prepare_child(detail::child_key) noexcept { target_.adopt(target_.box.get()); }

private:
    struct target_holder {
        std::unique_ptr<void, void (*)(void*)> box{nullptr, [](void*) {}};
        void (*call)(void*) = nullptr;
        void (*adopt)(void*) = nullptr;
        // spawn, forkserver: read at start(), not here: an object made during static
        // initialisation (at namespace scope) may come before the registration it reads
        const char* (*id)() noexcept = nullptr;
        void (*save)(const void*, detail::crossing_writer&) = nullptr; // spawn, forkserver
    };

    detail::target_ref crossing_target() const {
        return {target_.id ? target_.id() : nullptr, target_.save, target_.box.get()};
    }

    template <class F, class... Args>
    static target_holder make_target(F&& f, Args&&... args) {
        using box_t = std::tuple<std::decay_t<F>, std::decay_t<Args>...>;
        static_assert(std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>,
                      "multiproc: the target cannot be called with these arguments; the child calls "
                      "target(args...) with its own copy of each argument, passed as an lvalue");
        target_holder t;
        t.box = std::unique_ptr<void, void (*)(void*)>(
            new box_t(std::forward<F>(f), std::forward<Args>(args)...),
            [](void* p) { delete static_cast<box_t*>(p); });
        t.call = [](void* p) { std::apply([](auto& fn, auto&... a) { std::invoke(fn, a...); }, *static_cast<box_t*>(p)); };
        t.adopt = [](void* p) { std::apply([](auto&, auto&... a) { detail::adopt_arguments(a...); }, *static_cast<box_t*>(p)); };
        if constexpr (!base::policies::start::inherits_memory) {
            // The child knows the target by this key, registered at static initialisation.
            if constexpr (detail::check_target_crosses<typename base::policies::serialize, std::decay_t<F>, std::decay_t<Args>...>()) {
                using key = detail::function_target<typename base::policies::serialize, std::decay_t<F>,
                                                    std::decay_t<Args>...>;
                static_cast<void>(detail::registered<key>);
                t.id = &detail::target_id<key>;
                t.save = &key::save;
            }
        }
        return t;
    }

    target_holder target_;
};

/// The running process as seen by itself, or its parent (Python: the objects that
/// current_process() and parent_process() return).
class process_info {
public:
    /// The name: `MainProcess` in the main process.
    [[nodiscard]] std::string name() const { return current_ ? detail::rt().self.name : name_; }
    /// Renames the current process, as log lines show it (Python: current_process().name = ...).
    void name(std::string n) {
        if (!current_) detail::raise(value_error("only the current process can be renamed"));
        detail::rt().self.name = std::move(n);
    }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// The key of the current process, the default secret of its managers' connections:
    /// 32 random bytes made when the main process first uses multiproc, inherited by every
    /// child (started by fork, spawn or forkserver) as it is when the child starts (Python:
    /// current_process().authkey). Known for the current process only: value_error for a
    /// parent.
    [[nodiscard]] std::string authkey() const {
        if (!current_) detail::raise(value_error("multiproc: only the current process's authkey is known"));
        return detail::rt().self.authkey;
    }
    /// Sets the current process's key; children started after this get the new one
    /// (Python: current_process().authkey = b'...').
    void authkey(std::string key) {
        if (!current_) detail::raise(value_error("multiproc: only the current process's authkey can be set"));
        detail::rt().self.authkey = std::move(key);
    }
    /// The same as pid() (Python: ident).
    [[nodiscard]] pid_t ident() const noexcept { return pid_; }
    /// Whether the process is a daemon (known for the current process only; false for a parent).
    [[nodiscard]] bool daemon() const { return current_ && detail::rt().self.daemon; }
    /// True for the current process; for the parent, whether it is still running (under
    /// fork and spawn: whether it is still our parent; Python: parent_process().is_alive()).
    [[nodiscard]] bool is_alive() const noexcept {
        if (pid_ == ::getpid()) return true;
        auto& s = detail::rt().self;
        if (s.parent_sentinel >= 0 && pid_ == s.parent_pid) { // forkserver: our OS parent is the server
            pollfd p{s.parent_sentinel, POLLIN, 0};
            return detail::sys::poll_until(&p, 1, std::chrono::steady_clock::now(), false) == 0;
        }
        return pid_ == ::getppid();
    }

    /// For the parent: a descriptor that becomes readable once the parent has ended, for
    /// poll/select (Python: parent_process().sentinel). A pidfd opened on first use and
    /// owned by this process (under forkserver, the one opened at start). The current
    /// process has none: value_error.
    [[nodiscard]] int sentinel() const {
        if (current_) detail::raise(value_error("multiproc: the current process has no sentinel; only its parent has one"));
        return detail::parent_sentinel();
    }

    /// For the parent: waits until it has ended (Python: parent_process().join()). The
    /// current process cannot be joined: state_error, as Python's "can only join a child
    /// process".
    void join() { join_until(std::nullopt); }
    /// Waits at most `timeout` for the parent to end, then returns either way: ask
    /// is_alive() after (Python: parent_process().join(timeout)).
    template <class Rep, class Period>
    void join(std::chrono::duration<Rep, Period> timeout) {
        join_until(detail::deadline_in(timeout));
    }

private:
    void join_until(std::optional<std::chrono::steady_clock::time_point> deadline) const {
        if (current_) detail::raise(state_error("multiproc: can only join a child process or the parent, not the current process"));
        pollfd p{detail::parent_sentinel(), POLLIN, 0};
        if (detail::sys::poll_until(&p, 1, deadline.value_or(std::chrono::steady_clock::time_point{}), !deadline) < 0)
            detail::sys::fail("poll on the parent's sentinel");
    }

    process_info(bool current, pid_t pid, std::string name) : current_(current), pid_(pid), name_(std::move(name)) {}
    friend process_info current_process();
    friend std::optional<process_info> parent_process();
    bool current_;
    pid_t pid_;
    std::string name_;
};

/// The running process (Python: multiprocessing.current_process()).
inline process_info current_process() { return process_info(true, ::getpid(), {}); }

/// The process that started this one, or nothing in the main process
/// (Python: multiprocessing.parent_process()).
inline std::optional<process_info> parent_process() {
    auto& s = detail::rt().self;
    if (s.parent_pid == 0 || s.pid != ::getpid()) return std::nullopt;
    return process_info(false, s.parent_pid, s.parent_name);
}

/// The children of this process that are still running; those that have ended are reaped
/// (Python: multiprocessing.active_children()).
inline std::vector<process_handle> active_children() {
    std::vector<process_handle> out;
    for (auto& c : detail::reap_children()) out.push_back(process_handle(c));
    return out;
}

/// The CPUs this process may use: its affinity mask, further capped by a cgroup (v2 or v1)
/// CPU quota, rounded up; at least 1. Python's cpu_count() ignores both.
inline int cpu_count() { return detail::usable_cpu_count(); }

MULTIPROC_ABI_END } // namespace multiproc
