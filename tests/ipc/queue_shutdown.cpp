// Queue.shutdown (Python 3.13) over every transport, and across processes under every start
// method: puts refused, gets draining then refused (at once when immediate), the try_ forms
// reporting it, and waits in other processes woken by it.
#include "support/support.hpp"

#include <multiproc/queue.hpp>

#include <fstream>
#include <sched.h>
#include <tuple>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

using transports = std::tuple<transport::pipe, transport::socketpair, transport::shm>;

/// What a child reports: the get or put it was blocked in ended with queue_shut_down.
constexpr int raised_shut_down = 7;

/// The state letter of process `pid` (R, S, ...), or 0 once it is gone.
char process_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return 0;
    auto rp = stat.rfind(')');
    return rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : 0;
}

/// Waits until the child, having said it is about to wait in the queue, sleeps there.
template <class P>
void until_sleeping(P& p) {
    pid_t pid = *p.pid();
    while (process_state(pid) != 'S') sched_yield();
}

template <class F>
int shut_down_code(F&& f) {
    try {
        f();
    } catch (const queue_shut_down&) {
        return raised_shut_down;
    } catch (...) {
        return 3;
    }
    return 4;
}

/// Starts `target(q, ready)` in a child, waits until it has said so on `ready` and sleeps
/// (in its put or get on `q`), shuts `q` down, and returns the child's exit code.
template <class Ctx, class Q, class F>
int exit_after_shutdown(Q q, F target) {
    Q ready;
    test::process_t<Ctx> p(target, q, ready);
    p.start();
    REQUIRE(ready.get(30s) == 1);
    until_sleeping(p);
    q.shutdown();
    p.join();
    REQUIRE(p.exitcode().has_value());
    return *p.exitcode();
}

} // namespace

TEMPLATE_LIST_TEST_CASE("shutdown: puts raise, gets drain what is left and then raise, and the try_ forms report it",
                        "[queue][shutdown]", transports) {
    basic_queue<int, TestType> q;
    q.put(1);
    q.put(2);
    q.put(3);
    CHECK_FALSE(q.is_shutdown());
    q.shutdown();
    CHECK(q.is_shutdown());
    CHECK_THROWS_AS(q.put(4), queue_shut_down);
    CHECK_THROWS_AS(q.put(4, 10s), queue_shut_down);
    CHECK_THROWS_AS(q.put_nowait(4), queue_shut_down);
    auto tp = q.try_put(4);
    REQUIRE_FALSE(tp);
    CHECK(tp.error().code() == errc::queue_shut_down);
    CHECK(std::string(tp.error().what()) == "multiproc: queue is shut down");
    CHECK(q.qsize() == 3);
    CHECK(q.get() == 1);
    CHECK(q.get_nowait() == 2);
    auto tg = q.try_get(10s);
    REQUIRE(tg);
    CHECK(*tg == 3);
    // Empty and shut down: every get raises at once instead of waiting.
    CHECK_THROWS_AS(q.get(), queue_shut_down);
    CHECK_THROWS_AS(q.get(10s), queue_shut_down);
    CHECK_THROWS_AS(q.get_nowait(), queue_shut_down);
    auto te = q.try_get();
    REQUIRE_FALSE(te);
    CHECK(te.error().code() == errc::queue_shut_down);
    q.shutdown(); // twice: harmless, as in Python
    CHECK(q.is_shutdown());
    CHECK_THROWS_AS(q.get_nowait(), queue_shut_down);
    CHECK(q.qsize() == 0);
}

TEMPLATE_LIST_TEST_CASE("shutdown(immediate): what is left is discarded, gets raise at once, join returns",
                        "[queue][shutdown]", transports) {
    basic_joinable_queue<int, TestType> q(2); // bounded: the discarded messages free their slots
    q.put(1);
    q.put(2);
    CHECK(q.full());
    CHECK(q.get() == 1);
    q.task_done();
    q.shutdown(true);
    CHECK(q.qsize() == 0);
    CHECK(q.empty());
    CHECK_THROWS_AS(q.get_nowait(), queue_shut_down);
    CHECK_THROWS_AS(q.put(3), queue_shut_down);
    q.join(); // the discarded message counts as done
    CHECK_THROWS_AS(q.task_done(), value_error);

    // A plain shutdown, then an immediate one: the second discards what the first left.
    basic_queue<int, TestType> r;
    r.put(5);
    r.put(6);
    r.shutdown();
    r.shutdown(true);
    CHECK(r.qsize() == 0);
    CHECK_THROWS_AS(r.get_nowait(), queue_shut_down);
    r.shutdown(); // after an immediate one, a plain one changes nothing
    CHECK_THROWS_AS(r.get_nowait(), queue_shut_down);
}

TEMPLATE_LIST_TEST_CASE("shutdown wakes a get blocked in another process, which raises queue_shut_down",
                        "[queue][shutdown]", transports) {
    test::for_each_start([]<class Ctx>() {
        using Q = basic_queue<int, TestType>;
        CHECK(exit_after_shutdown<Ctx>(Q(), [](Q q, Q ready) {
                  ready.put(1);
                  std::_Exit(shut_down_code([&] { (void)q.get(); }));
              }) == raised_shut_down);
    });
}

TEMPLATE_LIST_TEST_CASE("shutdown wakes a put blocked in another process: on a full bounded queue, on a full buffer",
                        "[queue][shutdown]", transports) {
    test::for_each_start([]<class Ctx>() {
        using Q = basic_queue<int, TestType>;
        for (bool bounded : {true, false}) {
            INFO("bounded: " << bounded);
            // Unbounded with the smallest buffer: filled until put_nowait finds no room.
            Q q(bounded ? 1 : 0, bounded ? 0 : 1);
            if (bounded)
                q.put(0);
            else
                for (int i = 0;; ++i)
                    if (!q.try_put_nowait(i)) break;
            CHECK(exit_after_shutdown<Ctx>(q, [](Q q, Q ready) {
                      ready.put(1);
                      std::_Exit(shut_down_code([&] { q.put(99); }));
                  }) == raised_shut_down);
            CHECK(q.get_nowait() == 0); // what was put before is still there
        }
    });
}

TEMPLATE_LIST_TEST_CASE("a shutdown made in a child holds for the parent, and a child's gets drain then raise",
                        "[queue][shutdown]", transports) {
    test::for_each_start([]<class Ctx>() {
        using Q = basic_queue<int, TestType>;
        Q q;
        q.put(10);
        q.put(11);
        test::process_t<Ctx> shutter([](Q q) { q.shutdown(); }, q);
        CHECK(test::exit_of(shutter) == 0);
        CHECK(q.is_shutdown());
        CHECK_THROWS_AS(q.put(12), queue_shut_down);
        test::process_t<Ctx> drainer(
            [](Q q) {
                if (q.get() != 10 || q.get() != 11) std::_Exit(2);
                std::_Exit(shut_down_code([&] { (void)q.get(); }));
            },
            q);
        CHECK(test::exit_of(drainer) == raised_shut_down);
    });
}

TEMPLATE_LIST_TEST_CASE("shutdown(immediate) in the parent: a child's get raises though messages were left",
                        "[queue][shutdown]", transports) {
    test::for_each_start([]<class Ctx>() {
        using Q = basic_queue<int, TestType>;
        Q q;
        q.put(1);
        q.shutdown(true);
        test::process_t<Ctx> p([](Q q) { std::_Exit(shut_down_code([&] { (void)q.get(); })); }, q);
        CHECK(test::exit_of(p) == raised_shut_down);
    });
}
