/// @file error.hpp
/// The exceptions multiproc throws (Python: the exceptions of multiprocessing and subprocess).
#pragma once

#include <multiproc/config.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <type_traits>
#include <charconv>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>
#include <signal.h>
#include <sys/types.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// The kinds of multiproc's own errors, as the `code()` of an `error` in `error_category()`
/// (an `os_error` carries its errno in `std::generic_category()` instead). They let a program
/// built without RTTI tell errors apart (`e.code() == multiproc::errc::queue_empty`).
enum class errc {
    error = 1, value_error, state_error, timeout_error, eof_error, buffer_too_short, serialization_error,
    queue_empty, queue_full, remote_error, broken_pool, broken_barrier_error, index_error,
    called_process_error, timeout_expired, queue_shut_down, cancelled_error, authentication_error,
};

/// The category of `errc` codes; its name is "multiproc".
inline const std::error_category& error_category() noexcept {
    struct multiproc_category final : std::error_category {
        const char* name() const noexcept override { return "multiproc"; }
        std::string message(int c) const override {
            static constexpr const char* names[] = {
                "error",       "value_error",       "state_error",  "timeout_error",       "eof_error",
                "buffer_too_short", "serialization_error", "queue_empty", "queue_full", "remote_error",
                "broken_pool", "broken_barrier_error", "index_error", "called_process_error", "timeout_expired",
                "queue_shut_down", "cancelled_error", "authentication_error",
            };
            return c >= 1 && c <= static_cast<int>(std::size(names)) ? names[c - 1] : "unknown multiproc error";
        }
    };
    static const multiproc_category c;
    return c;
}

/// `errc` values convert to `std::error_code` in `error_category()`.
inline std::error_code make_error_code(errc c) noexcept { return {static_cast<int>(c), error_category()}; }

MULTIPROC_ABI_END } // namespace multiproc

template <>
struct std::is_error_code_enum<multiproc::errc> : std::true_type {};

