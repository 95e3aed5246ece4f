// ext::start::mpi (issue 18): a pool's calls across the ranks of an MPI job. ctest runs this
// program under mpiexec with 3 ranks (tests/CMakeLists.txt: once over TCP on loopback, once
// over shared memory): rank 0 runs Catch2, ranks 1 and 2 serve the tasks from
// multiproc::freeze_support() in the shared test main, and leave when rank 0 does.
// All ranks run on this machine, so tasks reach the test through named pipes. Every call is
// tried with each way a rank runs tasks (TestType, the policy's Local): in the rank
// (ext::start::in_rank), in a worker process of the rank started by forkserver or by spawn;
// the cases at the end are those of worker processes alone (crashes, retries, timeouts,
// kills).
#include "pool/helpers.hpp"

#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>

#include <atomic>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;
using pooltest::named_pipe;
using Catch::Matchers::Contains;

namespace {

template <class Local>
using mpi_pool = basic_pool<ext::start::mpi<Local>>;

template <class Local>
constexpr bool in_rank = std::is_same_v<Local, ext::start::in_rank>;

/// What a task reports of where it ran.
struct place {
    int rank;
    int pid;
    int value;
};

place where(int v) { return {mpi_rank(), static_cast<int>(::getpid()), v}; }
int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int boom(int x) {
    if (x == 3) throw std::out_of_range("three is out");
    return x;
}
std::size_t size_of(const std::vector<char>& v) { return v.size(); }
std::vector<char> filled(std::size_t n) { return std::vector<char>(n, 'x'); }

/// Tells the test "<rank>" through the pipe at `reports`, then waits for a token from the
/// pipe at `tokens`.
int report_then_wait(std::string reports, std::string tokens, int v) {
    pooltest::say_to(reports, std::to_string(mpi_rank()));
    pooltest::take_token_from(tokens);
    return v;
}

/// As report_then_wait, then returns 2 MiB: an answer too big for MPI to send before its
/// receiver has asked for it.
std::vector<char> report_then_wait_big(std::string reports, std::string tokens) {
    pooltest::say_to(reports, std::to_string(mpi_rank()));
    pooltest::take_token_from(tokens);
    return std::vector<char>(std::size_t{2} << 20, 'b');
}

/// Blocks for good at x == 3 (it has to be killed).
int block_at_3(int x) {
    if (x == 3)
        for (;;) ::pause();
    return x;
}

int initialized = 0; // per rank: how often the pool's initializer ran there
void count_init(int by) { initialized += by; }
int read_initialized(int) { return initialized; }
place initialized_here(int) { return {mpi_rank(), static_cast<int>(::getpid()), initialized}; }
void failing_init() { throw std::runtime_error("no database on this rank"); }

int workers() { return mpi_size() - 1; }

/// Squares x in about 100 ms (a task that takes a while).
int slow_square(int x) {
    timespec ts{0, 100'000'000};
    while (::nanosleep(&ts, &ts) != 0) {
    }
    return x * x;
}

/// Kills its own process at x == 3 (a crash: the rank's worker process dies, not the rank).
int die_at_3(int x) {
    if (x == 3) ::kill(::getpid(), SIGKILL);
    return x;
}

/// Kills its own process the first time it runs (the marker file at `path` is not there yet).
int die_once(std::string path) {
    if (::access(path.c_str(), F_OK) != 0) {
        const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        ::close(fd);
        ::kill(::getpid(), SIGKILL);
    }
    return 42;
}

/// Tries to make a pool of ext::start::mpi<Local> inside a task: what refused it.
template <class Local>
std::string nested_pool(int) {
    try {
        mpi_pool<Local> inner;
        return "made";
    } catch (const state_error& e) {
        return e.what();
    }
}

} // namespace

TEST_CASE("the job has rank 0 here and worker ranks elsewhere", "[mpi]") {
    REQUIRE(mpi_rank() == 0);
    REQUIRE(mpi_size() == 3); // (ctest starts 3 ranks)
}

