// Processes killed with SIGKILL in the middle of queue operations: at most the message the
// killed process was putting or taking is lost, every other message arrives exactly once,
// the queue stays usable, and its counts (qsize, unfinished tasks) come out exact.
//
// The random tests kill at whatever point the victim has reached, over every transport x
// serializer. The deterministic ones (stream transports) use the fault hook of
// detail::sys to kill a process exactly before or after a chosen system call: the windows
// the repair code must handle.
#include "ipc/kill_helpers.hpp"

#include <multiproc/detail/transport/stream/stream_channel.hpp>
#include <multiproc/queue.hpp>

#include <cstring>
#include <numeric>
#include <span>
#include <vector>

#include <sys/socket.h>

using namespace multiproc;
using namespace std::chrono_literals;
using detail::sys::call;

using namespace test::kills;

namespace {
/// Puts producer p's messages `from` to n - 1: one by one (`run` 1), or with put_many in runs.
template <class C, class Q>
void produce_runs(Q& q, std::uint32_t p, std::uint32_t n, std::uint32_t run, std::uint32_t from = 0) {
    std::vector<message<C>> v;
    for (std::uint32_t i = from; i < n; i += run) {
        if (run == 1) {
            q.put(make<C>(p, i));
            continue;
        }
        v.clear();
        for (std::uint32_t j = i; j < std::min(n, i + run); ++j) v.push_back(make<C>(p, j));
        if (q.put_many(v) != v.size()) std::_Exit(2);
    }
}

/// Two producers (in runs of `run`), three consumers taking `batch` at a time; one consumer
/// is killed once it has taken 500 messages (or a producer is done). None may be duplicated,
/// at most `batch` lost (what the victim's call had taken).
template <class C>
void kill_a_consumer(std::size_t batch, std::uint32_t run) {
    test::leak_check leaks;
    constexpr std::uint32_t producers = 2, n = 20000;
    test::shared_array<std::uint32_t> seen(std::size_t{producers} * n);
    {
        typename C::template queue<message<C>> q;
        test::pipe_pair signal;
        process victim([&] { consume(q, seen, n, false, signal.w, 500, batch); });
        std::vector<process> others, ps;
        for (int k = 0; k < 2; ++k) others.emplace_back([&] { consume(q, seen, n, false, -1, 500, batch); });
        for (std::uint32_t p = 0; p < producers; ++p)
            ps.emplace_back([&, p] {
                produce_runs<C>(q, p, n, run);
                test::write_str(signal.w, "p");
            });
        victim.start();
        for (auto& c : others) c.start();
        for (auto& p : ps) p.start();
        // The victim has taken 500 messages and goes on taking more; or, if the others have
        // kept the (unfair) lock to themselves, a producer is done: kill it either way.
        wait_byte(signal.r);
        victim.kill();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        for (auto& p : ps) {
            p.join();
            CHECK(p.exitcode() == 0);
        }
        for (std::size_t k = 0; k < others.size(); ++k) q.put(make<C>(pill, 0));
        for (auto& c : others) {
            c.join();
            CHECK(c.exitcode() == 0);
        }
        CHECK(q.qsize() == 0);
    }
    std::size_t lost = 0, duplicated = 0;
    for (std::size_t i = 0; i < seen.size(); ++i) {
        lost += seen[i].load() == 0;
        duplicated += seen[i].load() > 1;
    }
    CHECK(duplicated == 0);
    CHECK(lost <= batch);
}

/// Three producers (in runs of `run`), two consumers taking `batch` at a time and marking
/// each task done; producer 0 is killed once it has put 600 messages (or another producer
/// is done). Every survivor's message arrives once, the victim's are a prefix of its
/// sequence, and join() returns.
template <class C>
void kill_a_producer(std::size_t batch, std::uint32_t run) {
    test::leak_check leaks;
    constexpr std::uint32_t producers = 3, n = 10000;
    test::shared_array<std::uint32_t> seen(std::size_t{producers} * n);
    {
        typename C::template joinable_queue<message<C>> q;
        test::pipe_pair signal;
        process victim([&] {
            produce_runs<C>(q, 0, 600, run);
            test::write_str(signal.w, "x");
            produce_runs<C>(q, 0, n, run, 600);
        });
        std::vector<process> cs, ps;
        for (int k = 0; k < 2; ++k) cs.emplace_back([&] { consume(q, seen, n, true, -1, 500, batch); });
        for (std::uint32_t p = 1; p < producers; ++p)
            ps.emplace_back([&, p] {
                produce_runs<C>(q, p, n, run);
                test::write_str(signal.w, "p");
            });
        for (auto& c : cs) c.start();
        victim.start();
        for (auto& p : ps) p.start();
        // Kill the victim once it has put 600 messages, or once another producer is done
        // (the producers' lock is not fair: the others may have kept it to themselves).
        wait_byte(signal.r);
        victim.kill();
        victim.join();
        for (auto& p : ps) {
            p.join();
            CHECK(p.exitcode() == 0);
        }
        drain_after_producer_kill(q, cs);
    }
    CHECK(wrong_after_producer_kill(seen, producers, n) == 0);
}
} // namespace

