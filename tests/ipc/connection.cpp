// Pipes and connections over every transport x serializer: round trips, end of file when
// every other holder has closed, peers closed in children, poll, raw bytes, large messages.
// The cases with children run under every start method (fork, spawn, forkserver, named in
// INFO); their children are lambdas without captures, given the pipe ends as arguments.
#include "ipc/combos.hpp"

#include <multiproc/pipe.hpp>

#include <cstring>
#include <exception>
#include <thread>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}
std::string string_of(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
/// A message of many chunks (3 MiB), which a child of any start method builds alike.
std::vector<std::byte> many_chunks() {
    std::vector<std::byte> big(3 << 20);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 131 % 251);
    return big;
}
constexpr std::size_t large_size = 64 << 20;
std::byte large_pattern(std::size_t i) { return static_cast<std::byte>((i * 2654435761U >> 13) & 0xff); }
/// In a child waiting for the parent's reply: exits 0 on EOF (the parent closed its end and
/// no other holder is left), 1 if a message came instead.
template <class Conn>
[[noreturn]] void exit_on_eof(Conn& c) {
    try {
        (void)c.recv();
        std::_Exit(1);
    } catch (const eof_error&) {
        std::_Exit(0);
    }
}
} // namespace

// One child per combination echoes every value, each through its own pipe: every type
// crosses both ways, and the program starts one process where one per type made it slow to
// build and to run.
TEMPLATE_LIST_TEST_CASE("every supported value type round-trips through a pipe to a child and back",
                        "[pipe][roundtrip]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        test::with_sendable_samples<C>([]<std::size_t... I>() {
            using Cs = std::tuple<typename C::template connection<test::sample_t<I>>...>;
            auto pipes = std::make_tuple(C::template pipe<test::sample_t<I>>()...);
            auto ends = [&](auto end) { return std::apply([&](auto&... p) { return Cs(std::move(end(p))...); }, pipes); };
            Cs mine = ends([](auto& p) -> auto& { return p.first; });
            Cs theirs = ends([](auto& p) -> auto& { return p.second; });
            // The child compares each value it gets with its own copy, echoes it, and exits
            // with 1 + the position of the first that differed (0: none).
            test::process_t<Ctx> echo(
                [](Cs theirs) {
                    int wrong = 0;
                    test::for_each_sample_at<I...>([&]<std::size_t J, std::size_t K>() {
                        auto got = std::get<J>(theirs).recv();
                        std::get<J>(theirs).send(got);
                        if (wrong == 0 && !(got == test::sample<K>())) wrong = static_cast<int>(J) + 1;
                    });
                    std::_Exit(wrong);
                },
                theirs);
            echo.start();
            std::apply([](auto&... c) { (..., c.close()); }, theirs);
            test::for_each_sample_at<I...>([&]<std::size_t J, std::size_t K>() {
                const auto v = test::sample<K>();
                INFO("sample " << K);
                std::get<J>(mine).send(v);
                CHECK(std::get<J>(mine).recv() == v);
            });
            echo.join();
            CHECK(echo.exitcode() == 0);
        });
    });
}

TEMPLATE_LIST_TEST_CASE("recv raises eof_error once every other holder has closed its end", "[pipe][eof]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        for (bool duplex : {true, false}) {
            auto [reader, writer] = C::template pipe<int>(duplex);
            test::process_t<Ctx> child(
                [](typename C::template connection<int> w) {
                    for (int i = 0; i < 3; ++i) w.send(i);
                    // no close: the end closes when the process exits
                },
                writer);
            child.start();
            writer.close(); // as in Python, the parent closes the end it handed over
            for (int i = 0; i < 3; ++i) CHECK(reader.recv() == i);
            CHECK_THROWS_AS(reader.recv(), eof_error);
            CHECK(reader.poll()); // at end of file, poll says a recv would not block
            child.join();
            CHECK(child.exitcode() == 0);
            reader.close();
            CHECK(reader.closed());
            CHECK_THROWS_WITH(reader.recv(), "multiproc: handle is closed: Bad file descriptor");
            CHECK_THROWS_AS(reader.recv(), os_error); // (Python: OSError)
        }
    });
}

