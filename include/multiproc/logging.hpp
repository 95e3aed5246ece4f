/// @file logging.hpp
/// The multiproc logger (Python: multiprocessing.get_logger() and log_to_stderr()).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/runtime/runtime.hpp> // also defines log_level and log_handler

#include <string>
#include <string_view>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// The name Python prints for a level: "DEBUG", "SUBWARNING", "Level 7", ...
inline std::string level_name(log_level l) { return detail::level_name(static_cast<int>(l)); }

/// The process-wide multiproc logger (Python: the "multiprocessing" logger). Copies are
/// views of the same logger, so one can be passed to a child as an argument; a child
/// inherits its parent's level and handler. Messages use "{}" placeholders.
class logger {
public:
    /// Sets the level; `notset` means WARNING, as for Python's root logger.
    void set_level(log_level l) noexcept { core().level.store(static_cast<int>(l), std::memory_order_relaxed); }
    /// The level as set (`notset` until set).
    [[nodiscard]] log_level level() const noexcept {
        return static_cast<log_level>(core().level.load(std::memory_order_relaxed));
    }
    /// Whether `l` reaches the level (Python: isEnabledFor), handler or not.
    [[nodiscard]] bool is_enabled_for(log_level l) const noexcept { return core().passes(static_cast<int>(l)); }
    /// Sends lines to `h(level, line, context)`. `nullptr` (the initial state) leaves only
    /// Python's last resort: messages at WARNING and above (and at the level) go to stderr
    /// bare, without the "[LEVEL/ProcessName] " of a line; the rest go nowhere.
    void set_handler(log_handler h, void* context = nullptr) noexcept {
        core().sink_ctx.store(context, std::memory_order_relaxed);
        core().sink.store(h, std::memory_order_relaxed);
    }

    /// Emits `fmt` with each "{}" replaced by the next argument, if `l` is enabled. Strings,
    /// numbers, bools and optionals of those are written directly; any other value through
    /// its operator<<, which needs `#include <sstream>` (a sentence says so otherwise).
    template <class... Args>
    void log(log_level l, std::string_view fmt, const Args&... args) const {
        detail::log(static_cast<int>(l), fmt, args...);
    }
    template <class... Args>
    void subdebug(std::string_view fmt, const Args&... args) const { log(log_level::subdebug, fmt, args...); }
    template <class... Args>
    void debug(std::string_view fmt, const Args&... args) const { log(log_level::debug, fmt, args...); }
    template <class... Args>
    void info(std::string_view fmt, const Args&... args) const { log(log_level::info, fmt, args...); }
    template <class... Args>
    void subwarning(std::string_view fmt, const Args&... args) const { log(log_level::subwarning, fmt, args...); }
    template <class... Args>
    void warning(std::string_view fmt, const Args&... args) const { log(log_level::warning, fmt, args...); }
    template <class... Args>
    void error(std::string_view fmt, const Args&... args) const { log(log_level::error, fmt, args...); }
    template <class... Args>
    void critical(std::string_view fmt, const Args&... args) const { log(log_level::critical, fmt, args...); }

private:
    static detail::log_core& core() noexcept { return detail::rt().log; }
};

/// The multiproc logger (Python: multiprocessing.get_logger()). Until it is given a handler,
/// messages at WARNING and above are written to stderr as they are (Python's
/// logging.lastResort), and the rest are dropped. The library's own lines are below
/// WARNING but for two, about a forkserver that fails (it ended before reporting how a
/// child ended; it could not load with LD_BIND_NOW=1).
inline logger get_logger() { return logger{}; }

/// Sends the logger's lines to stderr, each with one write(2) so that lines of different
/// processes never interleave (Python: multiprocessing.log_to_stderr()). Calling it again
/// does not duplicate lines, unlike CPython.
inline logger log_to_stderr() {
    logger l;
    l.set_handler(detail::stderr_sink);
    return l;
}

/// As `log_to_stderr()`, and sets the level.
inline logger log_to_stderr(log_level level) {
    logger l = log_to_stderr();
    l.set_level(level);
    return l;
}

MULTIPROC_ABI_END } // namespace multiproc
