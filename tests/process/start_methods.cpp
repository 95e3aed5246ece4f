// What is particular to spawn and forkserver: the line main() needs, exec failures, the
// descriptors a child holds, the identification of targets and the handshake, the
// forkserver's own rules, objects that cross as descriptors plus bytes, and what a fresh
// program does not share with its parent (globals) and does get from it (the logger).
#include "support/support.hpp"

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>

using namespace multiproc;
using namespace std::chrono_literals;

#define FRESH_START_METHODS by_spawn, by_forkserver

namespace {

int g_counter = 1; // changed by the test before starting children

// The descriptors of the calling process, as "fd->target" lines.
std::string fd_listing() {
    std::string s;
    for (auto& [fd, target] : test::open_fds()) s += std::to_string(fd) + "->" + target + "\n";
    return s;
}

std::string target_of(int fd) {
    char buf[512] = {};
    std::string p = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
}

// A test-only object that crosses as a descriptor plus bytes (the shape of phase 2's
// queues and pipes): a labelled pipe end.
struct labelled_pipe {
    int fd = -1;
    std::string label;
    void cross_out(detail::crossing_writer& w) const {
        w.put_fd(fd);
        w.put_string(label);
    }
    static labelled_pipe cross_in(detail::crossing_reader& r) {
        labelled_pipe p;
        p.fd = r.take_fd().release();
        p.label = r.get_string();
        return p;
    }
};

// The parent's side of spawn, by hand, to send what start() never would. Returns the
// child's answer ("" for ok, else its sentence) and stores its exit code.
std::string send_by_hand(const detail::crossing_writer& w, int& code) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    detail::sys::unique_fd ours(sv[0]), theirs(sv[1]);
    pid_t pid = detail::spawn_self({theirs.get()}, "spawn:3:" + std::to_string(::getpid()), "test spawn");
    theirs.reset();
    (void)detail::send_message(ours.get(), w);
    std::vector<detail::sys::unique_fd> none;
    std::string buf(4096, '\0');
    ssize_t n = detail::recv_datagram(ours.get(), buf.data(), buf.size(), none);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    code = test::decode(status);
    if (n <= 0) return "no answer";
    return buf[0] == '\0' ? std::string() : buf.substr(1, static_cast<std::size_t>(n) - 1);
}

detail::bootstrap_request request_for(const char* target) {
    detail::child_record rec;
    rec.name = "by-hand";
    return detail::make_request(rec, target);
}

} // namespace

TEMPLATE_TEST_CASE("a program without freeze_support() gets an error in the parent, and main() runs once",
                   "[spawn][freeze_support]", FRESH_START_METHODS) {
    auto r = test::run_program("no_freeze_support", {std::string(TestType::start_method())});
    CHECK(r.code == 3);
    CHECK(r.out == "main runs\nmultiproc: process Process-1 uses start::" + std::string(TestType::start_method()) +
                       ", which starts a fresh copy of this program, but main() does not call "
                       "multiproc::freeze_support(); make `multiproc::freeze_support();` the first statement of "
                       "main(), and start processes from main() or later (not from a static initializer, such as "
                       "a pool at namespace scope)\n");
}

TEST_CASE("freeze_support() returns at once in a program that was not started as a child", "[spawn][freeze_support]") {
    CHECK(detail::freeze_support_recorded);
    freeze_support(); // a second call, anywhere, is harmless
    SUCCEED();
}

