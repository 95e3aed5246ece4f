/// @file subprocess.hpp
/// Running other programs (Python: subprocess.run, call, check_call, check_output, Popen,
/// CompletedProcess, PIPE, DEVNULL and STDOUT).
///
/// Spell it `namespace sp = multiproc::subprocess;` and `sp::popen`, `sp::pipe`, as Python
/// spells `subprocess.Popen`. `using namespace multiproc::subprocess;` brings only the
/// documented names, and all of them work unqualified except `popen` and `pipe`: after a
/// using-directive C++ cannot tell them from POSIX ::popen and ::pipe (a class or a variable
/// and a function found in two namespaces are ambiguous, whatever the arguments), and an
/// unqualified call of the POSIX ones becomes ambiguous too. Qualify them, or declare
/// `using multiproc::subprocess::popen, multiproc::subprocess::pipe;` in a function or in
/// your own namespace, which hides POSIX's there (`::pipe(fds)` still reaches it).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <multiproc/detail/util/chrono.hpp>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 34)
#error "multiproc: subprocess.hpp needs glibc 2.34 or later (posix_spawn_file_actions_addclosefrom_np)"
#endif

namespace multiproc { MULTIPROC_ABI_BEGIN namespace subprocess {

/// Timeouts, in seconds; any std::chrono duration converts to it (`5s`, `250ms`).
using duration = std::chrono::duration<double>;

/// A child's environment: names and values (Python: the env mapping).
using environment = std::map<std::string, std::string>;

/// The exceptions of error.hpp under their subprocess names too (Python:
/// subprocess.CalledProcessError and subprocess.TimeoutExpired).
using multiproc::called_process_error;
using multiproc::timeout_expired;

/// What a redirect does with one standard stream of the child.
enum class redirect_kind : unsigned char { inherit, pipe, devnull, to_stdout, fd };

/// Where one standard stream of the child goes (Python: the value of the stdin, stdout or
/// stderr argument). Use the constants below: `inherit`, `pipe`, `devnull`, `to_stdout`, `fd(n)`.
struct redirect {
    /// What to do with the stream.
    redirect_kind kind = redirect_kind::inherit;
    /// The descriptor, for redirect_kind::fd.
    int fd = -1;
    friend constexpr bool operator==(const redirect&, const redirect&) = default;
};

/// The child shares this process's stream (Python: None, the default).
inline constexpr redirect inherit{};
/// A new pipe between this process and the child (Python: subprocess.PIPE).
inline constexpr redirect pipe{redirect_kind::pipe};
/// /dev/null (Python: subprocess.DEVNULL).
inline constexpr redirect devnull{redirect_kind::devnull};
/// For `err` only: standard error goes wherever standard output goes (Python: subprocess.STDOUT).
inline constexpr redirect to_stdout{redirect_kind::to_stdout};
/// A descriptor of this process, which stays open here (Python: an integer file descriptor).
constexpr redirect fd(int n) noexcept { return {redirect_kind::fd, n}; }

/// How to start a program (Python: the keyword arguments of run() and Popen()). Every
/// member has a default: name only the ones you need, in the order declared here, as in
/// `{.capture_output = true, .text = true, .timeout = 5s, .check = true}`.
struct options {
    /// Bytes for the child's standard input, which becomes a pipe; run() and friends only
    /// (Python: input). For popen, give the input to communicate().
    std::optional<std::string> input{};
    /// Capture standard output and error, both as pipes; run() and friends only
    /// (Python: capture_output).
    bool capture_output = false;
    /// The child's standard input (Python: stdin).
    redirect in{};
    /// The child's standard output (Python: stdout).
    redirect out{};
    /// The child's standard error (Python: stderr); `to_stdout` merges it into `out`.
    redirect err{};
    /// Text mode: "\r\n" and "\r" in the output read by communicate() become "\n"
    /// (Python: text / universal_newlines). Bytes are not decoded: std::string carries them.
    bool text = false;
    /// Kill the child and throw timeout_expired if it runs longer; run() and friends only
    /// (Python: timeout). For popen, give the timeout to communicate() or wait().
    std::optional<duration> timeout{};
    /// Throw called_process_error if the status is not 0; run() only (Python: check).
    bool check = false;
    /// The child's working directory (Python: cwd); a relative program path and relative
    /// PATH entries are taken from there.
    std::optional<std::string> cwd{};
    /// The child's whole environment, replacing this process's (Python: env). Its PATH, or
    /// "/bin:/usr/bin" without one, is where a program name without a '/' is looked up.
    std::optional<environment> env{};
    /// Run `args` through /bin/sh -c (Python: shell=True): args[0] is the command line,
    /// the rest become $0, $1, ...
    bool shell = false;
    /// The program to execute instead of args[0], which stays the child's argv[0]
    /// (Python: executable); with `shell`, the shell to use.
    std::optional<std::string> executable{};
    /// Descriptors the child keeps, with their numbers; it holds only 0, 1, 2 and these
    /// (Python: pass_fds with close_fds=True).
    std::vector<int> pass_fds{};
};

/// What run() returns (Python: subprocess.CompletedProcess): `out` and `err` hold what was
/// captured (Python: stdout, stderr), and are empty for a stream that was not.
struct completed_process {
    /// The arguments given to run() (Python: args).
    std::vector<std::string> args;
    /// The exit status, or -N if signal N killed the child (Python: returncode).
    int returncode = 0;
    /// The captured standard output (Python: stdout).
    std::string out;
    /// The captured standard error (Python: stderr).
    std::string err;

