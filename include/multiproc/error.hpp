/// @file error.hpp
/// The exceptions multiproc throws (Python: the exceptions of multiprocessing and subprocess).
#pragma once

#include <cerrno>
#include <charconv>
#include <chrono>
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

namespace multiproc {

/// Base of every exception multiproc throws (Python: multiprocessing.ProcessError).
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A call that is invalid for the object's state or arguments, such as using a closed
/// process (Python: ValueError).
class value_error : public error {
public:
    using error::error;
};

/// A lifecycle rule was broken, such as starting a process twice or joining one that was
/// never started (Python: the AssertionError that multiprocessing raises for these).
class state_error : public error {
public:
    using error::error;
};

/// A system call failed; `code()` holds its errno (Python: OSError).
class os_error : public error {
public:
    os_error(const std::string& what, int errnum)
        : error(what + ": " + std::generic_category().message(errnum)), code_(errnum, std::generic_category()) {}
    /// The errno of the failed call.
    [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

private:
    std::error_code code_;
};

/// A blocking call ran out of time (Python: multiprocessing.TimeoutError).
class timeout_error : public error {
public:
    using error::error;
};

/// The other end of a connection is closed and nothing is left to read (Python: EOFError).
class eof_error : public error {
public:
    using error::error;
};

/// `recv_bytes_into` was given a buffer too small for the message, which is consumed and
/// kept whole in `message()` (Python: multiprocessing.BufferTooShort).
class buffer_too_short : public error {
public:
    explicit buffer_too_short(std::vector<std::byte> message)
        : error("multiproc: buffer too short for a message of " + std::to_string(message.size()) + " bytes"),
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
    using error::error;
};

/// `get` found nothing before its timeout, or at once for `get_nowait` (Python: queue.Empty).
class queue_empty : public error {
public:
    using error::error;
};

/// `put` found no room before its timeout, or at once for `put_nowait` (Python: queue.Full).
class queue_full : public error {
public:
    using error::error;
};

/// An exception thrown by a task in another process, rethrown in the caller
/// (Python: the re-raised exception with its RemoteTraceback).
class remote_error : public error {
public:
    remote_error(std::string type_name, std::string message, pid_t pid, std::optional<std::size_t> task)
        : error(describe(type_name, message, pid, task)), type_name_(std::move(type_name)),
          message_(std::move(message)), pid_(pid), task_(task) {}
    /// The demangled type of the original exception, e.g. `std::out_of_range`.
    [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
    /// The original `what()` (empty for a type not derived from std::exception).
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    /// The pid of the process where the exception was thrown.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// The index of the failed task in its batch (its position in `map`'s input), if any.
    [[nodiscard]] std::optional<std::size_t> task() const noexcept { return task_; }

private:
    static std::string describe(const std::string& type, const std::string& msg, pid_t pid,
                                std::optional<std::size_t> task) {
        std::string s = "multiproc: task";
        if (task) s += " " + std::to_string(*task);
        s += " raised " + type + " in process " + std::to_string(pid);
        if (!msg.empty()) s += ": " + msg;
        return s;
    }
    std::string type_name_, message_;
    pid_t pid_;
    std::optional<std::size_t> task_;
};

/// A pool worker died (signal, `_exit`, crash) while running a task, or the pool can no
/// longer run tasks (Python: concurrent.futures.process.BrokenProcessPool; multiprocessing.Pool
/// just hangs). When a worker is to blame, it is named with its pid, how it ended and the task.
class broken_pool : public error {
public:
    using error::error;
    /// A task lost with the worker `pid`, which ended with `exitcode` (Python's: n for
    /// exit(n), -N for signal N) while running task `task`.
    broken_pool(const std::string& what, pid_t pid, std::optional<int> exitcode, std::optional<std::size_t> task)
        : error(what), pid_(pid), exitcode_(exitcode), task_(task) {}
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
    using error::error;
};

/// An index out of range, such as `array::at(n)` past the end (Python: IndexError).
class index_error : public error {
public:
    using error::error;
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
        : error(describe(returncode, cmd)), returncode_(returncode), cmd_(std::move(cmd)), out_(std::move(out)),
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
        : timeout_error(describe(cmd, timeout)), cmd_(std::move(cmd)), timeout_(timeout), out_(std::move(out)),
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

} // namespace multiproc