TEMPLATE_LIST_TEST_CASE("a child given one end of a pipe holds no copy of the other end", "[pipe][eof][adopt]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using conn = typename C::template connection<int>;
        auto ends = C::template pipe<int>();
        auto& parent_end = ends.first;
        auto& child_end = ends.second; // (plain references: clang 14 cannot capture structured bindings)
        auto child = [&] {
            if constexpr (test::inherits_memory<Ctx>) {
                // Captured by reference, the parent's end is visible to a forked child: it must
                // be closed there.
                return test::process_t<Ctx>(
                    [&parent_end](conn c) {
                        c.send(parent_end.closed() ? 1 : 0);
                        exit_on_eof(c);
                    },
                    child_end);
            } else {
                // A spawned child has no copy of the parent's memory, so no end of its own to see
                // closed: it says 1, and exit_on_eof checks that no descriptor of it came along.
                return test::process_t<Ctx>(
                    [](conn c) {
                        c.send(1);
                        exit_on_eof(c);
                    },
                    child_end);
            }
        }();
        child.start();
        child_end.close();
        CHECK(parent_end.recv() == 1); // the peer is closed in the child
        CHECK_FALSE(parent_end.closed()); // untouched in the parent
        parent_end.close();
        child.join();
        CHECK(child.exitcode() == 0);

        // Both ends given to the same child: it keeps both.
        auto [a, b] = C::template pipe<int>();
        test::process_t<Ctx> both(
            [](conn x, conn y) {
                x.send(5);
                std::_Exit(y.recv() == 5 && !x.closed() && !y.closed() ? 0 : 1);
            },
            a, b);
        both.start();
        both.join();
        CHECK(both.exitcode() == 0);
    });
}

TEMPLATE_LIST_TEST_CASE("poll waits at most its timeout, and returns as soon as a message is there",
                        "[pipe][timeout]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        auto [a, b] = C::template pipe<int>();
        CHECK_FALSE(a.poll());
        auto t0 = std::chrono::steady_clock::now();
        CHECK_FALSE(a.poll(40ms));
        CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
        test::gate gate;
        test::process_t<Ctx> p(
            [](test::fd_arg g, typename C::template connection<int> c) {
                g.wait_eof();
                c.send(1);
            },
            gate.end(), b);
        p.start();
        gate.release();
        CHECK(a.poll(30s));
        CHECK(a.poll(std::nullopt));
        CHECK(a.recv() == 1);
        p.join();
        CHECK(p.exitcode() == 0);
    });
}

