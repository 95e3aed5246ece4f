// check_output: runs an example and checks its stdout, stderr and exit status against an
// `.expected` file (the format is described in examples/README.md).
//
//   check_output [--timeout SECONDS] [--allow-orphans] FILE.expected [--] PROGRAM [ARGS...]
//
// Exit status: 0 the output matches; 1 it does not (or the example left processes
// behind); 2 usage error, unreadable or malformed .expected file, or PROGRAM cannot be
// started; 3 the example did not finish within the timeout (its process group is killed).
//
// The example runs in a process group of its own, with stdin on /dev/null and stdout and
// stderr on two pipes that are read together with poll(), so neither can fill up and block
// it. This program is a child subreaper: a process the example started and did not wait
// for is handed to us when the example ends, and is reported (and killed) rather than
// silently left running, unless --allow-orphans is given.
//
// Written in C++ on purpose: a fresh Debian may have no Python or Perl.

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int exit_match = 0;
constexpr int exit_mismatch = 1;
constexpr int exit_usage = 2;
constexpr int exit_timeout = 3;

[[noreturn]] void usage_error(const std::string& msg) {
    std::cerr << "check_output: " << msg << "\n"
              << "usage: check_output [--timeout SECONDS] [--allow-orphans] FILE.expected [--] PROGRAM [ARGS...]\n";
    std::exit(exit_usage);
}

// ---------------------------------------------------------------------------------------
// The .expected file.

// One expected line: literal text, or an ECMAScript regex that must match the whole line.
struct pattern {
    std::string text;
    bool is_regex = false;
    std::regex re;
    int file_line = 0;

    [[nodiscard]] bool matches(const std::string& line) const {
        return is_regex ? std::regex_match(line, re) : line == text;
    }
    [[nodiscard]] std::string source() const { return is_regex ? "~ " + text : text; }
};

// What one entry of a stream's expectation matches.
struct item {
    enum kind_t { line, group, any } kind = line;
    std::vector<pattern> patterns; // one for `line`, the group's lines for `group`
    int file_line = 0;             // of the line, the `{` or the `...`
    int end_line = 0;              // of the `}`
};

struct stream_spec {
    bool present = false; // a section for this stream appears in the file
    std::vector<item> items;
};

struct expectation {
    std::string path;
    stream_spec out, err;
    int exit_status = 0;
};

[[noreturn]] void file_error(const std::string& path, int line, const std::string& msg) {
    std::cerr << "check_output: " << path << ":" << line << ": " << msg << "\n";
    std::exit(exit_usage);
}

expectation parse_expected(const std::string& path) {
    std::ifstream in(path);
    if (!in) usage_error("cannot read " + path + ": " + std::strerror(errno));
    expectation e;
    e.path = path;
    e.out.present = true; // stdout is always checked: empty unless lines say otherwise
    stream_spec* cur = &e.out;
    std::optional<item> open_group;
    bool exit_seen = false;
    std::string raw;
    int n = 0;
    while (std::getline(in, raw)) {
        ++n;
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        if (raw.find_first_not_of(" \t") == std::string::npos || raw[0] == '#') continue; // blank, comment
        if (raw == "[stdout]" || raw == "[stderr]") {
            if (open_group) file_error(path, n, "section header inside the group opened at line " +
                                                    std::to_string(open_group->file_line));
            cur = raw == "[stdout]" ? &e.out : &e.err;
            cur->present = true;
            continue;
        }
        if (raw.rfind("[exit", 0) == 0 && raw.back() == ']') {
            std::string num = raw.substr(5, raw.size() - 6);
            char* end = nullptr;
            long v = std::strtol(num.c_str(), &end, 10);
            if (num.empty() || num[0] != ' ' || *end != '\0')
                file_error(path, n, "expected `[exit N]` with an integer N, got `" + raw + "`");
            if (exit_seen) file_error(path, n, "a second [exit N]");
            exit_seen = true;
            e.exit_status = static_cast<int>(v);
            continue;
        }
        if (raw == "{") {
            if (open_group) file_error(path, n, "groups may not nest (the group opened at line " +
                                                    std::to_string(open_group->file_line) + " is still open)");
            open_group = item{item::group, {}, n, 0};
            continue;
        }
        if (raw == "}") {
            if (!open_group) file_error(path, n, "`}` without a `{`");
            if (open_group->patterns.empty()) file_error(path, n, "empty group");
            open_group->end_line = n;
            cur->items.push_back(std::move(*open_group));
            open_group.reset();
            continue;
        }
        if (raw == "...") {
            if (open_group) file_error(path, n, "`...` inside a group");
            cur->items.push_back(item{item::any, {}, n, n});
            continue;
        }
        pattern p;
        p.file_line = n;
        if (raw.rfind("~ ", 0) == 0) {
            p.is_regex = true;
            p.text = raw.substr(2);
            try {
                p.re = std::regex(p.text, std::regex::ECMAScript);
            } catch (const std::regex_error& ex) {
                file_error(path, n, std::string("invalid regex: ") + ex.what());
            }
        } else {
            p.text = raw;
        }
        if (open_group)
            open_group->patterns.push_back(std::move(p));
        else
            cur->items.push_back(item{item::line, {std::move(p)}, n, n});
    }
    if (open_group) file_error(path, open_group->file_line, "`{` is never closed");
    return e;
}