    /// Throws called_process_error if returncode is not 0 (Python: check_returncode()).
    void check_returncode() const {
        if (returncode != 0) multiproc::detail::raise(called_process_error(returncode, args, out, err));
    }
};

/// What communicate() returns (Python: the (stdout, stderr) tuple): `auto [out, err] = ...`.
struct captured_output {
    /// What was read from the child's standard output (Python: stdout), empty if not a pipe.
    std::string out;
    /// What was read from the child's standard error (Python: stderr), empty if not a pipe.
    std::string err;
};

} MULTIPROC_ABI_END } // namespace multiproc::subprocess

// The helpers live outside multiproc::subprocess, so that `using namespace
// multiproc::subprocess;` brings no name but the documented ones (a program's own `detail`
// namespace stays unambiguous).
namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::subproc {

using multiproc::subprocess::duration;
using multiproc::subprocess::options;

using time_point = std::chrono::steady_clock::time_point;

/// A deadline that never comes: wait without a timeout.
inline constexpr time_point never = time_point::max();

/// The deadline `t` from now: a NaN is an error, a negative timeout has already passed and
/// one beyond 30 years is `never`.
inline time_point deadline_after(duration t) {
    auto now = std::chrono::steady_clock::now();
    if (std::isnan(t.count())) multiproc::detail::raise(value_error("timeout is not a number"));
    if (t.count() > 1e9) return never;
    if (t.count() <= 0) return now;
    return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(t);
}

/// Python's universal newlines on output: "\r\n" and "\r" become "\n".
inline std::string translate_newlines(std::string s) {
    std::size_t w = 0;
    for (std::size_t r = 0; r < s.size(); ++r) {
        if (s[r] == '\r') {
            s[w++] = '\n';
            if (r + 1 < s.size() && s[r + 1] == '\n') ++r;
        } else {
            s[w++] = s[r];
        }
    }
    s.resize(w);
    return s;
}

inline void check_no_nul(std::string_view s) {
    if (s.find('\0') != std::string_view::npos) multiproc::detail::raise(value_error("embedded null byte"));
}

/// The argv or envp form of `v`: pointers into its strings, then nullptr.
inline std::vector<char*> c_strings(std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (auto& s : v) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

/// Moves `f` to a descriptor above 2 (close-on-exec) so that no dup2 onto 0, 1 or 2 in the
/// child can overwrite it before it is used.
inline sys::unique_fd above_std(sys::unique_fd f, const std::string& what) {
    if (f.get() > 2) return f;
    int moved = sys::fcntl(f.get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) sys::fail(what);
    return sys::unique_fd(moved);
}

/// A file execve would be given for a program: `error` is 0 if it may run, else what
/// execve would say without trying (EACCES: not executable, or a directory).
struct program_candidate {
    std::string path;
    int error = 0;
};

/// Where execvp would look for `program` (Python: os.get_exec_path and the search in
/// _execute_child): as is if it has a '/', else each file of its name in PATH of the
/// child's environment that exists, in order (CPython's child tries each with execve; one
/// that cannot run, as a script whose interpreter is missing, makes the next one tried).
inline std::vector<program_candidate> find_program(const std::string& program, const options& o) {
    if (program.find('/') != std::string::npos) return {{program, 0}};
    std::vector<program_candidate> found;
    std::string path = "/bin:/usr/bin";
    if (o.env) {
        if (auto it = o.env->find("PATH"); it != o.env->end()) path = it->second;
    } else if (const char* p = std::getenv("PATH")) {
        path = p;
    }
    for (std::size_t start = 0;;) {
        std::size_t end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        std::string seen_from_parent = candidate[0] != '/' && o.cwd ? *o.cwd + "/" + candidate : candidate;
        struct stat st {};
        if (sys::access(seen_from_parent.c_str(), X_OK) == 0 && sys::stat(seen_from_parent.c_str(), &st) == 0)
            found.push_back({std::move(candidate), S_ISREG(st.st_mode) ? 0 : EACCES}); // (a directory: EACCES)
        else if (errno == EACCES)
            found.push_back({std::move(candidate), EACCES});
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return found;
}

/// A posix_spawn_file_actions_t that is destroyed with its scope; each step throws on failure.
class spawn_actions {
public:
    spawn_actions() { check(::posix_spawn_file_actions_init(&fa_)); }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
    ~spawn_actions() { ::posix_spawn_file_actions_destroy(&fa_); }
    void dup2(int from, int to) { check(::posix_spawn_file_actions_adddup2(&fa_, from, to)); }
    void close(int fd) { check(::posix_spawn_file_actions_addclose(&fa_, fd)); }
    void close_from(int fd) { check(::posix_spawn_file_actions_addclosefrom_np(&fa_, fd)); }
    void chdir(const std::string& dir) { check(::posix_spawn_file_actions_addchdir_np(&fa_, dir.c_str())); }
    const posix_spawn_file_actions_t* get() const noexcept { return &fa_; }

private:
    static void check(int e) {
        if (e != 0) sys::fail("preparing posix_spawn file actions", e);
    }
    posix_spawn_file_actions_t fa_{};
};

/// posix_spawn attributes restoring SIGPIPE and SIGXFSZ to their default action, which a
/// parent may ignore but a program expects (Python: restore_signals=True), and SIGINT where
/// the library made the parent ignore it (a pool worker: sys::sigint_ignored_by_library),
/// so that Ctrl-C ends a program a task runs, as it would under CPython, whose workers
/// keep SIGINT.
class spawn_attributes {
public:
    spawn_attributes() {
        check(::posix_spawnattr_init(&attr_));
        sigset_t defaults;
        ::sigemptyset(&defaults);
        ::sigaddset(&defaults, SIGPIPE);
        ::sigaddset(&defaults, SIGXFSZ);
        if (sys::sigint_ignored_by_library()) ::sigaddset(&defaults, SIGINT);
        check(::posix_spawnattr_setsigdefault(&attr_, &defaults));
        check(::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGDEF));
    }
    spawn_attributes(const spawn_attributes&) = delete;
    spawn_attributes& operator=(const spawn_attributes&) = delete;
    ~spawn_attributes() { ::posix_spawnattr_destroy(&attr_); }
    const posix_spawnattr_t* get() const noexcept { return &attr_; }

private:
    static void check(int e) {
        if (e != 0) sys::fail("preparing posix_spawn attributes", e);
    }
    posix_spawnattr_t attr_{};
};

} MULTIPROC_ABI_END } // namespace multiproc::detail::subproc

