// Runs every figure of design.md §6 three ways — multiproc, CPython's multiprocessing and
// the raw-syscall baseline — several times each, and prints a table of medians with the
// ratios multiproc/CPython and multiproc/baseline; writes the same as JSON.
//
//   bench_driver [--smoke] [--repeat N] [--json FILE] [--only FIGURE]
//
// --smoke runs each measurement once at a small scale (CI: seconds, no thresholds).

#include <multiproc/subprocess.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef MULTIPROC_BENCH_DIR
#error "MULTIPROC_BENCH_DIR (the directory of the bench programs) must be defined"
#endif
#ifndef MULTIPROC_BENCH_SOURCE_DIR
#error "MULTIPROC_BENCH_SOURCE_DIR (bench/ in the source tree) must be defined"
#endif

namespace sp = multiproc::subprocess;

namespace {

struct figure {
    std::string id, variant, title;
    long smoke_scale;
    // The design's target, as text, and how to check it given the three medians.
    std::string target;
    std::optional<bool> (*met)(double mp, std::optional<double> cpython, std::optional<double> base);
    bool has_python = true; // false: CPython has no counterpart (compile time)
    // multiproc's program for this figure, when not bench_multiproc: bench_start, which does
    // not link libcrypto (bench/start.cpp says why).
    const char* program = "bench_multiproc";
};

std::optional<bool> at_least_abs(double v, double t) { return v >= t; }

const std::vector<figure>& figures() {
    static const std::vector<figure> f = {
        {"map", "", "pool.map, 1M tiny tasks", 20000, ">= 0.8x limit",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m >= 0.8 * *b) : std::nullopt; }},
        // Issue 17: the same with a progress observer (CPython: counting imap's results, as
        // a progress bar over a pool does; the baseline is the same raw limit).
        {"map", "observed", "pool.map, 1M tiny tasks, progress", 20000, "", nullptr},
        {"imap_unordered", "", "imap_unordered, chunksize 1", 5000, ">= 1 M tasks/s",
         [](double m, auto, auto) { return at_least_abs(m, 1e6); }},
        {"imap_unordered", "observed", "imap_unordered, chunksize 1, progress", 5000, "", nullptr},
        {"apply", "", "apply round trip (median)", 500, "<= 20 us",
         [](double m, auto, auto) { return std::optional<bool>(m <= 20.0); }},
        // Issue 17: an executor's round trip (Python: ProcessPoolExecutor(1).submit(f, x).result()).
        {"submit", "", "submit round trip (median)", 500, "", nullptr},
        // Issue 17 item 6: start::thread moves values instead of serializing them (CPython's
        // ThreadPool passes a reference; the baseline hands the vector to a thread by move).
        {"threadpool", "", "ThreadPool apply, 8 MiB vector (median)", 20, "", nullptr},
        // One put and one get per message (Python: Queue.put / Queue.get).
        {"queue", "pipe", "queue, 8-byte messages", 20000, "", nullptr},
        {"queue", "socketpair", "queue, 8-byte messages", 20000, "", nullptr},
        {"queue", "shm", "queue, 8-byte messages", 20000, "", nullptr},
        // Issue 20 item 1: the same in runs of 256 (put_many / get_many; CPython has neither
        // and puts one by one); the baseline is the raw limit of the figure above.
        {"queue_many", "pipe", "queue, 8-byte messages in runs", 20000, ">= 2.5 M msg/s",
         [](double m, auto, auto) { return at_least_abs(m, 2.5e6); }},
        {"queue_many", "socketpair", "queue, 8-byte messages in runs", 20000, "", nullptr},
        {"queue_many", "shm", "queue, 8-byte messages in runs", 20000, ">= 20 M msg/s",
         [](double m, auto, auto) { return at_least_abs(m, 20e6); }},
        // 4 producers and 4 consumers, in runs (CPython: put/get); baselines: a pipe, a
        // datagram socket pair, a lock-free ring of slots (bench/baseline.cpp).
        {"queue_4x4", "pipe", "queue 4x4, 8-byte messages in runs", 20000, "", nullptr},
        {"queue_4x4", "socketpair", "queue 4x4, 8-byte messages in runs", 20000, "", nullptr},
        {"queue_4x4", "shm", "queue 4x4, 8-byte messages in runs", 20000, ">= 8 M msg/s",
         [](double m, auto, auto) { return at_least_abs(m, 8e6); }},
        {"connection", "pipe", "connection, 8-byte messages", 20000, "", nullptr},
        {"connection", "socketpair", "connection, 8-byte messages", 20000, "", nullptr},
        {"connection", "shm", "connection, 8-byte messages", 20000, "", nullptr},
        // Issue 19: the same through listener/client (CPython: Listener/Client), over a Unix
        // socket and over TCP on loopback; the baseline is a raw stream socket of each kind.
        {"listener", "unix", "listener/client, 8-byte messages", 20000, "", nullptr},
        {"listener", "tcp", "listener/client, 8-byte messages", 20000, "", nullptr},
        // Issue 19: a manager dict's set (CPython: Manager().dict()); the baseline is a blocking
        // request and reply between two processes, which one call is.
        {"manager", "", "manager dict set round trip (median)", 200, "", nullptr},
        {"transfer", "pipe", "64 MiB transfer", 4, "", nullptr},
        {"transfer", "socketpair", "64 MiB transfer", 4, "", nullptr},
        {"transfer", "shm", "64 MiB transfer", 4, ">= 0.7x memcpy",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m >= 0.7 * *b) : std::nullopt; }},
        // Issue 20 item 2: the same 64 MiB as a typed message (send(vector) / recv(); CPython:
        // Connection.send(bytes) / recv(), pickled); the baseline is the raw transfer's.
        {"typed_transfer", "pipe", "64 MiB typed vector", 4, "", nullptr},
        {"typed_transfer", "socketpair", "64 MiB typed vector", 4, "", nullptr},
        {"typed_transfer", "shm", "64 MiB typed vector", 4, "", nullptr},
        // Issue 20 item 2: 64 MiB as pages (a page_buffer sent; CPython: a SharedMemory whose
        // name is sent), until the receiver has read a byte of every page; the baseline is
        // the raw transfer's (shm: one memcpy), the target for shm at least a memcpy.
        {"pages", "pipe", "64 MiB as pages (zero copy)", 4, "", nullptr},
        {"pages", "socketpair", "64 MiB as pages (zero copy)", 4, "", nullptr},
        {"pages", "shm", "64 MiB as pages (zero copy)", 4, ">= 1x memcpy",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m >= *b) : std::nullopt; }},
        {"start", "fork", "process start + join", 5, "<= 1.3x limit",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m <= 1.3 * *b) : std::nullopt; }, true,
         "bench_start"},
        {"start", "spawn", "process start + join", 3, "<= 1.3x limit",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m <= 1.3 * *b) : std::nullopt; }, true,
         "bench_start"},
        {"start", "forkserver", "process start + join", 3, "<= 1.3x limit",
         [](double m, auto, auto b) { return b ? std::optional<bool>(m <= 1.3 * *b) : std::nullopt; }, true,
         "bench_start"},
        {"speedup", "", "CPU-bound speedup, all cores", 2000, ">= 1.95x",
         [](double m, auto, auto) { return std::optional<bool>(m >= 1.95); }},
        // No target: the baseline is the same standard headers without multiproc.
        {"compile", "", "compile time of the flagship", 1, "", nullptr, false},
    };
    return f;
}