TEMPLATE_LIST_TEST_CASE("a consumer killed with SIGKILL loses at most the message it was taking, the others go on",
                        "[queue][kill]", test::combos) {
    INFO(TestType::name());
    kill_a_consumer<TestType>(1, 1);
}

TEMPLATE_LIST_TEST_CASE("a producer killed with SIGKILL loses at most the message it was putting, join still returns",
                        "[queue][kill]", test::combos) {
    INFO(TestType::name());
    kill_a_producer<TestType>(1, 1);
}

TEMPLATE_LIST_TEST_CASE("a consumer killed right after reading from the stream loses nothing: its bytes are in "
                        "shared staging",
                        "[queue][kill][window]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    for (bool after : {true, false}) {
        test::leak_check leaks;
        typename C::template queue<int> q;
        for (int i = 0; i < 10; ++i) q.put(i);
        process victim([&] {
            killer::arm(call::read, 1, after);
            (void)q.get();
            std::_Exit(0);
        });
        victim.start();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        CHECK(q.qsize() == 10);
        for (int i = 0; i < 10; ++i) CHECK(q.get(10s) == i);
        CHECK(q.qsize() == 0);
        CHECK_THROWS_AS(q.get_nowait(), queue_empty);
    }
}

TEST_CASE("a consumer killed after a socket read that would fill staging loses nothing: reads never cut a chunk",
          "[queue][kill][window]") {
    // A read from a Unix stream socket goes on taking what producers write while it copies,
    // so under load one read fills staging whatever its size and ends in the middle of a
    // chunk; the rest of that chunk is then only in the stream. To meet that state at a
    // chosen read, the socket's send buffer is raised past staging once the queue is made:
    // the stream then holds more than staging, whose end falls inside a chunk. The victim
    // dies right after its first read, or right after its second (the one that would take
    // the rest of a cut chunk); every message must arrive once, and qsize must be exact.
    using core_t = detail::queue_core<detail::stream_channel<transport::socketpair>>;
    constexpr std::uint32_t n = 100;
    constexpr std::size_t len = 1000; // 1032-byte chunks: staging's end falls inside one
    auto take_index = [](std::uint32_t& out) {
        return [&out](std::span<const std::byte> b) {
            out = pill; // (not a message this test sent)
            if (b.size() == len) std::memcpy(&out, b.data(), sizeof out);
        };
    };
    for (int nth : {1, 2}) {
        INFO("killed after read " << nth);
        test::leak_check leaks;
        core_t q(0, 16 << 10);
        REQUIRE(detail::sys::setsockopt_int(q.channel().write_fd(), SOL_SOCKET, SO_SNDBUF, 4 << 20) == 0);
        REQUIRE(q.channel().shared_bytes() % (len + sizeof(detail::chunk_header)) != 0);
        REQUIRE(q.channel().shared_bytes() < n * (len + sizeof(detail::chunk_header)));
        std::vector<std::byte> msg(len, std::byte{'q'});
        for (std::uint32_t i = 0; i < n; ++i) {
            std::memcpy(msg.data(), &i, sizeof i);
            REQUIRE(q.put_bytes(msg, detail::steady::now() + 10s));
        }
        process victim([&] {
            killer::arm(call::read, nth, true);
            std::uint32_t got = 0;
            try {
                while (q.get(take_index(got), detail::steady::now() + 5s)) {
                }
            } catch (...) {
            }
            std::_Exit(3); // not killed: the test fails
        });
        victim.start();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        // The victim took a prefix of the messages: the rest arrive, in order, and qsize
        // counted them exactly. (Every byte is in the stream or staging: a get with no
        // time to wait finds a message if there is one.)
        const std::size_t left = q.qsize();
        std::vector<std::uint32_t> rest;
        for (std::uint32_t got = 0; q.get(take_index(got), detail::steady::now());) rest.push_back(got);
        std::vector<std::uint32_t> expected(left);
        std::iota(expected.begin(), expected.end(), n - static_cast<std::uint32_t>(left));
        CHECK(rest == expected);
        CHECK(q.qsize() == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("a consumer killed in the middle of a large message loses that message only",
                        "[queue][kill][window]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<std::string> q(0, 64 * 1024);
    const std::string big(1 << 20, 'b');
    test::pipe_pair signal;
    test::gate gate;
    // The producer stops inside put, before its 6th chunk, until the test lets it go on.
    process producer([&] {
        killer::pause_at(write_call<C>, 6, signal.w, gate.p.r);
        gate.p.close_w();
        q.put(big);
        q.put("after");
    });
    producer.start();
    wait_byte(signal.r);
    // The victim takes the first chunks of the message, then dies waiting for the next.
    process victim([&] {
        gate.p.close_w();
        killer::arm(call::poll, 1, false);
        (void)q.get();
        std::_Exit(0);
    });
    victim.start();
    victim.join();
    CHECK(victim.exitcode() == -SIGKILL);
    gate.release();
    CHECK(q.get(30s) == "after");
    producer.join();
    CHECK(producer.exitcode() == 0);
    CHECK(q.qsize() == 0);
}

TEMPLATE_LIST_TEST_CASE("a producer killed right before or after writing its last chunk: counts and join come out "
                        "exact",
                        "[queue][kill][window]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    for (bool after : {true, false}) {
        INFO("killed " << (after ? "after" : "before") << " the write");
        test::leak_check leaks;
        typename C::template joinable_queue<int> q;
        process victim([&] {
            killer::arm(write_call<C>, 5, after);
            for (int i = 0; i < 10; ++i) q.put(i);
        });
        victim.start();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        const int arrived = after ? 5 : 4;
        for (int i = 0; i < arrived; ++i) {
            CHECK(q.get(10s) == i);
            q.task_done();
        }
        CHECK_THROWS_AS(q.get(20ms), queue_empty);
        q.join(); // settles the message the victim was writing: it arrived, or it did not
        CHECK(q.qsize() == 0);
        CHECK_THROWS_WITH(q.task_done(), "task_done() called too many times");
        q.put(99); // the queue goes on
        CHECK(q.qsize() == 1);
        CHECK(q.get() == 99);
        q.task_done();
        q.join();
    }
}

TEMPLATE_LIST_TEST_CASE("a producer killed in the middle of a large message: consumers drop it and go on",
                        "[queue][kill][window]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<std::string> q;
    process victim([&] {
        killer::arm(write_call<C>, 5, false); // four chunks of the message are written
        q.put(std::string(100000, 'v'));
    });
    victim.start();
    victim.join();
    CHECK(victim.exitcode() == -SIGKILL);
    CHECK(q.qsize() == 0);
    // A consumer takes the four chunks, finds no producer at work, and drops them.
    CHECK_THROWS_AS(q.get(50ms), queue_empty);
    process next([&] { q.put("next"); });
    next.start();
    CHECK(q.get(10s) == "next");
    next.join();
    // Same when the next producer comes while a consumer is still assembling the dead one's.
    process victim2([&] {
        killer::arm(write_call<C>, 5, false);
        q.put(std::string(100000, 'w'));
    });
    victim2.start();
    victim2.join();
    process next2([&] { q.put("next2"); });
    next2.start();
    CHECK(q.get(10s) == "next2");
    next2.join();
    CHECK(q.qsize() == 0);
}

// ---- the same guarantees for runs of messages (put_many, get_many; issue 20) ----------

TEMPLATE_LIST_TEST_CASE("a consumer killed inside get_many loses at most the run it was taking, the others go on",
                        "[queue][kill][batch]", test::combos) {
    INFO(TestType::name());
    kill_a_consumer<TestType>(64, 100); // consumers take 64 at a time, producers put runs of 100
}

TEMPLATE_LIST_TEST_CASE("a producer killed inside put_many: what it put is a prefix of its runs, join still returns",
                        "[queue][kill][batch]", test::combos) {
    INFO(TestType::name());
    kill_a_producer<TestType>(64, 100); // producers put runs of 100, consumers take 64 at a time
}

TEMPLATE_LIST_TEST_CASE("a producer killed right before or after a write of put_many: the write's messages arrive "
                        "all or none, counts and join exact",
                        "[queue][kill][window][batch]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    // One write carries as many one-chunk messages as fit in 4096 bytes.
    const std::size_t size = *detail::encoded_size<serialize::binary>(0);
    const int per_write = static_cast<int>(4096 / (sizeof(detail::chunk_header) + size));
    for (bool after : {true, false}) {
        INFO("killed " << (after ? "after" : "before") << " the write");
        test::leak_check leaks;
        typename C::template joinable_queue<int> q;
        process victim([&] {
            std::vector<int> v(1000);
            std::iota(v.begin(), v.end(), 0);
            killer::arm(write_call<C>, 3, after);
            (void)q.put_many(v);
        });
        victim.start();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        const int arrived = per_write * (after ? 3 : 2);
        auto got = q.get_many(100000, 10s);
        while (static_cast<int>(got.size()) < arrived) {
            auto more = q.get_many(100000, 10s);
            got.insert(got.end(), more.begin(), more.end());
        }
        REQUIRE(static_cast<int>(got.size()) == arrived);
        for (int i = 0; i < arrived; ++i) CHECK(got[i] == i);
        CHECK_THROWS_AS(q.get(20ms), queue_empty);
        for (int i = 0; i < arrived; ++i) q.task_done();
        q.join(); // settles the write the victim was in: it happened, or it did not
        CHECK(q.qsize() == 0);
        CHECK_THROWS_WITH(q.task_done(), "task_done() called too many times");
        CHECK(q.put_many(std::vector<int>{7, 8, 9}) == 3); // the queue goes on
        CHECK(q.qsize() == 3);
        CHECK(q.get_many(10) == std::vector<int>{7, 8, 9});
        for (int i = 0; i < 3; ++i) q.task_done();
        q.join();
    }
}

TEMPLATE_LIST_TEST_CASE("a consumer killed inside get_many right after reading from the stream loses nothing",
                        "[queue][kill][window][batch]", stream_transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<int> q;
    std::vector<int> v(300);
    std::iota(v.begin(), v.end(), 0);
    CHECK(q.put_many(v) == v.size());
    process victim([&] {
        killer::arm(call::read, 1, true);
        (void)q.get_many(1000);
        std::_Exit(0);
    });
    victim.start();
    victim.join();
    CHECK(victim.exitcode() == -SIGKILL);
    CHECK(q.qsize() == v.size());
    std::vector<int> got;
    while (got.size() < v.size()) {
        auto more = q.get_many(77, 10s);
        got.insert(got.end(), more.begin(), more.end());
    }
    CHECK(got == v);
    CHECK(q.qsize() == 0);
}

namespace {
// For the next case: the writev calls of a stream channel, made to die after the call, or
// to fail with EAGAIN (a full pipe), a given number of times.
std::atomic<int> writev_die_after{0}, writev_eagain{0};
int dispute_hook(call c) {
    if (c != call::writev) return 0;
    if (writev_die_after.load() != 0 && writev_die_after.fetch_sub(1) == 1) return detail::sys::die_after_call;
    if (writev_eagain.load() > 0) {
        writev_eagain.fetch_sub(1);
        return EAGAIN;
    }
    return 0;
}
} // namespace

TEST_CASE("a dispute opened while get_many takes a run is settled: counts stay exact", "[queue][kill][window][batch]") {
    // A consumer is inside get_many (its decoder runs the scene): producer A is killed right
    // after the write of a run of three; producer B repairs (a consumer holds the lock, so it
    // writes a marker, which meets a full pipe) and puts its own message. The run that goes on
    // reads A's three and B's one: it must stop before B's, whose chunk settles the dispute.
    using core_t = detail::queue_core<transport::pipe::queue_channel>;
    test::leak_check leaks;
    core_t q(0, 0);
    auto u64 = [](const std::uint64_t& v) { return std::span<const std::byte>(reinterpret_cast<const std::byte*>(&v), 8); };
    const std::uint64_t first = 1;
    REQUIRE(q.put_bytes(u64(first), std::nullopt));
    std::vector<std::uint64_t> seen;
    bool staged = false;
    auto take = [&](std::span<const std::byte> b) {
        std::uint64_t v;
        std::memcpy(&v, b.data(), 8);
        seen.push_back(v);
        if (std::exchange(staged, true)) return;
        pid_t a = ::fork();
        if (a == 0) {
            writev_die_after = 1;
            detail::sys::fault_hook = &dispute_hook;
            std::uint64_t vals[3] = {10, 11, 12};
            auto size = [](std::size_t) -> std::size_t { return 8; };
            auto fill = [&](std::size_t i, std::span<std::byte> dst) { std::memcpy(dst.data(), &vals[i], 8); };
            std::size_t put = 0;
            (void)q.put_many({3, size, fill}, std::nullopt, put);
            ::_exit(3); // not reached: killed after the write
        }
        int st = 0;
        ::waitpid(a, &st, 0);
        pid_t b2 = ::fork();
        if (b2 == 0) {
            writev_eagain = 1; // the marker's write
            detail::sys::fault_hook = &dispute_hook;
            const std::uint64_t v = 20;
            ::_exit(q.put_bytes(u64(v), std::nullopt) ? 0 : 4);
        }
        ::waitpid(b2, &st, 0);
    };
    std::size_t got = 0;
    REQUIRE(q.get_many(take, 100, detail::steady::now() + 10s, got));
    while (seen.size() < 5) REQUIRE(q.get_many(take, 100, detail::steady::now() + 10s, got));
    CHECK(seen == std::vector<std::uint64_t>{1, 10, 11, 12, 20}); // each once
    CHECK(q.qsize() == 0);
    const std::uint64_t later = 30;
    REQUIRE(q.put_bytes(u64(later), std::nullopt));
    CHECK(q.qsize() == 1); // the run was counted: it arrived
    REQUIRE(q.get(take, detail::steady::now() + 10s));
    CHECK(seen.back() == 30);
    CHECK(q.qsize() == 0);
}
