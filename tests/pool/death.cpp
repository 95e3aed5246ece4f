// Workers that die in the middle of a task (SIGKILL, SIGSEGV, _exit): the task fails
// promptly with broken_pool naming the worker, how it ended and the task; the other tasks
// complete; the worker is replaced; nothing is leaked. CPython's Pool hangs forever here.
#include "pool/helpers.hpp"

#include <multiproc/context.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace multiproc;
using pooltest::pool_of;
using namespace std::chrono_literals;
using pooltest::square;

namespace {
int die_on(int x) {
    if (x == -9) ::raise(SIGKILL);
    if (x == -11) ::raise(SIGSEGV);
    if (x < 0) ::_exit(-x);
    return x * 10;
}

// Reports its pid and waits for a token; `how` < 0 dies as die_on does once released.
int report_wait_die(int report_fd, int token_fd, int how) {
    pooltest::say(report_fd, std::to_string(::getpid()));
    pooltest::take_token(token_fd);
    return die_on(how);
}

/// Runs `body` with a fresh pool, then checks that no worker and no descriptor is left
/// (the forkserver, started first if the pool uses one, is not the pool's).
template <class Pool = pool, class Body>
void without_leaks(int processes, Body body) {
    test::warm_up<context<typename Pool::policies::start>>();
    const pid_t server = test::forkserver_pid();
    auto fds = test::open_fds();
    {
        Pool p(processes);
        body(p);
    }
    auto kids = test::children_of(::getpid());
    kids.erase(std::remove(kids.begin(), kids.end(), server), kids.end());
    CHECK(kids.empty());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

// What a task may do to its worker's descriptors: close every one from 3 on, or put
// /dev/null in the place of each.
void close_all_from_3() { ::syscall(SYS_close_range, 3U, ~0U, 0U); }
void devnull_over_all_from_3() {
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    for (const auto& [fd, target] : test::open_fds())
        if (fd >= 3 && fd != null) ::dup2(null, fd);
    ::close(null);
}

/// Breaks the worker's descriptors, reports its pid to `reports`, waits for a token from
/// `tokens`, then returns `v`.
template <void (*Break)()>
int break_then_return(std::string reports, std::string tokens, int v) {
    Break();
    pooltest::say_to(reports, std::to_string(::getpid()));
    pooltest::take_token_from(tokens);
    return v;
}
/// As above, returning `n` bytes: more than the result ring holds.
template <void (*Break)()>
std::string break_then_return_big(std::string reports, std::string tokens, int n) {
    Break();
    pooltest::say_to(reports, std::to_string(::getpid()));
    pooltest::take_token_from(tokens);
    return std::string(static_cast<std::size_t>(n), 'x');
}

/// With a pool of one worker: a task breaks its worker's link and returns; nothing in this
/// process collects results meanwhile (the test waits on the worker's pid), so the worker
/// must wake the engine, finds its link gone, and leaves.
template <void (*Break)(), class Pool>
void tasks_that_break_the_link(Pool& p) {
    pooltest::named_pipe reports, tokens;
    auto r = p.apply_async(fn<&break_then_return<Break>>, reports.path(), tokens.path(), 42);
    const pid_t first = std::stoi(reports.line());
    tokens.release();
    CHECK(test::wait_exit(first)); // (a guard of 10 s: before, the worker stayed, its result unannounced)
    r.wait(10s);                   // (a guard against a hang; it is ready once the worker is gone)
    REQUIRE(r.ready());
    CHECK(r.get() == 42); // it published its result before it left: that stands
    const pid_t replacement = p.apply(fn<&pooltest::worker_pid>);
    CHECK(replacement != first);

    // A result bigger than the ring cannot be sent without waking the engine: the task
    // fails with broken_pool naming the cause.
    auto big = p.apply_async(fn<&break_then_return_big<Break>>, reports.path(), tokens.path(), 3 << 20);
    const pid_t second = std::stoi(reports.line());
    tokens.release();
    CHECK(test::wait_exit(second));
    big.wait(10s);
    REQUIRE(big.ready());
    CHECK_THROWS_WITH(big.get(), Catch::Matches("multiproc: (Fork|Spawn|ForkServer)PoolWorker-\\d+ \\(pid " + std::to_string(second) +
                                                "\\) lost its link to the pool \\(a task .* descriptor \\d+, its "
                                                "wake-up channel.*\\) while running task 0"));
    CHECK(p.map(fn<&square>, std::vector<int>{1, 2, 3}, 1) == std::vector<int>{1, 4, 9}); // and the pool goes on
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace

TEST_CASE("design 5.1: a worker killed by SIGKILL mid-task fails that task with broken_pool, promptly",
          "[pool][death][design5]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    without_leaks(2, [&](pool& p) {
        auto doomed = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 1);
        const pid_t victim = std::stoi(reports.line());
        auto others = p.map_async(square, std::vector<int>{1, 2, 3, 4, 5}); // run on the other worker
        CHECK(others.get() == std::vector<int>{1, 4, 9, 16, 25});
        auto t0 = std::chrono::steady_clock::now();
        REQUIRE(::kill(victim, SIGKILL) == 0);
        try {
            (void)doomed.get();
            FAIL("the task should have failed");
        } catch (const broken_pool& e) {
            CHECK(ms_since(t0) < 1000);
            CHECK(e.pid() == victim);
            CHECK(e.exitcode() == -SIGKILL);
            CHECK(e.signal() == SIGKILL);
            CHECK(e.task() == 0u);
            CHECK_THAT(std::string(e.what()),
                       Catch::Matchers::Matches("multiproc: (Fork|Spawn|ForkServer)PoolWorker-\\d+ \\(pid " + std::to_string(victim) +
                                                "\\) was killed by signal 9 \\(SIGKILL\\) while running task 0"));
        }
        // Replaced: two workers run at once again, neither of them the dead one.
        auto pids = pooltest::busy_workers(p, 2, tokens, reports);
        CHECK(pids.size() == 2);
        CHECK(pids.count(victim) == 0);
        CHECK(p.apply(square, 12) == 144);
    });
}