// One flat JSON object as printed by the bench programs: numbers, strings, booleans.
std::map<std::string, std::string> parse_flat_json(const std::string& line) {
    std::map<std::string, std::string> out;
    std::size_t i = line.find('{');
    if (i == std::string::npos) return out;
    ++i;
    while (i < line.size()) {
        auto q1 = line.find('"', i);
        if (q1 == std::string::npos) break;
        auto q2 = line.find('"', q1 + 1);
        auto colon = line.find(':', q2);
        if (q2 == std::string::npos || colon == std::string::npos) break;
        std::string key = line.substr(q1 + 1, q2 - q1 - 1);
        std::size_t v = line.find_first_not_of(' ', colon + 1);
        std::size_t end;
        std::string value;
        if (line[v] == '"') {
            end = line.find('"', v + 1);
            value = line.substr(v + 1, end - v - 1);
            ++end;
        } else {
            end = line.find_first_of(",}", v);
            value = line.substr(v, end - v);
        }
        out[key] = value;
        i = line.find_first_of(",}", end);
        if (i == std::string::npos || line[i] == '}') break;
        ++i;
    }
    return out;
}

struct sample {
    double value;
    std::map<std::string, std::string> fields;
};

struct impl {
    std::string name;
    std::vector<std::string> command; // figure, variant and scale are appended
    bool available;
    std::string why_not;
};

