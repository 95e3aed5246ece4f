// What multiproc costs at build time, measured in one run beside the standard library:
//
// 1. The compiler's front end (`-fsyntax-only`) over one translation unit per public header
//    (each alone), over <multiproc/multiproc.hpp> and over three examples: CPU time
//    (user + sys, the driver and the compiler proper it waits for, from wait4) and peak
//    memory (ru_maxrss: the largest of those processes), as medians of several runs
//    interleaved round by round, and as ratios to a reference translation unit of
//    `#include <vector>` + `#include <string>` measured in the same rounds. Targets (issue
//    16): each public header within 2x the reference, multiproc.hpp within 3x, in CPU time.
//    Beside each header, its floor: a translation unit of only the headers from outside the
//    library (standard, POSIX, Boost, range-v3) that the library's headers include for it,
//    measured in the same rounds: what the header would cost if the library's own code were
//    free, and so the bound on what trimming the library alone can reach.
// 2. The stripped size of a process + pipe program (bench/size/process_pipe.cpp) at -Os
//    beside the same in C on fork(2) and pipe(2) (bench/size/fork_pipe.c), dynamic and,
//    where the static libraries exist, -static; and the C++ program again with
//    -fno-exceptions -fno-rtti, reported as "does not compile yet" while it does not.
//
//   bench_compile [--smoke] [--runs N] [--json FILE]
//
// --smoke: one run, a few headers (CI). Exits 1 only when a compilation that must succeed
// fails (or a built program prints the wrong answer); timings are never judged.
//
// A bench, not library code: it calls fork, exec and wait4 directly.

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MULTIPROC_BENCH_CXX
#error "MULTIPROC_BENCH_CXX (the C++ compiler to measure) must be defined"
#endif
#ifndef MULTIPROC_BENCH_CC
#error "MULTIPROC_BENCH_CC (the C compiler for fork_pipe.c, or \"\") must be defined"
#endif
#ifndef MULTIPROC_BENCH_FLAGS
#error "MULTIPROC_BENCH_FLAGS (a response file of -I and -D flags) must be defined"
#endif
#ifndef MULTIPROC_BENCH_INCLUDE
#error "MULTIPROC_BENCH_INCLUDE (the library's include directory) must be defined"
#endif
#ifndef MULTIPROC_BENCH_EXAMPLES
#error "MULTIPROC_BENCH_EXAMPLES (examples/ in the source tree) must be defined"
#endif
#ifndef MULTIPROC_BENCH_SIZE_DIR
#error "MULTIPROC_BENCH_SIZE_DIR (bench/size/ in the source tree) must be defined"
#endif
#ifndef MULTIPROC_BENCH_WORK_DIR
#error "MULTIPROC_BENCH_WORK_DIR (scratch directory for sources and binaries) must be defined"
#endif
#ifndef MULTIPROC_BENCH_LIBS
#error "MULTIPROC_BENCH_LIBS (extra libraries a multiproc program links, or \"\") must be defined"
#endif
#ifndef MULTIPROC_BENCH_CEREAL
#define MULTIPROC_BENCH_CEREAL 0
#endif

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------
// Running a command

struct outcome {
    bool ok = false;       // exited 0
    double cpu_s = 0;      // user + sys of the child and the children it waited for
    long maxrss_kb = 0;    // the largest resident set among them
    std::string output;    // stdout and stderr, interleaved
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_compile: %s\n", what.c_str());
    std::exit(2);
}

outcome run(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) die(std::string("pipe2: ") + std::strerror(errno));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDONLY);
        if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(fds[1], 1) < 0 || ::dup2(fds[1], 2) < 0) ::_exit(126);
        ::execvp(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    outcome o;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) o.output.append(buf, static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR) break;
    }
    ::close(fds[0]);
    int status = 0;
    rusage ru{};
    while (::wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) die(std::string("wait4: ") + std::strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && o.output.empty())
        o.output = "cannot execute " + args[0];
    o.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    auto secs = [](timeval t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    o.cpu_s = secs(ru.ru_utime) + secs(ru.ru_stime);
    o.maxrss_kb = ru.ru_maxrss;
    return o;
}