TEMPLATE_LIST_TEST_CASE("send_bytes, recv_bytes and recv_bytes_into move raw messages", "[pipe][bytes]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using conn = typename C::template connection<int>;
        auto [a, b] = C::template pipe<int>();
        auto hello = bytes_of("hello, world");
        b.send_bytes(hello);
        b.send_bytes(hello, 7);
        b.send_bytes(hello, 0, 5);
        b.send_bytes({});
        CHECK(string_of(a.recv_bytes()) == "hello, world");
        CHECK(string_of(a.recv_bytes()) == "world");
        std::vector<std::byte> buf(16, std::byte{'.'});
        CHECK(a.recv_bytes_into(buf, 3) == 5);
        CHECK(string_of(buf) == "...hello........");
        CHECK(a.recv_bytes().empty());
        CHECK_THROWS_AS(b.send_bytes(hello, 20), value_error);
        CHECK_THROWS_AS(b.send_bytes(hello, 5, 10), value_error);

        // Too long for maxlength: os_error, and the connection goes on.
        b.send_bytes(hello);
        b.send(42);
        try {
            (void)a.recv_bytes(4);
            FAIL("recv_bytes(4) should have thrown");
        } catch (const os_error& e) {
            CHECK(e.code().value() == EMSGSIZE);
        }
        CHECK(a.recv() == 42);

        // Too long for the buffer: buffer_too_short carries the whole message.
        b.send_bytes(hello);
        try {
            (void)a.recv_bytes_into(buf, 10);
            FAIL("recv_bytes_into should have thrown");
        } catch (const buffer_too_short& e) {
            CHECK(string_of(e.message()) == "hello, world");
        }

        // A message of many chunks, sent by a child while we receive: into a buffer at an
        // offset (shm gathers it there directly), then into one too small for it.
        const std::vector<std::byte> big = many_chunks();
        test::process_t<Ctx> sender(
            [](conn b) {
                const auto big = many_chunks();
                b.send_bytes(big);
                b.send_bytes(big);
            },
            b);
        sender.start();
        std::vector<std::byte> into(big.size() + 10, std::byte{'.'});
        CHECK(a.recv_bytes_into(into, 10) == big.size());
        CHECK(std::equal(big.begin(), big.end(), into.begin() + 10));
        CHECK(into[9] == std::byte{'.'});
        try {
            (void)a.recv_bytes_into(into, 11);
            FAIL("recv_bytes_into should have thrown");
        } catch (const buffer_too_short& e) {
            CHECK(e.message() == big);
        }
        sender.join();
        CHECK(sender.exitcode() == 0);
    });
}

#if MULTIPROC_TEST_ONCE // (no process started)
TEMPLATE_LIST_TEST_CASE("a one-way pipe: the first end only receives, the second only sends", "[pipe][duplex]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto [r, w] = C::template pipe<int>(false);
    CHECK(r.readable());
    CHECK_FALSE(r.writable());
    CHECK(w.writable());
    CHECK_FALSE(w.readable());
    CHECK_THROWS_WITH(r.send(1), "multiproc: connection is read-only: Bad file descriptor");
    CHECK_THROWS_WITH(w.recv(), "multiproc: connection is write-only: Bad file descriptor");
    CHECK_THROWS_AS(r.send(1), os_error); // (Python: OSError)
    CHECK_THROWS_AS(w.recv(), os_error);
    w.send(3);
    CHECK(r.recv() == 3);
}
#endif

#if MULTIPROC_TEST_ONCE // (no process started)
TEMPLATE_LIST_TEST_CASE("fileno is a descriptor that polls readable when a message is there", "[pipe][fileno]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto [a, b] = C::template pipe<int>();
    if constexpr (std::is_same_v<typename C::transport, transport::shm>) {
        CHECK_THROWS_AS(a.fileno(), value_error);
    } else {
        pollfd p{a.fileno(), POLLIN, 0};
        CHECK(::poll(&p, 1, 0) == 0);
        b.send(1);
        CHECK(::poll(&p, 1, 10000) == 1);
        CHECK(a.recv() == 1);
    }
}
#endif

#if MULTIPROC_TEST_ONCE // (no process started)
TEMPLATE_LIST_TEST_CASE("sending to a pipe whose every receiver is closed is an os_error, not a SIGPIPE death",
                        "[pipe][epipe]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto [a, b] = C::template pipe<int>(false, 64 * 1024);
    a.close();
    try {
        // shm notices within its liveness check once the ring is full; kernel streams at once.
        for (int i = 0; i < 1000000; ++i) b.send(i);
        FAIL("send should have failed");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EPIPE);
    }
}
#endif

#if MULTIPROC_TEST_ONCE && MULTIPROC_TEST_PART_ONCE // (no process started, over no combination)
namespace {
bool sigpipe_pending() {
    sigset_t s;
    sigemptyset(&s);
    REQUIRE(sigpending(&s) == 0);
    return sigismember(&s, SIGPIPE) == 1;
}
bool sigpipe_blocked() {
    sigset_t s;
    REQUIRE(pthread_sigmask(SIG_BLOCK, nullptr, &s) == 0);
    return sigismember(&s, SIGPIPE) == 1;
}
/// Sends to a pipe whose reader is closed: EPIPE, with SIGPIPE at its default action.
void send_to_no_reader() {
    auto [r, w] = multiproc::pipe<int, transport::pipe>(false);
    r.close();
    try {
        w.send(1);
        FAIL("send should have failed");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EPIPE);
    }
}
} // namespace