TEMPLATE_TEST_CASE("a failed exec reaches the parent as an os_error with errno's text, leaking nothing",
                   "[spawn][errors]", FRESH_START_METHODS) {
    if (test::forkserver_pid()) return; // a running forkserver forks without exec: nothing to fail
    auto fds = test::open_fds();
    // One environment string longer than the kernel's limit (128 KiB) makes execve fail: E2BIG.
    REQUIRE(::setenv("MULTIPROC_TEST_HUGE", std::string(200 * 1024, 'x').c_str(), 1) == 0);
    test::process_t<TestType> p([] {});
    try {
        p.start();
        FAIL("start() should have thrown");
    } catch (const os_error& e) {
        std::string what = e.what();
        CHECK(what.find("multiproc: spawn of /proc/self/exe for ") == 0);
        CHECK_THAT(what, Catch::Matchers::EndsWith(": Argument list too long"));
        CHECK(e.code().value() == E2BIG);
    }
    ::unsetenv("MULTIPROC_TEST_HUGE");
    CHECK_FALSE(p.pid().has_value());
    CHECK(test::children_of(::getpid()).empty());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    p.start(); // usable once the cause is gone
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("an injected posix_spawn failure is an os_error naming the process", "[spawn][errors][sys]") {
    auto fds = test::open_fds();
    basic_process<start::spawn> p([] {});
    {
        test::inject fail(detail::sys::call::posix_spawn, EAGAIN);
        CHECK_THROWS_WITH(p.start(), "multiproc: spawn of /proc/self/exe for process " + p.name() +
                                         ": Resource temporarily unavailable");
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    CHECK(test::children_of(::getpid()).empty());
}

TEMPLATE_TEST_CASE("a spawn or forkserver child holds only 0, 1, 2 and the descriptors it was given",
                   "[spawn][fds]", FRESH_START_METHODS) {
    test::warm_up<TestType>();
    int stray[2];
    REQUIRE(::pipe(stray) == 0); // not close-on-exec: a forked child would inherit these
    test::report_pipe out;
    test::process_t<TestType> p(
        [](test::fd_arg o) {
            o.write(std::to_string(o.fd) + "\n" + std::to_string(detail::rt().self.parent_sentinel) + "\n" +
                    fd_listing());
        },
        out.w_arg());
    CHECK(test::exit_of(p) == 0);
    std::string text = out.collect();
    ::close(stray[0]);
    ::close(stray[1]);
    INFO(text);
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);
    int report = std::stoi(line);
    std::getline(in, line);
    int parent_sentinel = std::stoi(line);
    // Each descriptor accounted for: stdio is this process's, the report pipe is the one
    // given as an argument, and under forkserver a pidfd of this process answers
    // parent_process().is_alive() (the OS parent being the server).
    std::string expected = "0->" + target_of(0) + "\n1->" + target_of(1) + "\n2->" + target_of(2) + "\n";
    std::map<int, std::string> rest{{report, target_of(out.r)}}; // the same pipe as our read end
    if (std::is_same_v<TestType, by_forkserver>) {
        REQUIRE(parent_sentinel > 2);
        rest[parent_sentinel] = "anon_inode:[pidfd]";
    } else {
        CHECK(parent_sentinel == -1);
    }
    for (auto& [fd, t] : rest) expected += std::to_string(fd) + "->" + t + "\n";
    CHECK(text.substr(text.find('\n', text.find('\n') + 1) + 1) == expected);
}

TEMPLATE_TEST_CASE("a forkserver child is forked by one server, which reports its exit code",
                   "[forkserver]", by_forkserver) {
    // Each child also says whether it has LD_BIND_NOW, which the server starts with for
    // itself alone (forkserver.hpp start_server): a child's environment is the server's,
    // which is its starter's at the time it started the server.
    auto report = [](test::fd_arg o) {
        const char* bind_now = std::getenv("LD_BIND_NOW");
        o.write(std::to_string(::getppid()) + " " + (bind_now ? bind_now : "unset") + "\n");
    };
    test::report_pipe out;
    test::process_t<TestType> a(report, out.w_arg());
    test::process_t<TestType> b(report, out.w_arg());
    CHECK(test::exit_of(a) == 0);
    CHECK(test::exit_of(b) == 0);
    pid_t server = test::forkserver_pid();
    REQUIRE(server > 0);
    const char* ours = std::getenv("LD_BIND_NOW");
    const std::string line = std::to_string(server) + " " + (ours ? ours : "unset") + "\n";
    CHECK(out.collect() == line + line);
    CHECK(test::children_of(::getpid()).empty()); // the server's children are not ours
}

namespace {
/// Kills this process's forkserver with SIGKILL and waits for its end; returns its pid.
pid_t kill_forkserver() {
    pid_t server = test::forkserver_pid();
    REQUIRE(server > 0);
    ::kill(server, SIGKILL);
    REQUIRE(test::wait_exit(server));
    return server;
}
} // namespace

TEMPLATE_TEST_CASE("a child whose forkserver is killed is still waited for, and its exit code is 255",
                   "[forkserver][errors]", by_forkserver) {
    test::gate gate;
    test::process_t<TestType> p([](test::fd_arg g) { std::_Exit(g.wait_eof() ? 0 : 1); }, gate.end());
    p.start();
    pid_t server = kill_forkserver();
    p.join(20ms); // the server's death neither ends the child nor the wait for it
    CHECK(p.is_alive());
    gate.release();
    p.join();
    CHECK(p.exitcode() == 255); // the status died with the server, as in CPython
    // The next child gets a new server.
    test::process_t<TestType> q([] { std::_Exit(4); });
    CHECK(test::exit_of(q) == 4);
    CHECK(test::forkserver_pid() != server);
    CHECK(test::children_of(::getpid()).empty()); // the killed server was reaped
}

TEMPLATE_TEST_CASE("a child whose forkserver is killed can be terminated while another thread waits to join it",
                   "[forkserver][errors][threads]", by_forkserver) {
    test::gate gate; // never released: the child ends only by the signal
    test::process_t<TestType> p([](test::fd_arg g) { std::_Exit(g.wait_eof() ? 0 : 1); }, gate.end());
    p.start();
    kill_forkserver();
    std::atomic<pid_t> joiner_tid{0};
    std::thread joiner([&] {
        joiner_tid = static_cast<pid_t>(::syscall(SYS_gettid));
        p.join();
    });
    // Once the joiner sleeps, it is waiting for the child (nothing else can make it sleep):
    // terminate() must not wait for it to be done.
    bool sleeping = false;
    for (auto give_up = std::chrono::steady_clock::now() + 10s; !sleeping && std::chrono::steady_clock::now() < give_up;) {
        if (pid_t tid = joiner_tid.load()) sleeping = test::thread_state(tid) == 'S';
    }
    p.terminate();
    joiner.join();
    CHECK(sleeping);
    CHECK(p.exitcode() == 255); // the status died with the server, as in CPython
}

namespace {
std::atomic<int> connects{0};
int count_connects(detail::sys::call c) {
    if (c == detail::sys::call::connect) connects.fetch_add(1);
    return 0;
}
} // namespace

TEST_CASE("a process asks its forkserver for children on one connection, made once, from every thread",
          "[forkserver][threads]") {
    // A connection per request cost each start a socket, a connect, an accept and a wake-up
    // of the server before the one for the request (issue 20).
    test::warm_up<by_forkserver>(); // the server runs and this process's connection is made
    auto fds = test::open_fds();
    connects = 0;
    detail::sys::fault_hook = &count_connects;
    std::atomic<int> right{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&right, t] {
            for (int i = 0; i < 5; ++i) {
                test::process_t<by_forkserver> p([](int code) { std::_Exit(code); }, 10 * t + i);
                if (test::exit_of(p) == 10 * t + i) ++right;
            }
        });
    for (auto& th : threads) th.join();
    detail::sys::fault_hook = nullptr;
    CHECK(right == 20);
    CHECK(connects == 0);
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

TEST_CASE("a forked process asks on its parent's connection, and starts its own server once that one has gone",
          "[forkserver]") {
    test::warm_up<by_forkserver>();
    // In the forked process: `before()`, one start, its exit code checked, how many
    // connections it tried to make, and `after()`. It never returns into Catch2.
    auto child = [](test::gate& go, int expected_connects, auto before, auto after) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid != 0) return pid;
        int code = 3;
        try {
            go.wait();
            if (!before()) ::_exit(4);
            connects = 0;
            detail::sys::fault_hook = &count_connects;
            test::process_t<by_forkserver> p([] { std::_Exit(7); });
            p.start();
            p.join();
            detail::sys::fault_hook = nullptr;
            code = p.exitcode() != 7 ? 1 : connects != expected_connects ? 2 : !after() ? 5 : 0;
            detail::forkserver::stop_owned_server(); // one it started, if any, as exit would
        } catch (...) {
        }
        ::_exit(code);
    };
    auto exit_code = [](pid_t pid) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        return test::decode(status);
    };
    auto nothing = [] { return true; };
    SECTION("the server runs: no connection is made") {
        test::gate go;
        pid_t pid = child(go, 0, nothing, nothing);
        go.release();
        CHECK(exit_code(pid) == 0);
    }
    SECTION("another socket at the inherited connection's number: left alone, and a connection made") {
        // A forked process may close its descriptors and open others: the number of the
        // connection it inherited then names something else, which no request may reach.
        const int conn = detail::forkserver::client().conn;
        REQUIRE(conn >= 0);
        int sv[2] = {-1, -1}; // made in the child
        test::gate go;
        pid_t pid = child(
            go, 1,
            [&] { return ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0 && ::dup2(sv[0], conn) == conn; },
            [&] {
                char c;
                return ::recv(sv[1], &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN && ::fcntl(conn, F_GETFD) >= 0 &&
                       detail::forkserver::client().conn != conn;
            });
        go.release();
        CHECK(exit_code(pid) == 0);
    }
    SECTION("the server has gone: the request is sent again, on a connection to a server of its own") {
        test::gate go;
        pid_t pid = child(go, 2, nothing, nothing); // one refused at the old server's address, one to its own
        pid_t server = kill_forkserver();
        go.release();
        CHECK(exit_code(pid) == 0);
        // This process's next child gets a new server too.
        test::process_t<by_forkserver> q([] { std::_Exit(4); });
        CHECK(test::exit_of(q) == 4);
        CHECK(test::forkserver_pid() != server);
    }
    CHECK(test::children_of(::getpid()).empty());
}