std::optional<sample> run_once(const impl& im, const figure& f, long scale, std::string& error) {
    std::vector<std::string> args = im.command;
    args.push_back(f.id);
    args.push_back(f.variant.empty() ? "-" : f.variant);
    args.push_back(std::to_string(scale));
    try {
        auto r = sp::run(args, {.capture_output = true, .timeout = std::chrono::seconds(300)});
        if (r.returncode != 0) {
            error = "exit " + std::to_string(r.returncode) + ": " + r.err.substr(0, 300);
            return std::nullopt;
        }
        auto fields = parse_flat_json(r.out);
        if (!fields.count("value")) {
            error = "no result in: " + r.out.substr(0, 200);
            return std::nullopt;
        }
        return sample{std::stod(fields["value"]), fields};
    } catch (const multiproc::error& e) {
        error = e.what();
        return std::nullopt;
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string fmt(double v) {
    char buf[64];
    double a = std::fabs(v);
    if (a >= 1e6)
        std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
    else if (a >= 1e4)
        std::snprintf(buf, sizeof buf, "%.1f k", v / 1e3);
    else if (a >= 100)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

// How many times better multiproc is than `other` (>1: multiproc better), for either sense.
double advantage(double mp, double other, bool higher_is_better) {
    return higher_is_better ? mp / other : other / mp;
}

} // namespace

int main(int argc, char** argv) {
    bool smoke = false;
    int repeat = 5;
    std::string json_path = "bench-results.json", only;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--smoke") smoke = true;
        else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
        else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else {
            std::cerr << "usage: bench_driver [--smoke] [--repeat N] [--json FILE] [--only FIGURE]\n";
            return 2;
        }
    }
    if (smoke) repeat = 1;

    const std::string dir = MULTIPROC_BENCH_DIR, src = MULTIPROC_BENCH_SOURCE_DIR;
    auto built = [&](const char* program) { return ::access((dir + "/" + program).c_str(), X_OK) == 0; };
    // multiproc's figures come from more than one program (figure::program); each figure
    // checks its own below, so one program missing skips only its figures.
    std::vector<impl> impls = {
        {"multiproc", {dir + "/bench_multiproc"}, built("bench_multiproc") || built("bench_start"),
         "neither bench_multiproc nor bench_start is built"},
        {"CPython", {"python3", src + "/bench.py"}, false, ""},
        {"baseline", {dir + "/bench_baseline"}, built("bench_baseline"), "bench_baseline is not built"},
    };
    try {
        auto v = sp::run({"python3", "-c", "import multiprocessing, sys; print(sys.version.split()[0])"},
                         {.capture_output = true, .timeout = std::chrono::seconds(30)});
        impls[1].available = v.returncode == 0;
        impls[1].name = "CPython " + v.out.substr(0, v.out.find('\n'));
        if (!impls[1].available) impls[1].why_not = "python3 cannot import multiprocessing";
    } catch (const multiproc::error&) {
        impls[1].why_not = "python3 is not installed";
    }
    for (auto& im : impls)
        if (!im.available) std::cout << "notice: skipping " << im.name << ": " << im.why_not << "\n";

    std::ostringstream json;
    json << "{\n  \"smoke\": " << (smoke ? "true" : "false") << ",\n  \"repeat\": " << repeat << ",\n  \"results\": [";
    bool first_json = true;
    std::printf("\n%-32s %-11s %14s %14s %14s %11s %11s  %-15s %s\n", "figure", "variant", "multiproc", "CPython",
                "baseline", "vs CPython", "vs baseline", "target", "met");
    for (const auto& f : figures()) {
        if (!only.empty() && f.id != only) continue;
        std::optional<double> med[3];
        std::string unit;
        bool higher = true;
        std::string extra[3];
        for (std::size_t k = 0; k < impls.size(); ++k) {
            if (!impls[k].available || (k == 1 && !f.has_python)) continue;
            std::vector<double> vals;
            std::vector<double> p99s;
            impl im = impls[k];
            if (k == 0) {
                im.command = {dir + "/" + f.program};
                if (!built(f.program)) {
                    std::cerr << "warning: " << f.program << " is not built: no multiproc figure for " << f.id << "\n";
                    continue;
                }
            }
            for (int r = 0; r < repeat; ++r) {
                std::string error;
                auto s = run_once(im, f, smoke ? f.smoke_scale : 0, error);
                if (!s) {
                    std::cerr << "warning: " << impls[k].name << " " << f.id << " " << f.variant << ": " << error << "\n";
                    break;
                }
                vals.push_back(s->value);
                unit = s->fields["unit"];
                higher = s->fields["higher_is_better"] == "true";
                if (s->fields.count("p99_us")) p99s.push_back(std::stod(s->fields["p99_us"]));
            }
            if (!vals.empty()) med[k] = median(vals);
            if (!p99s.empty()) extra[k] = "p99 " + fmt(median(p99s)) + " us";
        }
        auto cell = [&](std::size_t k) { return med[k] ? fmt(*med[k]) + " " + unit : std::string("n/a"); };
        auto ratio = [&](std::size_t k) {
            if (!med[0] || !med[k]) return std::string("n/a");
            char b[32];
            std::snprintf(b, sizeof b, "%.2fx", advantage(*med[0], *med[k], higher));
            return std::string(b);
        };
        std::string met = "-";
        if (f.met && med[0]) {
            auto m = f.met(*med[0], med[1], med[2]);
            met = m ? (*m ? "yes" : "NO") : "n/a";
        } else if (f.met) {
            met = "n/a";
        }
        std::printf("%-32s %-11s %14s %14s %14s %11s %11s  %-15s %s\n", f.title.c_str(), f.variant.c_str(),
                    cell(0).c_str(), cell(1).c_str(), cell(2).c_str(), ratio(1).c_str(), ratio(2).c_str(),
                    f.target.c_str(), met.c_str());
        for (std::size_t k = 0; k < 3; ++k)
            if (!extra[k].empty()) std::printf("%-32s %-11s %14s\n", "", "", (impls[k].name.substr(0, 9) + ": " + extra[k]).c_str());
        json << (first_json ? "\n" : ",\n") << "    {\"figure\": \"" << f.id << "\", \"variant\": \"" << f.variant
             << "\", \"unit\": \"" << unit << "\", \"higher_is_better\": " << (higher ? "true" : "false");
        const char* keys[3] = {"multiproc", "cpython", "baseline"};
        for (std::size_t k = 0; k < 3; ++k) {
            json << ", \"" << keys[k] << "\": ";
            if (med[k])
                json << *med[k];
            else
                json << "null";
        }
        json << ", \"target\": \"" << f.target << "\", \"met\": \"" << met << "\"}";
        first_json = false;
    }
    json << "\n  ]\n}\n";
    std::ofstream(json_path) << json.str();
    std::printf("\nratios: how many times better multiproc is (>1: multiproc better; medians of %d run%s)\n"
                "results written to %s\n",
                repeat, repeat == 1 ? "" : "s", json_path.c_str());
}
