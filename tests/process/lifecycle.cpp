// Process lifecycle with CPython's semantics: exit codes, joins, signals, misuse errors.
// Each case runs under every start method (START_METHODS), except those that rely on a
// forked child sharing the test's memory (capturing lambdas, objects reached through
// references), which are fork-only and say so.
#include "support/support.hpp"

#include <multiproc/process.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <optional>
#include <poll.h>
#include <stdio_ext.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
void exit_with(int n) { std::exit(n); }
struct custom_failure {}; // not derived from std::exception

// Runs `Throwing{}()` in a child whose stderr is a pipe; returns {exit code, stderr}.
template <class Ctx, class Throwing>
std::pair<int, std::string> stderr_of(Throwing, std::string name = {}) {
    test::report_pipe err;
    test::process_t<Ctx> p(
        process_options{.name = name, .daemon = {}},
        [](test::fd_arg e) {
            ::dup2(e.fd, 2);
            Throwing{}();
        },
        err.w_arg());
    p.start();
    std::string text = err.collect();
    p.join();
    return {*p.exitcode(), text};
}

// What a child finds on its stdin, as its exit code: twice the bytes of one read(0) (0: end
// of file), plus 1 if getchar() still gives a character.
void read_stdin() {
    char buf[16];
    const ssize_t n = ::read(0, buf, sizeof buf);
    const bool more = std::getchar() != EOF;
    std::exit(n < 0 ? 100 : static_cast<int>(n) * 2 + (more ? 1 : 0));
}

