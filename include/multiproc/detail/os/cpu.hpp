// Not part of the API: how many CPUs this process may really use.
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <charconv>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sched.h>
#include <unistd.h>

namespace multiproc::detail {

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream os;
    os << in.rdbuf();
    return in ? os.str() : std::string();
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
    std::istringstream in{std::string(text)};
    std::string quota;
    double period = 0;
    if (!(in >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
    double q = 0;
    auto [end, ec] = std::from_chars(quota.data(), quota.data() + quota.size(), q);
    if (ec != std::errc() || end != quota.data() + quota.size() || q <= 0) return std::nullopt;
    return q / period;
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
    std::istringstream in{std::string(mountinfo)};
    std::string line;
    while (std::getline(in, line)) {
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
        std::string id, parent, dev, root, mp, fstype, source, opts;
        if (!(pre >> id >> parent >> dev >> root >> mp) || !(post >> fstype >> source >> opts)) continue;
        if (fstype == "cgroup2") {
            out.push_back({root, mp, true});
        } else if (fstype == "cgroup") {
            std::istringstream o(opts);
            std::string opt;
            while (std::getline(o, opt, ','))
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
        std::istringstream in{std::string(proc_cgroup)};
        std::string line, path;
        bool found = false;
        while (std::getline(in, line)) {
            auto a = line.find(':'), b = line.find(':', a + 1);
            if (a == std::string::npos || b == std::string::npos) continue;
            std::string ctrls = line.substr(a + 1, b - a - 1);
            bool match = m.v2 ? (line.compare(0, a, "0") == 0 && ctrls.empty())
                              : ("," + ctrls + ",").find(",cpu,") != std::string::npos;
            if (match) {
                path = line.substr(b + 1);
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
        n = std::min(n, std::max(1, static_cast<int>(std::ceil(*lim))));
    return n;
}

} // namespace multiproc::detail
