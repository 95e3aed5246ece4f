// The multiproc logger: format, levels, handlers, and CPython's lifecycle lines.
#include "support/support.hpp"

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <optional>
#include <string>

using namespace multiproc;

namespace {
// Collects lines in this process.
void collect(log_level, std::string_view line, void* ctx) { static_cast<std::string*>(ctx)->append(line); }

struct reset_logger {
    ~reset_logger() {
        get_logger().set_handler(nullptr);
        get_logger().set_level(log_level::notset);
    }
};
} // namespace

TEST_CASE("messages replace {} with the arguments, None for an empty optional", "[logging][format]") {
    using detail::format;
    CHECK(format("a {} b {}", 1, std::string("x")) == "a 1 b x");
    CHECK(format("{{}} {}", std::optional<int>{}) == "{} None");
    CHECK(format("{}", std::optional<int>{-15}) == "-15");
    CHECK(format("exit codes", 0, 1) == "exit codes 0 1"); // extra arguments are appended
    CHECK(format("{} {}", true, 2.5) == "true 2.5");
    CHECK(format("{}") == "{}");
    CHECK(format("unbalanced { and }") == "unbalanced { and }");
}

TEST_CASE("levels have Python's names and numbers", "[logging][levels]") {
    CHECK(level_name(log_level::subdebug) == "SUBDEBUG");
    CHECK(level_name(log_level::debug) == "DEBUG");
    CHECK(level_name(log_level::info) == "INFO");
    CHECK(level_name(log_level::subwarning) == "SUBWARNING");
    CHECK(level_name(log_level::warning) == "WARNING");
    CHECK(level_name(log_level::error) == "ERROR");
    CHECK(level_name(log_level::critical) == "CRITICAL");
    CHECK(level_name(log_level::notset) == "NOTSET");
    CHECK(level_name(static_cast<log_level>(7)) == "Level 7");
    CHECK(static_cast<int>(log_level::subdebug) == 5);
    CHECK(static_cast<int>(log_level::subwarning) == 25);
}

TEST_CASE("a handler gets the lines the level lets through, NOTSET means WARNING", "[logging][levels]") {
    reset_logger reset;
    auto log = get_logger();
    std::string lines;
    // (Python's isEnabledFor: the level alone, handler or not.)
    CHECK(log.is_enabled_for(log_level::warning));
    CHECK_FALSE(log.is_enabled_for(log_level::info));
    log.set_handler(collect, &lines);
    CHECK(log.level() == log_level::notset);
    log.info("not shown");
    log.warning("shown {}", 1);
    log.set_level(log_level::debug);
    CHECK(log.is_enabled_for(log_level::debug));
    CHECK_FALSE(log.is_enabled_for(log_level::subdebug));
    log.debug("debug {} {}", "a", 2);
    log.subdebug("hidden");
    log.set_level(log_level::subdebug);
    log.subdebug("sub");
    log.critical("crit");
    CHECK(lines == "[WARNING/MainProcess] shown 1\n[DEBUG/MainProcess] debug a 2\n"
                   "[SUBDEBUG/MainProcess] sub\n[CRITICAL/MainProcess] crit\n");
}

TEST_CASE("a child logs its lifecycle lines as CPython 3.12 does", "[logging][lifecycle]") {
    reset_logger reset;
    test::pipe_pair out;
    auto log = get_logger();
    log.set_handler(test::log_to_fd, &out.w);
    log.set_level(log_level::debug);
    process p(process_options{.name = "worker"}, [](logger l) { l.debug("doing work"); }, log);
    p.start();
    p.join();
    log.set_handler(nullptr);
    out.close_w();
    CHECK(test::read_all(out.r) == "[INFO/worker] child process calling self.run()\n"
                                   "[DEBUG/worker] doing work\n"
                                   "[INFO/worker] process shutting down\n"
                                   "[DEBUG/worker] running all \"atexit\" finalizers with priority >= 0\n"
                                   "[DEBUG/worker] running the remaining \"atexit\" finalizers\n"
                                   "[INFO/worker] process exiting with exitcode 0\n");
}

TEST_CASE("a child's exit code in its last line: exit(n), an exception, its own children",
          "[logging][lifecycle]") {
    reset_logger reset;
    test::pipe_pair out;
    auto log = get_logger();
    log.set_handler(test::log_to_fd, &out.w);
    log.set_level(log_level::info);
    process e(process_options{.name = "exits"}, [] { std::exit(4); });
    process x(process_options{.name = "throws"}, [&] {
        ::dup2(out.w, 2); // the exception report goes to the same pipe, in order
        throw std::logic_error("bad");
    });
    process parent(process_options{.name = "parent"}, [] {
        process d(process_options{.name = "d", .daemon = true}, [] { for (;;) ::pause(); });
        process c(process_options{.name = "c"}, [] {});
        d.start();
        c.start();
    });
    for (auto* p : {&e, &x, &parent}) {
        p->start();
        p->join();
    }
    log.set_handler(nullptr);
    out.close_w();
    std::string text = test::read_all(out.r);
    CHECK(text.find("[INFO/exits] child process calling self.run()\n"
                    "[INFO/exits] process shutting down\n"
                    "[INFO/exits] process exiting with exitcode 4\n") != std::string::npos);
    CHECK(text.find("[INFO/throws] child process calling self.run()\n"
                    "[INFO/throws] process shutting down\n"
                    "Process throws:\nstd::logic_error: bad\n"
                    "[INFO/throws] process exiting with exitcode 1\n") != std::string::npos);
    // A child's own exit terminates its daemons and joins its children, in that order. As in
    // CPython, a join is logged only for a child still running when the exit function scans
    // again: `c` and the terminated `d` may both have ended by then.
    auto t = text.find("[INFO/parent] calling terminate() for daemon d\n");
    auto j1 = text.find("[INFO/parent] calling join() for process ");
    auto last = text.find("[INFO/parent] process exiting with exitcode 0\n");
    CHECK(t != std::string::npos);
    CHECK(last != std::string::npos);
    CHECK(t < last);
    if (j1 != std::string::npos) {
        CHECK(t < j1);
        CHECK(j1 < last);
    }
    CHECK(parent.exitcode() == 0);
}

TEST_CASE("without a handler, WARNING and above go to stderr bare, as Python's last resort writes them",
          "[logging][stderr]") {
    reset_logger reset;
    test::pipe_pair err;
    process p([&] {
        ::dup2(err.w, 2);
        auto log = get_logger();
        log.error("lost {}", 1);
        log.info("dropped: below the level");
        log.set_level(log_level::debug);
        log.debug("dropped: below the last resort's WARNING");
        log.warning("kept");
        log.set_level(log_level::error);
        log.warning("dropped: below the level again");
        log.critical("last");
        std::_Exit(log.is_enabled_for(log_level::error) && !log.is_enabled_for(log_level::warning) ? 0 : 2);
    });
    p.start();
    err.close_w();
    CHECK(test::read_all(err.r) == "lost 1\nkept\nlast\n");
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("log_to_stderr writes whole lines to stderr and does not duplicate them when called twice",
          "[logging][stderr]") {
    reset_logger reset;
    test::pipe_pair err;
    process p([&] {
        ::dup2(err.w, 2);
        log_to_stderr();
        auto log = log_to_stderr(log_level::warning);
        log.warning("careful");
        log.info("quiet");
        std::_Exit(0);
    });
    p.start();
    err.close_w();
    CHECK(test::read_all(err.r) == "[WARNING/" + p.name() + "] careful\n");
    p.join();
}