// The line of a compiler's or linker's output that says what went wrong, with paths
// relative to the source tree.
std::string first_error(const std::string& output) {
    std::istringstream in(output);
    std::string line, first_nonempty;
    const std::string root = fs::path(MULTIPROC_BENCH_INCLUDE).parent_path().string() + "/";
    while (std::getline(in, line)) {
        for (std::size_t at; (at = line.find(root)) != std::string::npos;) line.erase(at, root.size());
        if (first_nonempty.empty() && !line.empty()) first_nonempty = line;
        if (line.find("error") != std::string::npos || line.find("cannot find") != std::string::npos ||
            line.find("undefined reference") != std::string::npos)
            return line;
    }
    return first_nonempty.empty() ? "(no output)" : first_nonempty;
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream f(p);
    f << text;
    if (!f.flush()) die("cannot write " + p.string());
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
        else out += c;
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// 1. Front-end cost

enum class kind { reference, header, umbrella, example };

struct unit {
    std::string name;   // as printed
    kind k;
    fs::path source;
    std::vector<double> cpu;
    std::vector<double> rss;
    std::string error;  // first error line when it did not compile
    fs::path floor_source{};        // headers and umbrella: the outside headers alone
    std::vector<double> floor_cpu{};
};

// The directories the compiler searches for includes, as `-E -v` lists them.
std::vector<fs::path> search_dirs() {
    outcome o = run({MULTIPROC_BENCH_CXX, "@" MULTIPROC_BENCH_FLAGS, "-std=c++20", "-E", "-v", "-x", "c++", "-o",
                     "/dev/null", "/dev/null"});
    std::vector<fs::path> dirs;
    std::istringstream in(o.output);
    bool listing = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("#include", 0) == 0 && line.find("search starts here") != std::string::npos) listing = true;
        else if (line.rfind("End of search list", 0) == 0) listing = false;
        else if (listing && !line.empty() && line[0] == ' ')
            dirs.push_back(fs::path(line.substr(1, line.find(" (") == std::string::npos ? std::string::npos
                                                                                          : line.find(" (") - 1))
                               .lexically_normal());
    }
    return dirs;
}

// The floor of `source`: a translation unit that includes, spelled as a program would, the
// headers from outside the library that the unit itself or one of the library's headers
// includes directly (what `-H` shows one level below them). Nothing if that fails.
std::optional<std::string> floor_text(const fs::path& source, const std::vector<fs::path>& dirs) {
    outcome o = run({MULTIPROC_BENCH_CXX, "@" MULTIPROC_BENCH_FLAGS, "-std=c++20", "-E", "-H", "-o", "/dev/null",
                     source.string()});
    if (!o.ok) return std::nullopt;
    const std::string lib = (fs::path(MULTIPROC_BENCH_INCLUDE) / "multiproc").lexically_normal().string() + "/";
    auto is_lib = [&](const std::string& p) { return p.rfind(lib, 0) == 0; };
    std::vector<std::string> stack, roots; // stack[d]: the header open at depth d + 1
    std::istringstream in(o.output);
    for (std::string line; std::getline(in, line);) {
        std::size_t depth = line.find_first_not_of('.');
        if (depth == 0 || depth == std::string::npos || line[depth] != ' ') continue;
        std::string path = fs::path(line.substr(depth + 1)).lexically_normal().string();
        stack.resize(depth - 1);
        bool parent_is_unit_or_lib = stack.empty() || is_lib(stack.back());
        if (!is_lib(path) && parent_is_unit_or_lib) {
            std::string spelled; // relative to the longest search directory that holds it
            std::size_t best = 0;
            for (auto& d : dirs) {
                std::string ds = d.string() + "/";
                if (path.rfind(ds, 0) == 0 && ds.size() > best) best = ds.size(), spelled = path.substr(ds.size());
            }
            if (spelled.empty()) return std::nullopt;
            if (std::find(roots.begin(), roots.end(), spelled) == roots.end()) roots.push_back(spelled);
        }
        stack.push_back(path);
    }
    std::string text;
    for (auto& r : roots) text += "#include <" + r + ">\n";
    return text;
}

std::optional<double> target_of(kind k) {
    if (k == kind::header) return 2.0;
    if (k == kind::umbrella) return 3.0;
    return std::nullopt;
}

