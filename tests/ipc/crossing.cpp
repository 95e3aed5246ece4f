// Queues and pipe ends as process arguments under every start method and transport: under
// fork the child inherits them; under spawn and forkserver they cross (descriptors with
// SCM_RIGHTS, shared regions mapped again) and behave the same.
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

#include <cerrno>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <string>
#include <tuple>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

// Each case runs once per start method (the template) and, inside, once per transport.
template <class Start, class Transport>
void queue_round_trip() {
    INFO(Transport::name);
    using q_t = basic_queue<long, Transport>;
    q_t in, out;
    basic_joinable_queue<std::string, Transport> jobs;
    basic_simple_queue<int, Transport> hello;
    constexpr long n = 5000;
    basic_process<Start> consumer(
        [](q_t i, q_t o, basic_joinable_queue<std::string, Transport> j, basic_simple_queue<int, Transport> h, long count) {
            h.put(1);
            long sum = 0;
            for (long k = 0; k < count; ++k) sum += i.get();
            o.put(sum);
            for (;;) {
                auto s = j.get();
                j.task_done();
                if (s == "stop") break;
            }
        },
        in, out, jobs, hello, n);
    consumer.start();
    CHECK(hello.get() == 1);
    for (long k = 0; k < n; ++k) in.put(k);
    CHECK(out.get(30s) == n * (n - 1) / 2);
    jobs.put("a");
    jobs.put("stop");
    jobs.join(); // returns once the child called task_done for both
    consumer.join();
    CHECK(consumer.exitcode() == 0);
    CHECK(in.qsize() == 0);
}

template <class Start, class Transport>
void pipe_round_trip() {
    INFO(Transport::name);
    using conn = basic_connection<std::string, Transport>;
    auto [a, b] = pipe<std::string, Transport>();
    basic_process<Start> echo(
        [](conn c) {
            for (;;) {
                std::string s;
                try {
                    s = c.recv();
                } catch (const eof_error&) {
                    return;
                }
                for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                c.send(s);
            }
        },
        b);
    echo.start();
    b.close(); // the child holds its own end now: ours would keep the pipe from EOF
    a.send("hello");
    CHECK(a.recv() == "HELLO");
    a.send(std::string(100000, 'x')); // larger than one chunk
    CHECK(a.recv() == std::string(100000, 'X'));
    a.close(); // the child sees EOF and leaves
    echo.join();
    CHECK(echo.exitcode() == 0);
}

template <class Start, class Transport>
void child_sees_eof() {
    INFO(Transport::name);
    using conn = basic_connection<int, Transport>;
    auto [r, w] = pipe<int, Transport>(false);
    basic_process<Start> writer([](conn c) { c.send(7); }, w);
    writer.start();
    w.close();
    CHECK(r.recv() == 7);
    writer.join();
    CHECK_THROWS_AS(r.recv(), eof_error); // no holder of the sending end is left
}

} // namespace

TEMPLATE_TEST_CASE("queues cross into children: a consumer of every start method gets every message",
                   "[queue][crossing]", START_METHODS) {
    using S = typename TestType::policies::start;
    queue_round_trip<S, transport::pipe>();
    queue_round_trip<S, transport::socketpair>();
    queue_round_trip<S, transport::shm>();
}

TEMPLATE_TEST_CASE("a pipe end crosses into a child: messages both ways, EOF once the parent closes",
                   "[pipe][crossing]", START_METHODS) {
    using S = typename TestType::policies::start;
    pipe_round_trip<S, transport::pipe>();
    pipe_round_trip<S, transport::socketpair>();
    pipe_round_trip<S, transport::shm>();
}

TEMPLATE_TEST_CASE("the parent sees EOF once the child that held the other end has left", "[pipe][crossing]",
                   START_METHODS) {
    using S = typename TestType::policies::start;
    child_sees_eof<S, transport::pipe>();
    child_sees_eof<S, transport::socketpair>();
    child_sees_eof<S, transport::shm>();
}

