// subprocess::run, call, check_call and check_output: capture, input, timeouts, check,
// redirections, environment and directory, what the child inherits, and bad arguments.
#include "support/support.hpp"

#include <multiproc/subprocess.hpp>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace multiproc;
namespace sp = multiproc::subprocess;
using namespace std::chrono_literals;

namespace {

/// `n` bytes of every value, in an order that repeats only every 251 * 256 bytes.
std::string all_bytes(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i + i / 251) & 0xff);
    return s;
}

} // namespace

TEST_CASE("run captures stdout and stderr apart and returns args and the status", "[subprocess][run]") {
    test::baseline before;
    auto r = sp::run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {.capture_output = true});
    CHECK(r.args == std::vector<std::string>{"sh", "-c", "echo out; echo err >&2; exit 3"});
    CHECK(r.returncode == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");
    CHECK_THROWS_WITH(r.check_returncode(), "Command '['sh', '-c', 'echo out; echo err >&2; exit 3']' returned "
                                            "non-zero exit status 3.");
    before.check();
}

TEST_CASE("call returns the status of a program whose streams are inherited or discarded", "[subprocess][call]") {
    test::baseline before;
    CHECK(sp::call({"ls", "/"}, {.out = sp::devnull}) == 0);
    CHECK(sp::call({"ls", "/nonexistent-directory"}, {.err = sp::devnull}) == 2);
    CHECK(sp::call({"true"}) == 0);
    before.check();
}

TEST_CASE("output written before call() comes before the child's, even into a pipe", "[subprocess][call]") {
    auto r = test::run_program("subprocess_order");
    CHECK(r.code == 0);
    CHECK(r.out == "printf before\ncout before\nchild\nafter 0\n");
}

TEST_CASE("check_call returns 0, or throws called_process_error with CPython's message", "[subprocess][check]") {
    test::baseline before;
    CHECK(sp::check_call({"true"}) == 0);
    try {
        sp::check_call({"sh", "-c", "exit 3"});
        FAIL("check_call should have thrown");
    } catch (const called_process_error& e) {
        CHECK(std::string(e.what()) == "Command '['sh', '-c', 'exit 3']' returned non-zero exit status 3.");
        CHECK(e.returncode() == 3);
        CHECK(e.cmd() == std::vector<std::string>{"sh", "-c", "exit 3"});
        CHECK(e.out().empty());
        CHECK(e.err().empty());
    }
    before.check();
}

TEST_CASE("check_output returns stdout, its error carries what was captured", "[subprocess][check]") {
    test::baseline before;
    CHECK(sp::check_output({"sort"}, {.input = "b\nc\na\n"}) == "a\nb\nc\n");
    CHECK(sp::check_output({"sh", "-c", "echo out; echo err >&2"}, {.err = sp::to_stdout}) == "out\nerr\n");
    try {
        (void)sp::check_output({"sh", "-c", "echo partial; echo oops >&2; exit 5"}, {.err = sp::pipe});
        FAIL("check_output should have thrown");
    } catch (const called_process_error& e) {
        CHECK(e.returncode() == 5);
        CHECK(e.out() == "partial\n");
        CHECK(e.err() == "oops\n");
    }
    before.check();
}

TEST_CASE("a signal gives returncode -N, and check says the child died with it as CPython does",
          "[subprocess][signals]") {
    test::baseline before;
    CHECK(sp::run({"sh", "-c", "kill -TERM $$"}).returncode == -SIGTERM);
    try {
        sp::run({"sh", "-c", "kill -KILL $$"}, {.check = true});
        FAIL("run should have thrown");
    } catch (const called_process_error& e) {
        CHECK(e.returncode() == -SIGKILL);
        CHECK(std::string(e.what()) == "Command '['sh', '-c', 'kill -KILL $$']' died with <Signals.SIGKILL: 9>.");
    }
    // Signals without a name in Python's signal.Signals, and Python's quoting of arguments.
    CHECK(std::string(called_process_error(-40, {"x"}).what()) == "Command '['x']' died with unknown signal 40.");
    CHECK(std::string(called_process_error(-SIGABRT, {"x"}).what()) == "Command '['x']' died with <Signals.SIGABRT: 6>.");
    CHECK(std::string(called_process_error(3, {"it's", "a\"b", "c\n\x01\\"}).what()) ==
          R"(Command '["it's", 'a"b', 'c\n\x01\\']' returned non-zero exit status 3.)");
    before.check();
}