TEMPLATE_TEST_CASE("apply, submit and apply_async run the task on a worker rank", "[mpi]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    const place w = p.apply(fn<&where>, 7);
    CHECK(w.value == 7);
    CHECK(w.rank >= 1);
    CHECK(w.rank < mpi_size());
    CHECK(w.pid != ::getpid());
    CHECK(p.submit(fn<&add>, 2, 3).get() == 5);
    std::atomic<int> seen{0};
    auto r = p.apply_async(callbacks{[&](const int& v) { seen = v; }}, fn<&square>, 12);
    CHECK(r.get() == 144);
    p.close();
    p.join();
    CHECK(seen == 144); // callbacks have run once join() returns
}

TEMPLATE_TEST_CASE("every worker rank runs tasks at once, one worker per rank by default", "[mpi]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    named_pipe reports, tokens;
    pool_t p;
    std::vector<async_result<int>> rs;
    for (int i = 0; i < workers(); ++i)
        rs.push_back(p.apply_async(fn<&report_then_wait>, reports.path(), tokens.path(), i));
    // Each rank runs one task at a time: all are running, so they are on different ranks.
    std::set<std::string> ranks;
    for (int i = 0; i < workers(); ++i) ranks.insert(reports.line());
    std::set<std::string> expected;
    for (int r = 1; r < mpi_size(); ++r) expected.insert(std::to_string(r));
    CHECK(ranks == expected);
    tokens.release(workers());
    for (int i = 0; i < workers(); ++i) CHECK(rs[static_cast<std::size_t>(i)].get() == i);
}

TEMPLATE_TEST_CASE("map, starmap and their async forms return results in input order", "[mpi]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    std::vector<int> xs;
    for (int i = 0; i < 300; ++i) xs.push_back(i);
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}}) {
        auto ys = p.map(fn<&square>, xs, chunk);
        REQUIRE(ys.size() == xs.size());
        for (std::size_t i = 0; i < xs.size(); ++i) CHECK(ys[i] == xs[i] * xs[i]);
    }
    CHECK(p.map(fn<&square>, xs) == p.map_async(fn<&square>, xs).get()); // default chunks
    std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
    CHECK(p.starmap(fn<&add>, pairs) == std::vector<int>{3, 7, 11});
    CHECK(p.starmap_async(fn<&add>, pairs).get() == std::vector<int>{3, 7, 11});
    std::set<int> ranks;
    for (const place& w : p.map(fn<&where>, xs, 1)) {
        CHECK(w.rank >= 1);
        CHECK(w.rank < mpi_size());
        ranks.insert(w.rank);
    }
    CHECK(!ranks.empty());
}

TEMPLATE_TEST_CASE("imap and views::imap read infinite input lazily, a window ahead", "[mpi][imap]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    std::atomic<long> read{0};
    auto counted = ranges::views::iota(0) | ranges::views::transform([&](int i) {
                       ++read;
                       return i;
                   });
    std::vector<int> first;
    for (int y : counted | views::imap(p, fn<&square>, imap_options{1, 8}) | ranges::views::take(5)) first.push_back(y);
    CHECK(first == std::vector<int>{0, 1, 4, 9, 16});
    CHECK(read <= 5 + 8); // what was yielded, plus at most the window
    long sum = 0;
    for (int y : ranges::views::iota(0) | views::imap(p, fn<&square>) | ranges::views::take(2000)) sum += y;
    long expect = 0;
    for (long i = 0; i < 2000; ++i) expect += i * i;
    CHECK(sum == expect);
    std::multiset<int> got;
    for (int y : p.imap_unordered(fn<&square>, std::vector<int>{1, 2, 3, 4, 5}, 2)) got.insert(y);
    CHECK(got == std::multiset<int>{1, 4, 9, 16, 25});
    std::vector<int> ordered;
    for (int y : p.imap(fn<&square>, std::vector<int>{5, 6, 7})) ordered.push_back(y);
    CHECK(ordered == std::vector<int>{25, 36, 49});
}

