// Names, current_process(), parent_process(), active_children() and cpu_count(), under
// every start method where a child is involved.
#include "support/support.hpp"

#include <multiproc/process.hpp>

#include <filesystem>
#include <sstream>
#include <fstream>
#include <sched.h>

using namespace multiproc;

namespace {
struct Worker : process_base<Worker> {
    int fd;
    explicit Worker(int f) : fd(f) {}
    void run() { test::write_str(fd, current_process().name() + "\n"); }
};
namespace deep {
template <class T>
struct templated_job : process_base<templated_job<T>> {
    test::gate* gate = nullptr;
    void run() { gate->wait(); }
};
} // namespace deep

// A subclass that works under every start method: default-constructible, its data listed.
template <class Ctx>
struct greeter : process_base<greeter<Ctx>, typename Ctx::policies::start> {
    test::fd_arg out;
    std::string greeting;
    std::vector<int> numbers;
    auto fields() { return std::tie(out, greeting, numbers); }
    void run() {
        out.write(greeting + " " + std::to_string(numbers.size()) + " from " + current_process().name() + " as " +
                  this->name() + "\n");
    }
};
// No data members: nothing to list.
template <class Ctx>
struct silent : process_base<silent<Ctx>, typename Ctx::policies::start> {
    void run() { std::_Exit(current_process().name() == this->name() ? 17 : 1); }
};

// What a process object answers about itself in its own child: is_alive(), pid(),
// exitcode() and the repr, as Python's Process does when `self is _current_process`.
std::string self_report(const process_handle& me) {
    std::ostringstream repr;
    repr << me;
    return std::string(me.is_alive() ? "alive" : "not alive") + " " +
           (me.pid() == std::optional<pid_t>(::getpid()) ? "own pid" : "other pid") + " " +
           (me.exitcode() ? "exitcode" : "no exitcode") + " " + repr.str() + "\n";
}
// The same from a subclass, under every start method (rebuilt in a spawn or forkserver child).
template <class Ctx>
struct self_reporter : process_base<self_reporter<Ctx>, typename Ctx::policies::start> {
    test::fd_arg out;
    auto fields() { return std::tie(out); }
    void run() { out.write(self_report(*this)); }
};
// The repr a process object shows in its own child: that of the unstarted object, started.
std::string started_repr(const process_handle& p) {
    std::ostringstream os;
    os << p;
    std::string s = os.str();
    const std::string initial = " initial>";
    REQUIRE(s.size() > initial.size());
    REQUIRE(s.substr(s.size() - initial.size()) == initial);
    return s.substr(0, s.size() - initial.size()) + " started>";
}
} // namespace

// (Each answered as a stranger: is_alive() was "can only test a child process", pid() empty.)
TEST_CASE("in its child, a forked process object is the current process", "[process][names]") {
    test::report_pipe out;
    std::optional<process> p;
    const int w = out.w;
    p.emplace([&p, w] { test::write_str(w, self_report(*p)); });
    const std::string repr = started_repr(*p);
    p->start();
    CHECK(out.collect() == "alive own pid no exitcode " + repr + "\n");
    p->join();
    CHECK(p->exitcode() == 0);
}

// A fresh program's static initialisation numbers its objects as a main process does, so
// they share the number of the child they run in; they are not the current process. (A
// namespace-scope spawn process crashed at start(): its target's identifier was read when
// the object was made, before the registration that sets it.)
TEST_CASE("namespace-scope process objects start under spawn and forkserver, and their copies there are not the "
          "current process", "[process][names]") {
    auto r = test::run_program("static_process", {"spawn"});
    CHECK(r.code == 0);
    CHECK(r.out == "Process-1 not alive, no pid\n");
    r = test::run_program("static_process", {"forkserver"});
    CHECK(r.code == 0);
    CHECK(r.out == "Process-2 can only test a child process, no pid\n");
}

