// The Python 3.13/3.14 additions to the core objects (issue 17 item 5): process::interrupt()
// and ident(), parent_process() with join, sentinel and is_alive, lock::locked() and
// rlock::locked(), get_all_start_methods(); children under every start method.
#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/sync.hpp>

#include <fstream>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

using Q = queue<int>;

/// Waits until process `pid`, having said it is about to wait, sleeps.
void until_sleeping(pid_t pid) {
    for (;;) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
        std::string stat;
        if (!std::getline(in, stat)) return;
        auto rp = stat.rfind(')');
        if (rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == 'S') return;
        sched_yield();
    }
}

/// Whether `fd` is readable now.
bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

extern "C" void exit_five(int) { ::_exit(5); }

/// A child's body that waits for a signal: SIGINT's default action, or a handler that
/// leaves with code 5. (The test program's own handlers are not the default: set it.)
[[noreturn]] void wait_for_sigint(Q ready, bool handler) {
    struct sigaction sa {};
    sa.sa_handler = handler ? &exit_five : SIG_DFL;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ready.put(1);
    for (;;) ::pause();
}

} // namespace

TEMPLATE_TEST_CASE("interrupt() sends SIGINT: -2 under the default action, the handler's choice otherwise",
                   "[process][interrupt]", START_METHODS) {
    for (bool handler : {false, true}) {
        INFO("handler: " << handler);
        Q ready;
        test::process_t<TestType> p([](Q ready, bool handler) { wait_for_sigint(ready, handler); }, ready, handler);
        p.start();
        REQUIRE(ready.get(30s) == 1);
        until_sleeping(*p.pid());
        p.interrupt();
        p.join();
        CHECK(p.exitcode() == (handler ? 5 : -SIGINT));
        p.interrupt(); // reaped: nothing happens, as for terminate()
    }
    test::process_t<TestType> never([] {});
    CHECK_THROWS_AS(never.interrupt(), state_error); // not started, as for terminate()
}

TEMPLATE_TEST_CASE("ident() is pid(), for a child and for the current process", "[process][ident]", START_METHODS) {
    Q out;
    test::process_t<TestType> p([](Q out) { out.put(current_process().ident() == ::getpid() ? 1 : 2); }, out);
    CHECK_FALSE(p.ident().has_value());
    p.start();
    CHECK(p.ident() == p.pid());
    CHECK(out.get(30s) == 1);
    p.join();
    CHECK(current_process().ident() == ::getpid());
}

TEMPLATE_TEST_CASE("parent_process() in a child: alive, a sentinel not readable, join(timeout) returns, and "
                   "the current process has neither",
                   "[process][parent]", START_METHODS) {
    test::process_t<TestType> p([] {
        auto parent = parent_process();
        if (!parent) std::_Exit(2);
        if (!parent->is_alive()) std::_Exit(3);
        int s = parent->sentinel();
        if (s < 0 || parent->sentinel() != s || readable(s)) std::_Exit(4);
        parent->join(1ms); // the parent is alive: it times out and returns
        if (!parent->is_alive()) std::_Exit(5);
        try {
            current_process().join();
            std::_Exit(6);
        } catch (const state_error&) {
        }
        try {
            (void)current_process().sentinel();
            std::_Exit(7);
        } catch (const value_error&) {
        }
        std::_Exit(0);
    });
    CHECK(test::exit_of(p) == 0);
    CHECK_FALSE(parent_process().has_value()); // the main process has no parent
}

TEMPLATE_TEST_CASE("join() on parent_process() returns once the parent has ended: sentinel opened before, or after",
                   "[process][parent]", START_METHODS) {
    for (bool opened_before : {true, false}) {
        INFO("sentinel opened before the parent ends: " << opened_before);
        Q report, go;
        // The middle process starts the grandchild and leaves at once with _Exit (so that
        // it does not wait for its non-daemon child); the grandchild watches it end.
        test::process_t<TestType> middle(
            [](Q report, Q go, bool opened_before) {
                test::process_t<TestType> grandchild(
                    [](Q report, Q go, bool opened_before) {
                        auto parent = parent_process();
                        if (!parent) std::_Exit(1);
                        int s = -1;
                        if (opened_before) {
                            s = parent->sentinel();
                            report.put(0); // the middle process may end now
                            parent->join();
                        } else {
                            (void)go.get(); // the middle process has ended and been joined
                            parent->join();
                            s = parent->sentinel();
                        }
                        report.put(!parent->is_alive() && readable(s) ? 1 : 2);
                        std::_Exit(0);
                    },
                    report, go, opened_before);
                grandchild.start();
                if (opened_before) (void)go.get();
                std::_Exit(0);
            },
            report, go, opened_before);
        middle.start();
        if (opened_before) {
            REQUIRE(report.get(30s) == 0);
            go.put(1);
        }
        middle.join();
        CHECK(middle.exitcode() == 0);
        if (!opened_before) go.put(1);
        CHECK(report.get(30s) == 1);
    }
}

TEST_CASE("lock::locked() and rlock::locked() tell whether anyone holds them (Python 3.14)", "[sync][locked]") {
    lock l;
    CHECK_FALSE(l.locked());
    l.acquire();
    CHECK(l.locked());
    l.release();
    CHECK_FALSE(l.locked());

    rlock r;
    CHECK_FALSE(r.locked());
    r.acquire();
    r.acquire();
    CHECK(r.locked());
    r.release();
    CHECK(r.locked()); // still held at depth 1
    r.release();
    CHECK_FALSE(r.locked());
}

TEMPLATE_TEST_CASE("locked() sees a lock held by another process", "[sync][locked]", START_METHODS) {
    lock l;
    rlock r;
    Q ready, go;
    test::process_t<TestType> p(
        [](lock l, rlock r, Q ready, Q go) {
            l.acquire();
            r.acquire();
            ready.put(1);
            (void)go.get();
            r.release();
            l.release();
        },
        l, r, ready, go);
    p.start();
    REQUIRE(ready.get(30s) == 1);
    CHECK(l.locked());
    CHECK(r.locked());
    go.put(1);
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(l.locked());
    CHECK_FALSE(r.locked());
}

TEST_CASE("get_all_start_methods() names every start method, the default first", "[context][start_methods]") {
    constexpr auto all = get_all_start_methods();
    STATIC_REQUIRE(all.size() == 3);
    STATIC_REQUIRE(all[0] == context<>::start_method());
    STATIC_REQUIRE(all[0] == "fork");
    STATIC_REQUIRE(all[1] == context<start::spawn>::start_method());
    STATIC_REQUIRE(all[2] == context<start::forkserver>::start_method());
}