TEMPLATE_TEST_CASE("a task's exception is a remote_error that names the rank and host", "[mpi][errors]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    try {
        p.map(fn<&boom>, std::vector<int>{1, 2, 3, 4}, 1);
        FAIL("task 2 throws");
    } catch (const remote_error& e) {
        CHECK(e.type_name() == "std::out_of_range");
        CHECK(e.message() == "three is out");
        CHECK(e.task() == std::size_t{2});
        REQUIRE(e.rank().has_value());
        CHECK(*e.rank() >= 1);
        CHECK(*e.rank() < mpi_size());
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        CHECK(e.host() == host); // (every rank of this test runs here)
        CHECK(e.pid() != ::getpid());
        CHECK_THAT(std::string(e.what()), Contains("on rank " + std::to_string(*e.rank()) + " (host " + e.host() + ")"));
    }
    CHECK(p.apply(fn<&square>, 3) == 9); // the pool goes on
}

// From an outside trial: under in_rank such a pool waited for ranks that serve rank 0
// (a hang of the whole job); in a worker process it blamed a missing freeze_support().
TEMPLATE_TEST_CASE("a task cannot make a pool of ext::start::mpi: state_error names the rank it runs on", "[mpi][errors]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    for (const std::string& why : p.map(fn<&nested_pool<TestType>>, std::vector<int>{0, 1})) {
        CHECK_THAT(why, Contains("a pool of ext::start::mpi can be made only on rank 0 of the MPI job"));
        CHECK_THAT(why, Contains(in_rank<TestType> ? "; this is rank " : "; this is a worker process of rank "));
        CHECK_THAT(why, Contains("a task cannot make a pool of ext::start::mpi"));
    }
    CHECK(p.apply(fn<&square>, 4) == 16); // the pool goes on
}

TEMPLATE_TEST_CASE("large arguments and results cross whole, in pieces over the MPI limit", "[mpi][large]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    // This program is built with MULTIPROC_MPI_PIECE_BYTES of 64 KiB, so that a few MiB
    // travel in many pieces, as a message over 2 GiB does in a normal build.
    STATIC_REQUIRE(detail::mpi::piece_bytes == 64 * 1024);
    pool_t p;
    const std::vector<char> big(std::size_t{5} << 20, 'a');
    CHECK(p.apply(fn<&size_of>, big) == big.size());
    const std::vector<char> back = p.apply(fn<&filled>, std::size_t{3} << 20);
    CHECK(back.size() == std::size_t{3} << 20);
    CHECK(std::count(back.begin(), back.end(), 'x') == static_cast<long>(back.size()));
}

TEMPLATE_TEST_CASE("the initializer runs on each worker's rank before its tasks, and again after maxtasksperchild", "[mpi][initializer]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    {
        pool_t p(workers(), fn<&count_init>, std::tuple<int>{1});
        for (int n : p.map(fn<&read_initialized>, std::vector<int>(20, 0), 1)) CHECK(n >= 1);
    }
    {
        // A worker leaves after 2 tasks; the one that stands in opens a new channel, whose
        // initializer runs again: in the rank (which counts on), or in a new worker process
        // of the rank (which counts from 0: each process ran it once).
        pool_t p(workers(), fn<&count_init>, std::tuple<int>{1000}, 2);
        int most = 0;
        std::map<int, int> per_pid;
        for (const place& w : p.map(fn<&initialized_here>, std::vector<int>(20, 0), 1)) {
            most = std::max(most, w.value);
            ++per_pid[w.pid];
            if constexpr (!in_rank<TestType>) CHECK(w.value == 1000);
        }
        if constexpr (in_rank<TestType>) {
            CHECK(most >= 2000);
        } else { // 20 tasks, at most 2 a process
            CHECK(per_pid.size() >= 10);
            for (const auto& [pid, n] : per_pid) CHECK(n <= 2);
        }
    }
    pool_t broken(workers(), fn<&failing_init>);
    try {
        (void)broken.apply(fn<&square>, 2);
        FAIL("the initializer throws: no task can run");
    } catch (const error& e) {
        CHECK_THAT(std::string(e.what()),
                   Contains("the pool's initializer raised std::runtime_error: no database on this rank"));
    }
}