TEST_CASE("the forkserver talks only to processes of its own user", "[forkserver][security]") {
    if (::geteuid() != 0) {
        WARN("needs root to act as another user; skipped");
        return;
    }
    pid_t server = detail::forkserver::ensure_running();
    auto& s = detail::forkserver::client();
    sockaddr_un addr = s.addr;
    socklen_t len = s.addr_len;
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
        int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) ::_exit(0); // refused: fine too
        char c;
        ssize_t n = ::recv(fd, &c, 1, 0); // the server closes the connection at once
        ::_exit(n == 0 ? 0 : 11);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(test::decode(status) == 0);
    CHECK(test::running(server));
}

TEST_CASE("the forkserver refuses a request from another build, naming the cause", "[forkserver][handshake]") {
    detail::forkserver::ensure_running();
    auto conn = detail::forkserver::connect_to_server("the test");
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    detail::sys::unique_fd a(sv[0]), b(sv[1]); // the bootstrap socket
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    detail::sys::unique_fd status(sv[0]), status_theirs(sv[1]); // where the answer comes
    detail::crossing_writer w;
    w.put(detail::forkserver::ask_magic);
    w.put<std::uint8_t>(0);
    w.put<std::uint8_t>(0); // no stdio
    w.put_string("0123456789abcdef");
    w.put(detail::registry_hash());
    int fds[] = {b.get(), status_theirs.get()};
    REQUIRE(detail::send_datagram(conn.get(), w.bytes().data(), w.bytes().size(), fds) == 0);
    std::vector<detail::sys::unique_fd> got;
    char buf[1024];
    ssize_t n = detail::recv_datagram(status.get(), buf, sizeof buf, got);
    REQUIRE(n > 4);
    detail::crossing_reader r(std::string(buf, static_cast<std::size_t>(n)), {});
    CHECK(r.get<std::uint32_t>() == detail::forkserver::refused_magic);
    CHECK_THAT(r.get_string(), Catch::Matchers::StartsWith("the child runs a different build of the program than "
                                                             "its parent (build-id "));
    // A request without its status socket is refused on the connection it came on.
    REQUIRE(detail::send_datagram(conn.get(), w.bytes().data(), w.bytes().size(), std::span<const int>(fds, 1)) ==
            0);
    n = detail::recv_datagram(conn.get(), buf, sizeof buf, got);
    REQUIRE(n > 12);
    CHECK(std::string(buf + 12, static_cast<std::size_t>(n) - 12) ==
          "the request carries the wrong number of descriptors");
    // Garbage, and a request cut short, are refused too, and the server stays up.
    auto refusal = [&](const std::string& bytes) {
        auto c = detail::forkserver::connect_to_server("the test");
        REQUIRE(::send(c.get(), bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
        ssize_t k = detail::recv_datagram(c.get(), buf, sizeof buf, got);
        REQUIRE(k > 12);
        return std::string(buf + 12, static_cast<std::size_t>(k) - 12); // after the magic and the length
    };
    CHECK(refusal("garbage") == "not a multiproc forkserver request");
    CHECK(refusal(w.bytes().substr(0, 7)) == "malformed request");
    CHECK(test::running(test::forkserver_pid()));
}

namespace {
/// Stands in for this process's forkserver for one request: listens at a fresh abstract
/// address that detail::forkserver::client() is pointed at (with no connection made yet),
/// and answers the request that comes with `answer` (given the request's status socket and
/// the descriptors that came with it: stdio, then the child's end of the bootstrap socket,
/// then the status socket). Puts the real state back at the end.
struct fake_forkserver {
    detail::sys::unique_fd listener;
    std::thread thread;
    sockaddr_un saved_addr{};
    socklen_t saved_len = 0;
    pid_t saved_pid = 0, saved_listener = 0;
    bool saved_owned = false;
    int saved_pidfd = -1, saved_alive = -1, saved_conn = -1;
    dev_t saved_conn_dev = 0;
    ino_t saved_conn_ino = 0;

    template <class Answer>
    explicit fake_forkserver(Answer answer) {
        listener.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        REQUIRE(listener);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::string name = "multiproc-test-fake-forkserver-" + std::to_string(::getpid());
        std::memcpy(addr.sun_path + 1, name.data(), name.size());
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        REQUIRE(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
        REQUIRE(::listen(listener.get(), 4) == 0);
        auto& s = detail::forkserver::client();
        std::lock_guard lk(s.mu);
        saved_addr = s.addr;
        saved_len = s.addr_len;
        saved_pid = s.pid;
        saved_listener = s.listener_pid;
        saved_owned = s.owned;
        saved_pidfd = s.pidfd;
        saved_alive = s.alive_w;
        saved_conn = s.conn;
        saved_conn_dev = s.conn_dev;
        saved_conn_ino = s.conn_ino;
        s.conn = -1;
        s.addr = addr;
        s.addr_len = len;
        s.pid = s.listener_pid = ::getpid();
        s.owned = false; // nothing to stop or to wait for
        thread = std::thread([this, answer] {
            detail::sys::unique_fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!conn) return;
            std::vector<detail::sys::unique_fd> fds;
            char buf[1024];
            if (detail::recv_datagram(conn.get(), buf, sizeof buf, fds) > 0 && !fds.empty())
                answer(fds.back().get(), fds);
        });
    }
    ~fake_forkserver() {
        ::shutdown(listener.get(), SHUT_RDWR); // wakes an accept() still waiting: start() never came
        thread.join();
        auto& s = detail::forkserver::client();
        std::lock_guard lk(s.mu);
        s.addr = saved_addr;
        s.addr_len = saved_len;
        s.pid = saved_pid;
        s.listener_pid = saved_listener;
        s.owned = saved_owned;
        s.pidfd = saved_pidfd;
        s.alive_w = saved_alive;
        detail::forkserver::drop_connection(s); // the one made to this stand-in
        s.conn = saved_conn;
        s.conn_dev = saved_conn_dev;
        s.conn_ino = saved_conn_ino;
    }
};

/// start()'s error under a fake forkserver answering with `answer`; nothing leaked.
template <class Answer>
std::string start_error_under(Answer answer, std::string& name) {
    auto fds = test::open_fds();
    std::string what = "(no error)";
    {
        fake_forkserver fake(answer);
        basic_process<start::forkserver> p([] {});
        name = p.name();
        try {
            p.start();
        } catch (const error& e) {
            what = e.what();
        }
        CHECK_FALSE(p.pid().has_value());
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    return what;
}
} // namespace

TEST_CASE("start() names what the forkserver said when it started no child", "[forkserver][handshake][errors]") {
    // The server answers a request with the child's pid and a pidfd of it, or with a
    // refusal; anything else ends the start with a sentence, and leaves nothing open.
    std::string name;
    SECTION("a refusal: its sentence") {
        auto what = start_error_under(
            [](int status, std::vector<detail::sys::unique_fd>&) {
                detail::forkserver::refuse(status, "fork failed: Resource temporarily unavailable");
            },
            name);
        CHECK(what == "multiproc: the forkserver refused to start process " + name +
                          ": fork failed: Resource temporarily unavailable");
    }
    SECTION("a hang-up without a word (a server this process did not start: nothing to start again)") {
        auto what = start_error_under([](int, std::vector<detail::sys::unique_fd>&) {}, name);
        CHECK(what == "multiproc: the forkserver ended the connection without starting process " + name);
    }
    SECTION("an answer that is not one") {
        auto what = start_error_under(
            [](int status, std::vector<detail::sys::unique_fd>&) {
                const char garbage[] = "MFSPxx"; // the magic, then no pid of 4 bytes
                (void)detail::send_datagram(status, garbage, sizeof garbage - 1, {});
            },
            name);
        CHECK(what == "multiproc: the forkserver ended the connection without starting process " + name);
    }
}

TEST_CASE("a program with a symbol that cannot be bound gets a forkserver that binds lazily", "[forkserver]") {
    // The server starts with LD_BIND_NOW=1 (its children then bind nothing anew), which
    // stops the dynamic linker loading a program with a call to a function defined nowhere:
    // that server exits with 127, and the next one binds lazily.
    if (std::getenv("LD_BIND_NOW")) {
        WARN("LD_BIND_NOW is set for the whole test run: the helper program cannot load; skipped");
        return;
    }
    auto r = test::run_program("lazy_symbol");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(r.out == "child ran\nexitcode 0\n");
    CHECK(test::count(r.err, "the forkserver could not load with LD_BIND_NOW=1 (the dynamic linker exited with 127") ==
          1);
}

TEST_CASE("a spawn child refuses an unknown target identifier and never runs anything", "[spawn][handshake]") {
    int code = 0;
    detail::crossing_writer w;
    detail::write_request(w, request_for("N9not_a_target_anywhereE"));
    CHECK(send_by_hand(w, code) ==
          "unknown target identifier N9not_a_target_anywhereE: the child's program has no single target by that name");
    CHECK(code == 1);
}

TEST_CASE("a spawn child refuses a parent of another build", "[spawn][handshake]") {
    int code = 0;
    auto q = request_for("whatever");
    q.build_id = "feedface";
    detail::crossing_writer w;
    detail::write_request(w, q);
    CHECK_THAT(send_by_hand(w, code),
               Catch::Matchers::StartsWith("the child runs a different build of the program than its parent"));
    CHECK(code == 1);
    q.build_id = detail::build_id();
    q.registry_hash ^= 1;
    detail::crossing_writer w2;
    detail::write_request(w2, q);
    CHECK(send_by_hand(w2, code) == "the child's program registered other targets than its parent's (is it the same "
                                    "build?)");
}

TEST_CASE("bytes that are not a start request are refused by the child, never a crash", "[spawn][handshake]") {
    int code = 0;
    detail::crossing_writer w;
    w.put_string("not a request at all");
    CHECK(send_by_hand(w, code) == "multiproc: the child did not receive a multiproc start request");
    CHECK(code == 1);
    // A real target whose arguments are cut short: the child says so.
    using key = detail::function_target<serialize::binary, decltype([](std::string) {}), std::string>;
    static_cast<void>(&detail::registered<key>);
    detail::crossing_writer w2;
    detail::write_request(w2, request_for(detail::target_id<key>()));
    w2.put<std::uint64_t>(1000); // a string of 1000 bytes, none of which follow
    CHECK_THAT(send_by_hand(w2, code), Catch::Matchers::StartsWith("cannot rebuild the target and arguments of "
                                                                   "process by-hand: multiproc: the data sent to the "
                                                                   "child is truncated"));
}

TEST_CASE("two different pieces of code with one name get distinct identifiers, in registration order",
          "[spawn][registry]") {
    // The registry that process targets and pool code share, on an entry type of this test's
    // own (so that the program's registry of targets stays as its children will make it).
    struct test_entry {
        int (*code)();
        bool operator==(const test_entry&) const = default;
    };
    auto one = [] { return 1; };
    auto two = [] { return 2; };
    auto& reg = detail::code_registry<test_entry>::instance();
    auto first = reg.add("test-shared-id", {+one});
    auto second = reg.add("test-shared-id", {+two});
    auto again = reg.add("test-shared-id", {+two}); // the same code
    CHECK(std::string(first.id) == "test-shared-id");
    CHECK(std::string(second.id) == "test-shared-id#1");
    CHECK(again.index == second.index);
    CHECK(again.id == second.id);
    CHECK(first.index + 1 == second.index);
    REQUIRE(reg.find(std::string_view("test-shared-id")) != nullptr);
    CHECK(reg.find(std::string_view("test-shared-id"))->code == +one);
    CHECK(reg.find(std::string_view("test-shared-id#1"))->code == +two);
    CHECK(reg.find(std::string_view("test-shared-id#2")) == nullptr);
    // By number, the signature (the hash of the key) must match too.
    const auto signature = detail::key_hash("test-shared-id");
    REQUIRE(reg.find(second.index, signature) != nullptr);
    CHECK(reg.find(second.index, signature)->code() == 2);
    CHECK(reg.find(second.index, signature ^ 1) == nullptr);
    CHECK(reg.find(second.index + 1, signature) == nullptr);

    // A target start() sends must be registered; an identifier that is not is refused.
    using key = detail::function_target<serialize::binary, decltype([] {})>;
    detail::target_ref t{detail::target_id<key>(), nullptr, nullptr};
    CHECK_NOTHROW(detail::check_can_start_fresh("spawn", t, "twin"));
    detail::target_ref unknown{"test-never-registered", nullptr, nullptr};
    CHECK_THROWS_WITH(detail::check_can_start_fresh("spawn", unknown, "ghost"),
                      "multiproc: the target of process ghost (identifier test-never-registered) is not registered "
                      "in this program");
}

TEMPLATE_TEST_CASE("two lambdas of one function that look alike are told apart in a fresh child",
                   "[spawn][registry]", START_METHODS) {
    // Without RTTI their names are the same spelling; with it, distinct mangled names. Either
    // way each child must run its own.
    test::process_t<TestType> a([] { std::_Exit(11); });
    test::process_t<TestType> b([] { std::_Exit(12); });
    CHECK(test::exit_of(a) == 11);
    CHECK(test::exit_of(b) == 12);
}

TEMPLATE_TEST_CASE("starting a process while the program is still starting up is an error",
                   "[spawn][bootstrap]", START_METHODS) {
    REQUIRE(::setenv(detail::bootstrap_variable, "spawn:3:1", 1) == 0);
    test::process_t<TestType> p([] {});
    CHECK_THROWS_WITH(p.start(), Catch::Matchers::StartsWith("multiproc: a process was started before this "
                                                             "process finished starting up"));
    ::unsetenv(detail::bootstrap_variable);
    CHECK_FALSE(p.pid().has_value());
}

TEMPLATE_TEST_CASE("objects cross as descriptors plus bytes, many descriptors and large data included",
                   "[spawn][crossing]", START_METHODS) {
    test::report_pipe out;
    std::vector<labelled_pipe> many;
    for (int i = 0; i < 300; ++i) many.push_back({::dup(out.w), "end " + std::to_string(i)}); // > one datagram's 250
    std::string big(3 * 1024 * 1024 + 17, 'b');                                               // > many datagrams
    test::process_t<TestType> p(
        [](std::vector<labelled_pipe>& ends, std::string& data) {
            auto& last = ends.back();
            std::string msg = last.label + " of " + std::to_string(ends.size()) + ", " + std::to_string(data.size()) +
                              " bytes\n";
            (void)detail::sys::write_all(last.fd, msg.data(), msg.size());
        },
        many, big);
    CHECK(test::exit_of(p) == 0);
    for (auto& m : many) ::close(m.fd);
    CHECK(out.collect() == "end 299 of 300, " + std::to_string(big.size()) + " bytes\n");
}

namespace {
// An argument whose encoding fails.
struct unencodable {
    void cross_out(detail::crossing_writer&) const { throw std::runtime_error("this argument cannot be encoded"); }
    static unencodable cross_in(detail::crossing_reader&) { return {}; }
};

std::atomic<int> child_calls{0};
int count_child_calls(detail::sys::call c) {
    if (c == detail::sys::call::posix_spawn || c == detail::sys::call::sendmsg) child_calls.fetch_add(1);
    return 0;
}
} // namespace

TEMPLATE_TEST_CASE("a target whose arguments cannot be encoded fails start() before any child exists",
                   "[spawn][crossing][errors]", FRESH_START_METHODS) {
    // The child's request and target are encoded first, and sent ahead on its socket for it
    // to find as it starts (issue 20): nothing is spawned and the forkserver is not asked.
    test::warm_up<TestType>();
    auto fds = test::open_fds();
    child_calls = 0;
    detail::sys::fault_hook = &count_child_calls;
    test::process_t<TestType> p([](const unencodable&) {}, unencodable{});
    CHECK_THROWS_WITH(p.start(), "this argument cannot be encoded");
    detail::sys::fault_hook = nullptr;
    CHECK(child_calls == 0);
    CHECK_FALSE(p.pid().has_value());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

TEMPLATE_TEST_CASE("globals: a forked child has a copy of the parent's, a fresh program its initial values",
                   "[spawn][globals]", START_METHODS) {
    g_counter = 5;
    test::process_t<TestType> p([] { std::_Exit(g_counter); });
    CHECK(test::exit_of(p) == (test::inherits_memory<TestType> ? 5 : 1));
    g_counter = 1;
}

namespace {
// Lines written to this process's stderr while `f` runs, which starts children that
// inherit it.
template <class F>
std::string stderr_during(F f) {
    test::pipe_pair err;
    int saved = ::dup(2);
    ::dup2(err.w, 2);
    f();
    ::dup2(saved, 2);
    ::close(saved);
    err.close_w();
    return test::read_all(err.r);
}
} // namespace

TEMPLATE_TEST_CASE("the logger's level and stderr handler reach the child", "[spawn][logging]", START_METHODS) {
    std::string text = stderr_during([] {
        log_to_stderr(log_level::info);
        test::process_t<TestType> p(process_options{.name = "logged", .daemon = {}},
                                    [] { get_logger().info("hello from {}", current_process().name()); });
        p.start();
        p.join();
        get_logger().set_handler(nullptr);
        get_logger().set_level(log_level::notset);
    });
    CHECK(text == "[INFO/logged] child process calling self.run()\n"
                  "[INFO/logged] hello from logged\n"
                  "[INFO/logged] process shutting down\n"
                  "[INFO/logged] process exiting with exitcode 0\n");
}