// Issue 20: a pipe's send is one pwritev2 with RWF_NOSIGNAL where the kernel takes it
// (Linux 6.18), else a writev with SIGPIPE blocked around it (two or more system calls more);
// either way no SIGPIPE reaches the program, a thread's mask is left as it was, and a
// SIGPIPE the thread had pending before is still pending after.
TEST_CASE("a send to a pipe with no reader raises no SIGPIPE, with or without RWF_NOSIGNAL, and keeps one pending",
          "[pipe][epipe]") {
    test::leak_check leaks;
    namespace sys = detail::sys;
    REQUIRE(sys::nosignal_writes.load() == 0);
    // What this kernel does with the flag, asked directly (a pipe with a reader).
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    char byte = 'x';
    iovec v{&byte, 1};
    const bool kernel_takes_it = ::pwritev2(fds[1], &v, 1, -1, sys::rwf_nosignal) == 1;
    const bool refused = !kernel_takes_it && errno == EOPNOTSUPP;
    ::close(fds[0]);
    ::close(fds[1]);
    REQUIRE((kernel_takes_it || refused));
    struct sigaction dfl {}, old{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    REQUIRE(::sigaction(SIGPIPE, &dfl, &old) == 0); // a SIGPIPE would end this program
    for (int way : {0, -1}) {
        INFO((way == 0 ? "RWF_NOSIGNAL where the kernel takes it" : "SIGPIPE blocked around the write"));
        sys::nosignal_writes.store(way);
        // Not blocked: EPIPE, nothing pending, still not blocked.
        send_to_no_reader();
        CHECK(sys::nosignal_writes.load() == (way == 0 && refused ? -1 : way));
        CHECK_FALSE(sigpipe_pending());
        CHECK_FALSE(sigpipe_blocked());
        // Blocked by the thread, none pending: none after, still blocked.
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        REQUIRE(pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr) == 0);
        send_to_no_reader();
        CHECK_FALSE(sigpipe_pending());
        CHECK(sigpipe_blocked());
        // Blocked, with one of the thread's own pending before: still pending after.
        REQUIRE(pthread_kill(pthread_self(), SIGPIPE) == 0);
        REQUIRE(sigpipe_pending());
        send_to_no_reader();
        CHECK(sigpipe_pending());
        CHECK(sigpipe_blocked());
        timespec zero{};
        CHECK(sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE);
        CHECK_FALSE(sigpipe_pending());
        REQUIRE(pthread_sigmask(SIG_UNBLOCK, &pipe_only, nullptr) == 0);
    }
    sys::nosignal_writes.store(0);
    REQUIRE(::sigaction(SIGPIPE, &old, nullptr) == 0);
}
#endif

#if MULTIPROC_TEST_ONCE // (no process started)
// From an outside trial (the same as the queue's, tests/ipc/queue.cpp): a send of several
// chunks after such a message had passed waited for the receiver, with the ring empty.
TEST_CASE("shm: a message of several chunks is sent at once into an empty ring, whatever passed before",
          "[pipe][large][shm]") {
    test::leak_check leaks;
    auto [a, b] = multiproc::pipe<std::string, transport::shm>(true);
    for (const std::size_t first : {std::size_t{65536}, std::size_t{70000}, std::size_t{1} << 20}) {
        INFO(first << " bytes first");
        b.send(std::string(first, 'a'));
        CHECK(a.recv().size() == first);
        b.send(std::string(200000, 'b')); // nobody is receiving: waited for ever
        CHECK(a.recv().size() == 200000);
    }
}
#endif