TEMPLATE_TEST_CASE("a closed queue or pipe end cannot cross: start() says so", "[queue][crossing]", by_spawn,
                   by_forkserver) {
    queue<int> q;
    q.close();
    auto p = test::process_t<TestType>([](queue<int>) {}, q);
    CHECK_THROWS_WITH(p.start(), Catch::Contains("Queue is closed"));
    simple_queue<int> sq;
    sq.close();
    auto ps = test::process_t<TestType>([](simple_queue<int>) {}, sq);
    try { // os_error, as its uses: Python's SimpleQueue is its pipe ends
        ps.start();
        FAIL("a closed simple_queue crossed");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EBADF);
        CHECK_THAT(e.what(), Catch::Contains("handle is closed"));
    }
    auto [a, b] = pipe<int>();
    b.close();
    auto p2 = test::process_t<TestType>([](connection<int>) {}, b);
    CHECK_THROWS_WITH(p2.start(), Catch::Contains("handle is closed"));
    CHECK(active_children().empty());
}

// Objects with descriptors put in a queue (Python: a Connection put in a Queue, through
// multiprocessing.resource_sharer): the sender keeps duplicates of the descriptors under a
// ticket, the receiver takes them from it, once.
template <class Ctx, class Transport>
void objects_through_a_queue() {
    INFO(Transport::name);
    using carrier = basic_queue<std::pair<connection<std::string>, basic_queue<int, Transport>>, Transport>;
    carrier jobs;
    basic_simple_queue<int, Transport> done;
    test::process_t<Ctx> worker(
        [](carrier j, basic_simple_queue<int, Transport> d) {
            for (int k = 0; k < 3; ++k) {
                auto [reply, results] = j.get(); // objects this process was never given
                reply.send("reply " + std::to_string(k));
                results.put(k * 10);
            }
            d.put(1);
            std::_Exit(0);
        },
        jobs, done);
    worker.start();
    for (int k = 0; k < 3; ++k) {
        auto [r, w] = multiproc::pipe<std::string>(false);
        basic_queue<int, Transport> results;
        jobs.put({w, results});
        w.close(); // the worker's copy is its own: the parent's close does not end it
        CHECK(r.recv() == "reply " + std::to_string(k));
        CHECK(results.get(30s) == k * 10);
    }
    CHECK(done.get() == 1);
    worker.join();
    CHECK(worker.exitcode() == 0);
    CHECK(detail::resource_sharer::kept() == 0); // every share taken, none left behind
}