// ---------------------------------------------------------------------------------------
// Output and matching.

struct captured {
    std::string bytes;
    std::vector<std::string> lines;
    bool missing_final_newline = false;

    void split() {
        std::size_t pos = 0;
        while (pos < bytes.size()) {
            auto nl = bytes.find('\n', pos);
            if (nl == std::string::npos) {
                lines.push_back(bytes.substr(pos));
                missing_final_newline = true;
                break;
            }
            lines.push_back(bytes.substr(pos, nl - pos));
            pos = nl + 1;
        }
    }
};

// Shows a line with its control characters escaped, in quotes, so trailing blanks show.
std::string visible(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else
            out += static_cast<char>(c);
    }
    return out + "\"";
}

// Matches a stream's items against its lines. Backtracks over `...`; memoised on
// (item, line) so the work stays polynomial.
class matcher {
public:
    matcher(const std::vector<item>& items, const std::vector<std::string>& lines, std::string file)
        : items_(items), lines_(lines), file_(std::move(file)), memo_((items.size() + 1) * (lines.size() + 1), 0) {}

    bool run() { return match(0, 0); }

    // Where it failed: the output line (0-based; == lines.size() at the end) and why.
    [[nodiscard]] std::size_t failed_at() const { return fail_line_; }
    [[nodiscard]] const std::string& reason() const { return fail_reason_; }

private:
    std::string where(const pattern& p) const { return file_ + ":" + std::to_string(p.file_line); }

    // Of all the ways tried, the failure worth reporting is the one that matched the most
    // of the .expected file, then the most output: so a `...` that swallows the rest of
    // the output does not hide the line that really went wrong.
    void fail(std::size_t i, std::size_t j, std::string why) {
        if (!have_fail_ || i > fail_item_ || (i == fail_item_ && j > fail_line_)) {
            have_fail_ = true;
            fail_item_ = i;
            fail_line_ = j;
            fail_reason_ = std::move(why);
        }
    }

