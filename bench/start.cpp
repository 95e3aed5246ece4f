// multiproc's side of the "process start + join" figure (design.md §6), in a program of its
// own that links what a program starting processes links (multiproc::multiproc), as the
// baseline's program links only the C and C++ runtimes. bench_multiproc links OpenSSL's
// libcrypto too, for its listener and manager figures, and a program that links libcrypto
// pays for it in every start: about 1.1 ms more to exec an empty program here, and a larger
// address space for every fork to copy (README.md, Performance).
//
//   bench_start start <fork|spawn|forkserver> [scale]    prints one JSON line (bench/common.hpp)
#include "common.hpp"

#include <multiproc/process.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void noop() {}

// Process start + join of a child that does nothing, under a start method; median.
template <class Start>
void fig_start(long n) {
    std::vector<double> t;
    for (long i = 0; i < n; ++i) {
        auto t0 = bench::clock_type::now();
        multiproc::basic_process<Start> p(multiproc::fn<&noop>);
        p.start();
        p.join();
        if (p.exitcode() != 0) {
            std::fprintf(stderr, "bench_start: the child failed\n");
            std::exit(1);
        }
        t.push_back(bench::seconds_since(t0) * 1e3);
    }
    std::sort(t.begin(), t.end());
    bench::emit(t[t.size() / 2], "ms", false);
}

} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    const std::string fig = argc > 1 ? argv[1] : "", variant = argc > 2 ? argv[2] : "";
    const long scale = argc > 3 ? std::atol(argv[3]) : 0;
    auto pick = [&](long dflt) { return scale > 0 ? scale : dflt; };
    namespace st = multiproc::start;
    if (fig == "start" && variant == "spawn") fig_start<st::spawn>(pick(50));
    else if (fig == "start" && variant == "forkserver") fig_start<st::forkserver>(pick(100));
    else if (fig == "start" && variant == "fork") fig_start<st::fork>(pick(200));
    else {
        std::fprintf(stderr, "usage: %s start fork|spawn|forkserver [scale]\n", argv[0]);
        return 2;
    }
}
