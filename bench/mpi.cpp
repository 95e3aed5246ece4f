// The figures of a pool across the ranks of an MPI job (issue 18), beside raw MPI in the same
// run. Run under mpiexec with 3 ranks (rank 0 drives, ranks 1 and 2 serve):
//
//   mpiexec -n 3 --bind-to none --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo bench_mpi
//   mpiexec -n 3 --bind-to none --mca pml ob1 --mca btl vader,self bench_mpi      (shared memory)
//
// Figures (medians of the round trips; --smoke: a few of each, as ctest's bench.mpi.smoke):
//   - apply round trip of an int, and of 1 MiB there and back, beside a raw MPI ping-pong of
//     the same bytes between rank 0 and the rank that runs the ping-pong's partner (a task:
//     it answers on MPI_COMM_WORLD while multiproc's own traffic goes on its communicator);
//   - tiny tasks per second through map, chunksize 1 and the default chunks, beside the raw
//     ping-pong's round trips per second times the worker ranks (one task per round trip);
//   - idle CPU: what each rank and rank 0 spend over one second with an idle pool, as a
//     percentage of a core (read from /proc: every rank must run on this machine);
//   - all of the above for tasks run in the ranks (ext::start::mpi<in_rank>) and in a worker
//     process of each rank (ext::start::mpi<forkserver>), beside the same raw floors; for the
//     latter also the time from a task's crash of its worker process to broken_pool in the
//     caller (the task writes the steady clock's time to a file, then SIGKILLs itself).
//
// Whole jobs, timed from outside by bench/mpi_jobs.sh (one mode per job):
//   --start       freeze_support(), a pool, one apply, the end: a job's start and stop;
//   --raw-start   the raw floor: MPI_Init_thread, a barrier, MPI_Finalize;
//   --kill        a task kills its rank (SIGKILL) after printing the time it does so: how
//                 long the job takes to end after a rank dies (ext::start::in_rank);
//   --raw-kill    the raw floor: rank 1 kills itself while rank 0 waits in MPI_Recv on it.
#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/spawn.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <time.h>
#include <unistd.h>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int pong_tag = 77;

int echo_int(int x) { return x; }
std::vector<char> echo_bytes(std::vector<char> v) { return v; }

