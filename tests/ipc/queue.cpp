// Queues over every transport x serializer, each case under every start method (fork,
// spawn, forkserver, named in INFO): round trips between processes, FIFO order, timeouts,
// bounds, counts, task accounting, many producers and consumers, large messages. Children
// are lambdas without captures; the queues and shared counters they use are arguments.
#include "ipc/combos.hpp"

#include <multiproc/queue.hpp>

#include <cerrno>
#include <string>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t pill = 0xffffffffU; // a tagged message with this producer ends a consumer

template <class Q>
void put_pills(Q& q, int n) {
    for (int i = 0; i < n; ++i) q.put(test::tagged{pill, 0, 0});
}

/// A producer's loop: puts `n` tagged messages numbered 0 to n - 1.
template <class Q>
void produce_tagged(Q& q, std::uint32_t producer, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; ++i) q.put(test::make_tagged(producer, i));
}

/// A consumer's loop: takes tagged messages until a pill, checks each (check value, range,
/// order per producer) and counts it in `seen`. Exits 0, or a code naming the fault.
template <class Q>
[[noreturn]] void consume_tagged(Q& q, const raw_array<std::uint32_t>& seen, std::uint32_t producers,
                                 std::uint32_t per_producer) {
    std::vector<std::int64_t> last(producers, -1);
    for (;;) {
        test::tagged m = q.get();
        if (m.producer == pill) std::_Exit(0);
        if (m.producer >= producers || m.seq >= per_producer || m.check != test::check_of(m.producer, m.seq))
            std::_Exit(2);
        if (static_cast<std::int64_t>(m.seq) <= last[m.producer]) std::_Exit(3); // FIFO per producer
        last[m.producer] = m.seq;
        seen.atomic(std::size_t{m.producer} * per_producer + m.seq).fetch_add(1);
    }
}
} // namespace

TEMPLATE_LIST_TEST_CASE("4 producers and 4 consumers pass 100,000 messages each: none lost, none duplicated",
                        "[queue][mpmc]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template queue<test::tagged>;
        constexpr std::uint32_t producers = 4, consumers = 4, n = 100000;
        raw_array<std::uint32_t> seen(std::size_t{producers} * n); // counts in shared memory, zeroed
        {
            Q q;
            std::vector<test::process_t<Ctx>> ps, cs;
            for (std::uint32_t p = 0; p < producers; ++p)
                ps.emplace_back([](Q q, std::uint32_t p, std::uint32_t n) { produce_tagged(q, p, n); }, q, p, n);
            for (std::uint32_t k = 0; k < consumers; ++k)
                cs.emplace_back([](Q q, raw_array<std::uint32_t> seen, std::uint32_t producers, std::uint32_t n) {
                    consume_tagged(q, seen, producers, n);
                }, q, seen, producers, n);
            for (auto& c : cs) c.start();
            for (auto& p : ps) p.start();
            for (auto& p : ps) {
                p.join();
                CHECK(p.exitcode() == 0);
            }
            put_pills(q, consumers);
            for (auto& c : cs) {
                c.join();
                CHECK(c.exitcode() == 0);
            }
            CHECK(q.qsize() == 0);
            CHECK(q.empty());
        }
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < seen.size(); ++i) wrong += seen.load(i) != 1;
        CHECK(wrong == 0);
    });
}

// One child per combination echoes every value, each through its own pair of queues: every
// type crosses both ways, and the program starts one process where one per type made it slow
// to build and to run.
TEMPLATE_LIST_TEST_CASE("every supported value type round-trips through a queue between processes",
                        "[queue][roundtrip]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        test::with_sendable_samples<C>([]<std::size_t... I>() {
            using Qs = std::tuple<typename C::template queue<test::sample_t<I>>...>;
            Qs there, back;
            // The child compares each value it gets with its own copy, echoes it, and exits
            // with 1 + the position of the first that differed (0: none).
            test::process_t<Ctx> echo(
                [](Qs there, Qs back) {
                    int wrong = 0;
                    test::for_each_sample_at<I...>([&]<std::size_t J, std::size_t K>() {
                        auto got = std::get<J>(there).get();
                        std::get<J>(back).put(got);
                        if (wrong == 0 && !(got == test::sample<K>())) wrong = static_cast<int>(J) + 1;
                    });
                    std::_Exit(wrong);
                },
                there, back);
            echo.start();
            test::for_each_sample_at<I...>([&]<std::size_t J, std::size_t K>() {
                const auto v = test::sample<K>();
                INFO("sample " << K);
                std::get<J>(there).put(v);
                CHECK(std::get<J>(back).get() == v);
            });
            echo.join();
            CHECK(echo.exitcode() == 0);
        });
    });
}