    // Kuhn's augmenting paths: a perfect matching of the group's patterns to lines j..j+n-1.
    // Returns the patterns and lines left unmatched by a maximum matching.
    bool group_matches(const item& g, std::size_t j, std::vector<std::size_t>& lone_patterns,
                       std::vector<std::size_t>& lone_lines) const {
        std::size_t n = g.patterns.size();
        std::size_t m = std::min(n, lines_.size() - j);
        std::vector<std::vector<char>> ok(n, std::vector<char>(m, 0));
        for (std::size_t a = 0; a < n; ++a)
            for (std::size_t b = 0; b < m; ++b) ok[a][b] = g.patterns[a].matches(lines_[j + b]);
        std::vector<long> line_owner(m, -1);
        for (std::size_t a = 0; a < n; ++a) {
            std::vector<char> seen(m, 0);
            auto augment = [&](auto& self, std::size_t pa) -> bool {
                for (std::size_t b = 0; b < m; ++b) {
                    if (!ok[pa][b] || seen[b]) continue;
                    seen[b] = 1;
                    if (line_owner[b] < 0 || self(self, static_cast<std::size_t>(line_owner[b]))) {
                        line_owner[b] = static_cast<long>(pa);
                        return true;
                    }
                }
                return false;
            };
            augment(augment, a);
        }
        std::vector<char> pattern_used(n, 0);
        for (std::size_t b = 0; b < m; ++b) {
            if (line_owner[b] >= 0)
                pattern_used[static_cast<std::size_t>(line_owner[b])] = 1;
            else
                lone_lines.push_back(j + b);
        }
        for (std::size_t a = 0; a < n; ++a)
            if (!pattern_used[a]) lone_patterns.push_back(a);
        return m == n && lone_patterns.empty();
    }

    bool match(std::size_t i, std::size_t j) {
        char& memo = memo_[i * (lines_.size() + 1) + j];
        if (memo) return memo == 1;
        bool r = match_uncached(i, j);
        memo = r ? 1 : 2;
        return r;
    }

    bool match_uncached(std::size_t i, std::size_t j) {
        if (i == items_.size()) {
            if (j == lines_.size()) return true;
            fail(i, j, "unexpected output line " + std::to_string(j + 1) + ": " + visible(lines_[j]) +
                        " (nothing more is expected)");
            return false;
        }
        const item& it = items_[i];
        switch (it.kind) {
        case item::any:
            for (std::size_t k = j; k <= lines_.size(); ++k)
                if (match(i + 1, k)) return true;
            return false;
        case item::line: {
            const pattern& p = it.patterns[0];
            if (j == lines_.size()) {
                fail(i, j, "the output ended, but " + where(p) + " expects " + visible(p.source()));
                return false;
            }
            if (!p.matches(lines_[j])) {
                fail(i, j, where(p) + " expects " + visible(p.source()) + "\n    but output line " +
                            std::to_string(j + 1) + " is " + visible(lines_[j]));
                return false;
            }
            return match(i + 1, j + 1);
        }
        case item::group: {
            std::vector<std::size_t> lone_patterns, lone_lines;
            if (group_matches(it, j, lone_patterns, lone_lines)) return match(i + 1, j + it.patterns.size());
            std::size_t n = it.patterns.size();
            std::string why = "the group at " + file_ + ":" + std::to_string(it.file_line) + "-" +
                              std::to_string(it.end_line) + " (" + std::to_string(n) + " lines, any order)";
            if (j + n > lines_.size())
                why += " needs " + std::to_string(n) + " output lines from line " + std::to_string(j + 1) +
                       ", but only " + std::to_string(lines_.size() - j) + " are left";
            else
                why += " does not match output lines " + std::to_string(j + 1) + "-" + std::to_string(j + n);
            for (auto a : lone_patterns)
                why += "\n    no output line for " + where(it.patterns[a]) + " " + visible(it.patterns[a].source());
            for (auto b : lone_lines)
                why += "\n    output line " + std::to_string(b + 1) + " matches nothing left in the group: " +
                       visible(lines_[b]);
            fail(i, j, why);
            return false;
        }
        }
        return false;
    }

    const std::vector<item>& items_;
    const std::vector<std::string>& lines_;
    std::string file_;
    std::vector<char> memo_; // 0 unknown, 1 matches, 2 does not
    bool have_fail_ = false;
    std::size_t fail_item_ = 0;
    std::size_t fail_line_ = 0;
    std::string fail_reason_;
};

// ---------------------------------------------------------------------------------------
// Running the example.

