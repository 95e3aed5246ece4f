// Queues and pipe ends as process arguments under every start method and transport: under
// fork the child inherits them; under spawn and forkserver they cross (descriptors with
// SCM_RIGHTS, shared regions mapped again) and behave the same.
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

#include <cctype>
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
    auto [a, b] = pipe<int>();
    b.close();
    auto p2 = test::process_t<TestType>([](connection<int>) {}, b);
    CHECK_THROWS_WITH(p2.start(), Catch::Contains("handle is closed"));
    CHECK(active_children().empty());
}