TEST_CASE("input larger than a pipe buffer reaches the child whole", "[subprocess][input]") {
    test::baseline before;
    std::string big = all_bytes(4 << 20);
    auto r = sp::run({"cat"}, {.input = big, .capture_output = true});
    CHECK(r.returncode == 0);
    CHECK(r.out.size() == big.size());
    CHECK(r.out == big);
    before.check();
}

TEST_CASE("MiBs on stdout and stderr at once, with MiBs of input, never deadlock", "[subprocess][input]") {
    test::baseline before;
    // tee writes each block to stdout, then to stderr: reading one stream to its end before
    // the other would leave tee blocked on the full pipe of the other.
    std::string big = all_bytes(8 << 20);
    auto r = sp::run({"tee", "/dev/stderr"}, {.input = big, .capture_output = true});
    CHECK(r.returncode == 0);
    CHECK(r.out == big);
    CHECK(r.err == big);
    // Without input: the child alone fills both streams.
    auto z = sp::run({"sh", "-c", "head -c 8388608 /dev/zero | tee /dev/stderr"}, {.capture_output = true});
    CHECK(z.out == std::string(8 << 20, '\0'));
    CHECK(z.err == z.out);
    before.check();
}

TEST_CASE("a child that leaves without reading its input does not kill the parent with SIGPIPE",
          "[subprocess][input]") {
    test::baseline before;
    auto r = sp::run({"true"}, {.input = std::string(1 << 20, 'x')});
    CHECK(r.returncode == 0);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    CHECK_FALSE(sigismember(&pending, SIGPIPE)); // the SIGPIPE it raised was consumed
    before.check();
}

TEST_CASE("text mode turns CR LF and CR into LF, bytes mode keeps every byte", "[subprocess][text]") {
    test::baseline before;
    std::vector<std::string> args{"printf", "a\\r\\nb\\rc\\n"};
    CHECK(sp::run(args, {.capture_output = true}).out == "a\r\nb\rc\n");
    CHECK(sp::run(args, {.capture_output = true, .text = true}).out == "a\nb\nc\n");
    CHECK(sp::check_output(args, {.text = true}) == "a\nb\nc\n");
    std::string bytes = all_bytes(256 * 251);
    CHECK(sp::run({"cat"}, {.input = bytes, .capture_output = true}).out == bytes);
    before.check();
}

TEST_CASE("a timeout kills the child, timeout_expired carries cmd, timeout and the output so far",
          "[subprocess][timeout]") {
    test::baseline before;
    try {
        // 1 s is far longer than the echo takes, and it is how long the test lasts.
        sp::run({"sh", "-c", "echo partial; echo oops >&2; exec sleep 1000"}, {.capture_output = true, .timeout = 1s});
        FAIL("run should have thrown");
    } catch (const sp::timeout_expired& e) {
        CHECK(std::string(e.what()) ==
              "Command '['sh', '-c', 'echo partial; echo oops >&2; exec sleep 1000']' timed out after 1 seconds");
        CHECK(e.cmd().size() == 3);
        CHECK(e.timeout() == 1s);
        CHECK(e.out() == "partial\n");
        CHECK(e.err() == "oops\n");
    }
    CHECK_THROWS_AS(sp::call({"sleep", "1000"}, {.timeout = 50ms}), timeout_error);
    CHECK_THROWS_WITH(sp::check_output({"sleep", "1000"}, {.timeout = 250ms}),
                      "Command '['sleep', '1000']' timed out after 0.25 seconds");
    before.check(); // each was killed and reaped
}

TEST_CASE("a grandchild holding the pipes open does not make a timed-out run hang", "[subprocess][timeout]") {
    // CPython's run() waits for end-of-file after killing the child, so it hangs here until
    // the grandchild ends. Ours takes what is in the pipes and returns.
    test::baseline before;
    test::pipe_pair grandchild;
    try {
        sp::run({"sh", "-c", "sleep 1000 & echo $! >&" + std::to_string(grandchild.w) + "; echo started; wait"},
                {.capture_output = true, .timeout = 1s, .pass_fds = {grandchild.w}});
        FAIL("run should have thrown");
    } catch (const sp::timeout_expired& e) {
        CHECK(e.out() == "started\n");
    }
    grandchild.close_w();
    pid_t pid = std::stoi(test::read_line(grandchild.r));
    ::kill(pid, SIGKILL); // orphaned by the kill of its parent: init reaps it
    CHECK(test::wait_exit(pid));
    grandchild.close_r();
    before.check();
}

