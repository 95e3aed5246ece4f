// What every benchmark program shares: timing, CPU count, the CPU-bound work unit, and
// the one-line JSON result the driver reads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <utility>

#include <sched.h>

namespace bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Reads one byte of every page of [p, p + n), so that the pages are mapped in this process
/// (a sender's data, inherited across fork, before the clock starts).
inline void map_pages(const void* p, std::size_t n) {
    const auto* b = static_cast<const volatile unsigned char*>(p);
    unsigned char acc = 0;
    for (std::size_t i = 0; i < n; i += 4096) acc = static_cast<unsigned char>(acc ^ b[i]);
    if (acc == 0x5a) std::fputs("", stderr); // (uses the reads; never prints)
}

/// CPUs in the affinity mask (what all three implementations use as "all cores").
inline int cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/// The CPU-bound work unit: `units` rounds of an integer hash (the same in bench.py).
inline std::uint64_t burn(long units) {
    std::uint64_t h = 1469598103934665603ULL;
    for (long i = 0; i < units; ++i)
        for (int j = 0; j < 100; ++j) h = (h ^ static_cast<std::uint64_t>(i + j)) * 1099511628211ULL;
    return h;
}

/// Prints {"value": v, "unit": u, "higher_is_better": b, extras...} on one line.
inline void emit(double value, const char* unit, bool higher_is_better,
                 std::initializer_list<std::pair<const char*, double>> extras = {}) {
    std::printf("{\"value\": %.6g, \"unit\": \"%s\", \"higher_is_better\": %s", value, unit,
                higher_is_better ? "true" : "false");
    for (auto& [k, v] : extras) std::printf(", \"%s\": %.6g", k, v);
    std::printf("}\n");
    std::fflush(stdout);
}

} // namespace bench