namespace multiproc { MULTIPROC_ABI_BEGIN namespace subprocess {

inline completed_process run(std::vector<std::string> args, options opts);

/// A running program with optional pipes to its standard streams (Python: subprocess.Popen).
/// Not thread-safe: use one object from one thread at a time. Destroying a popen whose
/// child has not been waited for closes the pipes, kills the child with SIGKILL and reaps
/// it, so it never blocks, and leaves neither an orphan nor a zombie.
class popen {
public:
    /// Starts `args` with posix_spawn (Python: Popen(args, ...)). A program that cannot be
    /// run is an os_error here, naming it and the errno text, with no child left behind.
    /// `opts` may not hold run()'s input, capture_output, timeout or check.
    explicit popen(std::vector<std::string> args, options opts = {}) : args_(std::move(args)) {
        if (opts.input || opts.capture_output || opts.timeout || opts.check)
            multiproc::detail::raise(value_error("popen takes no input, capture_output, timeout or check: those are options of run(); "
                              "give the input and timeout to communicate()"));
        launch(opts);
    }

    popen(const popen&) = delete;
    popen& operator=(const popen&) = delete;
    popen(popen&& o) noexcept { take(o); }
    /// Disposes of the current child as the destructor does, then takes over `o`'s.
    popen& operator=(popen&& o) noexcept {
        if (this != &o) {
            release();
            take(o);
        }
        return *this;
    }
    /// If the child has not been reaped: closes the pipes, sends SIGKILL and reaps it.
    /// (CPython's Popen.__del__ leaves it running; `with Popen(...)` waits for it.)
    ~popen() { release(); }

