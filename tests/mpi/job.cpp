// A whole MPI job for tests/mpi/outcomes.sh: how a job of a pool of ext::start::mpi ends.
//   job <case> <marker>
// <marker> is only there so that the script can find this run's processes. Cases:
//   ok          map over the ranks, print the sum, leave main(): every rank ends, status 0
//   throw       rank 0 throws out of main() after using the pool
//   kill-rank   a task kills its own rank with SIGKILL
//   sigint      prints "ready" once a task blocks on a rank forever; the script sends SIGINT
//   no-freeze   main() does not call freeze_support(): making the pool fails with a sentence
//   crash-worker  (ext::start::mpi<forkserver>) a task kills its worker process on a rank:
//               that task fails, the job goes on and prints the sum
//   kill-agent  (ext::start::mpi<forkserver>) a task blocks in a worker process of each rank,
//               each printing "blocking"; the script then kills rank 1 from outside
// Built twice (MULTIPROC_TEST_VARIANT 0 and 1: two different builds, for a mixed job).
#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/spawn.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace {
int square(int x) { return x * x + MULTIPROC_TEST_VARIANT; }
int kill_myself(int) {
    ::raise(SIGKILL);
    return 0;
}
int block_forever(int) {
    for (;;) ::pause();
}
int say_then_block(int) {
    std::printf("blocking\n");
    std::fflush(stdout);
    for (;;) ::pause();
}
long sum_of_squares(auto& p) {
    long sum = 0;
    std::vector<int> xs(100);
    for (int i = 0; i < 100; ++i) xs[static_cast<std::size_t>(i)] = i;
    for (int y : p.map(multiproc::fn<&square>, xs, 1)) sum += y;
    return sum;
}
} // namespace

int main(int argc, char** argv) {
    const std::string what = argc > 1 ? argv[1] : "ok";
    if (what != "no-freeze") multiproc::freeze_support();
    using pool_t = multiproc::basic_pool<multiproc::ext::start::mpi<multiproc::ext::start::in_rank>>;
    using local_pool_t = multiproc::basic_pool<multiproc::ext::start::mpi<>>; // (forkserver on each rank)
    try {
        if (what == "crash-worker") {
            local_pool_t p;
            try {
                (void)p.apply(multiproc::fn<&kill_myself>, 1);
            } catch (const multiproc::broken_pool& e) {
                std::printf("%s\n", e.what());
            }
            std::printf("sum %ld\n", sum_of_squares(p));
            return 0;
        }
        if (what == "kill-agent") {
            local_pool_t p;
            std::vector<multiproc::async_result<int>> rs;
            for (int i = 1; i < multiproc::mpi_size(); ++i) rs.push_back(p.apply_async(multiproc::fn<&say_then_block>, i));
            for (auto& r : rs) (void)r.get();
            std::printf("the job went on after a rank died\n");
            return 0;
        }
        pool_t p;
        if (what == "ok" || what == "no-freeze") {
            std::printf("sum %ld\n", sum_of_squares(p));
            return 0;
        }
        if (what == "throw") {
            (void)p.apply(multiproc::fn<&square>, 2);
            throw std::runtime_error("rank 0 gives up");
        }
        if (what == "kill-rank") {
            (void)p.apply(multiproc::fn<&kill_myself>, 1);
            std::printf("the job went on after a rank died\n");
            return 0;
        }
        if (what == "sigint") {
            auto r = p.apply_async(multiproc::fn<&block_forever>, 1);
            (void)p.apply(multiproc::fn<&square>, 2); // the other rank still serves
            std::printf("ready\n");
            std::fflush(stdout);
            (void)r.get();
            return 0;
        }
    } catch (const multiproc::state_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 3;
    }
    std::fprintf(stderr, "unknown case %s\n", what.c_str());
    return 2;
}