// Makes a pipe holding `text` (and then end of file) this process's stdin, until destroyed.
class stdin_as {
public:
    explicit stdin_as(const std::string& text) : saved_(::dup(0)) {
        int p[2];
        REQUIRE(saved_ >= 0);
        REQUIRE(::pipe(p) == 0);
        REQUIRE(::write(p[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        ::close(p[1]);
        REQUIRE(::dup2(p[0], 0) == 0);
        ::close(p[0]);
        ::__fpurge(stdin);
        std::clearerr(stdin);
    }
    ~stdin_as() {
        ::dup2(saved_, 0);
        ::close(saved_);
        ::__fpurge(stdin);
        std::clearerr(stdin);
    }
    stdin_as(const stdin_as&) = delete;
    stdin_as& operator=(const stdin_as&) = delete;

private:
    int saved_;
};
} // namespace

TEMPLATE_TEST_CASE("a child's stdin reads /dev/null, and the program's input stays the parent's (CPython's "
                   "util._close_stdin)",
                   "[process][stdin]", START_METHODS) {
    stdin_as input("hello\n");
    test::process_t<TestType> p(fn<&read_stdin>);
    CHECK(test::exit_of(p) == 0); // end of file at once (before: 12, the child took the 6 bytes)
    char buf[16];
    CHECK(::read(0, buf, sizeof buf) == 6);
}

TEST_CASE("a forked child does not read again what the parent's stdin had read ahead", "[process][stdin]") {
    stdin_as input("hello\n");
    CHECK(std::getchar() == 'h'); // stdio has read the whole line into its buffer
    process p(fn<&read_stdin>);
    CHECK(test::exit_of(p) == 0); // (before: 1, getchar() gave the 'e' of the parent's buffer)
    CHECK(std::getchar() == 'e'); // the parent's buffer is its own still
}

TEMPLATE_TEST_CASE("a target that returns gives exit code 0", "[process][exitcode]", START_METHODS) {
    test::process_t<TestType> p([] {});
    CHECK(test::exit_of(p) == 0);
}

TEMPLATE_TEST_CASE("a target calling exit(n) or _exit(n) gives exit code n", "[process][exitcode]", START_METHODS) {
    test::process_t<TestType> a(fn<&exit_with>, 3);
    CHECK(test::exit_of(a) == 3);
    test::process_t<TestType> b([] { ::_exit(42); });
    CHECK(test::exit_of(b) == 42);
    test::process_t<TestType> c([] { std::quick_exit(5); });
    CHECK(test::exit_of(c) == 5);
}

TEMPLATE_TEST_CASE("an uncaught exception gives 1 and reports the process, type and what() on stderr",
                   "[process][exitcode]", START_METHODS) {
    auto [code, err] = stderr_of<TestType>([] { throw std::invalid_argument("There was an error!"); }, "raises");
    CHECK(code == 1);
    CHECK(err == "Process raises:\nstd::invalid_argument: There was an error!\n");
}

TEMPLATE_TEST_CASE("an exception of a type not derived from std::exception gives 1 and is named",
                   "[process][exitcode]", START_METHODS) {
    auto [code, err] = stderr_of<TestType>([] { throw custom_failure{}; });
    CHECK(code == 1);
    CHECK_THAT(err, Catch::Matchers::StartsWith("Process Process-"));
    CHECK_THAT(err, Catch::Matchers::EndsWith(":\n(anonymous namespace)::custom_failure\n"));
    auto [code2, err2] = stderr_of<TestType>([] { throw 7; });
    CHECK(code2 == 1);
    CHECK_THAT(err2, Catch::Matchers::EndsWith(":\nint\n"));
}

TEMPLATE_TEST_CASE("a child killed by signal N has exit code -N", "[process][exitcode][signal]", START_METHODS) {
    test::gate gate; // the children block reading it; they never see data
    test::process_t<TestType> t([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    test::process_t<TestType> k([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    test::process_t<TestType> s([] { ::raise(SIGSEGV); });
    t.start();
    k.start();
    t.terminate();
    k.kill();
    t.join();
    k.join();
    CHECK(t.exitcode() == -SIGTERM);
    CHECK(k.exitcode() == -SIGKILL);
    CHECK(test::exit_of(s) == -SIGSEGV);
    // Signalling a process that has been reaped does nothing.
    CHECK_NOTHROW(t.terminate());
    CHECK_NOTHROW(k.kill());
}

// Fork only: capturing lambdas, std::function and function pointers carry state or
// addresses that only a forked child shares.
TEST_CASE("any callable is a target under fork: functions, pointers, function objects, capturing lambdas",
          "[process][target]") {
    test::pipe_pair out;
    struct functor {
        int fd;
        void operator()(const std::string& s) const { test::write_str(fd, "functor " + s + "\n"); }
    };
    int captured = 40;
    void (*fp)(int) = [](int) {};
    std::vector<process> ps;
    ps.emplace_back(functor{out.w}, std::string("arg"));
    ps.emplace_back([&, captured](int n) { test::write_str(out.w, "lambda " + std::to_string(captured + n) + "\n"); }, 2);
    ps.emplace_back(fp, 1);
    ps.emplace_back(std::function<void()>([w = out.w] { test::write_str(w, "function\n"); }));
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
    out.close_w();
    std::string text = test::read_all(out.r);
    CHECK(test::count(text, "functor arg\n") == 1);
    CHECK(test::count(text, "lambda 42\n") == 1);
    CHECK(test::count(text, "function\n") == 1);
    for (auto& p : ps) CHECK(p.exitcode() == 0);
}

namespace {
void say(test::fd_arg out, const std::string& s) { out.write("function " + s + "\n"); }
struct stateless_job {
    void operator()(test::fd_arg out, int n) const { out.write("object " + std::to_string(n) + "\n"); }
};
} // namespace

TEMPLATE_TEST_CASE("stateless targets work under every start method: lambdas, fn<&f>, empty function objects",
                   "[process][target]", START_METHODS) {
    test::report_pipe out;
    std::vector<test::process_t<TestType>> ps;
    ps.emplace_back([](test::fd_arg o, int n) { o.write("lambda " + std::to_string(n) + "\n"); }, out.w_arg(), 42);
    ps.emplace_back(fn<&say>, out.w_arg(), std::string("named"));
    ps.emplace_back(stateless_job{}, out.w_arg(), 7);
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
    std::string text = out.collect();
    CHECK(test::count(text, "lambda 42\n") == 1);
    CHECK(test::count(text, "function named\n") == 1);
    CHECK(test::count(text, "object 7\n") == 1);
    for (auto& p : ps) CHECK(p.exitcode() == 0);
}

// Fork only: a move-only argument (unique_ptr) is copied into a forked child's memory; it
// has no encoding to cross into a fresh program.
TEST_CASE("the child gets its own copies of the arguments, as lvalues it may change", "[process][target]") {
    std::vector<int> data{1, 2, 3};
    auto big = std::make_unique<int>(5);
    process p(
        [](std::vector<int>& v, std::unique_ptr<int>& u) {
            v.push_back(*u);
            std::_Exit(static_cast<int>(v.size()));
        },
        data, std::move(big));
    CHECK(test::exit_of(p) == 4);
    CHECK(data.size() == 3); // the parent's vector is untouched
}

TEMPLATE_TEST_CASE("arguments arrive as data the child may change: strings, vectors, values",
                   "[process][target]", START_METHODS) {
    std::vector<int> data{1, 2, 3};
    test::process_t<TestType> p(
        [](std::vector<int>& v, std::string& s, double& d) {
            v.push_back(static_cast<int>(s.size() + static_cast<std::size_t>(d)));
            std::_Exit(v.size() == 4 && v[3] == 7 && v[0] == 1 ? 0 : 1);
        },
        data, std::string("four"), 3.5);
    CHECK(test::exit_of(p) == 0);
    CHECK(data.size() == 3);
}

TEMPLATE_TEST_CASE("join with a timeout returns while the child still runs", "[process][join]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { std::_Exit(g.wait_eof() ? 0 : 9); }, gate.end());
    p.start();
    p.join(20ms);
    CHECK(p.is_alive());
    CHECK_FALSE(p.exitcode().has_value());
    p.join(-1s); // negative: do not wait
    CHECK(p.is_alive());
    gate.release();
    p.join(1h); // returns as soon as the child ends
    CHECK_FALSE(p.is_alive());
    CHECK(p.exitcode() == 0);
}

TEMPLATE_TEST_CASE("is_alive is false before start and after the child ends", "[process][is_alive]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    CHECK_FALSE(p.is_alive());
    CHECK_FALSE(p.pid().has_value());
    CHECK_FALSE(p.exitcode().has_value());
    p.start();
    CHECK(p.is_alive());
    REQUIRE(p.pid().has_value());
    CHECK(*p.pid() > 0);
    gate.release();
    p.join();
    CHECK_FALSE(p.is_alive());
}

TEMPLATE_TEST_CASE("the sentinel becomes readable when the child ends", "[process][sentinel]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    CHECK_THROWS_WITH(p.sentinel(), "process not started");
    p.start();
    pollfd fd{p.sentinel(), POLLIN, 0};
    CHECK(::poll(&fd, 1, 0) == 0);
    gate.release();
    CHECK(::poll(&fd, 1, 10000) == 1);
    CHECK(p.exitcode() == 0); // readable means the exit code is there
    p.join();
    CHECK(p.exitcode() == 0);
}

TEMPLATE_TEST_CASE("the sentinel stays the same open descriptor after the child is reaped by another start()",
                   "[process][sentinel]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    p.start();
    const int sentinel = p.sentinel();
    gate.release();
    pollfd fd{sentinel, POLLIN, 0};
    REQUIRE(::poll(&fd, 1, 10000) == 1); // ended, not yet reaped
    test::process_t<TestType> q([] {});
    q.start(); // reaps the children that have ended, p among them, as CPython's start() does
    CHECK(p.sentinel() == sentinel);
    fd.revents = 0;
    CHECK(::poll(&fd, 1, 0) == 1);
    CHECK(fd.revents & POLLIN); // still ours and open: not POLLNVAL
    CHECK_FALSE(fd.revents & POLLNVAL);
    CHECK(p.exitcode() == 0);
    q.join();
    p.join();
    CHECK(p.sentinel() == sentinel);
    p.close();
    CHECK(::fcntl(sentinel, F_GETFD) == -1); // close() released it
}

TEMPLATE_TEST_CASE("misuse is an error with CPython's message", "[process][errors]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    CHECK_THROWS_AS(p.join(), state_error);
    CHECK_THROWS_WITH(p.join(), "can only join a started process");
    CHECK_THROWS_WITH(p.join(1s), "can only join a started process");
    CHECK_THROWS_WITH(p.terminate(), "cannot terminate a process that was never started");
    p.start();
    CHECK_THROWS_AS(p.start(), state_error);
    CHECK_THROWS_WITH(p.start(), "cannot start a process twice");
    CHECK_THROWS_WITH(p.daemon(true), "process has already started");
    CHECK_THROWS_AS(p.close(), value_error);
    CHECK_THROWS_WITH(p.close(), "Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().");
    gate.release();
    p.join();
    p.close();
    CHECK_THROWS_AS(p.join(), value_error);
    CHECK_THROWS_WITH(p.join(), "process object is closed");
    CHECK_THROWS_WITH(p.start(), "process object is closed");
    CHECK_THROWS_WITH(p.is_alive(), "process object is closed");
    CHECK_THROWS_WITH(p.exitcode(), "process object is closed");
    CHECK_THROWS_WITH(p.pid(), "process object is closed");
    CHECK_THROWS_WITH(p.sentinel(), "process object is closed");
    CHECK_THROWS_WITH(p.terminate(), "process object is closed");
    CHECK(p.name().rfind("Process-", 0) == 0); // the name stays readable, as in Python
    CHECK_NOTHROW(p.close());                 // closing twice is harmless
}

// Fork only: the child uses the parent's process objects, which only a forked child shares.
TEST_CASE("a process object from the parent cannot be joined, tested or started in a child",
          "[process][errors]") {
    test::gate gate;
    process sibling([&] { gate.wait(); });
    sibling.start();
    process unstarted([] {});
    process checker([&] {
        int bad = 0;
        try { sibling.join(); } catch (const state_error& e) { bad |= std::string(e.what()) == "can only join a child process" ? 0 : 1; }
        try { (void)sibling.is_alive(); } catch (const state_error& e) { bad |= std::string(e.what()) == "can only test a child process" ? 0 : 2; }
        try { unstarted.start(); } catch (const state_error& e) {
            bad |= std::string(e.what()) == "can only start a process object created by current process" ? 0 : 4;
        }
        std::_Exit(bad);
    });
    CHECK(test::exit_of(checker) == 0);
    gate.release();
    sibling.join();
}

TEMPLATE_TEST_CASE("a process object moves, a moved-from one says so", "[process]", START_METHODS) {
    test::process_t<TestType> a([] { std::_Exit(6); });
    std::string name = a.name();
    test::process_t<TestType> b(std::move(a));
    CHECK(b.name() == name);
    CHECK_THROWS_WITH(a.start(), "process object was moved from"); // NOLINT(bugprone-use-after-move)
    b.start();
    test::process_t<TestType> c = std::move(b);
    c.join();
    CHECK(c.exitcode() == 6);
}

TEMPLATE_TEST_CASE("destroying a started process object neither stops the child nor forgets it",
                   "[process][active_children]", START_METHODS) {
    test::gate gate;
    pid_t pid;
    {
        test::process_t<TestType> p([](test::fd_arg g) { std::_Exit(g.wait_eof() ? 0 : 1); }, gate.end());
        p.start();
        pid = *p.pid();
    }
    CHECK(test::running(pid));
    auto kids = active_children();
    auto it = std::find_if(kids.begin(), kids.end(), [&](auto& k) { return k.pid() == pid; });
    REQUIRE(it != kids.end());
    gate.release();
    it->join();
    CHECK(it->exitcode() == 0);
    auto after = active_children();
    CHECK(std::none_of(after.begin(), after.end(), [&](auto& k) { return k.pid() == pid; }));
}

TEMPLATE_TEST_CASE("the repr is Python 3.12's", "[process][repr]", START_METHODS) {
    test::process_t<TestType> p(process_options{.name = "worker", .daemon = {}}, [] { ::pause(); });
    std::ostringstream before;
    before << p;
    CHECK(before.str() == "<Process name='worker' parent=" + std::to_string(::getpid()) + " initial>");
    p.start();
    std::ostringstream during;
    during << p;
    CHECK(during.str() == "<Process name='worker' pid=" + std::to_string(*p.pid()) + " parent=" +
                              std::to_string(::getpid()) + " started>");
    p.terminate();
    p.join();
    std::ostringstream after;
    after << p;
    CHECK(after.str() == "<Process name='worker' pid=" + std::to_string(*p.pid()) + " parent=" +
                             std::to_string(::getpid()) + " stopped exitcode=-SIGTERM>");
    test::process_t<TestType> d(process_options{.name = "d", .daemon = true}, [] { std::_Exit(3); });
    d.start();
    d.join();
    std::ostringstream dd;
    dd << d;
    CHECK_THAT(dd.str(), Catch::Matchers::EndsWith(" stopped exitcode=3 daemon>"));
    d.close();
    std::ostringstream closed;
    closed << d;
    CHECK(closed.str() == "<Process name='d' parent=" + std::to_string(::getpid()) + " closed daemon>"); // (no pid)
}

TEST_CASE("the repr quotes and escapes a name as Python's repr() of a str", "[process][repr]") {
    auto repr_of = [](std::string name) {
        process p(process_options{.name = std::move(name), .daemon = {}}, [] {});
        std::ostringstream os;
        os << p;
        const std::string s = os.str(); // "<Process name=... parent=N initial>"
        return s.substr(14, s.find(" parent=") - 14);
    };
    CHECK(repr_of("plain") == "'plain'");
    CHECK(repr_of("it's") == "\"it's\"");            // (a single quote alone: double quotes)
    CHECK(repr_of("say \"hi\"") == "'say \"hi\"'");  // (a double quote alone: single)
    CHECK(repr_of("both ' \"") == "'both \\' \"'");  // (both: single, the single escaped)
    CHECK(repr_of("a\nb\tc\\d") == "'a\\nb\\tc\\\\d'");
    CHECK(repr_of(std::string("nul\0\x1b", 5)) == "'nul\\x00\\x1b'");
    CHECK(repr_of("caf\xc3\xa9") == "'caf\xc3\xa9'"); // (UTF-8 text as itself)
}

TEMPLATE_TEST_CASE("no descriptor and no zombie is left once processes are joined", "[process][leaks]",
                   START_METHODS) {
    test::warm_up<TestType>(); // the forkserver, started on first use, stays: start it before counting
    auto fds_before = test::open_fds();
    {
        std::vector<test::process_t<TestType>> ps;
        for (int i = 0; i < 8; ++i) ps.emplace_back([](int n) { std::_Exit(n); }, i);
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        for (int i = 0; i < 8; ++i) CHECK(ps[static_cast<std::size_t>(i)].exitcode() == i);
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds_before));
    CHECK(test::children_of(::getpid()).empty());
}

namespace reap_race {
// A fault hook that stops the joining thread inside the system call that takes its child's
// exit status (waitpid, or the read of the forkserver's report), until the test lets it go.
inline thread_local bool joiner = false;
inline std::atomic<int> stop_at{-1};
inline int entered[2] = {-1, -1}, go_on[2] = {-1, -1};
inline int hook(multiproc::detail::sys::call c) {
    if (!joiner || static_cast<int>(c) != stop_at.load()) return 0;
    joiner = false; // once
    char b = 0;
    (void)!::write(entered[1], &b, 1);
    (void)!::read(go_on[0], &b, 1);
    return 0;
}
} // namespace reap_race

TEMPLATE_TEST_CASE("a child being joined in one thread is not reaped from under it by another thread's start()",
                   "[process][threads]", START_METHODS) {
    using multiproc::detail::sys::call;
    test::warm_up<TestType>();
    test::pipe_pair entered, go_on;
    reap_race::entered[0] = entered.r, reap_race::entered[1] = entered.w;
    reap_race::go_on[0] = go_on.r, reap_race::go_on[1] = go_on.w;
    constexpr bool reported = std::is_same_v<typename TestType::policies::start, multiproc::start::forkserver>;
    reap_race::stop_at = static_cast<int>(reported ? call::read : call::waitpid);

    test::process_t<TestType> p([] { std::_Exit(3); });
    p.start();
    std::optional<int> joined_code;
    std::string join_error;
    multiproc::detail::sys::fault_hook = &reap_race::hook;
    std::thread joiner([&] {
        reap_race::joiner = true;
        try {
            p.join();
            joined_code = p.exitcode();
        } catch (const std::exception& e) {
            join_error = e.what();
        }
    });
    pollfd in{entered.r, POLLIN, 0};
    bool stopped = ::poll(&in, 1, 30000) == 1; // the joiner is inside the call now
    pollfd ended{p.sentinel(), POLLIN, 0};
    bool over = ::poll(&ended, 1, 30000) == 1; // and p has ended: a start() would reap it
    test::process_t<TestType> q([] {});
    q.start(); // reaps the children that have ended: p is the joiner's to reap
    char b = 0;
    (void)!::write(go_on.w, &b, 1);
    joiner.join();
    multiproc::detail::sys::fault_hook = nullptr;
    q.join();
    REQUIRE(stopped);
    REQUIRE(over);
    CHECK(join_error == "");
    CHECK(joined_code == 3);
    CHECK(p.exitcode() == 3);
    CHECK(q.exitcode() == 0);
}