TEMPLATE_TEST_CASE("design 5.1: a worker that segfaults or calls _exit fails its task and is replaced",
                   "[pool][death][design5]", START_METHODS) {
    without_leaks<pool_of<TestType>>(2, [](pool_of<TestType>& p) {
        try {
            (void)p.apply(fn<&die_on>, -11);
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK(e.signal() == SIGSEGV);
            CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("was killed by signal 11 (SIGSEGV)"));
        }
        try {
            (void)p.apply(fn<&die_on>, -3);
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK(e.exitcode() == 3);
            CHECK_FALSE(e.signal().has_value());
            CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("exited with code 3 while running task 0"));
        }
        CHECK(p.apply(fn<&die_on>, 4) == 40);
    });
}

TEMPLATE_TEST_CASE("design 5.1: in a map, the lost task is named by its index and the rest complete",
                   "[pool][death][design5]", START_METHODS) {
    without_leaks<pool_of<TestType>>(2, [](pool_of<TestType>& p) {
        std::vector<int> xs{1, 2, 3, 4, 5, -9, 7, 8, 9, 10, 11, 12};
        try {
            (void)p.map(fn<&die_on>, xs, 4); // task 5 is in the middle of the second chunk
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK(e.task() == 5u);
        }
        // imap shows the others: every element but the lost one has its result.
        std::vector<std::string> got;
        auto v = p.imap(fn<&die_on>, xs, 4);
        for (auto it = v.begin(); it != v.end(); ++it) {
            try {
                got.push_back(std::to_string(*it));
            } catch (const broken_pool& e) {
                got.push_back("lost " + std::to_string(*e.task()));
            }
        }
        CHECK(got == std::vector<std::string>{"10", "20", "30", "40", "50", "lost 5", "70", "80", "90", "100", "110",
                                              "120"});
    });
}

TEMPLATE_TEST_CASE("a worker that dies on element k of a large chunk fails element k alone, and the chunk's others are "
                   "delivered", "[pool][death]", START_METHODS) {
    // One chunk of 5000 ints, run in place (no frame per value): the worker publishes only
    // the index of the element it starts, and that must still name the one it died on.
    without_leaks<pool_of<TestType>>(2, [](pool_of<TestType>& p) {
        constexpr std::size_t n = 5000, k = 3777;
        std::vector<int> xs(n);
        for (std::size_t i = 0; i < n; ++i) xs[i] = static_cast<int>(i);
        xs[k] = -9;
        try {
            (void)p.map(fn<&die_on>, xs, n);
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK(e.task() == k);
        }
        std::size_t delivered = 0, lost = 0, wrong = 0;
        auto v = p.imap(fn<&die_on>, xs, n);
        std::size_t i = 0;
        for (auto it = v.begin(); it != v.end(); ++it, ++i) {
            try {
                if (*it == xs[i] * 10) ++delivered;
                else ++wrong;
            } catch (const broken_pool& e) {
                CHECK(e.task() == k);
                CHECK(i == k);
                ++lost;
            }
        }
        CHECK(delivered == n - 1);
        CHECK(lost == 1);
        CHECK(wrong == 0);
    });
}