    /// The arguments it was started with (Python: Popen.args).
    [[nodiscard]] const std::vector<std::string>& args() const noexcept { return args_; }
    /// The child's process id (Python: Popen.pid).
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// The exit status once poll(), wait() or communicate() has seen the child end, -N if
    /// signal N killed it, else nothing (Python: Popen.returncode).
    [[nodiscard]] std::optional<int> returncode() const noexcept { return returncode_; }

    /// This end of the stdin pipe, or -1 (Python: Popen.stdin). Owned by the popen (do not
    /// close it yourself: close_in() does); communicate() closes it.
    [[nodiscard]] int in_fd() const noexcept { return in_.get(); }
    /// Closes this end of the stdin pipe, so that the child reads end of file (Python:
    /// Popen.stdin.close()); nothing if there is none or it is closed already. A later
    /// communicate() works as for a child without a stdin pipe (CPython's raises "flush of
    /// closed file"); given input, it is a value_error.
    void close_in() noexcept {
        if (in_) stdin_closed_ = true;
        in_.reset();
    }
    /// This end of the stdout pipe, or -1 (Python: Popen.stdout).
    [[nodiscard]] int out_fd() const noexcept { return out_.get(); }
    /// This end of the stderr pipe, or -1 (Python: Popen.stderr).
    [[nodiscard]] int err_fd() const noexcept { return err_.get(); }

    /// Reaps the child if it has ended; returns returncode() (Python: Popen.poll()).
    std::optional<int> poll() {
        require_child();
        reap(false);
        return returncode_;
    }

    /// Waits for the child to end and returns its status (Python: Popen.wait()). It may
    /// never end if it is blocked writing to a full pipe: use communicate() then.
    int wait() {
        require_child();
        reap(true);
        return *returncode_;
    }
    /// Waits at most `timeout`, then throws timeout_expired and leaves the child running
    /// (Python: Popen.wait(timeout)).
    int wait(duration timeout) {
        require_child();
        if (!wait_until(detail::subproc::deadline_after(timeout))) multiproc::detail::raise(timeout_expired(args_, timeout));
        return *returncode_;
    }

    /// Writes `input` to stdin and closes it, reads stdout and stderr to their ends, waits for
    /// the child, and returns what was read (Python: Popen.communicate(input, timeout)). It
    /// never deadlocks, however much the child writes. After `timeout`, throws timeout_expired
    /// holding the output so far and leaves the child running; a later call carries on where
    /// this one stopped, so the full output is returned in the end. Once it has returned,
    /// a later call returns the same output again (input then is a value_error).
    captured_output communicate(std::optional<std::string_view> input = std::nullopt,
                                std::optional<duration> timeout = std::nullopt) {
        std::optional<std::string> owned;
        if (input) owned.emplace(*input);
        return communicate_owned(std::move(owned), timeout);
    }
    /// communicate() without input, for at most `timeout` (Python: communicate(timeout=t)).
    captured_output communicate(duration timeout) { return communicate_owned(std::nullopt, timeout); }

    /// Sends signal `sig`, unless the child has ended: it is reaped first if it has, so
    /// returncode() is then set (Python: Popen.send_signal, which polls first).
    void send_signal(int sig) {
        require_child();
        if (!returncode_ && pidfd_) (void)reap(false);
        if (returncode_ || !pidfd_) return;
        if (detail::sys::pidfd_send_signal(pidfd_.get(), sig) < 0 && errno != ESRCH)
            detail::sys::fail("sending signal " + std::to_string(sig) + " to " + describe());
    }
    /// Sends SIGTERM (Python: Popen.terminate()).
    void terminate() { send_signal(SIGTERM); }
    /// Sends SIGKILL (Python: Popen.kill()).
    void kill() { send_signal(SIGKILL); }

private:
    friend completed_process run(std::vector<std::string> args, options opts);

    void require_child() const {
        if (pid_ <= 0) multiproc::detail::raise(state_error("popen object was moved from"));
    }

    std::string describe() const { return detail::python_repr(args_) + " (pid " + std::to_string(pid_) + ")"; }

    void take(popen& o) noexcept {
        args_ = std::move(o.args_);
        pid_ = std::exchange(o.pid_, 0);
        owner_ = o.owner_;
        returncode_ = std::exchange(o.returncode_, std::nullopt);
        text_ = o.text_;
        pidfd_ = std::move(o.pidfd_);
        in_ = std::move(o.in_);
        out_ = std::move(o.out_);
        err_ = std::move(o.err_);
        stdin_closed_ = std::exchange(o.stdin_closed_, false);
        communicating_ = std::exchange(o.communicating_, false);
        input_ = std::move(o.input_);
        input_done_ = std::exchange(o.input_done_, 0);
        out_buf_ = std::move(o.out_buf_);
        err_buf_ = std::move(o.err_buf_);
    }

