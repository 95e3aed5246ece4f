/// @file error.hpp
/// The exceptions multiproc throws (Python: the exceptions of multiprocessing and subprocess).
#pragma once

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
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

/// A subprocess run with `check` returned a non-zero status
/// (Python: subprocess.CalledProcessError).
class called_process_error : public error {
public:
    using error::error;
};

} // namespace multiproc