// The translation units: the reference, each public header alone (detail/ is internal;
// ext/ only where cereal is found), multiproc.hpp, and three examples.
std::vector<unit> units(bool smoke, const fs::path& work) {
    std::vector<unit> out;
    write_file(work / "reference.cpp", "#include <vector>\n#include <string>\n");
    out.push_back({"<vector> + <string> (reference)", kind::reference, work / "reference.cpp", {}, {}, {}});

    const fs::path inc = MULTIPROC_BENCH_INCLUDE;
    std::vector<std::string> headers;
    for (const char* dir : {"multiproc", "multiproc/views", "multiproc/policies"})
        for (auto& e : fs::directory_iterator(inc / dir))
            if (e.path().extension() == ".hpp") headers.push_back(fs::relative(e.path(), inc).string());
    if (MULTIPROC_BENCH_CEREAL && fs::exists(inc / "multiproc/ext/serialize/cereal.hpp"))
        headers.push_back("multiproc/ext/serialize/cereal.hpp");
    std::sort(headers.begin(), headers.end());
    if (smoke) {
        const std::vector<std::string> few = {"multiproc/multiproc.hpp", "multiproc/pipe.hpp",
                                              "multiproc/policies/transport.hpp"};
        std::erase_if(headers, [&](auto& h) { return std::find(few.begin(), few.end(), h) == few.end(); });
    }
    for (auto& h : headers) {
        std::string id = h;
        std::replace(id.begin(), id.end(), '/', '_');
        fs::path tu = work / ("header_" + id + ".cpp");
        write_file(tu, "#include <" + h + ">\n");
        out.push_back({h, h == "multiproc/multiproc.hpp" ? kind::umbrella : kind::header, tu, {}, {}, {}});
    }

    const fs::path ex = MULTIPROC_BENCH_EXAMPLES;
    std::vector<std::string> examples = {"flagship.cpp", "001/pool.cpp", "002/lock_counter.cpp"};
    if (smoke) examples = {"002/lock_counter.cpp"};
    for (auto& e : examples) out.push_back({"examples/" + e, kind::example, ex / e, {}, {}, {}});

    auto dirs = search_dirs();
    for (auto& u : out) {
        if (u.k != kind::header && u.k != kind::umbrella) continue;
        if (auto text = floor_text(u.source, dirs)) {
            u.floor_source = u.source.parent_path() / ("floor_" + u.source.filename().string());
            write_file(u.floor_source, *text);
        }
    }
    return out;
}

std::vector<std::string> front_end_command(const fs::path& source) {
    return {MULTIPROC_BENCH_CXX, "@" MULTIPROC_BENCH_FLAGS, "-std=c++20", "-O2", "-fsyntax-only",
            "-I" MULTIPROC_BENCH_EXAMPLES, source.string()};
}