TEMPLATE_TEST_CASE("design 5.1: many deaths in a row never hang the pool, and leave no zombie or descriptor",
                   "[pool][death][design5]", START_METHODS) {
    without_leaks<pool_of<TestType>>(2, [](pool_of<TestType>& p) {
        std::vector<async_result<int>> rs;
        for (int i = 0; i < 20; ++i) rs.push_back(p.apply_async(fn<&die_on>, i % 2 ? -9 : i));
        int lost = 0, ok = 0;
        for (auto& r : rs) {
            try {
                (void)r.get();
                ++ok;
            } catch (const broken_pool&) {
                ++lost;
            }
        }
        CHECK(ok == 10);
        CHECK(lost == 10);
        CHECK(p.apply(fn<&square>, 3) == 9);
    });
}

TEST_CASE("worker_death::retry<N> runs the task again on a new worker, then fails it", "[pool][death][policy]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    without_leaks<basic_pool<worker_death::retry<2>>>(2, [&](auto& p) {
        // Dies twice (killed from outside), then succeeds on the third worker.
        auto r = p.apply_async(report_wait_die, reports.fd(), tokens.fd(), 5);
        for (int attempt = 0; attempt < 2; ++attempt) {
            pid_t pid = std::stoi(reports.line());
            REQUIRE(::kill(pid, SIGKILL) == 0);
        }
        std::stoi(reports.line()); // the third attempt has started
        tokens.release();
        CHECK(r.get() == 50);
        // A task that always kills its worker fails after 1 + 2 attempts.
        try {
            (void)p.apply(die_on, -9);
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("(its worker died on each of 3 attempts)"));
        }
        CHECK(p.apply(square, 6) == 36);
    });
}

namespace {
// A word every worker of a forked pool shares with the test: how many times die_once_on met
// its -9 (the first time it kills its worker).
std::atomic<int>* met_minus_nine = nullptr;
int die_once_on(int x) {
    if (x == -9) {
        if (met_minus_nine->fetch_add(1) == 0) ::raise(SIGKILL);
        return -90;
    }
    return x * 10;
}
} // namespace

TEST_CASE("a blocking map sends its input from the caller's vector: a worker killed in a chunk has that chunk and "
          "the ones queued behind it run again from there", "[pool][death][policy]") {
    // map() borrows a contiguous input of plain values (the chunks go from xs into the task
    // rings, with no copy made first); the units taken back from a dead worker are sent again
    // from xs. An odd chunksize of 4-byte ints makes every unit end in padding.
    void* word = ::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(word != MAP_FAILED);
    met_minus_nine = ::new (word) std::atomic<int>(0);
    constexpr std::size_t n = 200000, k = 123457;
    std::vector<int> xs(n);
    for (std::size_t i = 0; i < n; ++i) xs[i] = static_cast<int>(i);
    xs[k] = -9;
    without_leaks<basic_pool<worker_death::retry<1>>>(2, [&](auto& p) {
        const auto before = pooltest::worker_pids();
        const std::vector<int> out = p.map(die_once_on, xs, 4999);
        CHECK(met_minus_nine->load() == 2); // killed once, then run again on a new worker
        REQUIRE(out.size() == n);
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; ++i) wrong += out[i] != (i == k ? -90 : static_cast<int>(i) * 10);
        CHECK(wrong == 0);
        CHECK(pooltest::worker_pids() != before); // (the victim was replaced)
        CHECK(p.map(die_once_on, xs, 4999) == out); // and again, with no death
    });
    ::munmap(word, sizeof(std::atomic<int>));
}

namespace {
// A test of the engine's pacing (sys::call::pacing): held, every worker takes as many units
// as it may at once and none counts as running long; let go, the engine paces as always.
// Also counts the times the engine sent a withdrawn unit's borrowed elements as zeros.
namespace pacing {
std::atomic<bool> held{false};
std::atomic<int> zeros{0};
std::atomic<pid_t> owner{0};
int hook(detail::sys::call c) {
    if (::getpid() != owner.load()) return 0;
    if (c == detail::sys::call::pacing) return held.load() ? 1 : 0;
    if (c == detail::sys::call::zeros) zeros.fetch_add(1);
    return 0;
}
/// While alive: the hook is this process's, the pacing held; gone however the test ends.
struct holding {
    holding() {
        owner = ::getpid();
        held = true;
        zeros = 0;
        detail::sys::fault_hook = &hook;
    }
    holding(const holding&) = delete;
    holding& operator=(const holding&) = delete;
    ~holding() {
        detail::sys::fault_hook = nullptr;
        held = false;
    }
};
} // namespace pacing

// How many times each element of the map below ran (shared with the forked workers), and
// where the first element of each chunk says it started.
unsigned char* runs_of = nullptr;
int chunk_starts_fd = -1;
constexpr int rebalance_chunk = 100000; // 400,000 bytes of ints: a worker's 1 MiB task ring holds two
int count_run(int x) {
    std::atomic_ref<unsigned char>(runs_of[x]).fetch_add(1);
    if (x % rebalance_chunk == 0) pooltest::say(chunk_starts_fd, std::to_string(x));
    return x + 1;
}
} // namespace