TEMPLATE_LIST_TEST_CASE("64 MiB messages pass whole through a pipe, larger than its buffer", "[pipe][large]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        constexpr std::size_t size = large_size;
        constexpr bool typed = C::template can<std::vector<std::uint8_t>>;
        using T = std::conditional_t<typed, std::vector<std::uint8_t>, int>; // bitwise: bytes only
        auto [a, b] = C::template pipe<T>(true, 1 << 20);
        test::process_t<Ctx> p(
            [](typename C::template connection<T> c) {
                std::vector<std::byte> big(size);
                for (std::size_t i = 0; i < size; ++i) big[i] = large_pattern(i);
                c.send_bytes(big);
                if constexpr (typed) {
                    std::vector<std::uint8_t> v(size);
                    std::memcpy(v.data(), big.data(), size);
                    c.send(v);
                }
            },
            b);
        p.start();
        b.close();
        auto got = a.recv_bytes();
        REQUIRE(got.size() == size);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < size; ++i) bad += got[i] != large_pattern(i);
        CHECK(bad == 0);
        if constexpr (typed) {
            auto v = a.recv();
            REQUIRE(v.size() == size);
            CHECK(std::memcmp(v.data(), got.data(), size) == 0);
        }
        p.join();
        CHECK(p.exitcode() == 0);
    });
}

#if MULTIPROC_TEST_ONCE // (no process started: a thread sends)
namespace {
/// A typed value's bytes, different for each size and position.
template <class E>
std::vector<E> typed_pattern(std::size_t n) {
    std::vector<E> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<E>((i + n) * 2654435761U >> 7);
    return v;
}
/// Sends every value of `values` from a thread through `out`, and checks that `in`
/// receives each as it was sent. What a send raised is raised here once the thread is
/// joined (the sender closes its end then, so that the receiver sees end of file instead
/// of waiting).
template <class Conn, class T>
void round_trip(Conn in, Conn out, const std::vector<T>& values) {
    std::exception_ptr failed;
    std::thread sender([&, out]() mutable {
        try {
            for (const T& v : values) out.send(v);
        } catch (...) {
            failed = std::current_exception();
            out.close();
        }
    });
    try {
        for (std::size_t i = 0; i < values.size(); ++i) {
            INFO("value " << i);
            const T got = in.recv();
            CHECK((got == values[i])); // (the bool alone: not 64 MiB of elements printed)
        }
    } catch (...) {
        sender.join();
        if (failed) std::rethrow_exception(failed);
        throw;
    }
    sender.join();
    if (failed) std::rethrow_exception(failed);
}
} // namespace

TEMPLATE_LIST_TEST_CASE("typed vectors of plain data round-trip exactly at every size around the frame's head, the "
                        "gathered blocks, the chunks and the receive steps",
                        "[pipe][large][typed]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::size_t kib = 1 << 10, mib = 1 << 20;
    const std::vector<std::size_t> sizes = {0,          1,           103,         104,        105,      4096,
                                            64 * kib - 1, 64 * kib, 64 * kib + 1, mib - 64, mib - 32, mib,
                                            mib + 1,    4 * mib - 9, 4 * mib - 8, 4 * mib,  4 * mib + 1, 64 * mib + 3};
    auto vectors_of = [&]<class E>() {
        std::vector<std::vector<E>> values;
        for (std::size_t n : sizes) values.push_back(typed_pattern<E>(n / sizeof(E)));
        auto [a, b] = C::template pipe<std::vector<E>>(true, mib);
        round_trip(a, b, values);
    };
    SECTION("bytes") { vectors_of.template operator()<std::uint8_t>(); }
    SECTION("32-bit integers") { vectors_of.template operator()<std::int32_t>(); }
}