TEST_CASE("env replaces the environment, and its PATH is where programs are found", "[subprocess][env]") {
    test::baseline before;
    CHECK(sp::run({"env"}, {.capture_output = true, .env = sp::environment{{"FOO", "bar"}, {"A", "1 2"}}})
              .out == "A=1 2\nFOO=bar\n");
    CHECK(sp::run({"env"}, {.capture_output = true, .env = sp::environment{}}).out.empty());
    // Found through the child's PATH, not this process's.
    auto r = sp::run({"list_fds"}, {.capture_output = true, .env = sp::environment{{"PATH", MULTIPROC_TEST_PROGRAMS}}});
    CHECK(r.out == "0 1 2\n");
    CHECK_THROWS_WITH(sp::run({"list_fds"}), "multiproc: cannot run 'list_fds': No such file or directory");
    before.check();
}

TEST_CASE("cwd sets the child's directory, a relative program path is taken from there", "[subprocess][cwd]") {
    test::baseline before;
    CHECK(sp::run({"pwd"}, {.capture_output = true, .cwd = "/tmp"}).out == "/tmp\n");
    CHECK(sp::run({"./list_fds"}, {.capture_output = true, .cwd = MULTIPROC_TEST_PROGRAMS}).out == "0 1 2\n");
    CHECK_THROWS_WITH(sp::run({"pwd"}, {.cwd = "/nonexistent-directory"}),
                      "multiproc: cannot change to directory '/nonexistent-directory' to run 'pwd': "
                      "No such file or directory");
    CHECK_THROWS_WITH(sp::run({"pwd"}, {.cwd = "/etc/passwd"}),
                      "multiproc: cannot change to directory '/etc/passwd' to run 'pwd': Not a directory");
    // A bad directory is named before a program not found (CPython's child changes
    // directory first; an outside trial: the program was named).
    CHECK_THROWS_WITH(sp::run({"nosuch-program"}, {.cwd = "/nonexistent-directory"}),
                      "multiproc: cannot change to directory '/nonexistent-directory' to run 'nosuch-program': "
                      "No such file or directory");
    before.check();
}

// From an outside trial: the search stopped at the first executable file in PATH, so a
// script whose interpreter is missing, or a file that is no program, hid the next one.
// CPython's child tries each in turn, and reports the first error that is not ENOENT.
TEST_CASE("a program found in PATH that cannot run makes the next one in PATH run, as in CPython",
          "[subprocess][env]") {
    test::baseline before;
    const std::string top = "/tmp/mpt_path_" + std::to_string(::getpid());
    const auto put = [](const std::string& file, const std::string& text) {
        std::ofstream(file) << text;
        REQUIRE(::chmod(file.c_str(), 0755) == 0);
    };
    REQUIRE(::mkdir(top.c_str(), 0755) == 0);
    for (const char* d : {"/p1", "/p2"}) REQUIRE(::mkdir((top + d).c_str(), 0755) == 0);
    put(top + "/p1/tool", "#!/nonexistent/interpreter\n");      // execve: ENOENT
    put(top + "/p1/junk", std::string("bin\0ary", 7));          // execve: ENOEXEC
    put(top + "/p2/tool", "#!/bin/sh\necho p2\n");
    put(top + "/p2/junk", "#!/bin/sh\necho p2\n");
    const sp::environment env{{"PATH", top + "/p1:" + top + "/p2"}};
    CHECK(sp::run({"tool"}, {.capture_output = true, .env = env}).out == "p2\n");
    CHECK(sp::run({"junk"}, {.capture_output = true, .env = env}).out == "p2\n");
    // None runs: the first error that is not ENOENT, in PATH order, whether execve met it
    // or the file could be seen not to run (not executable) without trying.
    const sp::environment only_bad{{"PATH", top + "/p1:" + top + "/p1"}};
    CHECK_THROWS_WITH(sp::run({"tool"}, {.env = only_bad}), "multiproc: cannot run 'tool': No such file or directory");
    CHECK_THROWS_WITH(sp::run({"junk"}, {.env = only_bad}), "multiproc: cannot run 'junk': Exec format error");
    REQUIRE(::mkdir((top + "/p0").c_str(), 0755) == 0);
    std::ofstream(top + "/p0/tool") << "#!/bin/sh\necho p0\n"; // (mode 0644: not executable)
    CHECK_THROWS_WITH(sp::run({"tool"}, {.env = sp::environment{{"PATH", top + "/p0:" + top + "/p1"}}}),
                      "multiproc: cannot run 'tool': Permission denied");
    std::filesystem::remove_all(top);
    before.check();
}