    void release() noexcept {
        namespace sys = detail::sys;
        in_.reset();
        out_.reset();
        err_.reset();
        if (pid_ > 0 && !returncode_ && owner_ == ::getpid() && pidfd_) {
            // Through the pidfd, never the pid: a SIGCHLD handler or SIG_IGN may have reaped
            // the child already, and its pid may be another process's now.
            (void)sys::pidfd_send_signal(pidfd_.get(), SIGKILL);
            siginfo_t info;
            (void)sys::waitid_pidfd(pidfd_.get(), &info, 0);
        }
        pidfd_.reset();
        pid_ = 0;
    }

    /// Reaps the child if it has ended (waiting for that if `block`); true once reaped. A
    /// child whose status something else took (SIGCHLD ignored, or reaped by a handler of
    /// the program's) has ended with return code 0, as CPython's Popen says.
    bool reap(bool block) {
        if (returncode_) return true;
        siginfo_t info;
        if (detail::sys::waitid_pidfd(pidfd_.get(), &info, block ? 0 : WNOHANG) == 0) {
            if (info.si_pid == 0) return false; // (running)
            returncode_ = multiproc::detail::decode_wait_info(info);
        } else if (errno == ECHILD) {
            returncode_ = 0;
        } else {
            detail::sys::fail("waitid for " + describe());
        }
        pidfd_.reset();
        return true;
    }

    /// Waits for the child until `deadline`; true once it is reaped.
    bool wait_until(detail::subproc::time_point deadline) {
        if (returncode_) return true;
        pollfd p{pidfd_.get(), POLLIN, 0};
        int n = detail::sys::poll_until(&p, 1, deadline, deadline == detail::subproc::never);
        if (n < 0) detail::sys::fail("poll on the pidfd of " + describe());
        return n > 0 && reap(true);
    }

    /// What communicate() read: moved out when `keep` is false (run(), whose popen ends
    /// here), else copied, so a later communicate() returns it again (as CPython's does).
    captured_output take_output(bool keep = false) {
        captured_output r;
        if (keep) {
            r = {out_buf_, err_buf_};
        } else {
            r = {std::move(out_buf_), std::move(err_buf_)};
            out_buf_.clear();
            err_buf_.clear();
        }
        if (text_) {
            r.out = detail::subproc::translate_newlines(std::move(r.out));
            r.err = detail::subproc::translate_newlines(std::move(r.err));
        }
        return r;
    }

    [[noreturn]] void throw_timeout(duration timeout) const {
        std::string o = out_buf_, e = err_buf_;
        if (text_) {
            o = detail::subproc::translate_newlines(std::move(o));
            e = detail::subproc::translate_newlines(std::move(e));
        }
        multiproc::detail::raise(timeout_expired(args_, timeout, std::move(o), std::move(e)));
    }

    /// The body of communicate(): `input` is moved in, so run() does not copy it; `keep`
    /// keeps the output for a later call (see take_output).
    captured_output communicate_owned(std::optional<std::string> input, std::optional<duration> timeout,
                                      bool keep = true) {
        namespace sys = detail::sys;
        require_child();
        bool has_input = input && !input->empty();
        if (has_input && communicating_) multiproc::detail::raise(value_error("Cannot send input after starting communication"));
        if (has_input && !in_)
            multiproc::detail::raise(value_error(stdin_closed_ ? "communicate() was given input, but the child's stdin was "
                                                                 "closed (close_in())"
                                                               : "communicate() was given input, but the child's stdin is not "
                                                                 "a pipe (start it with .in = subprocess::pipe)"));
        auto deadline = timeout ? detail::subproc::deadline_after(*timeout) : detail::subproc::never;
        if (!communicating_) {
            communicating_ = true;
            if (in_ && has_input) {
                input_ = std::move(*input);
                int fl = sys::fcntl(in_.get(), F_GETFL);
                if (fl < 0 || sys::fcntl(in_.get(), F_SETFL, fl | O_NONBLOCK) < 0)
                    sys::fail("making the stdin pipe of " + describe() + " non-blocking");
            } else {
                in_.reset(); // no input: the child sees end-of-file at once
            }
        }
        if (in_ || out_ || err_) {
            sys::sigpipe_guard no_sigpipe; // a child that stops reading is EPIPE here, not death
            while (in_ || out_ || err_) {
                if (!exchange_once(deadline)) throw_timeout(*timeout);
                if (timeout && std::chrono::steady_clock::now() > deadline) throw_timeout(*timeout);
            }
        }
        if (!wait_until(deadline)) throw_timeout(*timeout);
        return take_output(keep);
    }