TEMPLATE_LIST_TEST_CASE("a value of many large blocks between small fields round-trips exactly, more blocks than "
                        "one gathered write takes",
                        "[pipe][large][typed]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    // 1030 blocks of 64 KiB, each after its 8-byte count: over 2000 pieces, more than
    // IOV_MAX (1024); and a string and a vector of integers around them.
    using T = std::tuple<std::string, std::vector<std::vector<std::uint8_t>>, std::vector<std::int64_t>, bool>;
    T value;
    std::get<0>(value) = std::string(200 << 10, 'x');
    for (std::size_t i = 0; i < 1030; ++i) std::get<1>(value).push_back(typed_pattern<std::uint8_t>((64 << 10) + i % 3));
    std::get<2>(value) = typed_pattern<std::int64_t>(100000);
    std::get<3>(value) = true;
    auto [a, b] = C::template pipe<T>(true, 1 << 20);
    round_trip(a, b, std::vector<T>{value, T{}, value});
}
#endif

#if MULTIPROC_TEST_PART_ONCE // (over no combination: built into one part)
TEST_CASE("shm: a sender killed mid-message leaves the ring usable for the other senders", "[pipe][kill][shm]") {
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using conn = basic_connection<std::string, transport::shm>;
        auto [r, w] = pipe<std::string, transport::shm>(false, 16 * 1024);
        test::process_t<Ctx> victim([](conn w) { w.send(std::string(1 << 20, 'v')); }, w); // far larger than the ring
        victim.start();
        CHECK(r.poll(30s)); // its first chunks are in the ring
        victim.kill();
        victim.join();
        CHECK(victim.exitcode() == -SIGKILL);
        test::process_t<Ctx> next([](conn w) { w.send("next"); }, w);
        next.start();
        w.close();
        CHECK(r.recv() == "next"); // the dead sender's chunks are dropped
        next.join();
        CHECK_THROWS_AS(r.recv(), eof_error);
    });
}
#endif

TEMPLATE_LIST_TEST_CASE("a child that polls and exits leaves the message for the parent to receive",
                        "[pipe][poll][sequential]", test::transports) {
    // One end used by one process after another, as CPython allows: a process that only
    // polls reads nothing, so the message is still there when the parent receives.
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using conn = typename C::template connection<std::string>;
        auto [r, w] = C::template pipe<std::string>(false);
        w.send("polled, not taken");
        test::process_t<Ctx> poller([](conn r) { std::_Exit(r.poll(30s) ? 0 : 1); }, r);
        poller.start();
        poller.join();
        CHECK(poller.exitcode() == 0);
        w.close();
        try {
            CHECK(r.recv() == "polled, not taken");
        } catch (const eof_error& e) {
            FAIL("the message left with the child that polled: " << e.what());
        }
    });
}

TEMPLATE_LIST_TEST_CASE("a child that receives one message and exits leaves the next for the parent",
                        "[pipe][sequential]", test::transports) {
    // Receiving reads that message and no byte past it: the next ones stay in the pipe.
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using conn = typename C::template connection<std::string>;
        auto [r, w] = C::template pipe<std::string>(false);
        // A sender child, as the third message may be larger than the pipe's buffer.
        test::process_t<Ctx> sender(
            [](conn w) {
                w.send(std::string(1000, 'a')); // longer than a frame's first read
                w.send("second");
                w.send(std::string(3 << 20, 'c')); // several chunks on shm
                w.send("fourth");
            },
            w);
        sender.start();
        w.close();
        // Three children in turn each receive one message, and exit.
        for (const std::string& want : {std::string(1000, 'a'), std::string("second"), std::string(3 << 20, 'c')}) {
            test::process_t<Ctx> taker([](conn r, std::size_t size) { std::_Exit(r.recv().size() == size ? 0 : 1); }, r,
                                       want.size());
            taker.start();
            taker.join();
            CHECK(taker.exitcode() == 0);
        }
        try {
            CHECK(r.recv() == "fourth");
        } catch (const eof_error& e) {
            FAIL("the last message left with a child that received the one before: " << e.what());
        }
        sender.join();
        CHECK(sender.exitcode() == 0);
        CHECK_THROWS_AS(r.recv(), eof_error);
    });
}
