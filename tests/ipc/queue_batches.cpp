// put_many and get_many (issue 20): runs of messages under one lock hold and one write.
// Over every transport x serializer: order, counts, bounds, timeouts, shutdown, large
// values mixed with small ones, joinable accounting, and 4 producers x 4 consumers. The
// kills inside batches are in tests/ipc/kills.cpp.
#include "ipc/combos.hpp"

#include <multiproc/queue.hpp>

#include <sched.h>

#include <numeric>
#include <span>
#include <thread>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t pill = 0xffffffffU;

std::vector<test::tagged> tagged_run(std::uint32_t producer, std::uint32_t from, std::uint32_t n) {
    std::vector<test::tagged> v;
    for (std::uint32_t i = 0; i < n; ++i) v.push_back(test::make_tagged(producer, from + i));
    return v;
}
} // namespace

TEMPLATE_LIST_TEST_CASE("put_many and get_many pass messages in order, in runs of every size, between processes",
                        "[queue][batch]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::uint32_t n = 60000;
    typename C::template queue<test::tagged> q;
    process producer([&] {
        // Runs of 1, 7, 300 and 5000 values, and single puts in between.
        const std::uint32_t sizes[] = {1, 7, 300, 5000};
        std::uint32_t next = 0;
        for (std::size_t k = 0; next < n; ++k) {
            const std::uint32_t m = std::min(sizes[k % 4], n - next);
            const auto run = tagged_run(0, next, m);
            if (q.put_many(run) != m) std::_Exit(2);
            next += m;
            if (next < n) q.put(test::make_tagged(0, next++));
        }
        std::_Exit(0);
    });
    producer.start();
    std::uint32_t expect = 0;
    const std::size_t maxes[] = {1, 3, 64, 1000, 100000};
    for (std::size_t k = 0; expect < n; ++k) {
        std::vector<test::tagged> got;
        if (k % 5 == 4)
            got.push_back(q.get(30s));
        else
            got = q.get_many(maxes[k % 5], 30s);
        REQUIRE(!got.empty());
        REQUIRE(got.size() <= maxes[k % 5]);
        for (const auto& m : got) {
            REQUIRE(m.producer == 0);
            REQUIRE(m.seq == expect);
            REQUIRE(m.check == test::check_of(0, m.seq));
            ++expect;
        }
    }
    producer.join();
    CHECK(producer.exitcode() == 0);
    CHECK(q.qsize() == 0);
    CHECK_THROWS_AS(q.get_many_nowait(10), queue_empty);
}

TEMPLATE_LIST_TEST_CASE("get_many takes what is there without waiting for more, and qsize counts runs exactly",
                        "[queue][batch]", test::combos) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<test::tagged> q;
    CHECK(q.get_many(0).empty()); // at once, even on an empty queue
    CHECK(q.put_many(std::span<const test::tagged>()) == 0);
    CHECK(q.put_many(tagged_run(1, 0, 10)) == 10);
    CHECK(q.qsize() == 10);
    auto a = q.get_many(4);
    REQUIRE(a.size() == 4);
    CHECK(a[3].seq == 3);
    CHECK(q.qsize() == 6);
    auto b = q.get_many(100, 1s); // takes the six left and returns: no wait for a hundred
    REQUIRE(b.size() == 6);
    CHECK(b.front().seq == 4);
    CHECK(b.back().seq == 9);
    CHECK(q.qsize() == 0);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(q.get_many(5, 30ms), queue_empty);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK_THROWS_AS(q.get_many_nowait(5), queue_empty);
    q.close();
    CHECK_THROWS_AS(q.get_many(1), value_error);
    CHECK_THROWS_AS(q.put_many(tagged_run(1, 0, 1)), value_error);
}

namespace {
/// serialize::binary, except that the string "bad" does not decode (a corrupt message).
struct refuses_bad {
    using policy_kind = multiproc::kind::serialize;
    static constexpr std::string_view name = "refuses_bad";
    template <class T>
    static constexpr bool supports = serialize::binary::supports<T>;
    template <class T>
    static std::size_t encoded_size(const T& v) {
        return serialize::binary::encoded_size(v);
    }
    template <class T, byte_writer W>
    static void encode(const T& v, W& w) {
        serialize::binary::encode(v, w);
    }
    template <class T, byte_reader R>
    static T decode(R& r) {
        T v = serialize::binary::template decode<T>(r);
        if constexpr (std::is_same_v<T, std::string>)
            if (v == "bad") throw serialization_error("refuses_bad: cannot decode 'bad'");
        return v;
    }
};
} // namespace