namespace multiproc { MULTIPROC_ABI_BEGIN

/// Base of every exception multiproc throws (Python: multiprocessing.ProcessError). It is a
/// `std::system_error`: `code()` says which kind of error it is (an `errc`, or the errno of an
/// `os_error`) and `what()` is the library's sentence.
class error : public std::system_error {
public:
    explicit error(const std::string& what) : error(errc::error, what) {}
    explicit error(const char* what) : error(errc::error, what) {}
    /// The sentence that describes the error. The library's own start "multiproc: ", except
    /// those that are CPython's message word for word ("Queue is closed", "Pool not running",
    /// "invalid index", ...), which are kept as CPython has them.
    [[nodiscard]] const char* what() const noexcept override { return what_.what(); }

protected:
    error(std::error_code code, const std::string& what) : std::system_error(code), what_(what) {}

private:
    std::runtime_error what_; // a copy that cannot throw (reference-counted text)
};

/// A call that is invalid for the object's state or arguments, such as using a closed
/// process (Python: ValueError).
class value_error : public error {
public:
    explicit value_error(const std::string& what) : error(errc::value_error, what) {}
};

/// A lifecycle rule was broken, such as starting a process twice or joining one that was
/// never started (Python: the AssertionError that multiprocessing raises for these).
class state_error : public error {
public:
    explicit state_error(const std::string& what) : error(errc::state_error, what) {}
};

/// A system call failed; `code()` holds its errno in `std::generic_category()`, so it is
/// caught as `std::system_error` too (Python: OSError).
class os_error : public error {
public:
    os_error(const std::string& what, int errnum)
        : error(std::error_code(errnum, std::generic_category()),
                what + ": " + std::generic_category().message(errnum)) {}
};

/// A blocking call ran out of time (Python: multiprocessing.TimeoutError).
class timeout_error : public error {
public:
    explicit timeout_error(const std::string& what) : error(errc::timeout_error, what) {}

protected:
    timeout_error(errc code, const std::string& what) : error(code, what) {}
};

/// A pool task was cancelled before it completed: its result will never come (Python:
/// concurrent.futures.CancelledError).
class cancelled_error : public error {
public:
    explicit cancelled_error(const std::string& what) : error(errc::cancelled_error, what) {}
};

/// A connection's peer did not prove it holds the authkey, or refused the proof this end
/// gave (Python: multiprocessing.AuthenticationError). Raised by listener::accept, client,
/// deliver_challenge and answer_challenge before any message of the peer is decoded.
class authentication_error : public error {
public:
    explicit authentication_error(const std::string& what) : error(errc::authentication_error, what) {}
};

/// The other end of a connection is closed and nothing is left to read (Python: EOFError).
class eof_error : public error {
public:
    explicit eof_error(const std::string& what) : error(errc::eof_error, what) {}
};

/// `recv_bytes_into` was given a buffer too small for the message, which is consumed and
/// kept whole in `message()` (Python: multiprocessing.BufferTooShort).
class buffer_too_short : public error {
public:
    explicit buffer_too_short(std::vector<std::byte> message)
        : error(errc::buffer_too_short, "multiproc: buffer too short for a message of " + std::to_string(message.size()) + " bytes"),
          message_(std::move(message)) {}
    /// The message that did not fit.
    [[nodiscard]] const std::vector<std::byte>& message() const noexcept { return message_; }

private:
    std::vector<std::byte> message_;
};

/// A value could not be encoded, or bytes received are not a valid encoding
/// (Python: pickle.PicklingError / UnpicklingError).
class serialization_error : public error {
public:
    explicit serialization_error(const std::string& what) : error(errc::serialization_error, what) {}
};

/// `get` found nothing before its timeout, or at once for `get_nowait` (Python: queue.Empty).
class queue_empty : public error {
public:
    explicit queue_empty(const std::string& what) : error(errc::queue_empty, what) {}
};

/// `put` found no room before its timeout, or at once for `put_nowait` (Python: queue.Full).
class queue_full : public error {
public:
    explicit queue_full(const std::string& what) : error(errc::queue_full, what) {}
};

/// The queue was shut down (Python 3.13: queue.ShutDown): `put` after `shutdown()`, and
/// `get` once a shut-down queue is empty (at once after `shutdown(true)`).
class queue_shut_down : public error {
public:
    explicit queue_shut_down(const std::string& what) : error(errc::queue_shut_down, what) {}
};

/// An exception thrown by a task in another process, rethrown in the caller
/// (Python: the re-raised exception with its RemoteTraceback).
class remote_error : public error {
public:
    remote_error(std::string type_name, std::string message, pid_t pid, std::optional<std::size_t> task)
        : error(errc::remote_error, describe(type_name, message, pid, task, std::nullopt, {})),
          type_name_(std::move(type_name)), message_(std::move(message)), pid_(pid), task_(task) {}
    /// Raised on rank `rank` of an MPI job, on host `host` (ext::start::mpi).
    remote_error(std::string type_name, std::string message, pid_t pid, std::optional<std::size_t> task, int rank,
                 std::string host)
        : error(errc::remote_error, describe(type_name, message, pid, task, rank, host)),
          type_name_(std::move(type_name)), message_(std::move(message)), pid_(pid), task_(task), rank_(rank),
          host_(std::move(host)) {}
    /// The demangled type of the original exception, e.g. `std::out_of_range`.
    [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
    /// The original `what()` (empty for a type not derived from std::exception).
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    /// The pid of the process where the exception was thrown (on its host).
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// The rank of the MPI job where it was thrown, if the worker ran on one (ext::start::mpi).
    [[nodiscard]] std::optional<int> rank() const noexcept { return rank_; }
    /// The host name of that rank; empty for a worker of this machine.
    [[nodiscard]] const std::string& host() const noexcept { return host_; }
    /// The index of the failed task in its batch (its position in `map`'s input), if any.
    [[nodiscard]] std::optional<std::size_t> task() const noexcept { return task_; }

private:
    static std::string describe(const std::string& type, const std::string& msg, pid_t pid,
                                std::optional<std::size_t> task, std::optional<int> rank, const std::string& host) {
        std::string s = "multiproc: task";
        if (task) s += " " + std::to_string(*task);
        s += " raised " + type + " in process " + std::to_string(pid);
        if (rank) s += " on rank " + std::to_string(*rank) + " (host " + host + ")";
        if (!msg.empty()) s += ": " + msg;
        return s;
    }
    std::string type_name_, message_;
    pid_t pid_;
    std::optional<std::size_t> task_;
    std::optional<int> rank_;
    std::string host_;
};

/// A pool worker died (signal, `_exit`, crash) while running a task, or the pool can no
/// longer run tasks (Python: concurrent.futures.process.BrokenProcessPool; multiprocessing.Pool
/// just hangs). When a worker is to blame, it is named with its pid, how it ended and the task.
class broken_pool : public error {
public:
    explicit broken_pool(const std::string& what) : error(errc::broken_pool, what) {}
    /// A task lost with the worker `pid`, which ended with `exitcode` (Python's: n for
    /// exit(n), -N for signal N) while running task `task`.
    broken_pool(const std::string& what, pid_t pid, std::optional<int> exitcode, std::optional<std::size_t> task)
        : error(errc::broken_pool, what), pid_(pid), exitcode_(exitcode), task_(task) {}
    /// The pid of the worker that died, or 0 if no worker is to blame (terminated pool, ...).
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// How the worker ended, as Python's Process.exitcode: n for exit(n), -N for signal N.
    [[nodiscard]] std::optional<int> exitcode() const noexcept { return exitcode_; }
    /// The signal that killed the worker, if a signal did.
    [[nodiscard]] std::optional<int> signal() const noexcept {
        return exitcode_ && *exitcode_ < 0 ? std::optional<int>(-*exitcode_) : std::nullopt;
    }
    /// The index of the task that was lost (its position in `map`'s input; 0 for `apply`).
    [[nodiscard]] std::optional<std::size_t> task() const noexcept { return task_; }

private:
    pid_t pid_ = 0;
    std::optional<int> exitcode_;
    std::optional<std::size_t> task_;
};

/// A barrier was broken (aborted, timed out, its action threw, or a party died while
/// waiting) or was reset while a party waited (Python: threading.BrokenBarrierError).
class broken_barrier_error : public error {
public:
    explicit broken_barrier_error(const std::string& what) : error(errc::broken_barrier_error, what) {}
};

/// An index out of range, such as `array::at(n)` past the end (Python: IndexError).
class index_error : public error {
public:
    explicit index_error(const std::string& what) : error(errc::index_error, what) {}
};

namespace detail {

/// Python's repr() of a str: single quotes unless the text holds a ' and no ", backslash
/// escapes for the quote, backslash and control characters. Bytes >= 0x80 are kept as they
/// are (UTF-8 text prints as Python prints it).
inline std::string python_repr(std::string_view s) {
    char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == q || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7f) {
            const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    return out + q;
}

/// Python's repr() of a list of str: `['ls', '-l']`.
inline std::string python_repr(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + python_repr(v[i]);
    return out + "]";
}

/// The name Python's signal.Signals gives signal `n` on Linux (the first name in
/// alphabetical order where two share a number), or nullptr.
inline const char* python_signal_name(int n) {
    static constexpr std::pair<int, const char*> names[] = {
        {SIGHUP, "SIGHUP"},       {SIGINT, "SIGINT"},       {SIGQUIT, "SIGQUIT"},   {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"},     {SIGABRT, "SIGABRT"},     {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"},     {SIGUSR1, "SIGUSR1"},     {SIGSEGV, "SIGSEGV"},   {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"},     {SIGALRM, "SIGALRM"},     {SIGTERM, "SIGTERM"},   {SIGSTKFLT, "SIGSTKFLT"},
        {SIGCHLD, "SIGCHLD"},     {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"},   {SIGTSTP, "SIGTSTP"},
        {SIGTTIN, "SIGTTIN"},     {SIGTTOU, "SIGTTOU"},     {SIGURG, "SIGURG"},     {SIGXCPU, "SIGXCPU"},
        {SIGXFSZ, "SIGXFSZ"},     {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"},   {SIGWINCH, "SIGWINCH"},
        {SIGIO, "SIGIO"},         {SIGPWR, "SIGPWR"},       {SIGSYS, "SIGSYS"},
    };
    for (auto& [num, name] : names)
        if (num == n) return name;
    if (n == SIGRTMIN) return "SIGRTMIN";
    if (n == SIGRTMAX) return "SIGRTMAX";
    return nullptr;
}

} // namespace detail

/// A subprocess run with `check` (or by check_call / check_output) returned a non-zero
/// status (Python: subprocess.CalledProcessError). `what()` is CPython's text: "Command
/// '['false']' returned non-zero exit status 1." or "... died with <Signals.SIGKILL: 9>.".
class called_process_error : public error {
public:
    called_process_error(int returncode, std::vector<std::string> cmd, std::string out = {}, std::string err = {})
        : error(errc::called_process_error, describe(returncode, cmd)), returncode_(returncode), cmd_(std::move(cmd)), out_(std::move(out)),
          err_(std::move(err)) {}
    /// The exit status, or -N for signal N (Python: returncode).
    [[nodiscard]] int returncode() const noexcept { return returncode_; }
    /// The arguments the process was started with (Python: cmd).
    [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
    /// Its standard output if it was captured, else empty (Python: output / stdout).
    [[nodiscard]] const std::string& out() const noexcept { return out_; }
    /// Its standard error if it was captured, else empty (Python: stderr).
    [[nodiscard]] const std::string& err() const noexcept { return err_; }

private:
    static std::string describe(int rc, const std::vector<std::string>& cmd) {
        std::string s = "Command '" + detail::python_repr(cmd) + "' ";
        if (rc >= 0) return s + "returned non-zero exit status " + std::to_string(rc) + ".";
        if (const char* name = detail::python_signal_name(-rc))
            return s + "died with <Signals." + name + ": " + std::to_string(-rc) + ">.";
        return s + "died with unknown signal " + std::to_string(-rc) + ".";
    }
    int returncode_;
    std::vector<std::string> cmd_;
    std::string out_, err_;
};

/// A subprocess did not finish within its timeout (Python: subprocess.TimeoutExpired); the
/// child is left running by popen's wait and communicate, and killed by run, call and
/// check_*. `what()` is CPython's text: "Command '['sleep', '9']' timed out after 0.5 seconds".
/// Unlike CPython's, it derives from timeout_error.
class timeout_expired : public timeout_error {
public:
    timeout_expired(std::vector<std::string> cmd, std::chrono::duration<double> timeout, std::string out = {},
                    std::string err = {})
        : timeout_error(errc::timeout_expired, describe(cmd, timeout)), cmd_(std::move(cmd)), timeout_(timeout), out_(std::move(out)),
          err_(std::move(err)) {}
    /// The arguments the process was started with (Python: cmd).
    [[nodiscard]] const std::vector<std::string>& cmd() const noexcept { return cmd_; }
    /// The timeout that expired (Python: timeout).
    [[nodiscard]] std::chrono::duration<double> timeout() const noexcept { return timeout_; }
    /// The standard output read before the timeout, if captured (Python: output / stdout).
    [[nodiscard]] const std::string& out() const noexcept { return out_; }
    /// The standard error read before the timeout, if captured (Python: stderr).
    [[nodiscard]] const std::string& err() const noexcept { return err_; }

private:
    static std::string describe(const std::vector<std::string>& cmd, std::chrono::duration<double> t) {
        char buf[64];
        auto res = std::to_chars(buf, buf + sizeof buf, t.count()); // shortest form, as Python prints floats
        return "Command '" + detail::python_repr(cmd) + "' timed out after " + std::string(buf, res.ptr) + " seconds";
    }
    std::vector<std::string> cmd_;
    std::chrono::duration<double> timeout_;
    std::string out_, err_;
};

// ---------------------------------------------------------------------------------------
// Where errors go: thrown, or (without exceptions) handed to the error handler; and the
// results of the try_ forms, which carry an error instead of raising it.

/// Called with every error multiproc raises in a build without exceptions (-fno-exceptions);
/// it must not return (log and abort, longjmp to a restart point, reset the device, ...). If
/// it returns anyway, the library aborts. It runs on the thread that met the error, which
/// may be a library thread (a pool's engine, a start::thread worker): a longjmp is only
/// right on the thread that set its point. With exceptions the handler is not used: errors are
/// thrown.
using error_handler = void (*)(const error&) noexcept;

namespace detail {

/// The handler a process falls back to when the program set none: the default prints
/// "multiproc error: <what>" (without the "multiproc: " that begins the library's own
/// messages) and aborts; a child process of this library prints its "Process <name>:"
/// report and leaves with exit code 1 instead, as an uncaught exception would make it
/// (detail/runtime/runtime.hpp sets that).
inline void default_error_handler(const error& e) noexcept {
    constexpr std::string_view ours = "multiproc: ";
    const char* what = e.what();
    if (std::string_view(what).starts_with(ours)) what += ours.size();
    std::fputs("multiproc error: ", stderr);
    std::fputs(what, stderr);
    std::fputs("\n", stderr);
    std::abort();
}

inline std::atomic<error_handler>& user_error_handler() noexcept {
    static std::atomic<error_handler> h{nullptr}; // constant-initialised: safe at any time
    return h;
}

inline std::atomic<error_handler>& fallback_error_handler() noexcept {
    static std::atomic<error_handler> h{&default_error_handler};
    return h;
}

/// The class of a multiproc error, known without RTTI from its code: "multiproc::queue_empty".
inline std::string error_class_name(const error& e) {
    if (e.code().category() == error_category()) return "multiproc::" + e.code().message();
    return "multiproc::os_error";
}

/// Hands `e` to the handler; never returns.
[[noreturn]] inline void handle_error(const error& e) noexcept {
    error_handler h = user_error_handler().load(std::memory_order_acquire);
    if (!h) h = fallback_error_handler().load(std::memory_order_acquire);
    h(e);
    std::fputs("multiproc: the error handler returned, which it must not do; aborting\n", stderr);
    std::abort();
}

/// Raises `e`: throws it, or without exceptions hands it to the error handler (a standard
/// exception such as std::bad_alloc is printed and aborts, as the standard library does).
template <class E>
[[noreturn]] void raise(E&& e) {
#if MULTIPROC_EXCEPTIONS
    throw std::forward<E>(e);
#else
    if constexpr (std::is_base_of_v<error, std::remove_cvref_t<E>>) {
        handle_error(e);
    } else {
        std::fputs("multiproc: ", stderr);
        std::fputs(e.what(), stderr);
        std::fputs("\n", stderr);
        std::abort();
    }
#endif
}

template <class E>
[[noreturn]] void raise_as(const error& e) {
    raise(static_cast<const E&>(e));
}

} // namespace detail

/// Sets the handler for errors in builds without exceptions and returns the previous one
/// (nullptr: the default, which prints the error and aborts). Thread-safe; inherited by
/// start::fork children. A start::spawn or start::forkserver child is the program started
/// afresh: it has the handler if main() sets it before multiproc::freeze_support().
inline error_handler set_error_handler(error_handler h) noexcept {
    return detail::user_error_handler().exchange(h, std::memory_order_acq_rel);
}

/// The handler set by `set_error_handler`, or nullptr for the default.
inline error_handler get_error_handler() noexcept {
    return detail::user_error_handler().load(std::memory_order_acquire);
}

/// An error held as a value (Python: an exception object not yet raised), in builds with
/// or without exceptions: `*p` is the error as its base, `p.code()` says its kind without
/// RTTI, and `p.raise()` throws it again as its own type (or, without exceptions, hands it
/// to the error handler). Copies share the error.
class error_ptr {
public:
    error_ptr() noexcept = default;
    /// Holds a copy of `e`.
    template <class E>
        requires std::is_base_of_v<error, std::remove_cvref_t<E>>
    error_ptr(E&& e) // NOLINT(google-explicit-constructor): an error converts to its holder
        : e_(std::make_shared<const std::remove_cvref_t<E>>(std::forward<E>(e))),
          raise_(&detail::raise_as<std::remove_cvref_t<E>>) {}

    explicit operator bool() const noexcept { return e_ != nullptr; }
    const error& operator*() const noexcept { return *e_; }
    const error* operator->() const noexcept { return e_.get(); }
    /// The kind of the error (see `errc`) or its errno; empty for an empty holder.
    [[nodiscard]] std::error_code code() const noexcept { return e_ ? e_->code() : std::error_code(); }
    /// The error's sentence, or "" for an empty holder.
    [[nodiscard]] const char* what() const noexcept { return e_ ? e_->what() : ""; }

    /// Raises the error as its own type. Precondition: not empty.
    [[noreturn]] void raise() const {
#if MULTIPROC_EXCEPTIONS
        if (current_) std::rethrow_exception(current_);
#endif
        if (e_) raise_(*e_);
        std::fputs("multiproc: raise() called on an empty error_ptr\n", stderr);
        std::abort();
    }

    /// The exception being handled, whatever its type, kept so that raise() rethrows it as
    /// it was; `*p` is a multiproc error, or an `error` carrying a foreign exception's
    /// what(). Call only in a catch block (without exceptions there is none: it returns an
    /// empty holder).
    static error_ptr current() {
#if MULTIPROC_EXCEPTIONS
        error_ptr p;
        try {
            throw;
        } catch (const error& e) {
            return current(e);
        } catch (const std::exception& e) {
            p.e_ = std::make_shared<const error>(std::string(e.what()));
        } catch (...) {
            p.e_ = std::make_shared<const error>("multiproc: an exception of a type not derived from std::exception");
        }
        p.current_ = std::current_exception();
        p.raise_ = &detail::raise_as<error>;
        return p;
#else
        return {};
#endif
    }

#if MULTIPROC_EXCEPTIONS
    /// The multiproc error being handled, kept with its own type. Call only in a catch
    /// block that caught `e`.
    static error_ptr current(const error& e) {
        error_ptr p;
        p.current_ = std::current_exception();
        // Shares ownership of the exception object, which lives as long as current_ does.
        p.e_ = std::shared_ptr<const error>(std::make_shared<std::exception_ptr>(p.current_), &e);
        p.raise_ = &detail::raise_as<error>;
        return p;
    }
#endif

private:
    std::shared_ptr<const error> e_;
    void (*raise_)(const error&) = nullptr;
#if MULTIPROC_EXCEPTIONS
    std::exception_ptr current_;
#endif
};

/// The outcome of a try_ form: a T, or the error that stopped it (Python has none; the
/// C++23 `std::expected<T, error_ptr>` in spirit). `value()` returns the T or raises the error.
template <class T>
class [[nodiscard]] result {
public:
    result(T v) : v_(std::move(v)) {} // NOLINT(google-explicit-constructor)
    result(error_ptr e) : e_(std::move(e)) {} // NOLINT(google-explicit-constructor)
    template <class E>
        requires std::is_base_of_v<multiproc::error, std::remove_cvref_t<E>>
    result(E&& e) : e_(std::forward<E>(e)) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool has_value() const noexcept { return v_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    /// The value, or the error raised.
    T& value() & {
        if (!v_) e_.raise();
        return *v_;
    }
    const T& value() const& {
        if (!v_) e_.raise();
        return *v_;
    }
    T value() && {
        if (!v_) e_.raise();
        return std::move(*v_);
    }
    T& operator*() & noexcept { return *v_; }
    const T& operator*() const& noexcept { return *v_; }
    T operator*() && { return std::move(*v_); }
    T* operator->() noexcept { return &*v_; }
    const T* operator->() const noexcept { return &*v_; }
    /// The error. Precondition: `!has_value()`.
    [[nodiscard]] const multiproc::error& error() const noexcept { return *e_; }
    /// The error as a holder (empty when there is a value).
    [[nodiscard]] const error_ptr& error_holder() const noexcept { return e_; }

private:
    std::optional<T> v_;
    error_ptr e_;
};

/// A try_ form's outcome with no value: success, or the error.
template <>
class [[nodiscard]] result<void> {
public:
    result() noexcept = default;
    result(error_ptr e) : e_(std::move(e)) {} // NOLINT(google-explicit-constructor)
    template <class E>
        requires std::is_base_of_v<multiproc::error, std::remove_cvref_t<E>>
    result(E&& e) : e_(std::forward<E>(e)) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool has_value() const noexcept { return !e_; }
    explicit operator bool() const noexcept { return has_value(); }
    /// Raises the error, if any.
    void value() const {
        if (e_) e_.raise();
    }
    [[nodiscard]] const multiproc::error& error() const noexcept { return *e_; }
    [[nodiscard]] const error_ptr& error_holder() const noexcept { return e_; }

private:
    error_ptr e_;
};

namespace detail {

template <class R>
struct as_result {
    using type = result<R>;
};
template <class R>
struct as_result<result<R>> {
    using type = result<R>;
};

/// Runs f and returns its outcome as a result (f may return one itself): with exceptions a
/// multiproc error it throws is caught into the result; without them f reports errors
/// through its own result or raises them.
template <class F>
auto capture(F&& f) -> typename as_result<std::invoke_result_t<F&>>::type {
    using R = std::invoke_result_t<F&>;
    MULTIPROC_TRY {
        if constexpr (std::is_void_v<R>) {
            f();
            return {};
        } else {
            return f();
        }
    }
    MULTIPROC_CATCH(const error&, e) {
#if MULTIPROC_EXCEPTIONS
        return error_ptr::current(e);
#else
        (void)e;
        std::abort();
#endif
    }
}

} // namespace detail

MULTIPROC_ABI_END } // namespace multiproc