TEST_CASE("a blocking map's chunks queued behind a blocked worker are taken back for the idle one, and what of "
          "them that worker was not yet sent goes as zeros after map has returned", "[pool][death][policy]") {
    // With the pacing held, the map's 8 chunks go out at once, in turn to each worker: at
    // least 3 land behind the task that blocks worker A, and the third of those does not fit
    // whole in A's task ring. Let go, A counts as stuck and the idle worker B takes them
    // back. map() then returns: its input, which the chunks borrow, is gone. Only when the
    // blocker is released can the engine send A the rest of that chunk: as zeros, which A
    // skips. (Reading the input there would read freed memory, or a null pointer.)
    constexpr int chunks = 8;
    constexpr std::size_t n = std::size_t{chunks} * rebalance_chunk;
    void* mem = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    runs_of = static_cast<unsigned char*>(mem);
    pooltest::tokens tokens;
    pooltest::reports reports, starts;
    chunk_starts_fd = starts.fd();
    pacing::holding hold;
    without_leaks(2, [&](pool& p) {
        const auto workers = pooltest::worker_pids();
        auto blocker = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 7);
        (void)reports.line(); // A runs it
        std::vector<int> out;
        std::string failed;
        std::thread caller([&] {
            try {
                std::vector<int> xs(n);
                for (std::size_t i = 0; i < n; ++i) xs[i] = static_cast<int>(i);
                out = p.map(count_run, xs, rebalance_chunk);
            } catch (const std::exception& e) {
                failed = e.what();
            }
        }); // (xs is freed as the thread ends)
        struct ending { // whatever fails below: the blocker let go, the caller joined
            pooltest::tokens& t;
            std::thread& c;
            bool released = false;
            ~ending() {
                if (!released) t.release();
                if (c.joinable()) c.join();
            }
        } end{tokens, caller};
        (void)starts.line(); // a chunk started: they were all given out, in one go under the pool's lock
        pacing::held = false;
        auto poke = p.apply_async(pooltest::square, 3); // the engine looks at the pacing again
        for (int i = 1; i < chunks; ++i) (void)starts.line(); // all ran, on B
        caller.join();
        CHECK(failed.empty());
        CHECK(out.size() == n);
        std::size_t wrong = out.size() == n ? 0 : 1;
        for (std::size_t i = 0; i < out.size(); ++i) wrong += out[i] != static_cast<int>(i) + 1;
        CHECK(wrong == 0);
        CHECK(pacing::zeros.load() == 0); // (A has not read on: no room for the rest yet)
        tokens.release();
        end.released = true;
        CHECK(blocker.get() == 7);
        CHECK(poke.get() == 9);
        // A runs a task only after it has read on past the skipped chunks, zeros and all: both
        // workers, the same two (A read its stream as sent, so it was not replaced).
        CHECK(pooltest::busy_workers(p, 2, tokens, reports) == workers);
        CHECK(pacing::zeros.load() > 0);
    });
    std::size_t not_once = 0;
    for (std::size_t i = 0; i < n; ++i) not_once += runs_of[i] != 1;
    CHECK(not_once == 0); // each element ran once: none of a withdrawn chunk also ran on A
    ::munmap(mem, n);
}

TEST_CASE("a worker killed while idle is replaced without failing anything", "[pool][death]") {
    without_leaks(2, [](pool& p) {
        auto before = pooltest::worker_pids(); // all started by the time the constructor returns
        REQUIRE(before.size() == 2);
        const pid_t victim = *before.begin();
        REQUIRE(::kill(victim, SIGKILL) == 0);
        REQUIRE(test::wait_exit(victim));
        auto ys = p.map(square, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}, 1);
        CHECK(ys == std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64});
    });
}