struct run_result {
    captured out, err;
    int status = 0;            // exit code, or -N for signal N (Python's convention)
    bool exited = false;       // the example's own process has been reaped
    bool timed_out = false;
    bool running_at_timeout = false;
    std::vector<std::string> leftovers; // processes the example left behind
};

int decode(int wstatus) { return WIFSIGNALED(wstatus) ? -WTERMSIG(wstatus) : WEXITSTATUS(wstatus); }

std::string describe_status(int s) {
    if (s >= 0) return std::to_string(s);
    const char* abbrev = ::sigabbrev_np(-s);
    return std::to_string(s) + " (killed by " + (abbrev ? std::string("SIG") + abbrev : "a signal") + ")";
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)); }

void check(int rc, const char* what) {
    if (rc != 0) {
        std::cerr << "check_output: " << what << ": " << std::strerror(rc) << "\n";
        std::exit(exit_usage);
    }
}

// The processes of process group `pgid`, as "pid (command)", read from /proc.
std::vector<std::string> group_members(pid_t pgid) {
    std::vector<std::string> out;
    DIR* d = ::opendir("/proc");
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
        std::string stat;
        if (!std::getline(in, stat)) continue;
        auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 1));
        char state = 0;
        long ppid = 0, pgrp = 0;
        if (rest >> state >> ppid >> pgrp && pgrp == pgid)
            out.push_back(std::string(e->d_name) + " " + stat.substr(open, close - open + 1) +
                          (state == 'Z' ? " (a zombie)" : ""));
    }
    ::closedir(d);
    return out;
}