TEMPLATE_TEST_CASE("cancel drops a queued task, and terminate() returns while a task runs on a rank", "[mpi][cancel]", ext::start::in_rank, start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    named_pipe reports, tokens;
    {
        pool_t p;
        std::vector<async_result<std::vector<char>>> running;
        for (int i = 0; i < workers(); ++i)
            running.push_back(p.apply_async(fn<&report_then_wait_big>, reports.path(), tokens.path()));
        for (int i = 0; i < workers(); ++i) (void)reports.line(); // every rank is busy
        auto queued = p.apply_async(fn<&square>, 5);
        CHECK(queued.cancel());
        CHECK(queued.cancelled());
        CHECK_THROWS_AS(queued.get(), cancelled_error);
        p.terminate(); // the threads that stand for the workers leave; the ranks finish on their own
        for (auto& r : running) CHECK_THROWS_AS(r.get(), broken_pool);
    }
    // Under in_rank the ranks now answer with 2 MiB each, to threads that have left: rank 0
    // takes those answers all the same, or the ranks would wait on them and serve no more.
    tokens.release(workers());
    pool_t again; // the ranks serve the next pool once their task is done
    CHECK(again.map(fn<&square>, std::vector<int>{6, 7, 8, 9}, 1) == std::vector<int>{36, 49, 64, 81});
}

TEMPLATE_TEST_CASE("more workers than ranks share the ranks", "[mpi]", ext::start::in_rank, start::forkserver,
                   start::spawn) {
    using pool_t = mpi_pool<TestType>;
    named_pipe reports, tokens;
    pool_t p(2 * workers() + 1);
    auto ys = p.map(fn<&square>, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1);
    CHECK(ys == std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64, 81});
    if constexpr (!in_rank<TestType>) {
        // Each worker has a process of its own on its rank: all five run at once.
        std::vector<async_result<int>> rs;
        for (int i = 0; i < 2 * workers() + 1; ++i) rs.push_back(p.apply_async(fn<&pooltest::started_then_blocked>, reports.path(), tokens.path(), i));
        std::set<std::string> pids;
        for (int i = 0; i < 2 * workers() + 1; ++i) pids.insert(reports.line());
        CHECK(pids.size() == static_cast<std::size_t>(2 * workers() + 1));
        tokens.release(2 * workers() + 1);
        for (int i = 0; i < 2 * workers() + 1; ++i) CHECK(rs[static_cast<std::size_t>(i)].get() == i);
    }
}

TEST_CASE("a task timeout is refused with a reason when tasks run in the rank", "[mpi]") {
    using pool_t = mpi_pool<ext::start::in_rank>;
    pool_t p;
    CHECK_THROWS_WITH(p.submit(task_options{.timeout = 1s}, fn<&square>, 2),
                      Contains("cannot stop a task that runs too long"));
    CHECK_THROWS_WITH(pool_t(pool_options{.processes = 1, .task_timeout = 1s}),
                      Contains("cannot stop a task that runs too long"));
}

// ---------------------------------------------------------------------------------------
// Worker processes on the ranks (ext::start::mpi<forkserver> and <spawn>).

TEMPLATE_TEST_CASE("a task that kills its process fails alone with broken_pool naming the rank, and the pool goes on",
                   "[mpi][crash]", start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    pool_t p;
    try {
        (void)p.apply(fn<&die_at_3>, 3);
        FAIL("the task kills its process");
    } catch (const broken_pool& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Contains("was killed by signal 9 (SIGKILL) while running task 0"));
        CHECK_THAT(what, Contains("RankWorker-"));
        CHECK_THAT(what, Contains(" on rank "));
        CHECK(e.exitcode() == std::optional<int>{-SIGKILL});
    }
    CHECK(p.apply(fn<&square>, 9) == 81);
    // In a chunk, the element that was running is the one that fails; the rest run.
    try {
        (void)p.map(fn<&die_at_3>, std::vector<int>{0, 1, 2, 3, 4, 5}, 6);
        FAIL("element 3 kills its process");
    } catch (const broken_pool& e) {
        CHECK_THAT(std::string(e.what()), Contains("while running task 3"));
        CHECK(e.task() == std::optional<std::size_t>{3});
    }
    std::vector<int> got;
    for (auto r : p.imap(fn<&die_at_3>, std::vector<int>{0, 1, 2, 4, 5}, 5)) got.push_back(r);
    CHECK(got == std::vector<int>{0, 1, 2, 4, 5});
}

