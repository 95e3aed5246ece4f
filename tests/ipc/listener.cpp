// multiprocessing.connection (issue 19): listener/client over Unix paths, abstract names and
// TCP (IPv4, IPv6), the authkey exchange and its errors, wait(), send_handle/recv_handle,
// current_process().authkey(), and a soak of 8 clients x 10,000 requests. Cases with
// children run under every start method; a child is a lambda without captures that gets
// the address as text (address::to_string / parse) and reports through its exit code.
#include "support/support.hpp"

#include <multiproc/connection.hpp>
#include <multiproc/detail/net/auth.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/shared_memory.hpp>

#include <cstdio>
#include <fcntl.h>
#include <atomic>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <variant>
#include <unistd.h>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

struct job {
    int id = 0;
    std::string text;
    std::vector<double> values;
    bool operator==(const job&) const = default;
};

/// A fresh path for a Unix socket, in the temporary directory.
std::string socket_path(const char* tag) {
    static int n = 0;
    return "/tmp/multiproc-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(++n);
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

bool ipv6_loopback() {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

/// The child of the round trip: connects, receives a job, sends it back changed, exits 0.
template <class Ctx>
test::process_t<Ctx> echo_client(const address& where, std::string key) {
    return test::process_t<Ctx>(
        [](std::string at, std::string k) {
            auto c = k.empty() ? client<job>(address::parse(at)) : client<job>(address::parse(at), k);
            job j = c.recv();
            j.id += 1;
            j.text += " back";
            c.send(j);
            std::_Exit(c.recv().id == -1 ? 0 : 2); // the parent's last word
        },
        where.to_string(), std::move(key));
}

} // namespace

TEMPLATE_TEST_CASE("a client connects to a listener on a path, an abstract name and TCP, and messages go both ways",
                   "[listener]", START_METHODS) {
    test::warm_up<TestType>();
    std::vector<address> where = {address(socket_path("rt")), address::abstract("multiproc-test-" + std::to_string(::getpid())),
                                  address("127.0.0.1", 0), address("localhost", 0)};
    if (ipv6_loopback()) where.emplace_back("::1", 0);
    for (const std::string key : {"", "sesame"}) {
        for (const auto& a : where) {
            INFO("address " << a.to_string() << ", authkey '" << key << "'");
            test::warm_up<TestType>();
    test::baseline base;
            {
                listener<job> l(a, 1, key.empty() ? std::nullopt : std::optional<std::string>(key));
                if (a.is_unix()) {
                    CHECK(l.address() == a);
                } else {
                    CHECK(l.address().port() != 0); // the port the system chose
                    CHECK(l.address().family() == (a.host() == "::1" ? address_family::af_inet6 : address_family::af_inet));
                }
                auto p = echo_client<TestType>(l.address(), key);
                p.start();
                auto c = l.accept();
                if (a.is_unix()) {
                    CHECK_FALSE(l.last_accepted().has_value()); // an unnamed Unix peer, as Python's ''
                } else {
                    REQUIRE(l.last_accepted().has_value());
                    CHECK(l.last_accepted()->port() != 0);
                }
                const job sent{41, "there", {1.5, -2.25}};
                c.send(sent);
                const job got = c.recv();
                CHECK(got.id == 42);
                CHECK(got.text == "there back");
                CHECK(got.values == sent.values);
                c.send(job{-1, {}, {}});
                p.join();
                CHECK(p.exitcode() == 0);
                if (a.is_unix() && !a.is_abstract()) CHECK(exists(a.path()));
            }
            if (a.is_unix() && !a.is_abstract()) CHECK_FALSE(exists(a.path())); // the listener removed its file
            base.check();
        }
    }
}

TEMPLATE_TEST_CASE("authkey: a wrong key is refused on both sides, and the listener goes on accepting", "[listener][auth]",
                   START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    {
        listener<int> l(std::nullopt, 4, std::string("right key"));
        test::process_t<TestType> wrong(
            [](std::string at) {
                try {
                    auto c = client<int>(address::parse(at), std::string("wrong key"));
                } catch (const authentication_error& e) {
                    std::_Exit(std::string(e.what()).find("rejected") != std::string::npos ? 0 : 3);
                }
                std::_Exit(2);
            },
            l.address().to_string());
        wrong.start();
        try {
            (void)l.accept();
            FAIL("a client with a wrong key was accepted");
        } catch (const authentication_error& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains("digest received was wrong"));
        }
        wrong.join();
        CHECK(wrong.exitcode() == 0);

        // The listener is still usable: a client with the right key gets through.
        test::process_t<TestType> right(
            [](std::string at) {
                auto c = client<int>(address::parse(at), std::string("right key"));
                c.send(7);
                std::_Exit(c.recv() == 8 ? 0 : 2);
            },
            l.address().to_string());
        right.start();
        auto c = l.accept();
        c.send(c.recv() + 1);
        right.join();
        CHECK(right.exitcode() == 0);
    }
    base.check();
}

