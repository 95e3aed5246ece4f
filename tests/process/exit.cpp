// What happens when processes end: output written once, a child never runs its parent's
// exit handlers, the main process waits for its children. Under every start method: each
// helper program takes the method as its argument.
#include "support/support.hpp"

#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

namespace {
template <class Ctx>
std::vector<std::string> method() {
    return {std::string(Ctx::start_method())};
}
} // namespace

TEMPLATE_TEST_CASE("output buffered before start() is printed once", "[process][exit][output]", START_METHODS) {
    auto r = test::run_program("buffered_output", method<TestType>());
    CHECK(r.code == 0);
    CHECK(r.out == "stdio-before iostream-before child after\n");
}

TEMPLATE_TEST_CASE("a child runs its own atexit handlers, whether its target returns, throws or calls std::exit, "
                   "and never its parent's atexit handlers or static destructors",
                   "[process][exit]", START_METHODS) {
    auto r = test::run_program("child_exit", method<TestType>());
    CHECK(r.code == 0);
    std::string main_pid = r.out.substr(5, r.out.find('\n') - 5);
    INFO(r.out);
    CHECK(r.out == "main " + main_pid + "\nchild returns\nchild atexit in Process-1\nexitcode 0\n" +
                       "child atexit in Process-2\nexitcode 1\nchild exits\nchild atexit in Process-3\nexitcode 3\n" +
                       "atexit in " + main_pid + "\nstatic-destructor in " + main_pid + "\n");
    CHECK(r.err == "Process Process-2:\nstd::runtime_error: boom\n");
}

TEMPLATE_TEST_CASE("the main process joins its children at exit, even unjoined and destroyed ones",
                   "[process][exit]", START_METHODS) {
    auto r = test::run_program("exit_joins_children", method<TestType>());
    CHECK(r.code == 0);
    INFO(r.out);
    // The children's lines all come before the line printed after the exit function.
    auto last = r.out.rfind("main ends\n");
    REQUIRE(last != std::string::npos);
    CHECK(last + 10 == r.out.size());
    for (int i = 0; i < 3; ++i) CHECK(test::count(r.out.substr(0, last), "child " + std::to_string(i) + " done\n") == 1);
    CHECK(test::count(r.err, "[INFO/MainProcess] process shutting down\n") == 1);
}

namespace {
/// Calls `each(pid, symbol)` for every binding LD_DEBUG=bindings reported in `text`.
/// The dynamic linker writes a binding in two writes: "<pid>:\tbinding file ... symbol `X'"
/// and then its version and newline. Processes that bind at the same time can write into
/// each other's lines between the two, so `text` is not read line by line. Each symbol is
/// taken with the pid that starts its own write: the nearest ":\t" before it.
template <class F>
void for_each_binding(const std::string& text, F each) {
    for (auto sym = text.find("symbol `"); sym != std::string::npos; sym = text.find("symbol `", sym + 1)) {
        const auto colon = text.rfind(":\t", sym);
        if (colon == std::string::npos) continue;
        const auto pid_start = text.find_last_not_of("0123456789", colon - 1) + 1;
        const auto name_start = sym + 8;
        each(text.substr(pid_start, colon - pid_start), text.substr(name_start, text.find('\'', name_start) - name_start));
    }
}

/// Runs the helper program buffered_output under `method` with LD_DEBUG=bindings and returns
/// the symbols that processes bound lazily other than those that wrote the debug files (the
/// program, and under forkserver its server, each a fresh program with a file of its own):
/// the bindings of the children, one per line. `owner_lines` gets how many lines the owners
/// wrote, `files_seen` how many files there were.
std::string child_bindings(const std::string& method, std::size_t& owner_lines, std::size_t& files_seen) {
    char dir[] = "/tmp/multiproc-ld-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string base = std::string(dir) + "/ld";
    ::setenv("LD_DEBUG", "bindings", 1);
    ::setenv("LD_DEBUG_OUTPUT", base.c_str(), 1);
    auto r = test::run_program("buffered_output", {method});
    ::unsetenv("LD_DEBUG");
    ::unsetenv("LD_DEBUG_OUTPUT");
    CHECK(r.code == 0);
    // One file per exec'd program, named after its pid; its forked children write to it
    // too, each line starting with the writer's pid.
    std::vector<std::string> files;
    if (DIR* d = ::opendir(dir)) {
        while (dirent* e = ::readdir(d))
            if (std::string(e->d_name).rfind("ld.", 0) == 0) files.push_back(e->d_name);
        ::closedir(d);
    }
    files_seen = files.size();
    owner_lines = 0;
    std::string child_symbols;
    for (const auto& file : files) {
        const std::string owner = file.substr(3);
        std::ifstream in(std::string(dir) + "/" + file);
        std::ostringstream text;
        text << in.rdbuf();
        for_each_binding(text.str(), [&](const std::string& pid, const std::string& symbol) {
            if (pid == owner)
                ++owner_lines;
            else
                child_symbols += symbol + "\n";
        });
        ::unlink((std::string(dir) + "/" + file).c_str());
    }
    ::rmdir(dir);
    return child_symbols;
}
} // namespace

