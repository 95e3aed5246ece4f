// ext::start::mpi (issue 18): a pool's calls across the ranks of an MPI job. ctest runs this
// program under mpiexec with 3 ranks (tests/CMakeLists.txt: once over TCP on loopback, once
// over shared memory): rank 0 runs Catch2, ranks 1 and 2 serve the tasks from
// multiproc::freeze_support() in the shared test main, and leave when rank 0 does.
// All ranks run on this machine, so tasks reach the test through named pipes.
#include "pool/helpers.hpp"

#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/take.hpp>
#include <range/v3/view/transform.hpp>

#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;
using pooltest::named_pipe;
using Catch::Matchers::Contains;

namespace {

using mpi_pool = basic_pool<ext::start::mpi<ext::start::in_rank>>;

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

int initialized = 0; // per rank: how often the pool's initializer ran there
void count_init(int by) { initialized += by; }
int read_initialized(int) { return initialized; }
void failing_init() { throw std::runtime_error("no database on this rank"); }

int workers() { return mpi_size() - 1; }

} // namespace

TEST_CASE("the job has rank 0 here and worker ranks elsewhere", "[mpi]") {
    REQUIRE(mpi_rank() == 0);
    REQUIRE(mpi_size() == 3); // (ctest starts 3 ranks)
}

TEST_CASE("apply, submit and apply_async run the task on a worker rank", "[mpi]") {
    mpi_pool p;
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

TEST_CASE("every worker rank runs tasks at once, one worker per rank by default", "[mpi]") {
    named_pipe reports, tokens;
    mpi_pool p;
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

TEST_CASE("map, starmap and their async forms return results in input order", "[mpi]") {
    mpi_pool p;
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

TEST_CASE("imap and views::imap read infinite input lazily, a window ahead", "[mpi][imap]") {
    mpi_pool p;
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

TEST_CASE("a task's exception is a remote_error that names the rank and host", "[mpi][errors]") {
    mpi_pool p;
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

TEST_CASE("large arguments and results cross whole, in pieces over the MPI limit", "[mpi][large]") {
    // This program is built with MULTIPROC_MPI_PIECE_BYTES of 64 KiB, so that a few MiB
    // travel in many pieces, as a message over 2 GiB does in a normal build.
    STATIC_REQUIRE(detail::mpi::piece_bytes == 64 * 1024);
    mpi_pool p;
    const std::vector<char> big(std::size_t{5} << 20, 'a');
    CHECK(p.apply(fn<&size_of>, big) == big.size());
    const std::vector<char> back = p.apply(fn<&filled>, std::size_t{3} << 20);
    CHECK(back.size() == std::size_t{3} << 20);
    CHECK(std::count(back.begin(), back.end(), 'x') == static_cast<long>(back.size()));
}

TEST_CASE("the initializer runs on each worker's rank before its tasks, and again after maxtasksperchild",
          "[mpi][initializer]") {
    {
        mpi_pool p(workers(), fn<&count_init>, std::tuple<int>{1});
        for (int n : p.map(fn<&read_initialized>, std::vector<int>(20, 0), 1)) CHECK(n >= 1);
    }
    {
        // A worker leaves after 2 tasks; the one that stands in opens a new channel, whose
        // initializer runs on the rank again.
        mpi_pool p(workers(), fn<&count_init>, std::tuple<int>{1000}, 2);
        int most = 0;
        for (int n : p.map(fn<&read_initialized>, std::vector<int>(20, 0), 1)) most = std::max(most, n);
        CHECK(most >= 2000);
    }
    mpi_pool broken(workers(), fn<&failing_init>);
    try {
        (void)broken.apply(fn<&square>, 2);
        FAIL("the initializer throws: no task can run");
    } catch (const error& e) {
        CHECK_THAT(std::string(e.what()),
                   Contains("the pool's initializer raised std::runtime_error: no database on this rank"));
    }
}

TEST_CASE("cancel drops a queued task, and terminate() returns while a task runs on a rank", "[mpi][cancel]") {
    named_pipe reports, tokens;
    {
        mpi_pool p;
        std::vector<async_result<int>> running;
        for (int i = 0; i < workers(); ++i)
            running.push_back(p.apply_async(fn<&report_then_wait>, reports.path(), tokens.path(), i));
        for (int i = 0; i < workers(); ++i) (void)reports.line(); // every rank is busy
        auto queued = p.apply_async(fn<&square>, 5);
        CHECK(queued.cancel());
        CHECK(queued.cancelled());
        CHECK_THROWS_AS(queued.get(), cancelled_error);
        p.terminate(); // the threads that stand for the workers leave; the ranks finish on their own
        for (auto& r : running) CHECK_THROWS_AS(r.get(), broken_pool);
    }
    tokens.release(workers());
    mpi_pool again; // the ranks serve the next pool once their task is done
    CHECK(again.apply(fn<&square>, 6) == 36);
}

TEST_CASE("more workers than ranks share the ranks, and a task timeout is refused with a reason", "[mpi]") {
    mpi_pool p(2 * workers() + 1);
    auto ys = p.map(fn<&square>, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1);
    CHECK(ys == std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64, 81});
    CHECK_THROWS_WITH(p.submit(task_options{.timeout = 1s}, fn<&square>, 2),
                      Contains("cannot stop a task that runs too long"));
    CHECK_THROWS_WITH(mpi_pool(pool_options{.processes = 1, .task_timeout = 1s}),
                      Contains("cannot stop a task that runs too long"));
}