run_result run(char** argv, std::chrono::milliseconds timeout, bool allow_orphans) {
    // Processes the example does not wait for are reparented to us, not to init, so that
    // they can be seen, reported and killed.
    (void)::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL);

    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
        std::perror("check_output: pipe2");
        std::exit(exit_usage);
    }

    posix_spawn_file_actions_t fa;
    check(posix_spawn_file_actions_init(&fa), "posix_spawn_file_actions_init");
    check(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), "addopen");
    check(posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1), "adddup2");
    check(posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2), "adddup2");

    posix_spawnattr_t attr;
    check(posix_spawnattr_init(&attr), "posix_spawnattr_init");
    sigset_t none, all;
    sigemptyset(&none);
    sigemptyset(&all);
    for (int s = 1; s < NSIG; ++s)
        if (s != SIGKILL && s != SIGSTOP) sigaddset(&all, s);
    check(posix_spawnattr_setsigmask(&attr, &none), "setsigmask");
    check(posix_spawnattr_setsigdefault(&attr, &all), "setsigdefault"); // nothing ignored, as from a shell
    check(posix_spawnattr_setpgroup(&attr, 0), "setpgroup");             // a process group of its own
    check(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
          "setflags");

    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        std::cerr << "check_output: cannot run " << argv[0] << ": " << std::strerror(rc) << "\n";
        std::exit(exit_usage);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    run_result res;
    int fds[2] = {out_pipe[0], err_pipe[0]};
    std::string* bufs[2] = {&res.out.bytes, &res.err.bytes};
    int pidfd = pidfd_open(pid); // -1 on kernels before 5.3: then waitpid is polled every 20 ms
    const auto deadline = clock_type::now() + timeout;
    bool killed = false;
    clock_type::time_point drain_until{}; // after a kill: how long to wait for the pipes to close

    auto kill_group = [&] {
        ::kill(-pid, SIGKILL);
        killed = true;
        drain_until = clock_type::now() + std::chrono::seconds(2);
    };
    auto left_behind = [&](pid_t w, int st) {
        if (!killed && !allow_orphans)
            res.leftovers.push_back("process " + std::to_string(w) + ", which the example did not wait for " +
                                    "(it ended with status " + describe_status(decode(st)) + ")");
    };

    while (fds[0] >= 0 || fds[1] >= 0 || !res.exited) {
        auto now = clock_type::now();
        if (!killed && now >= deadline) {
            res.timed_out = true;
            res.running_at_timeout = !res.exited;
            kill_group(); // then read what is left until the pipes close
        }
        auto limit = killed ? drain_until : deadline;
        auto left = std::chrono::ceil<std::chrono::milliseconds>(limit - now);
        if (left.count() <= 0) break; // something outside its process group holds the pipes
        pollfd p[3];
        int slot[3];
        nfds_t n = 0;
        for (int k = 0; k < 2; ++k)
            if (fds[k] >= 0) {
                p[n] = {fds[k], POLLIN, 0};
                slot[n++] = k;
            }
        if (!res.exited && pidfd >= 0) {
            p[n] = {pidfd, POLLIN, 0};
            slot[n++] = 2;
        }
        int wait_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
        if (!res.exited && pidfd < 0) wait_ms = std::min(wait_ms, 20);
        int r = ::poll(p, n, wait_ms);
        if (r < 0 && errno != EINTR) {
            std::perror("check_output: poll");
            kill_group();
            std::exit(exit_usage);
        }
        for (nfds_t k = 0; r > 0 && k < n; ++k) {
            if (!p[k].revents || slot[k] == 2) continue; // the example's end is handled below
            char buf[65536];
            ssize_t got = ::read(p[k].fd, buf, sizeof buf);
            if (got > 0) {
                bufs[slot[k]]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                ::close(p[k].fd);
                fds[slot[k]] = -1;
            }
        }
        int st = 0;
        if (!res.exited && ::waitpid(pid, &st, WNOHANG) == pid) {
            res.exited = true;
            res.status = decode(st);
            if (!killed) {
                // What it started and did not wait for is ours now: those that have ended
                // are reaped here; those still running in its process group are killed.
                for (pid_t w; (w = ::waitpid(-1, &st, WNOHANG)) > 0;) left_behind(w, st);
                auto members = group_members(pid);
                if (!members.empty() && !allow_orphans) {
                    for (auto& m : members)
                        res.leftovers.push_back("process " + m + " was still running after the example exited");
                    kill_group();
                }
            }
        }
    }
    if (pidfd >= 0) ::close(pidfd);
    for (int fd : fds)
        if (fd >= 0) ::close(fd);
    int st = 0;
    if (!res.exited && ::waitpid(pid, &st, 0) == pid) { // killed above: it cannot take long
        res.exited = true;
        res.status = decode(st);
    }
    // Reap the rest: what ended late or was killed. Stop as soon as nothing is left, or
    // after two seconds if something escaped the process group and still runs.
    for (auto until = clock_type::now() + std::chrono::seconds(2);;) {
        pid_t w = ::waitpid(-1, &st, WNOHANG);
        if (w > 0) {
            left_behind(w, st);
            continue;
        }
        if (w < 0 || clock_type::now() > until) break;
        ::usleep(10'000);
    }
    res.out.split();
    res.err.split();
    return res;
}

// ---------------------------------------------------------------------------------------
// The report.

void list_output(std::ostream& os, const char* name, const captured& c, std::optional<std::size_t> mark,
                 bool checked) {
    os << name << " (" << c.lines.size() << (c.lines.size() == 1 ? " line" : " lines")
       << (checked ? "" : ", not checked: the .expected file has no [" + std::string(name) + "] section") << "):\n";
    // Long output is shown in part: its start, its end, and the lines around the mark.
    const std::size_t n = c.lines.size(), edge = 20, around = 40;
    auto shown = [&](std::size_t i) {
        return n <= 2 * edge + 2 * around || i < edge || i + edge >= n ||
               (mark && i + around >= *mark && i <= *mark + around);
    };
    for (std::size_t i = 0; i < n; ++i) {
        if (!shown(i)) {
            std::size_t skip = i;
            while (skip < n && !shown(skip)) ++skip;
            os << "         ... " << skip - i << " lines not shown\n";
            i = skip - 1;
            continue;
        }
        char num[24];
        std::snprintf(num, sizeof num, "%5zu", i + 1);
        os << (mark && *mark == i ? ">>" : "  ") << num << " | " << c.lines[i] << "\n";
    }
    if (mark && *mark == c.lines.size()) os << ">>  end of " << name << "\n";
    if (c.missing_final_newline) os << "         (no newline at the end)\n";
}