TEMPLATE_TEST_CASE("connections and queues put in a queue reach a process of every start method",
                   "[queue][crossing][sharer]", START_METHODS) {
    test::warm_up<TestType>();
    test::baseline base;
    objects_through_a_queue<TestType, transport::shm>();
    objects_through_a_queue<TestType, transport::pipe>();
    base.check();
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("a queue message with descriptors: a put that fails keeps nothing, a sender gone is named",
          "[queue][crossing][sharer]") {
    test::baseline base;
    {
        basic_queue<connection<int>> q(1);
        auto [r, w] = multiproc::pipe<int>();
        q.put(w);
        CHECK(detail::resource_sharer::kept() == 1);
        CHECK_THROWS_AS(q.put_nowait(r), queue_full); // no room: its share is withdrawn
        CHECK(detail::resource_sharer::kept() == 1);
        auto w2 = q.get();
        CHECK(detail::resource_sharer::kept() == 0);
        w2.send(5);
        CHECK(r.recv() == 5);
        // The only share withdrawn: the sharer stops (its thread joined, its socket closed;
        // the descriptor baseline at the end checks that nothing of it is left).
        basic_queue<std::vector<connection<int>>> one(1);
        one.put({});
        CHECK_THROWS_AS(one.put_nowait({r}), queue_full);
        CHECK(detail::resource_sharer::kept() == 0);
        CHECK(one.get().empty());
        // Vectors of them, with none: no share at all.
        basic_queue<std::vector<connection<int>>> many;
        many.put({});
        CHECK(detail::resource_sharer::kept() == 0);
        CHECK(many.get().empty());
        many.put({r, w, r});
        auto three = many.get();
        REQUIRE(three.size() == 3);
        three[1].send(6);
        CHECK(three[2].recv() == 6);
    }
    {
        // A forked child puts a connection end and ends before anyone takes it: the get
        // names the sender and says that the descriptors ended with it.
        basic_queue<connection<int>> q;
        multiproc::basic_process<start::fork> p([](basic_queue<connection<int>> q) {
            auto [r, w] = multiproc::pipe<int>();
            q.put(w);
            std::_Exit(0);
        }, q);
        p.start();
        p.join();
        CHECK(p.exitcode() == 0);
        try {
            (void)q.get(30s);
            FAIL("got the descriptors of a process that has ended");
        } catch (const os_error& e) {
            CHECK_THAT(e.what(), Catch::Contains("pid " + std::to_string(*p.pid())) && Catch::Contains("has ended"));
        }
        CHECK(q.empty()); // the message was taken
    }
    {
        // The same when a grandchild made by fork was made while the sender's sharer ran:
        // the fork handlers close the grandchild's copy of the socket, and if a copy were
        // kept anyway (a process made without fork()), the sender's pid would still name
        // the end, not the 30 s deadline.
        basic_queue<connection<int>> q;
        int hold[2], told[2];
        REQUIRE(::pipe2(hold, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(told, O_CLOEXEC) == 0);
        multiproc::basic_process<start::fork> p(
            [](basic_queue<connection<int>> q, int hold_r, int hold_w, int told_w) {
                auto [r, w] = multiproc::pipe<int>();
                q.put(w); // this process's sharer now listens
                const pid_t g = ::fork();
                if (g == 0) { // holds the sharer's socket until the test closes `hold`
                    ::close(hold_w); // (inherited: else it would never see the end)
                    char c;
                    (void)!::read(hold_r, &c, 1);
                    ::_exit(0);
                }
                (void)!::write(told_w, &g, sizeof g);
                std::_Exit(0);
            },
            q, hold[0], hold[1], told[1]);
        p.start();
        p.join();
        ::close(hold[0]);
        ::close(told[1]);
        pid_t g = 0;
        REQUIRE(::read(told[0], &g, sizeof g) == sizeof g);
        ::close(told[0]);
        const int gfd = detail::sys::pidfd_open(g);
        REQUIRE(gfd >= 0);
        // ("has ended": named by the pid; the deadline would say "does not answer")
        CHECK_THROWS_WITH(q.get(30s), Catch::Contains("pid " + std::to_string(*p.pid())) && Catch::Contains("has ended"));
        ::close(hold[1]); // the grandchild ends
        pollfd pf{gfd, POLLIN, 0};
        CHECK(::poll(&pf, 1, 30000) == 1);
        ::close(gfd);
    }
    {
        // Abstract names have no permissions: a socket at the sharer's name that is not the
        // sender's (here: this process's, while the ticket names another pid) is refused.
        detail::share_ticket t;
        t.pid = static_cast<std::uint32_t>(::getppid());
        t.count = 1;
        t.name = "multiproc-test-impostor-" + std::to_string(::getpid());
        detail::sys::unique_fd l(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path + 1, t.name.data(), t.name.size());
        REQUIRE(::bind(l.get(), reinterpret_cast<sockaddr*>(&a),
                       static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + t.name.size())) == 0);
        REQUIRE(::listen(l.get(), 4) == 0);
        CHECK_THROWS_WITH(detail::claim_shared(t, detail::steady::now() + 5s),
                          Catch::Contains("another process (pid " + std::to_string(::getpid())));
    }
    base.check();
}
#endif