TEST_CASE("a forked child binds none of the libc calls of its start and its exit: its parent has them bound",
          "[process][exit]") {
    // A call through the program's PLT is bound by the dynamic linker on its first call, and
    // what a forked child inherits is its parent's bindings: a call only children make (the
    // gate's wait, on_exit, exit, _exit, the walk over the records) was bound anew in every
    // child, about 8 µs each here (issue 20). The child's bindings, as LD_DEBUG reports them,
    // must include none of these.
    std::size_t program_lines = 0, files = 0;
    std::string child_symbols = child_bindings("fork", program_lines, files);
    CHECK(files == 1);
    CHECK(program_lines > 0); // (LD_DEBUG did report the program's own bindings)
    INFO(child_symbols);
    for (const char* name : {"read", "syscall", "getppid", "sched_yield", "on_exit", "exit", "_exit"})
        CHECK(test::count("\n" + child_symbols, "\n" + std::string(name) + "\n") == 0);
    CHECK(test::count(child_symbols, "_Rb_tree_increment") == 0);
}

namespace {
/// Runs buffered_output under forkserver with LD_DEBUG=bindings written to stderr (a
/// forkserver child closes every descriptor above 3 as it starts, a debug file's among
/// them; its stderr is the program's) and returns the symbols bound by processes other than
/// the program, one per line; `program_lines` gets how many the program bound itself. The
/// server's stderr is /dev/null: its own bindings are not seen.
std::string forkserver_child_bindings(std::size_t& program_lines) {
    ::setenv("LD_DEBUG", "bindings", 1);
    auto r = test::run_program("buffered_output", {"forkserver"});
    ::unsetenv("LD_DEBUG");
    CHECK(r.code == 0);
    std::string program_pid, child_symbols;
    program_lines = 0;
    for_each_binding(r.err, [&](const std::string& pid, const std::string& symbol) {
        if (program_pid.empty()) program_pid = pid; // the program binds before it starts anything
        if (pid == program_pid)
            ++program_lines;
        else
            child_symbols += symbol + "\n";
    });
    return child_symbols;
}
} // namespace

TEST_CASE("a forkserver child binds nothing lazily: its server bound every symbol as it started",
          "[process][exit][forkserver]") {
    // The server is a fresh program whose code never ran the bootstrap a child runs: each
    // child bound every libc and libstdc++ call of its start and exit anew, about 15% of a
    // start (issue 20). The server now starts with LD_BIND_NOW, so its children find them
    // bound. LD_BIND_NOW set to the empty string by the user keeps lazy binding: the
    // control, which shows that the child's bindings are seen.
    if (std::getenv("LD_BIND_NOW")) {
        WARN("LD_BIND_NOW is set for the whole test run: nothing is bound lazily anywhere; skipped");
        return;
    }
    std::size_t program_lines = 0;
    std::string child_symbols = forkserver_child_bindings(program_lines);
    CHECK(program_lines > 0); // (LD_DEBUG did report the program's own bindings)
    CHECK(child_symbols == "");
    ::setenv("LD_BIND_NOW", "", 1);
    std::string lazy_symbols = forkserver_child_bindings(program_lines);
    ::unsetenv("LD_BIND_NOW");
    INFO(lazy_symbols);
    CHECK(test::count("\n" + lazy_symbols, "\nsendmsg\n") == 1); // the bootstrap's answer to its parent
    CHECK(test::count("\n" + lazy_symbols, "\nprintf\n") == 1);  // the target's call
}