// Every unit once per round, so that a change in the machine's load falls on all of them.
void measure(std::vector<unit>& us, int runs) {
    for (int r = 0; r < runs; ++r) {
        for (auto& u : us) {
            if (!u.error.empty()) continue;
            outcome o = run(front_end_command(u.source));
            if (!o.ok) {
                u.error = first_error(o.output);
                continue;
            }
            u.cpu.push_back(o.cpu_s);
            u.rss.push_back(static_cast<double>(o.maxrss_kb));
            if (!u.floor_source.empty()) {
                outcome f = run(front_end_command(u.floor_source));
                if (f.ok) u.floor_cpu.push_back(f.cpu_s);
            }
        }
        std::fprintf(stderr, "bench_compile: round %d of %d done\n", r + 1, runs);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Binary size

struct build {
    std::string name;      // as printed
    std::string variant;   // "dynamic" or "static"
    bool must_build;       // false: the row reports a failure instead of failing the bench
    std::vector<std::string> command;
    fs::path binary;
    std::optional<long> bytes;
    std::string error;
};

const std::string c_program = "C fork + pipe";

// What a compiler's driver finds for a library file: an absolute path when it has it.
bool has_library(const std::string& compiler, const std::string& file) {
    outcome o = run({compiler, "-print-file-name=" + file});
    std::string path = o.output.substr(0, o.output.find('\n'));
    return o.ok && !path.empty() && path.front() == '/' && fs::exists(path);
}

std::vector<build> builds(const fs::path& work) {
    const fs::path src = MULTIPROC_BENCH_SIZE_DIR;
    const std::string cxx = MULTIPROC_BENCH_CXX, cc = MULTIPROC_BENCH_CC;
    std::vector<std::string> libs;
    {
        std::istringstream in(MULTIPROC_BENCH_LIBS);
        for (std::string l; in >> l;) libs.push_back(l);
    }
    bool cxx_static = has_library(cxx, "libc.a") && has_library(cxx, "libstdc++.a");
    bool cc_static = !cc.empty() && has_library(cc, "libc.a");

    std::vector<build> out;
    auto cxx_build = [&](std::string name, std::string out_name, bool must, std::vector<std::string> extra) {
        std::vector<std::string> cmd = {cxx, "@" MULTIPROC_BENCH_FLAGS, "-std=c++20", "-Os", "-s"};
        cmd.insert(cmd.end(), extra.begin(), extra.end());
        fs::path bin = work / out_name;
        cmd.insert(cmd.end(), {(src / "process_pipe.cpp").string(), "-o", bin.string(), "-pthread"});
        cmd.insert(cmd.end(), libs.begin(), libs.end());
        bool is_static = std::find(extra.begin(), extra.end(), "-static") != extra.end();
        out.push_back({std::move(name), is_static ? "static" : "dynamic", must, cmd, bin, {}, {}});
    };
    auto cc_build = [&](bool is_static) {
        fs::path bin = work / (is_static ? "fork_pipe_static" : "fork_pipe");
        std::vector<std::string> cmd = {cc, "-Os", "-s"};
        if (is_static) cmd.push_back("-static");
        cmd.insert(cmd.end(), {(src / "fork_pipe.c").string(), "-o", bin.string()});
        out.push_back({c_program, is_static ? "static" : "dynamic", true, cmd, bin, {}, {}});
    };
    cxx_build("multiproc process + pipe", "process_pipe", true, {});
    if (cxx_static) cxx_build("multiproc process + pipe", "process_pipe_static", true, {"-static"});
    if (!cc.empty()) {
        cc_build(false);
        if (cc_static) cc_build(true);
    }
    // Not yet expected to build: the headers are being converted for -fno-exceptions.
    cxx_build("multiproc process + pipe, -fno-exceptions -fno-rtti", "process_pipe_noexc", false,
              {"-fno-exceptions", "-fno-rtti"});
    if (cxx_static)
        cxx_build("multiproc process + pipe, -fno-exceptions -fno-rtti", "process_pipe_noexc_static", false,
                  {"-fno-exceptions", "-fno-rtti", "-static"});
    return out;
}

// Builds each program and runs it: it must print 42 (a size of a broken program means nothing).
void make(std::vector<build>& bs) {
    for (auto& b : bs) {
        outcome o = run(b.command);
        if (!o.ok) {
            b.error = first_error(o.output);
            continue;
        }
        outcome r = run({b.binary.string()});
        if (!r.ok || r.output != "42\n") {
            b.error = "built, but printed \"" + r.output + "\" instead of 42";
            b.must_build = true; // it compiled: from here on it must work
            continue;
        }
        struct stat st{};
        if (::stat(b.binary.c_str(), &st) != 0) die("stat " + b.binary.string());
        b.bytes = st.st_size;
    }
}

// ---------------------------------------------------------------------------------------
// Report

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string size_text(long bytes) {
    if (bytes >= 1024 * 1024) return fmt("%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return fmt("%.1f KiB", static_cast<double>(bytes) / 1024.0);
}

std::string compiler_version(const std::string& compiler) {
    outcome o = run({compiler, "--version"});
    return o.output.substr(0, o.output.find('\n'));
}

int report(const std::vector<unit>& us, const std::vector<build>& bs, int runs, const std::string& json_path) {
    int failures = 0;
    const unit& ref = us.front();
    bool have_ref = ref.error.empty() && !ref.cpu.empty();
    double ref_cpu = have_ref ? median(ref.cpu) : 0, ref_rss = have_ref ? median(ref.rss) : 0;
    std::string cxx_version = compiler_version(MULTIPROC_BENCH_CXX);

    std::printf("Front end: %s, -std=c++20 -O2 -fsyntax-only; CPU = user+sys of the compiler, median of %d; "
                "peak = its ru_maxrss\n",
                cxx_version.c_str(), runs);
    std::printf("%-44s %8s %8s %8s %9s %8s %8s %4s\n", "translation unit", "CPU s", "vs ref", "floor",
                "peak MiB", "vs ref", "target", "met");
    std::ostringstream json;
    json << "{\"compiler\": \"" << json_escape(cxx_version) << "\", \"runs\": " << runs << ", \"front_end\": [";
    bool first = true;
    bool floor_over = false;
    for (auto& u : us) {
        json << (first ? "" : ", ") << "{\"name\": \"" << json_escape(u.name) << "\"";
        first = false;
        auto target = target_of(u.k);
        if (!u.error.empty()) {
            ++failures;
            std::printf("%-44s does not compile: %s\n", u.name.c_str(), u.error.c_str());
            json << ", \"error\": \"" << json_escape(u.error) << "\"}";
            continue;
        }
        double cpu = median(u.cpu), rss = median(u.rss);
        std::string vs_cpu = have_ref ? fmt("%.2fx", cpu / ref_cpu) : "-";
        std::string vs_rss = have_ref ? fmt("%.2fx", rss / ref_rss) : "-";
        std::string met = "-";
        std::optional<bool> ok;
        if (target && have_ref) {
            ok = cpu <= *target * ref_cpu;
            met = *ok ? "yes" : "NO";
        }
        std::optional<double> floor_cpu;
        if (!u.floor_cpu.empty()) floor_cpu = median(u.floor_cpu);
        if (ok && !*ok && floor_cpu && *floor_cpu > *target * ref_cpu) {
            met = "NO*"; // not reachable by the library's own code alone
            floor_over = true;
        }
        std::string vs_floor = floor_cpu && have_ref ? fmt("%.2fx", *floor_cpu / ref_cpu) : "-";
        std::printf("%-44s %8.3f %8s %8s %9.1f %8s %8s %4s\n", u.name.c_str(), cpu, vs_cpu.c_str(), vs_floor.c_str(),
                    rss / 1024.0, vs_rss.c_str(), target ? fmt("<= %gx", *target).c_str() : "", met.c_str());
        json << ", \"cpu_s\": " << cpu << ", \"peak_kib\": " << rss;
        if (floor_cpu) json << ", \"floor_cpu_s\": " << *floor_cpu;
        if (floor_cpu && have_ref) json << ", \"floor_ratio\": " << *floor_cpu / ref_cpu;
        json << ", \"cpu_s_runs\": [";
        for (std::size_t i = 0; i < u.cpu.size(); ++i) json << (i ? ", " : "") << u.cpu[i];
        json << "]";
        if (have_ref) json << ", \"cpu_ratio\": " << cpu / ref_cpu << ", \"peak_ratio\": " << rss / ref_rss;
        if (target) json << ", \"target_ratio\": " << *target;
        if (ok) json << ", \"met\": " << (*ok ? "true" : "false");
        json << "}";
    }

    std::printf("floor: the headers from outside the library that it includes, alone, vs the reference\n");
    if (floor_over) std::printf("NO*: the floor alone is over the target\n");
    std::printf("\nBinary size, -Os, stripped (-s); each program run, it must print 42\n");
    std::printf("%-54s %-8s %12s %8s\n", "program", "link", "size", "vs C");
    json << "], \"size\": [";
    first = true;
    // The C program linked the same way, the yardstick of each row.
    auto c_bytes = [&](const std::string& variant) -> std::optional<long> {
        for (auto& b : bs)
            if (b.name == c_program && b.variant == variant && b.bytes) return b.bytes;
        return std::nullopt;
    };
    for (auto& b : bs) {
        json << (first ? "" : ", ") << "{\"name\": \"" << json_escape(b.name) << "\", \"link\": \"" << b.variant << "\"";
        first = false;
        if (b.bytes) {
            auto c = c_bytes(b.variant);
            double ratio = c ? static_cast<double>(*b.bytes) / static_cast<double>(*c) : 0;
            std::printf("%-54s %-8s %12s %8s\n", b.name.c_str(), b.variant.c_str(), size_text(*b.bytes).c_str(),
                        c ? fmt("%.2fx", ratio).c_str() : "-");
            json << ", \"bytes\": " << *b.bytes;
            if (c) json << ", \"c_ratio\": " << ratio;
            json << "}";
            continue;
        }
        if (b.must_build) ++failures;
        std::printf("%-54s %-8s %s: %s\n", b.name.c_str(), b.variant.c_str(),
                    b.must_build ? "FAILED" : "does not compile yet", b.error.c_str());
        json << ", \"error\": \"" << json_escape(b.error) << "\"}";
    }
    json << "]}\n";

    if (!json_path.empty()) {
        std::ofstream f(json_path);
        f << json.str();
        if (!f.flush()) die("cannot write " + json_path);
        std::printf("\n(JSON in %s)\n", json_path.c_str());
    }
    return failures;
}

} // namespace

int main(int argc, char** argv) {
    bool smoke = false;
    int runs = 5;
    std::string json_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--smoke") smoke = true;
        else if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
        else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--smoke] [--runs N] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    if (smoke) runs = 1;
    if (runs < 1) die("--runs wants a positive number");

    const fs::path work = MULTIPROC_BENCH_WORK_DIR;
    fs::create_directories(work);
    auto us = units(smoke, work);
    auto bs = builds(work);
    measure(us, runs);
    make(bs);
    int failures = report(us, bs, runs, json_path);
    if (failures) std::fprintf(stderr, "bench_compile: %d compilation(s) that must succeed failed\n", failures);
    return failures ? 1 : 0;
}
