// Not part of the API: how many CPUs this process may really use.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// The whole text of a (small, /proc or /sys) file, or "" if it cannot be read.
inline std::string read_file(const std::string& path) {
    int fd = sys::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = sys::read(fd, buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            if (n < 0) text.clear();
            break;
        }
    }
    sys::close(fd);
    return text;
}

/// The parts of `text` between the separators in `seps`, empty parts left out.
inline std::vector<std::string_view> split(std::string_view text, std::string_view seps) {
    std::vector<std::string_view> out;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t j = text.find_first_of(seps, i);
        if (j == std::string_view::npos) j = text.size();
        if (j > i) out.push_back(text.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

/// `word` as a number, if all of it is one.
inline std::optional<double> to_number(std::string_view word) {
    double v = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || end != word.data() + word.size()) return std::nullopt;
    return v;
}

/// CPUs in this process's affinity mask (any number of CPUs), or 0 if unknown.
inline int affinity_cpu_count() {
    for (int n = 1024; n <= (1 << 20); n *= 4) {
        cpu_set_t* set = CPU_ALLOC(n);
        if (!set) return 0;
        std::size_t size = CPU_ALLOC_SIZE(n);
        int count = 0;
        if (::sched_getaffinity(0, size, set) == 0) count = CPU_COUNT_S(size, set);
        int err = errno;
        CPU_FREE(set);
        if (count > 0) return count;
        if (err != EINVAL) return 0;
    }
    return 0;
}

/// "max 100000" -> nothing; "150000 100000" -> 1.5 (cgroup v2 cpu.max).
inline std::optional<double> parse_cpu_max(std::string_view text) {
    auto w = split(text, " \t\n");
    if (w.size() < 2 || w[0] == "max") return std::nullopt;
    auto q = to_number(w[0]), period = to_number(w[1]);
    if (!q || !period || *q <= 0 || *period <= 0) return std::nullopt;
    return *q / *period;
}

struct cgroup_mount {
    std::string root;        // the cgroup path mounted there ("/" usually)
    std::string mount_point; // where it is mounted
    bool v2;                 // cgroup2, else a v1 hierarchy carrying the cpu controller
};

/// The mounts of the unified (v2) hierarchy and of the v1 hierarchy with the cpu controller,
/// from the text of /proc/self/mountinfo.
inline std::vector<cgroup_mount> cgroup_mounts(std::string_view mountinfo) {
    std::vector<cgroup_mount> out;
    for (std::string_view line : split(mountinfo, "\n")) {
        auto dash = line.find(" - ");
        if (dash == std::string_view::npos) continue;
        // id parent major:minor root mount-point ... - fstype source super-options
        auto pre = split(line.substr(0, dash), " \t"), post = split(line.substr(dash + 3), " \t");
        if (pre.size() < 5 || post.size() < 3) continue;
        std::string root(pre[3]), mp(pre[4]);
        if (post[0] == "cgroup2") {
            out.push_back({root, mp, true});
        } else if (post[0] == "cgroup") {
            for (std::string_view opt : split(post[2], ","))
                if (opt == "cpu") out.push_back({root, mp, false});
        }
    }
    return out;
}

/// The CPU bandwidth limit of a cgroup directory: cpu.max (v2) or cfs quota/period (v1).
inline std::optional<double> cgroup_dir_limit(const std::string& dir, bool v2) {
    if (v2) return parse_cpu_max(read_file(dir + "/cpu.max"));
    std::string q = read_file(dir + "/cpu.cfs_quota_us"), p = read_file(dir + "/cpu.cfs_period_us");
    if (q.empty() || p.empty()) return std::nullopt;
    return parse_cpu_max(q.substr(0, q.find('\n')) + " " + p);
}

/// The tightest CPU limit on this process's cgroup and its ancestors, given the texts of
/// /proc/self/cgroup and /proc/self/mountinfo; `prefix` is prepended to paths (for tests).
inline std::optional<double> cgroup_cpu_limit(std::string_view proc_cgroup, std::string_view mountinfo,
                                              const std::string& prefix = "") {
    std::optional<double> best;
    auto consider = [&](std::optional<double> v) {
        if (v && (!best || *v < *best)) best = v;
    };
    for (const auto& m : cgroup_mounts(mountinfo)) {
        // Find this process's path in that hierarchy: "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1).
        std::string path;
        bool found = false;
        for (std::string_view line : split(proc_cgroup, "\n")) {
            auto a = line.find(':'), b = line.find(':', a + 1);
            if (a == std::string::npos || b == std::string::npos) continue;
            std::string_view ctrls = line.substr(a + 1, b - a - 1);
            auto names = split(ctrls, ",");
            bool match = m.v2 ? (line.substr(0, a) == "0" && ctrls.empty())
                              : std::find(names.begin(), names.end(), std::string_view("cpu")) != names.end();
            if (match) {
                path = std::string(line.substr(b + 1));
                found = true;
                break;
            }
        }
        if (!found) continue;
        // The path is relative to the hierarchy's root; the mount shows the part under m.root.
        std::string rel = path;
        if (m.root != "/" && rel.compare(0, m.root.size(), m.root) == 0) rel.erase(0, m.root.size());
        std::string base = prefix + m.mount_point;
        // Walk from the process's cgroup up to the mount point; in a container whose
        // namespace hides the path, only the mount point itself exists.
        for (std::string r = rel;; ) {
            consider(cgroup_dir_limit(base + (r == "/" ? "" : r), m.v2));
            if (r.empty() || r == "/") break;
            auto slash = r.rfind('/');
            r = slash == 0 || slash == std::string::npos ? "/" : r.substr(0, slash);
        }
    }
    return best;
}

/// min(affinity mask, ceil(cgroup quota)), at least 1.
inline int usable_cpu_count() {
    int n = affinity_cpu_count();
    if (n <= 0) n = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    if (n <= 0) n = 1;
    if (auto lim = cgroup_cpu_limit(read_file("/proc/self/cgroup"), read_file("/proc/self/mountinfo")))
        if (*lim < n) { // then it fits an int: n = max(1, ceil(limit))
            int whole = static_cast<int>(*lim);
            n = std::max(1, whole < *lim ? whole + 1 : whole);
        }
    return n;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