TEST_CASE("get_many raises a message that does not decode only as the first of its call", "[queue][batch][errors]") {
    test::leak_check leaks;
    basic_queue<std::string, transport::pipe, refuses_bad> q;
    const std::string big(10000, 'x'); // several chunks: taken the general way, then the run goes on
    for (const char* front : {"small", "large"}) {
        INFO("in front: " << front);
        q.put(std::string(front) == "small" ? std::string("ok") : big);
        q.put("bad");
        q.put("after");
        auto got = q.get_many(10, 1s); // the one before "bad", and not "bad"
        REQUIRE(got.size() == 1);
        CHECK(got[0] == (std::string(front) == "small" ? std::string("ok") : big));
        CHECK_THROWS_WITH(q.get_many(10, 1s), Catch::Contains("cannot decode 'bad'")); // first of its call: taken, raised
        CHECK(q.get_many(10, 1s) == std::vector<std::string>{"after"});
        CHECK(q.qsize() == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("put_many carries large values among small ones, each whole and in order",
                        "[queue][batch][large]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<std::string> q;
    std::vector<std::string> values;
    for (int i = 0; i < 400; ++i)
        values.push_back(i % 50 == 7 ? std::string(300000 + i, static_cast<char>('a' + i % 26)) : std::to_string(i));
    process producer([&] { std::_Exit(q.put_many(values) == values.size() ? 0 : 2); });
    producer.start();
    std::size_t k = 0;
    while (k < values.size()) {
        auto got = q.get_many(33, 30s);
        for (const auto& s : got) {
            REQUIRE(k < values.size());
            REQUIRE(s == values[k]);
            ++k;
        }
    }
    producer.join();
    CHECK(producer.exitcode() == 0);
    CHECK(q.qsize() == 0);
}

TEMPLATE_LIST_TEST_CASE("a bounded queue: put_many stops at maxsize, returns how many went in, and get_many makes "
                        "room",
                        "[queue][batch][bounded]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template joinable_queue<int> q(10);
    std::vector<int> v(25);
    std::iota(v.begin(), v.end(), 0);
    CHECK(q.put_many(v, 30ms) == 10); // the deadline passed with ten in
    CHECK(q.full());
    CHECK_THROWS_AS(q.put_many(std::span<const int>(v).subspan(10), 0ms), queue_full); // none went in
    auto got = q.get_many(4);
    REQUIRE(got.size() == 4);
    CHECK(got[0] == 0);
    CHECK(q.put_many(std::span<const int>(v).subspan(10), 0ms) == 4);
    CHECK(q.qsize() == 10);
    // A producer blocked in put_many goes on as consumers make room.
    std::size_t late = 0;
    std::thread t([&] { late = q.put_many(std::span<const int>(v).subspan(14)); });
    std::vector<int> all(got.begin(), got.end());
    while (all.size() < 25) {
        auto more = q.get_many(3, 30s);
        all.insert(all.end(), more.begin(), more.end());
    }
    t.join();
    CHECK(late == 11);
    CHECK(all == v);
    for (std::size_t i = 0; i < all.size(); ++i) q.task_done();
    q.join(); // put_many counted every message as a task
    CHECK_THROWS_WITH(q.task_done(), "task_done() called too many times");
}

TEMPLATE_LIST_TEST_CASE("shutdown: get_many drains then raises, put_many raises, a put_many waiting for room returns "
                        "what went in",
                        "[queue][batch][shutdown]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    {
        typename C::template queue<int> q(5);
        std::vector<int> v(20, 7);
        std::size_t put = 99;
        std::thread t([&] { put = q.put_many(v); });
        while (q.qsize() < 5) sched_yield(); // the thread has filled the queue and waits for room
        q.shutdown();
        t.join();
        CHECK(put == 5);
        CHECK_THROWS_AS(q.put_many(v), queue_shut_down);
        CHECK(q.get_many(100).size() == 5);
        CHECK_THROWS_AS(q.get_many(100), queue_shut_down);
    }
    {
        typename C::template queue<int> q;
        CHECK(q.put_many(std::vector<int>{1, 2, 3}) == 3);
        q.shutdown(true);
        CHECK_THROWS_AS(q.get_many(10), queue_shut_down);
    }
}

TEMPLATE_LIST_TEST_CASE("4 producers and 4 consumers in runs: none lost, none duplicated, each producer's order kept",
                        "[queue][batch][mpmc]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::uint32_t producers = 4, consumers = 4, n = 100000;
    test::shared_array<std::uint32_t> seen(std::size_t{producers} * n);
    {
        typename C::template queue<test::tagged> q;
        std::vector<process> ps, cs;
        for (std::uint32_t p = 0; p < producers; ++p)
            ps.emplace_back([&, p] {
                for (std::uint32_t i = 0; i < n; i += 500) (void)q.put_many(tagged_run(p, i, std::min(500U, n - i)));
                std::_Exit(0);
            });
        for (std::uint32_t k = 0; k < consumers; ++k)
            cs.emplace_back([&] {
                std::vector<std::int64_t> last(producers, -1);
                for (std::uint32_t pills = 0;;) {
                    for (const auto& m : q.get_many(256)) {
                        if (m.producer == pill) {
                            ++pills;
                            continue;
                        }
                        if (m.producer >= producers || m.seq >= n || m.check != test::check_of(m.producer, m.seq))
                            std::_Exit(2);
                        if (static_cast<std::int64_t>(m.seq) <= last[m.producer]) std::_Exit(3);
                        last[m.producer] = m.seq;
                        seen[std::size_t{m.producer} * n + m.seq].fetch_add(1);
                    }
                    if (pills == 0) continue;
                    // A run may hold other consumers' pills too: give them back.
                    for (; pills > 1; --pills) q.put(test::tagged{pill, 0, 0});
                    std::_Exit(0);
                }
            });
        for (auto& c : cs) c.start();
        for (auto& p : ps) p.start();
        for (auto& p : ps) {
            p.join();
            CHECK(p.exitcode() == 0);
        }
        // After every producer is done: one pill per consumer, after everything else.
        for (std::uint32_t k = 0; k < consumers; ++k) q.put(test::tagged{pill, 0, 0});
        for (auto& c : cs) {
            c.join();
            CHECK(c.exitcode() == 0);
        }
    }
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < seen.size(); ++i) wrong += seen[i].load() != 1;
    CHECK(wrong == 0);
}