TEMPLATE_LIST_TEST_CASE("messages of each producer arrive in the order it put them", "[queue][fifo]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        constexpr std::uint32_t producers = 3, n = 3000;
        using Q = typename C::template queue<test::tagged>;
        Q q;
        std::vector<test::process_t<Ctx>> ps;
        for (std::uint32_t p = 0; p < producers; ++p)
            ps.emplace_back([](Q q, std::uint32_t p, std::uint32_t n) { produce_tagged(q, p, n); }, q, p, n);
        for (auto& p : ps) p.start();
        std::vector<std::uint32_t> next(producers, 0);
        for (std::uint32_t i = 0; i < producers * n; ++i) {
            test::tagged m = q.get();
            REQUIRE(m.producer < producers);
            REQUIRE(m.seq == next[m.producer]);
            REQUIRE(m.check == test::check_of(m.producer, m.seq));
            ++next[m.producer];
        }
        for (auto& p : ps) p.join();
        CHECK(q.empty());
    });
}

TEMPLATE_LIST_TEST_CASE("get times out on an empty queue, and wakes as soon as a message is put",
                        "[queue][timeout]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template queue<int>;
        Q q;
        auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(q.get(50ms), queue_empty);
        CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
        CHECK_THROWS_AS(q.get_nowait(), queue_empty);
        CHECK_THROWS_AS(q.get(-1s), queue_empty); // a negative timeout does not wait
        test::gate gate;
        test::process_t<Ctx> p(
            [](test::fd_arg g, Q q) {
                g.wait_eof();
                q.put(7);
            },
            gate.end(), q);
        p.start();
        gate.release();
        CHECK(q.get(30s) == 7); // returns when the child puts, not after 30 s
        p.join();
        CHECK(p.exitcode() == 0);
    });
}

TEMPLATE_LIST_TEST_CASE("a bounded queue is full at maxsize: put times out, put_nowait fails, a get makes room",
                        "[queue][timeout][maxsize]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template queue<int>;
        Q q(2);
        CHECK_FALSE(q.full());
        q.put(1);
        q.put_nowait(2);
        CHECK(q.full());
        CHECK(q.qsize() == 2);
        CHECK_THROWS_AS(q.put_nowait(3), queue_full);
        auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(q.put(3, 40ms), queue_full);
        CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
        // A put blocked on a full queue goes through when another process takes a message.
        test::process_t<Ctx> taker([](Q q) { std::_Exit(q.get() == 1 ? 0 : 1); }, q);
        taker.start();
        q.put(3, 30s);
        taker.join();
        CHECK(taker.exitcode() == 0);
        CHECK(q.qsize() == 2);
        CHECK(q.get() == 2);
        CHECK(q.get() == 3);
        CHECK(q.empty());
        CHECK_FALSE(q.full());
    });
}

#if MULTIPROC_TEST_ONCE // (no process started)
TEMPLATE_LIST_TEST_CASE("an unbounded queue whose transport is full makes put wait, and loses nothing",
                        "[queue][timeout][full-transport]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<std::string> q(0, 16 * 1024); // a small buffer
    const std::string chunk(1000, 'c');
    int n = 0;
    for (;; ++n) {
        try {
            q.put(chunk + std::to_string(n), 20ms);
        } catch (const queue_full&) {
            break;
        }
        REQUIRE(n < 100000);
    }
    CHECK(n > 3);
    CHECK(q.qsize() == static_cast<std::size_t>(n));
    CHECK(q.get() == chunk + "0"); // room again
    q.put_nowait(chunk + std::to_string(n));
    for (int i = 1; i <= n; ++i) CHECK(q.get() == chunk + std::to_string(i));
    CHECK(q.empty());
}
#endif