TEMPLATE_TEST_CASE("under worker_death::retry<1> a task whose process died runs again", "[mpi][crash]",
                   start::forkserver, start::spawn) {
    basic_pool<ext::start::mpi<TestType>, worker_death::retry<1>> p;
    char dir[] = "/tmp/multiproc-mpi-retry-XXXXXX";
    REQUIRE(::mkdtemp(dir));
    const std::string marker = std::string(dir) + "/died";
    CHECK(p.apply(fn<&die_once>, marker) == 42); // died the first time, ran again
    CHECK(::access(marker.c_str(), F_OK) == 0);
    ::unlink(marker.c_str());
    ::rmdir(dir);
}

TEMPLATE_TEST_CASE("a task past its timeout is killed with its process, and the pool goes on", "[mpi][timeout]",
                   start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    named_pipe reports, tokens;
    pool_t p(pool_options{.processes = 1});
    auto r = p.submit(task_options{.timeout = 300ms}, fn<&pooltest::started_then_blocked>, reports.path(),
                      tokens.path(), 1);
    const pid_t pid = std::stoi(reports.line());
    try {
        (void)r.get();
        FAIL("the task blocks past its timeout");
    } catch (const timeout_error& e) {
        CHECK_THAT(std::string(e.what()), Contains("task 0 ran longer than its timeout of 300 ms"));
        CHECK_THAT(std::string(e.what()), Contains(" on rank "));
    }
    CHECK(test::wait_exit(pid));
    CHECK(p.apply(fn<&square>, 4) == 16);
    // In a chunk after another on the same worker, the element that ran too long is named
    // (element 0 of the second chunk: not where the first one ended).
    pool_t one(pool_options{.processes = 1, .task_timeout = 500ms});
    try {
        (void)one.map(fn<&block_at_3>, std::vector<int>{0, 1, 2, 3, 4, 5}, 3);
        FAIL("task 3 blocks past its timeout");
    } catch (const timeout_error& e) {
        CHECK_THAT(std::string(e.what()), Contains("task 3 ran longer than its timeout of 500 ms"));
    }
    // A timeout counts from the start of each element of a chunk, as on one machine: twelve
    // elements of about 100 ms each, in one chunk, take longer than 1 s but none is killed.
    pool_t q(pool_options{.processes = 1, .task_timeout = 1s});
    std::vector<int> xs(12), squares(12);
    for (int i = 0; i < 12; ++i) squares[static_cast<std::size_t>(i)] = (xs[static_cast<std::size_t>(i)] = i) * i;
    CHECK(q.map(fn<&slow_square>, xs, 12) == squares);
}

TEMPLATE_TEST_CASE("cancel(kill_running) and terminate() kill the worker processes of running tasks", "[mpi][cancel]",
                   start::forkserver, start::spawn) {
    using pool_t = mpi_pool<TestType>;
    named_pipe reports, tokens;
    pool_t p;
    auto r = p.apply_async(fn<&pooltest::started_then_blocked>, reports.path(), tokens.path(), 1);
    const pid_t pid = std::stoi(reports.line());
    CHECK(r.cancel(cancel_mode::kill_running));
    CHECK_THROWS_AS(r.get(), cancelled_error);
    CHECK(test::wait_exit(pid));
    CHECK(p.apply(fn<&square>, 5) == 25);
    std::vector<async_result<int>> running;
    for (int i = 0; i < workers(); ++i)
        running.push_back(p.apply_async(fn<&pooltest::started_then_blocked>, reports.path(), tokens.path(), i));
    std::vector<pid_t> pids;
    for (int i = 0; i < workers(); ++i) pids.push_back(std::stoi(reports.line()));
    p.terminate();
    for (auto& x : running) CHECK_THROWS_AS(x.get(), broken_pool);
    for (pid_t q : pids) CHECK(test::wait_exit(q));
}