TEST_CASE("a worker reaped by someone else (SIGCHLD ignored) still fails its task clearly", "[pool][death]") {
    pooltest::tokens tokens;
    pooltest::reports reports;
    struct sigaction old {};
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGCHLD, &ign, &old) == 0); // the kernel now reaps children itself
    {
        pool p(1);
        auto r = p.apply_async(pooltest::report_then_wait, reports.fd(), tokens.fd(), 1);
        const pid_t victim = std::stoi(reports.line());
        REQUIRE(::kill(victim, SIGKILL) == 0);
        try {
            (void)r.get();
            FAIL("no broken_pool");
        } catch (const broken_pool& e) {
            CHECK(e.pid() == victim);
            CHECK_FALSE(e.exitcode().has_value());
            CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("is SIGCHLD ignored?") &&
                                                  Catch::Matchers::Contains("while running task 0"));
        }
        CHECK(p.apply(square, 3) == 9); // replaced
    }
    REQUIRE(::sigaction(SIGCHLD, &old, nullptr) == 0);
    CHECK(test::children_of(::getpid()).empty());
}

TEMPLATE_TEST_CASE("a task that closes its worker's descriptors never wedges the pool: the worker leaves and is "
                   "replaced", "[pool][death]", START_METHODS) {
    std::string text;
    {
        pooltest::stderr_capture err; // its workers write here too: read once they are gone
        {
            pool_of<TestType> p(1);
            tasks_that_break_the_link<&close_all_from_3>(p);
        }
        text = err.finish();
    }
    CHECK(test::count(text, ") lost its link to the pool (a task closed descriptor ") == 2);
    CHECK(test::count(text, " and left; what it had sent stands, and a new worker takes its place\n") == 2);
}

TEMPLATE_TEST_CASE("a task that puts /dev/null over its worker's descriptors never wedges the pool: the worker "
                   "leaves and is replaced", "[pool][death]", START_METHODS) {
    std::string text;
    {
        pooltest::stderr_capture err;
        {
            pool_of<TestType> p(1);
            tasks_that_break_the_link<&devnull_over_all_from_3>(p);
        }
        text = err.finish();
    }
    CHECK(test::count(text, ") lost its link to the pool (a task replaced descriptor ") == 2);
}

namespace {
/// A fault hook in the pool's engine thread that kills, with SIGKILL, the worker it is
/// starting, as it sends the new worker its target (the start handshake of spawn and
/// forkserver): the worker is then dead before it took its work.
struct kill_starting_worker {
    static inline std::atomic<int> remaining{0};
    static inline pid_t test_pid = 0, parent = 0, newest_seen = 0;
    static int hook(detail::sys::call c) {
        if (c != detail::sys::call::sendmsg || ::getpid() != test_pid || remaining.load() <= 0) return 0;
        char thread[16] = {};
        ::prctl(PR_GET_NAME, thread);
        if (std::string(thread) != "multiproc-pool") return 0;
        auto kids = test::children_of(parent);
        const pid_t newest = kids.empty() ? 0 : *std::max_element(kids.begin(), kids.end());
        if (newest <= newest_seen) return 0; // (to the forkserver, before the worker exists)
        newest_seen = newest;
        --remaining;
        ::kill(newest, SIGKILL);
        return 0;
    }
    kill_starting_worker(pid_t parent_of_workers, int times) {
        test_pid = ::getpid();
        parent = parent_of_workers;
        auto kids = test::children_of(parent);
        newest_seen = kids.empty() ? 0 : *std::max_element(kids.begin(), kids.end());
        remaining = times;
        detail::sys::fault_hook = &hook;
    }
    kill_starting_worker(const kill_starting_worker&) = delete;
    kill_starting_worker& operator=(const kill_starting_worker&) = delete;
    ~kill_starting_worker() { detail::sys::fault_hook = nullptr; }
};
} // namespace

TEMPLATE_TEST_CASE("a worker killed while it starts, before it took its work, is replaced: the pool does not break",
                   "[pool][death]", by_spawn, by_forkserver) {
    test::warm_up<TestType>();
    const pid_t parent = std::is_same_v<typename TestType::policies::start, start::forkserver> ? test::forkserver_pid()
                                                                                            : ::getpid();
    pool_of<TestType> p(1);
    const pid_t first = p.apply(fn<&pooltest::worker_pid>);
    kill_starting_worker hook(parent, 2); // the next two workers die as they start
    REQUIRE(::kill(first, SIGKILL) == 0);
    REQUIRE(test::wait_exit(first));
    CHECK(p.map(fn<&square>, std::vector<int>{1, 2, 3}, 1) == std::vector<int>{1, 4, 9});
    CHECK(kill_starting_worker::remaining == 0); // both were killed, and others started
}