TEMPLATE_LIST_TEST_CASE("qsize counts exactly, and a closed queue refuses put and get", "[queue][counts]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template queue<int>;
        Q q;
        CHECK(q.qsize() == 0);
        CHECK(q.empty());
        test::process_t<Ctx> p(
            [](Q q) {
                for (int i = 0; i < 100; ++i) q.put(i);
            },
            q);
        p.start();
        p.join(); // the producer has exited: everything it put is still there
        CHECK(q.qsize() == 100);
        for (int i = 0; i < 40; ++i) CHECK(q.get() == i);
        CHECK(q.qsize() == 60);
        auto copy = q;
        q.close();
        q.close(); // harmless
        CHECK_THROWS_WITH(q.put(1), "Queue is closed");
        CHECK_THROWS_WITH(q.get(), "Queue is closed");
        CHECK_THROWS_AS(q.get(), value_error);
        CHECK_THROWS_AS(copy.qsize(), value_error); // copies in this process are the same queue
        // empty() asks the closed handle, as Python's Queue.empty() polls its closed pipe
        try {
            (void)copy.empty();
            FAIL("empty() of a closed queue returned");
        } catch (const os_error& e) {
            CHECK(e.code().value() == EBADF);
            CHECK(std::string(e.what()).starts_with("multiproc: handle is closed"));
        }
    });
}

TEMPLATE_LIST_TEST_CASE("a queue closed by its producer keeps what was put for the others", "[queue][close]",
                        test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template queue<int>;
        Q q;
        test::process_t<Ctx> consumer(
            [](Q q) {
                int sum = 0;
                for (int i = 0; i < 10; ++i) sum += q.get();
                std::_Exit(sum == 45 ? 0 : 1);
            },
            q);
        for (int i = 0; i < 10; ++i) q.put(i);
        consumer.start();
        q.close();
        consumer.join();
        CHECK(consumer.exitcode() == 0);
    });
}

TEMPLATE_LIST_TEST_CASE("joinable_queue: join waits for every task_done, and one too many is an error",
                        "[queue][joinable]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using J = typename C::template joinable_queue<int>;
        using Q = typename C::template queue<int>;
        J tasks;
        Q results;
        const int consumers = 3, n = 300;
        std::vector<test::process_t<Ctx>> cs;
        for (int k = 0; k < consumers; ++k)
            cs.emplace_back(
                [](J tasks, Q results) {
                    for (;;) {
                        int t = tasks.get();
                        if (t < 0) {
                            tasks.task_done();
                            break;
                        }
                        results.put(t * 2);
                        tasks.task_done();
                    }
                },
                tasks, results);
        for (auto& c : cs) c.start();
        for (int i = 0; i < n; ++i) tasks.put(i);
        for (int k = 0; k < consumers; ++k) tasks.put(-1); // poison pills
        tasks.join();                                       // every task, pills included, is done
        CHECK(results.qsize() == static_cast<std::size_t>(n));
        long sum = 0;
        for (int i = 0; i < n; ++i) sum += results.get();
        CHECK(sum == 2L * n * (n - 1) / 2);
        for (auto& c : cs) {
            c.join();
            CHECK(c.exitcode() == 0);
        }
        CHECK_THROWS_WITH(tasks.task_done(), "task_done() called too many times");
        tasks.join(); // nothing unfinished: returns at once
        tasks.put(1);
        CHECK(tasks.get() == 1);
        tasks.task_done();
        CHECK_THROWS_AS(tasks.task_done(), value_error);
    });
}