    /// One poll over the open pipes and one write or read on each that is ready; false if
    /// the deadline passed first.
    bool exchange_once(detail::subproc::time_point deadline) {
        namespace sys = detail::sys;
        pollfd fds[3];
        sys::unique_fd* owners[3];
        nfds_t n = 0;
        for (auto* end : {&in_, &out_, &err_}) {
            if (!*end) continue;
            fds[n] = {end->get(), static_cast<short>(end == &in_ ? POLLOUT : POLLIN), 0};
            owners[n++] = end;
        }
        int ready = sys::poll_until(fds, n, deadline, deadline == detail::subproc::never);
        if (ready < 0) sys::fail("poll on the pipes of " + describe());
        if (ready == 0) return false;
        for (nfds_t i = 0; i < n; ++i) {
            if (fds[i].revents == 0) continue;
            if (owners[i] == &in_)
                write_input();
            else
                read_output(*owners[i], owners[i] == &out_ ? out_buf_ : err_buf_);
        }
        return true;
    }

    void write_input() {
        namespace sys = detail::sys;
        ssize_t w = sys::write(in_.get(), input_.data() + input_done_, input_.size() - input_done_);
        if (w < 0 && errno == EAGAIN) return;
        if (w < 0 && errno != EPIPE) sys::fail("writing to the stdin of " + describe());
        if (w >= 0) input_done_ += static_cast<std::size_t>(w);
        if (w < 0 || input_done_ == input_.size()) { // all written, or the child closed its end
            in_.reset();
            input_ = std::string();
            input_done_ = 0;
        }
    }

    void read_output(detail::sys::unique_fd& pipe_end, std::string& buf) {
        constexpr std::size_t chunk = 65536;
        std::size_t old = buf.size();
        buf.resize(old + chunk);
        ssize_t r = detail::sys::read(pipe_end.get(), buf.data() + old, chunk);
        buf.resize(old + (r > 0 ? static_cast<std::size_t>(r) : 0));
        if (r == 0) pipe_end.reset();
        if (r < 0 && errno != EAGAIN)
            detail::sys::fail(std::string("reading the ") + (&pipe_end == &out_ ? "stdout" : "stderr") + " of " +
                              describe());
    }

    /// After a timeout in run(): kills and reaps the child, then takes what it left in the
    /// pipes, without waiting for an end-of-file that a grandchild holding a pipe open could
    /// delay forever (CPython waits for it).
    captured_output kill_and_collect() {
        kill();
        reap(true);
        for (auto* end : {&out_, &err_}) {
            if (!*end) continue;
            int left = 0;
            if (detail::sys::ioctl(end->get(), FIONREAD, &left) < 0) left = 0;
            std::string& buf = end == &out_ ? out_buf_ : err_buf_;
            while (left > 0 && *end) {
                std::size_t before = buf.size();
                read_output(*end, buf);
                left -= static_cast<int>(buf.size() - before);
                if (buf.size() == before) break;
            }
            end->reset();
        }
        in_.reset();
        return take_output();
    }

    void launch(const options& o);

