// The flagship example: find the duplicate files under /usr, which every Debian system has,
// by the SHA-256 of their contents -- once in this process, then with a pool of cpu_count()
// worker processes -- and print what was found, the throughput and the speedup.
// A real CPU-bound job: OpenSSL's libcrypto hashes about 2 GB/s per core with the CPU's SHA
// extensions, so it takes up to 2 GiB of files for the hashing to outweigh the rest, and
// the files are read once first, so that both runs find them in the page cache.
//
// The pool part is a few lines: pool.imap_unordered(hash_file, tasks) hands each file to a
// free worker and yields the digests as they come, which drives a progress line on stderr
// (when it is a terminal); the pool's observer (a multiproc::pool_progress) adds how many
// files the workers are hashing at that moment.
//
// usage: flagship [<directory> [<budget in MiB>]]     (default: /usr, 2048)
// The hashing, the progress line and the summary are in dupes.hpp, shared with
// examples/cluster, which spreads the same job over the ranks of an MPI job.

#include "dupes.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    using namespace dupes;
    const auto [files, bytes] = prepare(argc, argv, 2048);

    // One process.
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<file_digest> seq = hash_here(files, bytes);
    const double t_seq = seconds_since(t0);

    // A pool.
    multiproc::pool pool; // cpu_count() workers
    multiproc::pool_progress counts; // what the pool's observer is told
    pool.observe(std::ref(counts));
    const auto tasks = biggest_first(files);
    std::vector<file_digest> par(files.size());
    t0 = std::chrono::steady_clock::now();
    {
        progress bar("pool", files.size(), bytes, &counts);
        for (const file_digest& d : pool.imap_unordered(hash_file, tasks)) {
            par[d.index] = d;
            bar.add(files[d.index].size);
        }
    }
    const double t_par = seconds_since(t0);

    std::printf("sequential:          %6.2f s  %7.1f MiB/s\n", t_seq, mib(bytes) / t_seq);
    std::printf("pool of %d processes: %6.2f s  %7.1f MiB/s  speedup %.2fx\n", pool.processes(), t_par,
                mib(bytes) / t_par, t_seq / t_par);
    return report(files, seq, par);
}