TEMPLATE_LIST_TEST_CASE("simple_queue: put, get, empty and close", "[queue][simple]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        using Q = typename C::template simple_queue<test::point>;
        Q q;
        CHECK(q.empty());
        test::process_t<Ctx> p(
            [](Q q) {
                for (int i = 0; i < 50; ++i) q.put(test::point{i, -i});
            },
            q);
        p.start();
        for (int i = 0; i < 50; ++i) CHECK(q.get() == test::point{i, -i});
        p.join();
        CHECK(q.empty());
        CHECK(p.exitcode() == 0);
        auto copy = q;
        q.close();
        q.close(); // harmless, as Python's
        // Python's SimpleQueue uses its closed pipe ends: OSError "handle is closed"
        for (auto use : {+[](Q& x) { x.put(test::point{}); }, +[](Q& x) { (void)x.get(); },
                         +[](Q& x) { (void)x.empty(); }}) {
            try {
                use(copy);
                FAIL("a use of a closed simple_queue returned");
            } catch (const os_error& e) {
                CHECK(e.code().value() == EBADF);
                CHECK(std::string(e.what()).starts_with("multiproc: handle is closed"));
            }
        }
    });
}

namespace {
/// 64 MiB of trivially copyable data: what bitwise sends as one message.
struct big_block {
    std::array<std::uint8_t, std::size_t{64} << 20> bytes;
};
constexpr std::size_t big_size = 64 << 20;
std::uint8_t big_pattern(std::size_t i, int salt) {
    return static_cast<std::uint8_t>((i * 131 + i / 4099 + salt) & 0xff);
}
void fill_big(std::uint8_t* d, int salt) {
    for (std::size_t i = 0; i < big_size; ++i) d[i] = big_pattern(i, salt);
}
std::size_t count_bad(const std::uint8_t* p, int salt) {
    std::size_t bad = 0;
    for (std::size_t i = 0; i < big_size; ++i) bad += p[i] != big_pattern(i, salt);
    return bad;
}
} // namespace

#if MULTIPROC_TEST_ONCE // (no process started)
// From an outside trial: over shm, a message of several chunks after one such message had
// passed found the ring's end held by a pad (its first chunk went back to the front early)
// and waited for a reader: put_nowait raised queue_full on an empty queue, and put hung a
// program that would get the message itself.
TEMPLATE_LIST_TEST_CASE("a message of several chunks goes into an empty queue at once, whatever passed before",
                        "[queue][large]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    using Q = typename C::template queue<std::string>;
    Q q;
    // (Sizes every transport's buffer holds whole: a pipe's is its kernel buffer.)
    for (const std::size_t first : {std::size_t{65496}, std::size_t{65536}, std::size_t{70000}, std::size_t{200000}}) {
        for (const std::size_t second : {std::size_t{65537}, std::size_t{70000}, std::size_t{200000}}) {
            INFO(first << " bytes, then " << second);
            q.put(std::string(first, 'a'));
            CHECK(q.get().size() == first);
            CHECK_NOTHROW(q.put_nowait(std::string(second, 'b'))); // nobody is getting
            CHECK(q.qsize() == 1);
            CHECK(q.get().size() == second);
        }
    }
}
#endif

TEMPLATE_LIST_TEST_CASE("64 MiB messages pass whole through a queue", "[queue][large]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        // bitwise sends a 64 MiB struct; the others a 64 MiB vector.
        constexpr bool vec = C::template can<std::vector<std::uint8_t>>;
        using T = std::conditional_t<vec, std::vector<std::uint8_t>, big_block>;
        using Q = typename C::template queue<T>;
        Q q;
        test::process_t<Ctx> p(
            [](Q q) {
                for (int salt = 0; salt < 2; ++salt) {
                    if constexpr (vec) {
                        std::vector<std::uint8_t> big(big_size);
                        fill_big(big.data(), salt);
                        q.put(big);
                    } else {
                        auto big = std::make_unique<big_block>();
                        fill_big(big->bytes.data(), salt);
                        q.put(*big);
                    }
                }
            },
            q);
        p.start();
        for (int salt = 0; salt < 2; ++salt) {
            if constexpr (vec) {
                auto got = q.get();
                REQUIRE(got.size() == big_size);
                CHECK(count_bad(got.data(), salt) == 0);
            } else {
                std::size_t bad = 1;
                test::run_with_stack(std::size_t{256} << 20, [&] {
                    big_block got = q.get(); // returned by value: 64 MiB on this thread's stack
                    bad = count_bad(got.bytes.data(), salt);
                });
                CHECK(bad == 0);
            }
        }
        p.join();
        CHECK(p.exitcode() == 0);
        CHECK(q.empty());
    });
}