TEMPLATE_TEST_CASE("in its child, a process subclass is the current process", "[process][names]", START_METHODS) {
    test::report_pipe out;
    self_reporter<TestType> p;
    p.out = out.w_arg();
    const std::string repr = started_repr(p);
    p.start();
    CHECK(out.collect() == "alive own pid no exitcode " + repr + "\n");
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("the main process is MainProcess with no parent", "[process][names]") {
    CHECK(current_process().name() == "MainProcess");
    CHECK(current_process().pid() == ::getpid());
    CHECK(current_process().is_alive());
    CHECK_FALSE(current_process().daemon());
    CHECK_FALSE(parent_process().has_value());
}

TEMPLATE_TEST_CASE("processes are numbered Process-N per creator, at construction", "[process][names]",
                   START_METHODS) {
    test::process_t<TestType> a([] {});
    test::process_t<TestType> b([] {});
    std::string na = a.name(), nb = b.name();
    REQUIRE(na.rfind("Process-", 0) == 0);
    int ia = std::stoi(na.substr(8)), ib = std::stoi(nb.substr(8));
    CHECK(ib == ia + 1);
    b.start(); // starting order does not matter: the number was taken at construction
    a.start();
    a.join();
    b.join();
    test::process_t<TestType> c([] {});
    CHECK(c.name() == "Process-" + std::to_string(ib + 1));
}

TEMPLATE_TEST_CASE("a child sees its own name and its parent's, its children are Process-N:M", "[process][names]",
                   START_METHODS) {
    test::report_pipe out;
    test::process_t<TestType> p(
        process_options{.name = "outer", .daemon = {}},
        [](test::fd_arg o) {
            auto parent = parent_process();
            o.write(current_process().name() + " " + (parent ? parent->name() : "none") + " " +
                    std::to_string(parent ? parent->pid() : 0) + " " +
                    (parent && parent->is_alive() ? "alive" : "dead") + "\n");
            test::process_t<TestType> c1(
                [](test::fd_arg o2) { o2.write(current_process().name() + " of " + parent_process()->name() + "\n"); },
                o);
            test::process_t<TestType> c2([](test::fd_arg o2) { o2.write(current_process().name() + "\n"); }, o);
            c1.start();
            c1.join();
            c2.start();
            c2.join();
        },
        out.w_arg());
    test::process_t<TestType> q([] {});
    std::string qname = q.name();
    p.start();
    p.join();
    std::string text = out.collect();
    // outer's identity is this process's counter; its children extend it.
    int n = std::stoi(qname.substr(8)) - 1;
    CHECK(text == "outer MainProcess " + std::to_string(::getpid()) + " alive\n" + "Process-" + std::to_string(n) +
                      ":1 of outer\n" + "Process-" + std::to_string(n) + ":2\n");
}

// Fork only: these subclasses hold a descriptor number and a pointer into this process.
TEST_CASE("a subclass is named after its class, a name may be given or changed", "[process][names]") {
    test::pipe_pair out;
    Worker w(out.w);
    CHECK(w.name().rfind("Worker-", 0) == 0);
    deep::templated_job<int> t;
    CHECK(t.name().rfind("templated_job-", 0) == 0);
    test::gate gate;
    t.gate = &gate;
    t.start();
    std::ostringstream repr; // a subclass shows its own class name, in active_children() too
    repr << active_children().at(0);
    CHECK(repr.str().rfind("<templated_job name='templated_job-", 0) == 0);
    gate.release();
    t.join();
    process named(process_options{.name = "my_service"}, [] {});
    CHECK(named.name() == "my_service");
    w.name("renamed");
    w.start();
    w.join();
    out.close_w();
    CHECK(test::read_all(out.r) == "renamed\n");
}

TEMPLATE_TEST_CASE("a subclass lists its members in fields() and gets them in the child", "[process][names]",
                   START_METHODS) {
    test::report_pipe out;
    greeter<TestType> g;
    CHECK(g.name().rfind("greeter-", 0) == 0);
    g.out = out.w_arg();
    g.greeting = "hello";
    g.numbers = {1, 2, 3};
    g.name("renamed");
    g.start();
    g.join();
    CHECK(g.exitcode() == 0);
    CHECK(out.collect() == "hello 3 from renamed as renamed\n");
    silent<TestType> s;
    s.start();
    s.join();
    CHECK(s.exitcode() == 17);
}

TEMPLATE_TEST_CASE("current_process can be renamed", "[process][names]", START_METHODS) {
    test::report_pipe out;
    test::process_t<TestType> p(
        [](test::fd_arg o) {
            current_process().name("job");
            o.write(current_process().name());
        },
        out.w_arg());
    p.start();
    p.join();
    CHECK(out.collect() == "job");
    CHECK(current_process().name() == "MainProcess");
}

TEMPLATE_TEST_CASE("active_children lists running children and reaps the finished ones",
                   "[process][active_children]", START_METHODS) {
    test::gate gate;
    test::process_t<TestType> running([](test::fd_arg g) { g.wait_eof(); }, gate.end());
    test::process_t<TestType> quick([] {});
    running.start();
    quick.start();
    pid_t quick_pid = *quick.pid();
    // Wait for quick to exit without reaping it (the sentinel says so).
    pollfd fd{quick.sentinel(), POLLIN, 0};
    REQUIRE(::poll(&fd, 1, 10000) == 1);
    auto kids = active_children();
    REQUIRE(kids.size() == 1);
    CHECK(kids[0].pid() == running.pid());
    CHECK(kids[0].name() == running.name());
    std::ostringstream repr;
    repr << kids[0];
    CHECK(repr.str().rfind("<Process name='" + running.name() + "'", 0) == 0);
    // quick was reaped by active_children: no zombie is left
    auto zombies = test::children_of(::getpid());
    CHECK(std::find(zombies.begin(), zombies.end(), quick_pid) == zombies.end());
    CHECK(quick.exitcode() == 0);
    gate.release();
    running.join();
    CHECK(active_children().empty());
}

TEMPLATE_TEST_CASE("cpu_count follows the affinity mask", "[cpu_count]", START_METHODS) {
    int all = cpu_count();
    CHECK(all >= 1);
    CHECK(all <= static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
    test::process_t<TestType> one([] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (::sched_setaffinity(0, sizeof set, &set) != 0) std::_Exit(99);
        std::_Exit(cpu_count());
    });
    one.start();
    one.join();
    CHECK(one.exitcode() == 1);
}

TEST_CASE("cpu.max quotas are parsed as CPUs", "[cpu_count][cgroup]") {
    using detail::parse_cpu_max;
    CHECK_FALSE(parse_cpu_max("max 100000\n").has_value());
    CHECK(parse_cpu_max("150000 100000\n") == 1.5);
    CHECK(parse_cpu_max("50000 100000") == 0.5);
    CHECK_FALSE(parse_cpu_max("").has_value());
    CHECK_FALSE(parse_cpu_max("garbage").has_value());
    CHECK_FALSE(parse_cpu_max("-1 100000").has_value());
}

TEST_CASE("the tightest cgroup v2 or v1 quota of the process's cgroup and its ancestors applies",
          "[cpu_count][cgroup]") {
    namespace fs = std::filesystem;
    fs::path root = fs::temp_directory_path() / ("multiproc-cgroup-" + std::to_string(::getpid()));
    fs::remove_all(root);
    auto put = [&](const fs::path& rel, const std::string& text) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << text;
    };
    const std::string mountinfo =
        "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    SECTION("v2: a quota on an ancestor caps a child cgroup without one") {
        put("sys/fs/cgroup/app/cpu.max", "250000 100000\n");
        put("sys/fs/cgroup/app/job/cpu.max", "max 100000\n");
        auto lim = detail::cgroup_cpu_limit("0::/app/job\n", mountinfo, root.string());
        REQUIRE(lim.has_value());
        CHECK(*lim == 2.5);
    }
    SECTION("v1: cfs quota and period") {
        put("sys/fs/cgroup/cpu,cpuacct/batch/cpu.cfs_quota_us", "100000\n");
        put("sys/fs/cgroup/cpu,cpuacct/batch/cpu.cfs_period_us", "100000\n");
        auto lim = detail::cgroup_cpu_limit("4:cpu,cpuacct:/batch\n0::/\n", mountinfo, root.string());
        REQUIRE(lim.has_value());
        CHECK(*lim == 1.0);
    }
    SECTION("the smaller of v1 and v2 wins, no quota anywhere means no limit") {
        put("sys/fs/cgroup/a/cpu.max", "300000 100000\n");
        put("sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_quota_us", "-1\n");
        put("sys/fs/cgroup/cpu,cpuacct/b/cpu.cfs_period_us", "100000\n");
        CHECK(detail::cgroup_cpu_limit("4:cpu,cpuacct:/b\n0::/a\n", mountinfo, root.string()) == 3.0);
        CHECK_FALSE(detail::cgroup_cpu_limit("0::/nowhere\n", mountinfo, root.string()).has_value());
    }
    fs::remove_all(root);
}