TEMPLATE_TEST_CASE("authkey: a client without one is refused before any of its messages is decoded",
                   "[listener][auth]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    {
        listener<std::string> l(std::nullopt, 4, std::string("key"));
        // The client sends first: its message is not an answer to the challenge.
        test::process_t<TestType> sender(
            [](std::string at) {
                auto c = client<std::string>(address::parse(at));
                try {
                    c.send("a request");
                    (void)c.recv();
                } catch (const authentication_error& e) {
                    // It got the challenge: its receive refuses it rather than decode it.
                    std::_Exit(std::string(e.what()).find("asks this end to authenticate") != std::string::npos ? 0 : 3);
                } catch (const eof_error&) {
                    std::_Exit(4);
                }
                std::_Exit(2);
            },
            l.address().to_string());
        sender.start();
        try {
            (void)l.accept();
            FAIL("a client without the key was accepted");
        } catch (const authentication_error& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains("was it given no authkey"));
        }
        sender.join();
        CHECK(sender.exitcode() == 0);
    }
    base.check();
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("authkey: a listener without one refuses a client's challenge answer cleanly", "[listener][auth]") {
    // A client with a key connects to a listener without one: the client waits for a
    // challenge and gets an ordinary message instead.
    listener<int> l;
    auto c = l.address();
    multiproc::process p([](std::string at) {
        try {
            (void)client<int>(address::parse(at), std::string("key"));
        } catch (const authentication_error&) {
            std::_Exit(0);
        }
        std::_Exit(2);
    }, c.to_string());
    p.start();
    auto s = l.accept();
    s.send(5);
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("client: nothing listening is an os_error naming the address", "[listener][errors]") {
    const std::string path = socket_path("none");
    try {
        (void)client<int>(address(path));
        FAIL("connected to nothing");
    } catch (const os_error& e) {
        CHECK(e.code().value() == ENOENT);
        CHECK_THAT(e.what(), Catch::Matchers::Contains(path));
    }
    try {
        (void)client<int>(address::abstract("multiproc-nothing-here"));
        FAIL("connected to nothing");
    } catch (const os_error& e) {
        CHECK(e.code().value() == ECONNREFUSED);
        CHECK_THAT(e.what(), Catch::Matchers::Contains("@multiproc-nothing-here"));
    }
    // A TCP port that was just free.
    std::uint16_t port = 0;
    {
        listener<int> l(address("127.0.0.1", 0));
        port = l.address().port();
    }
    try {
        (void)client<int>(address("127.0.0.1", port));
        FAIL("connected to nothing");
    } catch (const os_error& e) {
        CHECK(e.code().value() == ECONNREFUSED);
        CHECK_THAT(e.what(), Catch::Matchers::Contains("127.0.0.1:" + std::to_string(port)));
    }
    CHECK_THROWS_AS(client<int>(address("no-such-host.invalid", 1)), os_error);
    CHECK_THROWS_AS(client<int>(address(std::string(200, 'x'))), value_error); // longer than sun_path
}

TEST_CASE("listener: a closed one refuses accept, removes its file, and a second close does nothing",
          "[listener][errors]") {
    const std::string path = socket_path("closed");
    listener<int> l(address{path});
    CHECK(exists(path));
    CHECK_FALSE(l.closed());
    l.close();
    CHECK(l.closed());
    CHECK_FALSE(exists(path));
    l.close();
    try {
        (void)l.accept();
        FAIL("accepted on a closed listener");
    } catch (const os_error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("listener is closed"));
    }
    CHECK_THROWS_AS(client<int>(address{path}), os_error);
    // The same address again: bound while another listener holds it is EADDRINUSE.
    listener<int> first(address{path});
    CHECK_THROWS_AS(listener<int>(address{path}), os_error);
}