TEST_CASE("a program that cannot run is an os_error in the parent, with no zombie and no descriptor left",
          "[subprocess][errors]") {
    test::baseline before;
    auto fails = [](std::vector<std::string> args, const std::string& what, int code) {
        try {
            sp::run(std::move(args), {.capture_output = true});
            FAIL("run should have thrown");
        } catch (const os_error& e) {
            CHECK(std::string(e.what()) == what);
            CHECK(e.code().value() == code);
        }
    };
    fails({"nosuch-program"}, "multiproc: cannot run 'nosuch-program': No such file or directory", ENOENT);
    fails({"/nonexistent/program"}, "multiproc: cannot run '/nonexistent/program': No such file or directory", ENOENT);
    fails({"/etc/passwd"}, "multiproc: cannot run '/etc/passwd': Permission denied", EACCES);
    fails({"/"}, "multiproc: cannot run '/': Permission denied", EACCES);
    fails({""}, "multiproc: cannot run '': Permission denied", EACCES); // as CPython: PATH entries are directories
    before.check();
}

TEST_CASE("the child holds only descriptors 0, 1 and 2, plus pass_fds", "[subprocess][fds]") {
    test::baseline before;
    std::string lister = test::program_path("list_fds");
    // Opened without O_CLOEXEC: posix_spawn alone would hand these on.
    int leaky = ::open("/dev/null", O_RDONLY);
    REQUIRE(leaky > 2);
    int leaky_pipe[2];
    REQUIRE(::pipe(leaky_pipe) == 0);
    CHECK(sp::run({lister}, {.capture_output = true}).out == "0 1 2\n");
    CHECK(sp::run({lister}, {.in = sp::devnull, .out = sp::pipe, .err = sp::devnull}).out == "0 1 2\n");

    test::pipe_pair passed; // close-on-exec here; the child gets it without the flag
    int high = ::fcntl(passed.w, F_DUPFD_CLOEXEC, 100);
    REQUIRE(high >= 100);
    auto listed = sp::run({lister}, {.capture_output = true, .pass_fds = {passed.w, high, 1}}).out;
    CHECK(listed == "0 1 2 " + std::to_string(passed.w) + " " + std::to_string(high) + "\n");
    ::close(high);
    sp::run({"sh", "-c", "echo through >&" + std::to_string(passed.w)}, {.pass_fds = {passed.w}});
    passed.close_w();
    CHECK(test::read_all(passed.r) == "through\n");
    passed.close_r();

    ::close(leaky);
    ::close(leaky_pipe[0]);
    ::close(leaky_pipe[1]);
    before.check();
}

TEST_CASE("devnull: stdin reads nothing and output is discarded", "[subprocess][redirect]") {
    test::baseline before;
    auto r = sp::run({"cat"}, {.in = sp::devnull, .out = sp::pipe});
    CHECK(r.returncode == 0);
    CHECK(r.out.empty());
    auto e = sp::run({"sh", "-c", "echo out; echo err >&2"}, {.out = sp::devnull, .err = sp::pipe});
    CHECK(e.out.empty());
    CHECK(e.err == "err\n");
    before.check();
}

TEST_CASE("stderr to stdout merges both streams into one pipe, in order", "[subprocess][redirect]") {
    test::baseline before;
    auto r = sp::run({"sh", "-c", "echo out; echo err >&2; echo out2"}, {.out = sp::pipe, .err = sp::to_stdout});
    CHECK(r.out == "out\nerr\nout2\n");
    CHECK(r.err.empty());
    before.check();
}

