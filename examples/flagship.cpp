// The flagship example, for now: a CPU-bound job (counting primes below a bound) split
// over cpu_count() processes, timed against the same job run sequentially. Each child
// sends its count back through a POSIX pipe (one 8-byte write, atomic); the pool issue
// replaces this with a pool over real data.

#include <multiproc/process.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <vector>

#include <unistd.h>

namespace {

bool is_prime(std::uint64_t n) {
    if (n < 2) return false;
    for (std::uint64_t d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

// Counts the primes n < bound with n % step == first: interleaved slices balance the work.
std::uint64_t count_primes(std::uint64_t first, std::uint64_t step, std::uint64_t bound) {
    std::uint64_t count = 0;
    for (std::uint64_t n = first; n < bound; n += step) count += is_prime(n);
    return count;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main() {
    const std::uint64_t bound = 3'000'000;
    const int workers = multiproc::cpu_count();

    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t sequential = count_primes(0, 1, bound);
    double t_seq = seconds_since(t0);

    int fds[2];
    if (::pipe(fds) != 0) return 1;
    t0 = std::chrono::steady_clock::now();
    std::vector<multiproc::process> procs;
    for (int w = 0; w < workers; ++w)
        procs.emplace_back([&, w] {
            std::uint64_t c = count_primes(static_cast<std::uint64_t>(w), static_cast<std::uint64_t>(workers), bound);
            if (::write(fds[1], &c, sizeof c) != sizeof c) std::exit(1);
        });
    for (auto& p : procs) p.start();
    ::close(fds[1]);
    std::uint64_t parallel = 0, part = 0;
    while (::read(fds[0], &part, sizeof part) == sizeof part) parallel += part;
    for (auto& p : procs) p.join();
    double t_par = seconds_since(t0);

    std::printf("primes below %llu: %llu (sequential), %llu (%d processes)\n", static_cast<unsigned long long>(bound),
                static_cast<unsigned long long>(sequential), static_cast<unsigned long long>(parallel), workers);
    std::printf("sequential %.3f s, parallel %.3f s, speedup %.2fx\n", t_seq, t_par, t_seq / t_par);
    return sequential == parallel ? 0 : 1;
}