TEST_CASE("address: to_string and parse agree", "[listener][address]") {
    for (const address& a : {address("/run/x.sock"), address::abstract("name"), address("127.0.0.1", 80),
                             address("::1", 6000), address("example.org", 65535), address("relative-path")}) {
        INFO(a.to_string());
        CHECK(address::parse(a.to_string()) == a);
    }
    CHECK(address::abstract("n").to_string() == "@n");
    CHECK(address("::1", 6000).to_string() == "[::1]:6000");
    CHECK(address("::1", 6000).family() == address_family::af_inet6);
    CHECK(address("/a", 0).family() == address_family::af_inet); // (host "/a": a TCP address made on purpose)
    CHECK(address("/a").family() == address_family::af_unix);
}

TEST_CASE("a message of the wrong type fails to decode, and the connection goes on", "[listener][errors]") {
    listener<std::string> l;
    auto c = client<int>(l.address());
    auto s = l.accept();
    c.send(12345); // an int where the listener's side reads strings
    CHECK_THROWS_AS(s.recv(), serialization_error);
    s.send_bytes(std::as_bytes(std::span("x", 1)));
    CHECK(c.recv_bytes().size() == 1);
}

TEST_CASE("the peer gone: recv is eof_error, send is os_error EPIPE (not SIGPIPE)", "[listener][errors]") {
    for (const std::optional<address>& a : {std::optional<address>(), std::optional<address>(address("127.0.0.1", 0))}) {
        listener<int> l(a);
        INFO(l.address().to_string());
        auto c = client<int>(l.address());
        auto s = l.accept();
        c.send(1);
        c.close();
        CHECK(s.recv() == 1);
        CHECK_THROWS_AS(s.recv(), eof_error);
        try {
            for (int i = 0; i < 1000; ++i) s.send(i); // (TCP may take a few before it knows)
            FAIL("sent to a closed peer");
        } catch (const os_error& e) {
            CHECK((e.code().value() == EPIPE || e.code().value() == ECONNRESET));
        }
    }
}

TEST_CASE("wait: the ready objects in order, a pending listener, an ended process, and nothing after the timeout",
          "[listener][wait]") {
    listener<int> l;
    auto a = client<int>(l.address());
    auto sa = l.accept();
    auto b = client<int>(l.address());
    auto sb = l.accept();
    CHECK(wait(std::vector{sa, sb}, 0ms).empty());
    CHECK(wait(std::vector{sa, sb}, 30ms).empty());
    b.send(2);
    auto ready = wait(std::vector{sa, sb});
    REQUIRE(ready.size() == 1);
    CHECK(ready[0].recv() == 2);
    a.send(1);
    b.send(3);
    ready = wait({sa, sb}, 5s);
    REQUIRE(ready.size() == 2);
    CHECK(ready[0].recv() == 1);
    CHECK(ready[1].recv() == 3);
    // A listener with a pending connection, and end of file, are ready too.
    CHECK(wait(std::vector{l.fileno()}, 0ms).empty());
    auto c = client<int>(l.address());
    CHECK(wait(std::vector{l.fileno()}).size() == 1);
    auto sc = l.accept();
    c.close();
    CHECK(wait({sc}).size() == 1);
    CHECK_THROWS_AS(sc.recv(), eof_error);
    // A process's sentinel, once it has ended.
    multiproc::process p([] { std::_Exit(0); });
    p.start();
    CHECK(wait(std::vector{p.sentinel()}).size() == 1);
    p.join();
}

TEST_CASE("deliver_challenge and answer_challenge over a socket pair, with every digest", "[listener][auth]") {
    for (const char* digest : {"sha256", "sha384", "sha3_256", "sha3_384", "md5"}) {
        INFO(digest);
        auto [x, y] = multiproc::pipe<int, transport::socketpair>();
        multiproc::process p([](basic_connection<int, transport::socketpair> y) {
            try {
                answer_challenge(y, "k");
            } catch (const authentication_error&) {
                std::_Exit(2);
            }
            std::_Exit(0);
        }, y);
        p.start();
        y.close();
        deliver_challenge(x, "k", digest);
        p.join();
        CHECK(p.exitcode() == 0);
    }
    auto [x, y] = multiproc::pipe<int, transport::socketpair>();
    CHECK_THROWS_AS(deliver_challenge(x, "k", "sha1"), value_error);
}

