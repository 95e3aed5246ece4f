// Processes killed with SIGKILL in the middle of queue operations: at most the message the
// killed process was putting or taking is lost, every other message arrives exactly once,
// the queue stays usable, and its counts (qsize, unfinished tasks) come out exact.
//
// The random tests kill at whatever point the victim has reached, over every transport x
// serializer. The deterministic ones (stream transports) use the fault hook of
// detail::sys to kill a process exactly before or after a chosen system call: the windows
// the repair code must handle.
#include "ipc/combos.hpp"

#include <multiproc/detail/stream_channel.hpp>
#include <multiproc/queue.hpp>

#include <cstring>
#include <numeric>
#include <span>
#include <vector>

#include <sys/socket.h>

using namespace multiproc;
using namespace std::chrono_literals;
using detail::sys::call;

namespace {

constexpr std::uint32_t pill = 0xffffffffU;

/// A message: the tag, plus a payload of varying length for serializers that can send one,
/// so that messages span several chunks and kills land mid-message.
template <class C>
using message = std::conditional_t<C::template can<std::pair<test::tagged, std::string>>,
                                   std::pair<test::tagged, std::string>, test::tagged>;

template <class C>
message<C> make(std::uint32_t producer, std::uint32_t seq) {
    if constexpr (std::is_same_v<message<C>, test::tagged>)
        return test::make_tagged(producer, seq);
    else
        return {test::make_tagged(producer, seq), std::string((seq * 7919U) % 12000U, 'p')};
}

template <class M>
const test::tagged& tag_of(const M& m) {
    if constexpr (std::is_same_v<M, test::tagged>)
        return m;
    else
        return m.first;
}

/// Takes messages until a pill, counting each in `seen`; a bad message exits 2. Every
/// `signal_every` messages it writes a byte to `signal_fd` (if >= 0).
template <class Q>
[[noreturn]] void consume(Q& q, const test::shared_array<std::uint32_t>& seen, std::uint32_t per_producer,
                          bool task_done = false, int signal_fd = -1) {
    for (std::uint32_t k = 1;; ++k) {
        auto m = q.get();
        const test::tagged& t = tag_of(m);
        if constexpr (requires { q.task_done(); })
            if (task_done) q.task_done();
        if (t.producer == pill) std::_Exit(0);
        if (t.check != test::check_of(t.producer, t.seq) || t.seq >= per_producer) std::_Exit(2);
        seen[std::size_t{t.producer} * per_producer + t.seq].fetch_add(1);
        if (signal_fd >= 0 && k % 500 == 0) test::write_str(signal_fd, "x");
    }
}

// ---- a hook that kills this process at a chosen system call -------------------------

namespace killer {
inline std::atomic<int> which{-1}, countdown{0}, after{0}, signal_fd{-1}, gate_fd{-1};
inline int hook(call c) {
    if (static_cast<int>(c) != which.load() || countdown.fetch_sub(1) != 1) return 0;
    if (signal_fd >= 0) { // tell the test where we are, then wait for its go
        char x = 'x';
        (void)!::write(signal_fd, &x, 1);
        while (::read(gate_fd, &x, 1) > 0) {
        }
        return 0;
    }
    if (!after) ::kill(::getpid(), SIGKILL);
    return detail::sys::die_after_call;
}
/// In a child: dies just before (or just after) its nth call of `c`.
inline void arm(call c, int nth, bool after_call) {
    which = static_cast<int>(c);
    countdown = nth;
    after = after_call;
    detail::sys::fault_hook = &hook;
}
/// In a child: at its nth call of `c`, writes a byte to `signal` and waits for `gate` to
/// close (EOF), then makes the call.
inline void pause_at(call c, int nth, int signal, int gate) {
    signal_fd = signal;
    gate_fd = gate;
    which = static_cast<int>(c);
    countdown = nth;
    detail::sys::fault_hook = &hook;
}
} // namespace killer

/// The call a stream transport writes chunks with.
template <class C>
constexpr call write_call = std::is_same_v<typename C::transport, transport::pipe> ? call::writev : call::sendmsg;

using stream_transports = std::tuple<test::combo<transport::pipe, serialize::binary>,
                                     test::combo<transport::socketpair, serialize::binary>>;

char wait_byte(int fd) {
    char c = 0;
    REQUIRE(::read(fd, &c, 1) == 1);
    return c;
}

} // namespace

