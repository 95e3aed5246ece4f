// The flagship's job spread over the ranks of an MPI job (README, "Beyond one machine"):
// find the duplicate files under a directory by the SHA-256 of their contents -- once on
// rank 0, then with a pool whose workers are ranks 1..R -- and print what was found, the
// throughput and the speedup. The pool code is the flagship's with one policy changed:
//
//     multiproc::basic_pool<multiproc::ext::start::mpi<>> pool; // tasks in a worker process of each rank
//     for (const file_digest& d : pool.imap_unordered(multiproc::fn<&hash_file>, tasks)) ...
//
// (fn<&hash_file>: the ranks are copies of the program started by mpiexec, so a task is
// named at compile time, as under start::spawn.) The ranks open the files by path, so on a
// cluster the directory must be on a file system every node mounts at the same place.
//
// usage: mpiexec -n <1 + ranks> cluster [<directory> [<budget in MiB>]]   (default: /usr, 512)

#include "dupes.hpp"

#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/spawn.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    multiproc::freeze_support(); // ranks 1.. serve the pool's tasks here, and end with rank 0
    using namespace dupes;
    const auto [files, bytes] = prepare(argc, argv, 512);

    // Rank 0 alone.
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<file_digest> seq = hash_here(files, bytes);
    const double t_seq = seconds_since(t0);

    // A pool of one worker per rank.
    multiproc::basic_pool<multiproc::ext::start::mpi<>> pool;
    multiproc::pool_progress counts;
    pool.observe(std::ref(counts));
    const auto tasks = biggest_first(files);
    std::vector<file_digest> par(files.size());
    t0 = std::chrono::steady_clock::now();
    {
        progress bar("ranks", files.size(), bytes, &counts);
        for (const file_digest& d : pool.imap_unordered(multiproc::fn<&hash_file>, tasks)) {
            par[d.index] = d;
            bar.add(files[d.index].size);
        }
    }
    const double t_par = seconds_since(t0);

    std::printf("rank 0 alone:        %6.2f s  %7.1f MiB/s\n", t_seq, mib(bytes) / t_seq);
    std::printf("pool of %d ranks:     %6.2f s  %7.1f MiB/s  speedup %.2fx\n", pool.processes(), t_par,
                mib(bytes) / t_par, t_seq / t_par);
    return report(files, seq, par);
}