TEST_CASE("a stream can go to a descriptor of the parent, which stays open there", "[subprocess][redirect]") {
    test::baseline before;
    test::pipe_pair p;
    sp::run({"sh", "-c", "echo to-fd; echo err-too >&2"}, {.out = sp::fd(p.w), .err = sp::to_stdout});
    CHECK(::fcntl(p.w, F_GETFD) >= 0);
    p.close_w();
    CHECK(test::read_all(p.r) == "to-fd\nerr-too\n");
    p.close_r();
    before.check();
}

TEST_CASE("shell runs a command line through /bin/sh, executable replaces the program", "[subprocess][shell]") {
    test::baseline before;
    CHECK(sp::run({"echo $0-$1", "a", "b"}, {.capture_output = true, .shell = true}).out == "a-b\n");
    CHECK(sp::run({"named", "-c", "echo $0"}, {.capture_output = true, .executable = "/bin/sh"}).out == "named\n");
    before.check();
}

TEST_CASE("bad arguments are value_errors that start nothing", "[subprocess][errors]") {
    test::baseline before;
    CHECK_THROWS_WITH(sp::run({}), "args is empty: there is no program to run");
    CHECK_THROWS_WITH(sp::run({std::string("a\0b", 3)}), "embedded null byte");
    CHECK_THROWS_WITH(sp::run({"true"}, {.cwd = std::string("/\0", 2)}), "embedded null byte");
    CHECK_THROWS_WITH(sp::run({"true"}, {.env = sp::environment{{"A=B", "1"}}}),
                      "illegal environment variable name");
    // (An empty name passes, as "=1": CPython's subprocess refuses only a name with '='.)
    CHECK(sp::run({"env"}, {.capture_output = true, .env = sp::environment{{"", "1"}}}).out == "=1\n");
    CHECK_THROWS_WITH(sp::run({"true"}, {.env = sp::environment{{"A", std::string("\0", 1)}}}),
                      "embedded null byte");
    CHECK_THROWS_WITH(sp::run({"true"}, {.out = sp::to_stdout}), "only stderr can go to stdout (to_stdout is for .err)");
    CHECK_THROWS_WITH(sp::run({"true"}, {.input = "x", .in = sp::devnull}), "stdin and input arguments may not both be used.");
    CHECK_THROWS_WITH(sp::run({"true"}, {.capture_output = true, .err = sp::devnull}),
                      "stdout and stderr arguments may not be used with capture_output.");
    CHECK_THROWS_WITH(sp::check_output({"true"}, {.out = sp::devnull}), "stdout argument not allowed, it will be overridden.");
    CHECK_THROWS_WITH(sp::popen({"true"}, {.check = true}),
                      "popen takes no input, capture_output, timeout or check: those are options of run(); give the "
                      "input and timeout to communicate()");
    CHECK_THROWS_WITH(sp::run({"true"}, {.pass_fds = {-1}}), "pass_fds holds -1, which is not a file descriptor");
    CHECK_THROWS_WITH(sp::run({"true"}, {.timeout = sp::duration(std::nan(""))}), "timeout is not a number");
    CHECK_THROWS_AS(sp::run({"true"}, {.timeout = sp::duration(std::nan(""))}), value_error);
    { // refused before the program starts (it was started, then killed): a start would meet
      // the failure planted in posix_spawn
        test::inject spawn_fails(multiproc::detail::sys::call::posix_spawn, EAGAIN);
        CHECK_THROWS_AS(sp::run({"true"}, {.timeout = sp::duration(std::nan(""))}), value_error);
        CHECK(spawn_fails.left() == 1);
    }
    // Descriptors that are not open are os_errors naming them.
    CHECK_THROWS_WITH(sp::run({"true"}, {.pass_fds = {987}}), "multiproc: pass_fds holds 987: Bad file descriptor");
    CHECK_THROWS_WITH(sp::run({"true"}, {.out = sp::fd(987)}),
                      "multiproc: redirecting the stdout of ['true'] to descriptor 987: Bad file descriptor");
    before.check();
}

TEST_CASE("huge and negative timeouts are clamped, never undefined", "[subprocess][timeout]") {
    test::baseline before;
    CHECK(sp::run({"true"}, {.timeout = sp::duration(1e300)}).returncode == 0);
    CHECK_THROWS_AS(sp::run({"sleep", "1000"}, {.timeout = sp::duration(-1)}), sp::timeout_expired);
    before.check();
}