TEMPLATE_LIST_TEST_CASE("a consumer killed with SIGKILL loses at most the message it was taking, the others go on",
                        "[queue][kill]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::uint32_t producers = 2, n = 20000;
    test::shared_array<std::uint32_t> seen(std::size_t{producers} * n);
    {
        typename C::template queue<message<C>> q;
        test::pipe_pair signal;
        process victim([&] { consume(q, seen, n, false, signal.w); });
        std::vector<process> others, ps;
        for (int k = 0; k < 2; ++k) others.emplace_back([&] { consume(q, seen, n); });
        for (std::uint32_t p = 0; p < producers; ++p)
            ps.emplace_back([&, p] {
                for (std::uint32_t i = 0; i < n; ++i) q.put(make<C>(p, i));
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
    CHECK(lost <= 1);
}

TEMPLATE_LIST_TEST_CASE("a producer killed with SIGKILL loses at most the message it was putting, join still returns",
                        "[queue][kill]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::uint32_t producers = 3, n = 10000;
    test::shared_array<std::uint32_t> seen(std::size_t{producers} * n);
    {
        typename C::template joinable_queue<message<C>> q;
        test::pipe_pair signal;
        process victim([&] {
            for (std::uint32_t i = 0; i < n; ++i) {
                q.put(make<C>(0, i));
                if (i == 500) test::write_str(signal.w, "x");
            }
        });
        std::vector<process> cs, ps;
        for (int k = 0; k < 2; ++k) cs.emplace_back([&] { consume(q, seen, n, true); });
        for (std::uint32_t p = 1; p < producers; ++p)
            ps.emplace_back([&, p] {
                for (std::uint32_t i = 0; i < n; ++i) q.put(make<C>(p, i));
                test::write_str(signal.w, "p");
            });
        for (auto& c : cs) c.start();
        victim.start();
        for (auto& p : ps) p.start();
        // Kill the victim once it has put 500 messages, or once another producer is done
        // (the producers' lock is not fair: the others may have kept it to themselves).
        wait_byte(signal.r);
        victim.kill();
        victim.join();
        for (auto& p : ps) p.join();
        q.join(); // every message that arrived has been marked done, the victim's included
        CHECK(q.qsize() == 0);
        for (std::size_t k = 0; k < cs.size(); ++k) q.put(make<C>(pill, 0));
        for (auto& c : cs) {
            c.join();
            CHECK(c.exitcode() == 0);
        }
        q.join();
    }
    // The survivors' messages arrived exactly once; the victim's arrived once each up to
    // where it was killed, then not at all (its last message may be either).
    std::size_t wrong = 0, victim_got = 0;
    for (std::uint32_t p = 1; p < producers; ++p)
        for (std::uint32_t i = 0; i < n; ++i) wrong += seen[std::size_t{p} * n + i].load() != 1;
    while (victim_got < n && seen[victim_got].load() == 1) ++victim_got;
    for (std::size_t i = victim_got; i < n; ++i) wrong += seen[i].load() != 0;
    CHECK(wrong == 0);
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
            q.put_bytes(msg, detail::steady::now() + 10s);
        }
        process victim([&] {
            killer::arm(call::read, nth, true);
            std::uint32_t got = 0;
            try {
                for (;;) q.get(take_index(got), detail::steady::now() + 5s);
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
        try {
            for (std::uint32_t got = 0;; rest.push_back(got)) q.get(take_index(got), detail::steady::now());
        } catch (const queue_empty&) {
        }
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
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(q.get(50ms), queue_empty);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
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