    std::vector<std::string> args_;
    pid_t pid_ = 0;
    pid_t owner_ = 0; // the process that started the child: only it may reap it
    std::optional<int> returncode_;
    bool text_ = false;
    detail::sys::unique_fd pidfd_, in_, out_, err_;
    bool stdin_closed_ = false; // by close_in()
    // communicate()'s progress, kept across timeouts (Python: _communication_started,
    // _input, _input_offset and _fileobj2output).
    bool communicating_ = false;
    std::string input_;
    std::size_t input_done_ = 0;
    std::string out_buf_, err_buf_;
};

inline void popen::launch(const options& o) {
    namespace sys = detail::sys;
    using detail::subproc::check_no_nul;
    if (args_.empty()) multiproc::detail::raise(value_error("args is empty: there is no program to run"));
    for (auto& a : args_) check_no_nul(a);
    if (o.cwd) check_no_nul(*o.cwd);
    if (o.executable) check_no_nul(*o.executable);
    if (o.in.kind == redirect_kind::to_stdout || o.out.kind == redirect_kind::to_stdout)
        multiproc::detail::raise(value_error("only stderr can go to stdout (to_stdout is for .err)"));
    std::vector<int> keep = o.pass_fds;
    for (int f : keep)
        if (f < 0) multiproc::detail::raise(value_error("pass_fds holds " + std::to_string(f) + ", which is not a file descriptor"));
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
    keep.erase(keep.begin(), std::upper_bound(keep.begin(), keep.end(), 2)); // 0, 1, 2 are kept anyway

    std::vector<std::string> argv_s = args_;
    if (o.shell) argv_s.insert(argv_s.begin(), {"/bin/sh", "-c"});
    if (o.executable && o.shell) argv_s[0] = *o.executable;
    std::string program = o.executable.value_or(argv_s[0]);
    std::vector<std::string> env_s;
    if (o.env) {
        for (auto& [k, v] : *o.env) {
            check_no_nul(k);
            check_no_nul(v);
            // (CPython's subprocess refuses a name with '=' only: an empty one passes, as "=value".)
            if (k.find('=') != std::string::npos) multiproc::detail::raise(value_error("illegal environment variable name"));
            env_s.push_back(k + "=" + v);
        }
    }
    const std::vector<detail::subproc::program_candidate> candidates = detail::subproc::find_program(program, o);
    auto argv = detail::subproc::c_strings(argv_s);
    auto envp = detail::subproc::c_strings(env_s);

    // The child's ends of its streams, each above 2, and this process's ends of the pipes.
    static constexpr const char* names[] = {"stdin", "stdout", "stderr"};
    const redirect how[3] = {o.in, o.out, o.err};
    sys::unique_fd devnull, child_end[3], parent_end[3];
    int source[3] = {-1, -1, -1};
    for (int i = 0; i < 3; ++i) {
        std::string what = std::string(names[i]) + " of " + detail::python_repr(args_);
        switch (how[i].kind) {
        case redirect_kind::inherit:
        case redirect_kind::to_stdout:
            break;
        case redirect_kind::pipe: {
            int p[2];
            if (sys::pipe2(p, O_CLOEXEC) < 0) sys::fail("creating a pipe for the " + what);
            sys::unique_fd r(p[0]), w(p[1]);
            child_end[i] = detail::subproc::above_std(std::move(i == 0 ? r : w), "moving the pipe for the " + what);
            parent_end[i] = std::move(i == 0 ? w : r);
            source[i] = child_end[i].get();
            break;
        }
        case redirect_kind::devnull:
            if (!devnull) {
                devnull = sys::unique_fd(sys::open("/dev/null", O_RDWR | O_CLOEXEC));
                if (!devnull) sys::fail("opening /dev/null for the " + what);
                devnull = detail::subproc::above_std(std::move(devnull), "moving /dev/null for the " + what);
            }
            source[i] = devnull.get();
            break;
        case redirect_kind::fd:
            child_end[i] = sys::unique_fd(sys::fcntl(how[i].fd, F_DUPFD_CLOEXEC, 3));
            if (!child_end[i]) sys::fail("redirecting the " + what + " to descriptor " + std::to_string(how[i].fd));
            source[i] = child_end[i].get();
            break;
        }
    }

    detail::subproc::spawn_actions actions;
    for (int i = 0; i < 3; ++i)
        if (source[i] >= 0) actions.dup2(source[i], i);
    if (o.err.kind == redirect_kind::to_stdout) actions.dup2(1, 2);
    // Only 0, 1, 2 and pass_fds survive: posix_spawn alone would pass on every descriptor
    // opened without O_CLOEXEC. dup2 onto itself clears close-on-exec for pass_fds.
    for (int f : keep) {
        if (sys::fcntl(f, F_GETFD) < 0) sys::fail("pass_fds holds " + std::to_string(f));
        actions.dup2(f, f);
    }
    int close_from = keep.empty() ? 3 : keep.back() + 1;
    for (int f = 3; f < close_from; ++f)
        if (!std::binary_search(keep.begin(), keep.end(), f) && sys::fcntl(f, F_GETFD) >= 0) actions.close(f);
    actions.close_from(close_from);
    if (o.cwd) actions.chdir(*o.cwd);
    detail::subproc::spawn_attributes attributes;

    multiproc::detail::flush_std_streams(); // output written before the call comes before the child's
    pid_t pid = 0;
    // Each candidate in turn until one runs; the error reported is the first that is not
    // ENOENT or ENOTDIR, else the last (as CPython's child reports its execve failures). An
    // error that is not the file's (no process to spare, no memory) ends the search.
    const auto the_files = [](int e) {
        return e == ENOENT || e == ENOTDIR || e == EACCES || e == EPERM || e == ENOEXEC || e == ELOOP ||
               e == ENAMETOOLONG || e == ETXTBSY || e == EISDIR || e == ELIBBAD;
    };
    int first_other = 0, last = ENOENT;
    for (const auto& [path, pre_error] : candidates) {
        if (pre_error == 0) {
            if (sys::posix_spawn(&pid, path.c_str(), actions.get(), attributes.get(), argv.data(),
                                 o.env ? envp.data() : environ) == 0) {
                last = 0;
                break;
            }
            last = errno;
        } else {
            last = pre_error;
        }
        if (first_other == 0 && last != ENOENT && last != ENOTDIR) first_other = last;
        if (!the_files(last)) break;
    }
    if (last != 0) {
        // A bad cwd is named before a program not found, as CPython's child changes directory
        // before it looks (every candidate fails alike then; posix_spawn reports either alike).
        if (o.cwd) {
            const std::string dir = "cannot change to directory " + detail::python_repr(*o.cwd) + " to run " +
                                    detail::python_repr(program);
            struct stat st {};
            if (sys::stat(o.cwd->c_str(), &st) < 0) sys::fail(dir);
            if (!S_ISDIR(st.st_mode)) sys::fail(dir, ENOTDIR);
            if (sys::access(o.cwd->c_str(), X_OK) < 0) sys::fail(dir);
        }
        sys::fail("cannot run " + detail::python_repr(program), first_other != 0 ? first_other : last);
    }
    int pidfd = sys::pidfd_open(pid);
    if (pidfd < 0 && errno != ESRCH) {
        int e = errno;
        (void)sys::kill(pid, SIGKILL); // (not reaped: ESRCH would say so, so the pid is still the child's)
        (void)sys::waitpid(pid, nullptr, 0);
        sys::fail("pidfd_open for " + detail::python_repr(args_) + " (pid " + std::to_string(pid) + ")", e);
    }
    pid_ = pid;
    owner_ = ::getpid();
    text_ = o.text;
    if (pidfd < 0) returncode_ = 0; // ESRCH: ended and already reaped by the program (see reap)
    pidfd_.reset(pidfd);
    in_ = std::move(parent_end[0]);
    out_ = std::move(parent_end[1]);
    err_ = std::move(parent_end[2]);
}

/// Runs `args`, waits for it and returns its status and captured output (Python:
/// subprocess.run). With `timeout`, a child still running then is killed and reaped, and
/// timeout_expired is thrown with the output it wrote; with `check`, a non-zero status
/// throws called_process_error carrying the output.
inline completed_process run(std::vector<std::string> args, options opts = {}) {
    if (opts.input && opts.in != inherit) multiproc::detail::raise(value_error("stdin and input arguments may not both be used."));
    if (opts.capture_output && (opts.out != inherit || opts.err != inherit))
        multiproc::detail::raise(value_error("stdout and stderr arguments may not be used with capture_output."));
    if (opts.timeout) (void)detail::subproc::deadline_after(*opts.timeout); // a NaN: before the child starts
    std::optional<std::string> input = std::move(opts.input);
    std::optional<duration> timeout = opts.timeout;
    bool check = opts.check;
    opts.input.reset();
    opts.timeout.reset();
    opts.check = false;
    if (input) opts.in = pipe;
    if (opts.capture_output) opts.out = opts.err = pipe;
    opts.capture_output = false;

    popen p(std::move(args), std::move(opts));
    captured_output o;
    MULTIPROC_TRY {
        o = p.communicate_owned(std::move(input), timeout, false);
    } MULTIPROC_CATCH(const timeout_expired&, unnamed_) {
        auto rest = p.kill_and_collect();
        multiproc::detail::raise(timeout_expired(p.args(), *timeout, std::move(rest.out), std::move(rest.err)));
    } // any other failure: ~popen kills and reaps the child
    int rc = *p.returncode();
    if (check && rc != 0) multiproc::detail::raise(called_process_error(rc, p.args(), std::move(o.out), std::move(o.err)));
    return completed_process{p.args(), rc, std::move(o.out), std::move(o.err)};
}

/// Runs `args` and returns its status (Python: subprocess.call): run(args, opts).returncode.
inline int call(std::vector<std::string> args, options opts = {}) {
    return run(std::move(args), std::move(opts)).returncode;
}

/// Runs `args`; returns 0, or throws called_process_error for any other status
/// (Python: subprocess.check_call).
inline int check_call(std::vector<std::string> args, options opts = {}) {
    opts.check = true;
    return run(std::move(args), std::move(opts)).returncode;
}

/// Runs `args` and returns its standard output, or throws called_process_error (with the
/// output) for a non-zero status (Python: subprocess.check_output). `.err = to_stdout`
/// puts standard error into the result too.
inline std::string check_output(std::vector<std::string> args, options opts = {}) {
    if (opts.out != inherit) multiproc::detail::raise(value_error("stdout argument not allowed, it will be overridden."));
    opts.out = pipe;
    opts.check = true;
    return run(std::move(args), std::move(opts)).out;
}

} MULTIPROC_ABI_END } // namespace multiproc::subprocess