TEST_CASE("the HMAC is libcrypto's: RFC 4231 and RFC 2202 vectors", "[listener][auth]") {
    auto hex = [](const std::string& s) {
        std::string out;
        for (unsigned char c : s) {
            char b[3];
            std::snprintf(b, sizeof b, "%02x", c);
            out += b;
        }
        return out;
    };
    std::string mac;
    REQUIRE(detail::auth::hmac("Jefe", "what do ya want for nothing?", "sha256", mac));
    CHECK(hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    REQUIRE(detail::auth::hmac("Jefe", "what do ya want for nothing?", "md5", mac));
    CHECK(hex(mac) == "750c783e6ab0b503eaa86e310a5db738");
    // The protocol's pieces: an answer names the challenge's digest and covers its prefix;
    // a legacy (20-byte, unprefixed) challenge gets the bare HMAC-MD5, as CPython 3.11 sends.
    const std::string challenge = detail::auth::make_challenge("sha384");
    CHECK(challenge.substr(0, 8) == "{sha384}");
    CHECK(challenge.size() == 8 + detail::auth::challenge_bytes);
    CHECK(challenge != detail::auth::make_challenge("sha384")); // random
    std::string why;
    const std::string answer = detail::auth::make_answer("key", challenge, why);
    CHECK(why.empty());
    CHECK(answer.substr(0, 8) == "{sha384}");
    CHECK(answer.size() == 8 + 48);
    CHECK(detail::auth::wrong_answer("key", challenge, answer).empty());
    CHECK_THAT(detail::auth::wrong_answer("other", challenge, answer), Catch::Matchers::Contains("wrong"));
    const std::string legacy(20, 'L');
    const std::string md5 = detail::auth::make_answer("key", legacy, why);
    REQUIRE(detail::auth::hmac("key", legacy, "md5", mac));
    CHECK(md5 == mac);
    CHECK(detail::auth::wrong_answer("key", legacy, md5).empty());
    CHECK_THAT(detail::auth::wrong_answer("key", challenge, "{sha1}" + std::string(20, 'x')),
               Catch::Matchers::Contains("unsupported"));
}
#endif

// A descriptor crosses to a child of each method through a Unix connection: the child
// writes into the pipe it received.
TEMPLATE_TEST_CASE("send_handle and recv_handle pass a descriptor to another process", "[listener][handle]",
                   START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    {
        listener<int> l;
        test::process_t<TestType> p(
            [](std::string at) {
                auto c = client<int>(address::parse(at));
                const int fd = recv_handle(c);
                const bool cloexec = (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
                const char msg[] = "through SCM_RIGHTS";
                const bool wrote = ::write(fd, msg, sizeof msg - 1) == static_cast<ssize_t>(sizeof msg - 1);
                ::close(fd);
                c.send(c.recv() + 1); // an ordinary message after the descriptor
                std::_Exit(cloexec && wrote ? 0 : 2);
            },
            l.address().to_string());
        p.start();
        auto c = l.accept();
        test::pipe_pair pp;
        send_handle(c, pp.w, *p.pid());
        pp.close_w();
        c.send(41);
        CHECK(c.recv() == 42);
        CHECK(test::read_all(pp.r) == "through SCM_RIGHTS");
        p.join();
        CHECK(p.exitcode() == 0);
    }
    base.check();
}

// wait() over queues: a queue is ready when a get would not wait. Its descriptor is only a
// hint; what wait() reports is the queue's own state, so a message put and taken again in
// between is no false answer, and one put while the waiter sleeps is never missed.
template <class Q, class Ctx>
void queue_wait_round_trips() {
    Q to_child, to_parent, other;
    test::process_t<Ctx> p(
        [](Q in, Q out) {
            for (;;) {
                int v = in.get();
                if (v < 0) std::_Exit(0);
                out.put(v);
            }
        },
        to_child, to_parent);
    p.start();
    CHECK(wait(std::vector{to_parent.reader(), other.reader()}, 0ms).empty());
    // Each round: the parent asks, then sleeps in wait() until the child's answer is put
    // (in many rounds the put comes while it sleeps; a lost wake-up would hang here).
    for (int i = 0; i < 500; ++i) {
        to_child.put(i);
        auto ready = wait(std::vector{other.reader(), to_parent.reader()});
        REQUIRE(ready.size() == 1);
        REQUIRE(ready[0] == to_parent.reader());
        REQUIRE(to_parent.get_nowait() == i);
    }
    CHECK(wait(std::vector{to_parent.reader(), other.reader()}, 10ms).empty());
    to_child.put(-1);
    p.join();
    CHECK(p.exitcode() == 0);
}

TEMPLATE_TEST_CASE("wait: a queue's reader wakes the waiter when another process puts, over shm and pipes",
                   "[listener][wait][queue]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    queue_wait_round_trips<multiproc::basic_queue<int, transport::shm>, TestType>();
    queue_wait_round_trips<multiproc::basic_queue<int, transport::pipe>, TestType>();
    base.check();
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("wait: a queue is ready while it holds a message, once shut down, and once closed here",
          "[listener][wait][queue]") {
    multiproc::queue<int> q;
    multiproc::basic_joinable_queue<std::string, transport::pipe> j;
    multiproc::simple_queue<int> s;
    CHECK(wait({q.reader(), j.reader(), s.reader()}, 0ms).empty());
    q.put(1);
    q.put(2);
    auto ready = wait({q.reader(), j.reader(), s.reader()}, 0ms);
    REQUIRE(ready.size() == 1);
    CHECK(ready[0] == q.reader());
    CHECK(q.get() == 1);
    CHECK(wait({q.reader()}, 0ms).size() == 1); // a level, not an edge: one message is left
    CHECK(q.get() == 2);
    CHECK(wait({q.reader(), j.reader()}, 20ms).empty()); // put and taken: no longer ready
    // Queues themselves are waitable, as their readers are.
    s.put(7);
    CHECK(wait({s}, 0ms).size() == 1);
    CHECK(s.get() == 7);
    // Shut down: a get raises at once, so the queue is ready.
    j.shutdown();
    ready = wait({q.reader(), j.reader()});
    REQUIRE(ready.size() == 1);
    CHECK(ready[0] == j.reader());
    CHECK_THROWS_AS(j.get(), queue_shut_down);
    // Closed in this process: a reader made before is ready (get raises value_error).
    auto r = q.reader();
    q.close();
    CHECK(r.fileno() == -1);
    CHECK(r.ready());
    CHECK(wait({r}, 0ms).size() == 1);
    CHECK_THROWS_AS(q.reader(), value_error);
}

TEST_CASE("wait: two threads waiting on one queue both wake for one message", "[listener][wait][queue]") {
    multiproc::basic_queue<int, transport::pipe> q;
    std::atomic<int> woke{0};
    auto waiter = [&] {
        if (wait({q.reader()}, 30s).size() == 1) woke.fetch_add(1);
    };
    std::thread a(waiter), b(waiter);
    q.put(5);
    a.join();
    b.join();
    CHECK(woke.load() == 2);
    CHECK(q.get() == 5);
}

TEST_CASE("wait: connections, queues and descriptors together, as variants", "[listener][wait][queue]") {
    using item = std::variant<connection<int>, queue_reader, int, multiproc::queue<int>>;
    auto [r, w] = multiproc::pipe<int>();
    multiproc::queue<int> q, q2;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<item> all{r, q.reader(), fds[0], q2};
    CHECK(wait(all, 0ms).empty());
    q2.put(3);
    REQUIRE(::write(fds[1], "x", 1) == 1);
    auto ready = wait(all, 5s);
    REQUIRE(ready.size() == 2);
    CHECK(ready[0].index() == 2);
    CHECK(ready[1].index() == 3);
    w.send(9);
    q.put(4);
    ready = wait(all);
    REQUIRE(ready.size() == 4);
    CHECK(std::get<connection<int>>(ready[0]).recv() == 9);
    CHECK(q.get() == 4);
    CHECK(q2.get() == 3);
    ::close(fds[0]);
    ::close(fds[1]);
}
#endif

// Objects that cross by themselves (a connection end, a queue, a lock) sent through a
// connection reach a process of each start method that did not have them: as Python sends
// a Connection through a Connection.
TEMPLATE_TEST_CASE("a connection, a queue and a lock sent through a connection", "[listener][crossing]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    {
        listener<connection<std::string>> l; // carries connection ends
        auto [back_r, back_w] = multiproc::pipe<std::string>(false);
        test::process_t<TestType> p(
            [](std::string at) {
                auto c = client<connection<std::string>>(address::parse(at));
                auto reply = c.recv(); // an end of a pipe this process was never given
                reply.send("through a connection");
                std::_Exit(0);
            },
            l.address().to_string());
        p.start();
        auto c = l.accept();
        c.send(back_w);
        back_w.close();
        CHECK(back_r.recv() == "through a connection");
        p.join();
        CHECK(p.exitcode() == 0);

        auto [qa, qb] = multiproc::pipe<std::pair<multiproc::queue<int>, multiproc::lock>, transport::socketpair>();
        multiproc::queue<int> q;
        multiproc::lock lk;
        test::process_t<TestType> user(
            [](basic_connection<std::pair<multiproc::queue<int>, multiproc::lock>, transport::socketpair> qb) {
                auto [q, lk] = qb.recv();
                std::lock_guard<multiproc::lock> g(lk);
                q.put(42);
                std::_Exit(0);
            },
            qb);
        user.start();
        qb.close();
        qa.send({q, lk});
        CHECK(q.get(std::chrono::seconds(30)) == 42);
        user.join();
        CHECK(user.exitcode() == 0);
        CHECK(lk.acquire(false)); // released by the child
        lk.release();
    }
    base.check();
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("a descriptor from send_handle where an object was expected is closed, and the next object is right",
          "[listener][crossing]") {
    auto [a, b] = multiproc::pipe<connection<int>, transport::socketpair>();
    auto [r, w] = multiproc::pipe<int>();
    test::pipe_pair stray;
    const auto before = test::open_fds().size();
    send_handle(a, stray.w);
    CHECK_THROWS_AS(b.recv(), value_error); // the stray descriptor is closed, not kept
    CHECK(test::open_fds().size() == before);
    a.send(w);
    auto got = b.recv(); // the write end of r's pipe, not the stray descriptor
    got.send(17);
    CHECK(r.recv() == 17);
}

TEST_CASE("objects with descriptors do not cross a pipe or TCP", "[listener][crossing]") {
    auto [x, y] = multiproc::pipe<connection<int>>(); // transport::pipe: real pipes
    auto [u, v] = multiproc::pipe<int>();
    CHECK_THROWS_AS(x.send(u), value_error);
    listener<connection<int>> l(address("127.0.0.1", 0));
    auto c = client<connection<int>>(l.address());
    auto s = l.accept();
    CHECK_THROWS_AS(c.send(u), value_error);
}

TEST_CASE("send_handle/recv_handle: a pipe or TCP refuses, and a message out of turn is named", "[listener][handle]") {
    test::pipe_pair pp;
    auto [pr, pw] = multiproc::pipe<int>(); // transport::pipe: real pipes
    CHECK_THROWS_AS(send_handle(pw, pp.w), value_error);
    CHECK_THROWS_AS((void)recv_handle(pr), value_error);
    {
        listener<int> l(address("127.0.0.1", 0));
        auto c = client<int>(l.address());
        auto s = l.accept();
        CHECK_THROWS_AS(send_handle(c, pp.w), value_error);
        c.send(3); // the stream is still whole
        CHECK(s.recv() == 3);
    }
    auto [a, b] = multiproc::pipe<int, transport::socketpair>();
    a.send(1);
    send_handle(a, pp.w);
    a.send(2);
    CHECK_THROWS_AS((void)recv_handle(b), value_error); // the 1: dropped
    CHECK_THROWS_AS(b.recv(), value_error);             // the descriptor: closed
    CHECK(b.recv() == 2);                               // and the stream goes on
    const auto before = test::open_fds();
    send_handle(a, pp.w);
    const int fd = recv_handle(b);
    CHECK(test::open_fds().size() == before.size() + 1);
    ::close(fd);
}

TEST_CASE("current_process().authkey(): 32 bytes, settable, and what children start with", "[listener][authkey]") {
    const std::string key = current_process().authkey();
    CHECK(key.size() == 32);
    CHECK(key == current_process().authkey());
    test::for_each_start([&]<class Ctx>() {
        for (const std::string& k : {key, std::string("a key set by the program")}) {
            current_process().authkey(k);
            auto [r, w] = multiproc::pipe<std::string>(false);
            test::process_t<Ctx> p([](connection<std::string> w) { w.send(current_process().authkey()); }, w);
            p.start();
            w.close();
            CHECK(r.recv() == k);
            p.join();
        }
    });
    current_process().authkey(key);
}

// 8 client processes x 10,000 requests through one listener; the server waits on all of
// them with wait(). Every request is answered with its own number: nothing is lost,
// duplicated or crossed between clients.
TEST_CASE("soak: 8 clients x 10,000 requests, nothing lost", "[listener][soak]") {
    constexpr int clients = 8, requests = 10000;
    listener<std::pair<int, int>> l(std::nullopt, clients, std::string("soak"));
    std::vector<multiproc::process> ps;
    for (int k = 0; k < clients; ++k) {
        ps.emplace_back(
            [](std::string at, int me) {
                auto c = client<std::pair<int, int>>(address::parse(at), std::string("soak"));
                for (int i = 0; i < requests; ++i) {
                    c.send({me, i});
                    const auto [who, n] = c.recv();
                    if (who != me || n != 2 * i + 1) std::_Exit(2);
                }
                std::_Exit(0);
            },
            l.address().to_string(), k);
        ps.back().start();
    }
    std::vector<connection<std::pair<int, int>>> conns;
    for (int k = 0; k < clients; ++k) conns.push_back(l.accept());
    std::vector<int> served(clients, 0);
    std::vector<int> next(clients, -1);
    int open = clients;
    long total = 0;
    while (open > 0) {
        for (auto& c : wait(conns)) {
            try {
                const auto [who, n] = c.recv();
                REQUIRE(who >= 0);
                REQUIRE(who < clients);
                REQUIRE(n == next[who] + 1); // in order, none skipped
                next[who] = n;
                ++served[who];
                ++total;
                c.send({who, 2 * n + 1});
            } catch (const eof_error&) {
                c.close();
                --open;
                conns.erase(std::find_if(conns.begin(), conns.end(), [&](auto& x) { return x.closed(); }));
            }
        }
    }
    for (auto& p : ps) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    CHECK(total == long{clients} * requests);
    for (int k = 0; k < clients; ++k) CHECK(served[k] == requests);
}
#endif

// From a review: an end asked first whether it was a socket through the descriptor of a
// direction it does not have (-1) took itself for a pipe, so a vector of page_buffers went
// through the sharer while the socket's receiver looked for them in the message.
TEST_CASE("a socketpair end still sends page_buffers with the message after a wrong-way recv_handle",
          "[page_buffer][socketpair]") {
    test::baseline before;
    {
        auto [r, w] = multiproc::pipe<std::vector<page_buffer>, transport::socketpair>(false);
        CHECK_THROWS(recv_handle(w)); // (w only sends)
        std::vector<page_buffer> v;
        v.emplace_back(4096);
        v.back().data()[7] = std::byte{0x77};
        w.send(v);
        auto got = r.recv();
        REQUIRE(got.size() == 1);
        CHECK(got[0].data()[7] == std::byte{0x77});
        // The other way round: send_handle on the end that only receives.
        auto [r2, w2] = multiproc::pipe<std::vector<page_buffer>, transport::socketpair>(false);
        CHECK_THROWS(send_handle(r2, 0, ::getpid()));
        w2.send(v);
        CHECK(r2.recv().size() == 1);
    }
    before.check();
}

TEST_CASE("wait: a connection that ended is removed from the list it came back from, as Python's readers.remove(r)",
          "[listener][wait]") {
    auto [a, a_w] = multiproc::pipe<int>(false);
    auto [b, b_w] = multiproc::pipe<int>(false);
    std::vector<connection<int>> readers{a, b};
    CHECK(readers[0] == a); // a copy is the same end
    CHECK_FALSE(readers[0] == b);
    b_w.send(2);
    b_w.close();
    int got = 0;
    while (!readers.empty()) {
        for (auto& r : wait(readers, 30s)) {
            try {
                got += r.recv();
            } catch (const eof_error&) {
                std::erase(readers, r);
            }
        }
        if (readers.size() == 1 && readers[0] == a) a_w.close(); // (b is done: now a ends too)
    }
    CHECK(got == 2);
}