std::string base_name(const std::string& path) {
    auto s = path.rfind('/');
    return s == std::string::npos ? path : path.substr(s + 1);
}

int parse_seconds(const char* s) {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (!s[0] || *end || !(v > 0) || v > 86400) usage_error(std::string("bad --timeout value: ") + s);
    return static_cast<int>(v * 1000);
}

} // namespace

int main(int argc, char** argv) {
    // An inherited SIG_IGN for SIGCHLD would have children reaped behind waitpid's back.
    std::signal(SIGCHLD, SIG_DFL);
    std::chrono::milliseconds timeout(30'000);
    bool allow_orphans = false;
    int i = 1;
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--timeout" && i + 1 < argc)
            timeout = std::chrono::milliseconds(parse_seconds(argv[++i]));
        else if (a.rfind("--timeout=", 0) == 0)
            timeout = std::chrono::milliseconds(parse_seconds(argv[i] + 10));
        else if (a == "--allow-orphans")
            allow_orphans = true;
        else if (a == "--") {
            ++i;
            break;
        } else if (a.size() > 1 && a[0] == '-')
            usage_error("unknown option " + std::string(a));
        else
            break;
    }
    if (i >= argc) usage_error("no .expected file given");
    expectation exp = parse_expected(argv[i++]);
    if (i < argc && std::string_view(argv[i]) == "--") ++i;
    if (i >= argc) usage_error("no program given");
    char** prog = argv + i;

    run_result res = run(prog, timeout, allow_orphans);

    std::ostringstream report;
    std::optional<std::size_t> out_mark, err_mark;
    std::string file = base_name(exp.path);
    bool ok = true;

    if (res.timed_out) {
        ok = false;
        report << "timed out after " << timeout.count() / 1000.0 << " s"
               << (res.running_at_timeout ? " with the example still running"
                                          : ", the example had exited but something held its output open")
               << ": killed its process group\n";
    }
    for (auto& l : res.leftovers) {
        ok = false;
        report << "left behind: " << l << "\n";
    }
    // Output cut short by a timeout is not compared: it would only add noise.
    if (!res.timed_out) {
        struct {
            const char* name;
            const stream_spec& spec;
            const captured& cap;
            std::optional<std::size_t>& mark;
        } streams[] = {{"stdout", exp.out, res.out, out_mark}, {"stderr", exp.err, res.err, err_mark}};
        for (auto& s : streams) {
            if (!s.spec.present) continue;
            matcher m(s.spec.items, s.cap.lines, file);
            if (!m.run()) {
                ok = false;
                s.mark = m.failed_at();
                report << s.name << " does not match: " << m.reason() << "\n";
            }
        }
        if (res.status != exp.exit_status) {
            ok = false;
            report << "exit status " << describe_status(res.status) << ", expected "
                   << describe_status(exp.exit_status) << "\n";
        }
    }

    if (ok) {
        std::cout << "check_output: ok: " << res.out.lines.size() << " stdout lines, " << res.err.lines.size()
                  << " stderr lines" << (exp.err.present ? "" : " (not checked)") << ", exit status "
                  << res.status << "\n";
        return exit_match;
    }
    std::ostringstream full;
    full << "check_output: FAILED: ";
    for (char** a = prog; *a; ++a) full << (a == prog ? "" : " ") << *a;
    full << "\n  against " << exp.path << "\n" << report.str();
    list_output(full, "stdout", res.out, out_mark, true);
    list_output(full, "stderr", res.err, err_mark, exp.err.present);
    if (res.exited)
        full << "exit status: " << describe_status(res.status) << "\n";
    std::cerr << full.str();
    return res.timed_out ? exit_timeout : exit_mismatch;
}