/// On a worker rank: tells rank 0 it is there, then answers `n` messages of `size` bytes.
int pong(int n, int size) {
    std::vector<char> buf(static_cast<std::size_t>(std::max(size, 1)));
    int hello = multiproc::mpi_rank();
    MPI_Send(&hello, 1, MPI_INT, 0, pong_tag, MPI_COMM_WORLD);
    for (int i = 0; i < n; ++i) {
        MPI_Recv(buf.data(), size, MPI_BYTE, 0, pong_tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(buf.data(), size, MPI_BYTE, 0, pong_tag, MPI_COMM_WORLD);
    }
    return hello;
}

/// Prints the wall-clock time (ns since the epoch: the timing script reads it) and SIGKILLs
/// the calling process.
void die_now() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    std::printf("killed at %lld\n", static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
    std::fflush(stdout);
    ::raise(SIGKILL);
}
int kill_rank(int) {
    die_now();
    return 0;
}

/// The raw floors of --raw-start and --raw-kill: MPI alone, no multiproc.
int raw_job(bool kill) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (kill) {
        if (rank == 1) die_now();
        int x = 0; // every other rank waits on rank 1, as rank 0 and idle ranks wait in a pool
        MPI_Recv(&x, 1, MPI_INT, 1, pong_tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        return 1; // (not reached: the launcher ends the job)
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}

struct who {
    int rank;
    int pid;
};
who whoami(int) { return {multiproc::mpi_rank(), static_cast<int>(::getpid())}; }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

double us_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// Raw MPI: median round trip (µs) of `size` bytes between rank 0 and a worker rank.
template <class Pool>
double raw_ping_pong(Pool& p, int n, int size) {
    auto partner = p.apply_async(multiproc::fn<&pong>, n, size);
    int rank = 0;
    MPI_Recv(&rank, 1, MPI_INT, MPI_ANY_SOURCE, pong_tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    std::vector<char> buf(static_cast<std::size_t>(std::max(size, 1)), 'p');
    std::vector<double> rt;
    for (int i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        MPI_Send(buf.data(), size, MPI_BYTE, rank, pong_tag, MPI_COMM_WORLD);
        MPI_Recv(buf.data(), size, MPI_BYTE, rank, pong_tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        rt.push_back(us_since(t0));
    }
    (void)partner.get();
    return median(rt);
}

/// CPU seconds (user + system) process `pid` has used, from /proc.
double cpu_seconds(int pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (!f) return -1;
    char line[4096] = {};
    const std::size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    line[n] = 0;
    const char* p = std::strrchr(line, ')'); // after the command name, which may hold spaces
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    // fields 3..: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// Writes the steady clock's time (ns) to the file at `path`, then SIGKILLs the calling
/// process: a task that crashes its worker process (every rank runs on this machine, so rank
/// 0 reads the same clock).
int crash_at(std::string path) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
    if (std::FILE* f = std::fopen(path.c_str(), "w")) {
        std::fprintf(f, "%lld\n", static_cast<long long>(ns));
        std::fclose(f);
    }
    ::raise(SIGKILL);
    return 0;
}

/// The raw MPI floors every pool's figures are set beside.
struct floors {
    double int_us, mib_us;
};

/// The figures of one pool, each beside its raw MPI floor.
template <class Pool>
void figures(Pool& p, const floors& raw, int rounds, int big_rounds, int tiny) {
    std::vector<double> rt;
    (void)p.apply(multiproc::fn<&echo_int>, 0); // every channel open
    for (int i = 0; i < rounds; ++i) {
        auto t0 = clock_type::now();
        (void)p.apply(multiproc::fn<&echo_int>, i);
        rt.push_back(us_since(t0));
    }
    const double apply_us = median(rt);
    std::printf("%-44s %10.1f us %10.1f us %7.2fx\n", "apply round trip, int (median)", apply_us, raw.int_us,
                apply_us / raw.int_us);

    const std::vector<char> mib(std::size_t{1} << 20, 'm');
    rt.clear();
    for (int i = 0; i < big_rounds; ++i) {
        auto t0 = clock_type::now();
        (void)p.apply(multiproc::fn<&echo_bytes>, mib);
        rt.push_back(us_since(t0));
    }
    const double big_us = median(rt);
    std::printf("%-44s %10.1f us %10.1f us %7.2fx\n", "apply round trip, 1 MiB there and back (median)", big_us,
                raw.mib_us, big_us / raw.mib_us);

    const std::vector<int> xs(static_cast<std::size_t>(tiny), 1);
    const double floor_per_s = 1e6 / raw.int_us * p.processes(); // one round trip per task, every rank busy
    for (std::size_t chunk : {std::size_t{1}, std::size_t{0}}) {
        auto t0 = clock_type::now();
        auto ys = chunk ? p.map(multiproc::fn<&echo_int>, xs, chunk) : p.map(multiproc::fn<&echo_int>, xs);
        const double per_s = static_cast<double>(ys.size()) / (us_since(t0) / 1e6);
        std::printf("%-44s %10.0f/s %10.0f/s %7.2fx\n",
                    chunk ? "tiny tasks, map chunksize 1" : "tiny tasks, map default chunks", per_s, floor_per_s,
                    per_s / floor_per_s);
    }
}

/// Idle CPU of each rank's process that runs tasks (`what`), and of rank 0, over a window of
/// an idle pool.
template <class Pool>
void idle_cpu(Pool& p, bool smoke, const char* what) {
    std::map<int, int> pids; // rank -> pid
    for (int tries = 0; tries < 10 && static_cast<int>(pids.size()) < p.processes(); ++tries)
        for (const who& w : p.map(multiproc::fn<&whoami>, std::vector<int>(16, 0), 1)) pids[w.rank] = w.pid;
    std::map<int, double> before;
    for (auto [rank, pid] : pids) before[rank] = cpu_seconds(pid);
    const double self_before = cpu_seconds(static_cast<int>(::getpid()));
    const auto idle = smoke ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000);
    std::this_thread::sleep_for(idle); // (a benchmark's measuring window, not a synchronization)
    const double secs = std::chrono::duration<double>(idle).count();
    for (auto [rank, pid] : pids) {
        const double used = cpu_seconds(pid) - before[rank];
        std::printf("%-44s %10.2f %% %12s %8s\n", ("idle CPU of rank " + std::to_string(rank) + what).c_str(),
                    100 * used / secs, "-", "-");
    }
    std::printf("%-44s %10.2f %% %12s %8s\n", "idle CPU of rank 0 (its worker threads)",
                100 * (cpu_seconds(static_cast<int>(::getpid())) - self_before) / secs, "-", "-");
}

} // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "--raw-start" || mode == "--raw-kill") return raw_job(mode == "--raw-kill");
    multiproc::freeze_support();
    using pool_t = multiproc::basic_pool<multiproc::ext::start::mpi<multiproc::ext::start::in_rank>>;
    if (mode == "--start" || mode == "--kill") {
        pool_t p;
        if (mode == "--start") return p.apply(multiproc::fn<&echo_int>, 0);
        (void)p.apply(multiproc::fn<&kill_rank>, 0);
        return 1; // (not reached: the launcher ends the job)
    }
    const bool smoke = mode == "--smoke";
    const int rounds = smoke ? 20 : 2000;
    const int big_rounds = smoke ? 5 : 200;
    const int tiny = smoke ? 200 : 100000;
    floors raw{};
    {
        pool_t p;
        std::printf("multiproc over MPI: %d worker ranks%s\n", p.processes(), smoke ? ", smoke run" : "");
        std::printf("%-44s %12s %12s %8s\n", "figure", "multiproc", "raw MPI", "ratio");
        (void)p.apply(multiproc::fn<&echo_int>, 0);
        raw = {raw_ping_pong(p, rounds, static_cast<int>(sizeof(int))), raw_ping_pong(p, big_rounds, 1 << 20)};
        std::printf("-- ext::start::mpi<in_rank>: tasks run in the ranks\n");
        figures(p, raw, rounds, big_rounds, tiny);
        idle_cpu(p, smoke, "");
    }
    {
        multiproc::basic_pool<multiproc::ext::start::mpi<multiproc::start::forkserver>> p;
        std::printf("-- ext::start::mpi<forkserver>: tasks run in a worker process of each rank\n");
        figures(p, raw, rounds, big_rounds, tiny);
        idle_cpu(p, smoke, "'s worker process");
        // A task crashes its worker process: how long until the caller holds broken_pool.
        char dir[] = "/tmp/multiproc-bench-mpi-XXXXXX";
        if (!::mkdtemp(dir)) return 1;
        const std::string stamp = std::string(dir) + "/killed";
        std::vector<double> waits;
        for (int i = 0; i < (smoke ? 2 : 20); ++i) {
            try {
                (void)p.apply(multiproc::fn<&crash_at>, stamp);
            } catch (const multiproc::broken_pool&) {
                const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
                long long at = 0;
                if (std::FILE* f = std::fopen(stamp.c_str(), "r")) {
                    if (std::fscanf(f, "%lld", &at) != 1) at = 0;
                    std::fclose(f);
                }
                if (at > 0) waits.push_back(static_cast<double>(now - at) / 1000.0);
            }
        }
        ::unlink(stamp.c_str());
        ::rmdir(dir);
        std::printf("%-44s %10.1f us %12s %8s\n", "worker process killed -> broken_pool (median)", median(waits), "-",
                    "-");
    }
    return 0;
}
