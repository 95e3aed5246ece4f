// Limits and races found by a fault campaign from outside (issue 20, sixth stop): a file-size
// limit (RLIMIT_FSIZE) below a segment's size, a shared heap whose creation fails, a
// page_buffer whose pages were never written, a join timeout too long for a deadline,
// descriptors cut off as they arrive with a message, and a fork while another thread
// attaches a shared heap. Limits are lowered in forked children that report on a pipe and
// leave with _exit, never in the test process.
#include "support/limits.hpp"
#include "support/support.hpp"

#include <multiproc/futures.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/shared_heap.hpp>
#include <multiproc/shared_memory.hpp>
#include <multiproc/sync.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

/// Runs `body` in a forked child, which writes its problems, a line each, to the pipe and
/// leaves with _exit(0). Returns what it wrote, and its wait status in `status`.
std::string in_child(const std::function<void(const std::function<void(const std::string&)>&)>& body, int& status) {
    test::pipe_pair out;
    pid_t pid = ::fork();
    if (pid == 0) {
        out.close_r();
        auto problem = [&](const std::string& s) { test::write_str(out.w, s + "\n"); };
        try {
            body(problem);
        } catch (const std::exception& e) {
            problem(std::string("unexpected exception: ") + e.what());
        } catch (...) {
            problem("unexpected exception");
        }
        ::_exit(0);
    }
    out.close_w();
    std::string said = test::read_all(out.r);
    ::waitpid(pid, &status, 0);
    return said;
}

/// `make()` either works or fails with os_error EFBIG that names the cause; `must_fail`: it
/// must fail (its size is over the limit).
void efbig_or_works(const std::function<void(const std::string&)>& problem, const char* what, bool must_fail,
                    const std::function<void()>& make) {
    try {
        make();
        if (must_fail) problem(std::string(what) + ": made, over the file-size limit");
    } catch (const os_error& e) {
        if (e.code().value() != EFBIG) problem(std::string(what) + ": os_error of another errno: " + e.what());
        if (std::string(e.what()).rfind("multiproc: ", 0) != 0) problem(std::string(what) + ": " + e.what());
    }
}

int doubled(int x) { return 2 * x; }

int attach_heap(std::string name) {
    auto h = shared_heap::attach(name);
    return h.name() == name ? 0 : 3;
}

/// The largest number of 512-byte blocks any memfd of a page_buffer open here holds.
long page_buffer_blocks() {
    long most = -1;
    for (const auto& [fd, target] : test::open_fds()) {
        if (target.find("multiproc-page-buffer") == std::string::npos) continue;
        struct stat st {};
        if (::fstat(fd, &st) == 0) most = std::max(most, static_cast<long>(st.st_blocks));
    }
    return most;
}

std::atomic<int> release_w{-1};
std::atomic<pid_t> hook_owner{0};
/// A fault hook that fails nothing: the first poll() of the test process lets its child go.
int release_at_poll(detail::sys::call c) {
    if (c == detail::sys::call::poll && ::getpid() == hook_owner.load()) {
        int fd = release_w.exchange(-1);
        if (fd >= 0) ::close(fd);
    }
    return 0;
}

int wait_on(test::fd_arg g) { return g.wait_eof() ? 0 : 4; }

} // namespace

TEST_CASE("a file-size limit below a segment's size: os_error EFBIG, not death by SIGXFSZ, and nothing left in "
          "/dev/shm",
          "[hostile][limits]") {
    const auto shm_before = test::shm_entries();
    int status = 0;
    std::string said = in_child(
        [](const auto& problem) {
            rlimit low{1 << 20, 1 << 20}; // 1 MiB
            if (::setrlimit(RLIMIT_FSIZE, &low) != 0) problem("setrlimit failed");
            constexpr std::size_t big = 4 << 20;
            efbig_or_works(problem, "queue over pipes", false, [] { queue<int> q; });
            efbig_or_works(problem, "queue over shm", true, [] { basic_queue<int, transport::shm> q; });
            efbig_or_works(problem, "pipe over shm", true, [] { (void)pipe<int, transport::shm>(); });
            efbig_or_works(problem, "page_buffer", true, [] { page_buffer b(big); });
            efbig_or_works(problem, "shared_memory", true, [] { (void)shared_memory::create(big); });
            efbig_or_works(problem, "shared_heap", true, [] { shared_heap h(big); });
            efbig_or_works(problem, "pool", false, [] {
                pool p(1);
                if (p.apply(fn<&doubled>, 21) != 42) throw std::runtime_error("wrong result");
            });
        },
        status);
    CHECK(said.empty());
    INFO(said);
    CHECK(WIFEXITED(status));
    CHECK((WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status)) == 0);
    CHECK(test::shm_entries() == shm_before);
}

TEST_CASE("a shared heap that cannot be made leaves no segment, and one whose name is taken leaves the other's",
          "[hostile][limits]") {
    const auto before = test::shm_entries();
    for (std::size_t size : {std::size_t{1} << 50, std::size_t{1} << 62}) {
        CHECK_THROWS_AS(shared_heap(size), os_error);
        CHECK(test::shm_entries() == before);
    }
    shared_heap first(1 << 20);
    try {
        shared_heap again(1 << 20, first.name());
        FAIL("a second heap was made under a taken name");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EEXIST);
    }
    CHECK(::access(("/dev/shm/" + first.name()).c_str(), F_OK) == 0); // the first heap's segment stays
    auto attached = shared_heap::attach(first.name());
    CHECK(attached.name() == first.name());
}

TEST_CASE("a page_buffer whose pages were never written costs its receiver no memory", "[hostile][limits]") {
    auto [r, w] = pipe<page_buffer, transport::socketpair>();
    {
        page_buffer b(std::size_t{256} << 20); // (256 MiB: never written)
        w.send(b);
    }
    page_buffer got = r.recv();
    REQUIRE(got.size() == std::size_t{256} << 20);
    CHECK(page_buffer_blocks() == 0); // the receiver made none of its pages
    got.data()[12345] = std::byte{7};
    CHECK(page_buffer_blocks() > 0); // (what the check above looks at)
    CHECK(page_buffer_blocks() < 1024); // one page, not the buffer
}

TEST_CASE("join with a timeout too long for a deadline waits until the process ends", "[hostile][limits]") {
    auto round = [](auto timeout) {
        test::gate g;
        process p(fn<&wait_on>, g.end());
        p.start();
        g.p.close_r();
        // The child goes once join has begun to wait: at its first poll.
        release_w = std::exchange(g.p.w, -1);
        hook_owner = ::getpid();
        detail::sys::fault_hook = &release_at_poll;
        p.join(timeout);
        detail::sys::fault_hook = nullptr;
        if (int fd = release_w.exchange(-1); fd >= 0) ::close(fd);
        CHECK_FALSE(p.is_alive());
        if (p.is_alive()) {
            p.kill();
            p.join();
        }
        CHECK(p.exitcode() == 0);
    };
    round(std::chrono::seconds::max());
    round(std::chrono::hours::max());
    round(std::chrono::duration<double>(1e300));
    round(std::chrono::duration<double>(1e18));
}

TEST_CASE("a timeout that is not a number is value_error wherever a timeout is taken, and changes nothing",
          "[hostile][limits]") {
    // (Before, a NaN timeout was taken as "do not wait": a get that failed at once with
    // queue_empty, a barrier broken by a timeout that never ran.)
    const std::chrono::duration<double> nan(std::numeric_limits<double>::quiet_NaN());
    const std::chrono::duration<float> nanf(std::numeric_limits<float>::quiet_NaN());
    const char* const what = "multiproc: timeout is not a number";
    lock l;
    CHECK_THROWS_WITH(l.acquire(nan), what);
    CHECK_THROWS_AS(l.acquire(nanf), value_error);
    CHECK_THROWS_WITH(l.acquire(true, nan), what);
    CHECK(l.acquire(false)); // still free
    l.release();
    // A time point on the steady clock with a floating-point count: checked as a timeout
    // (before, cast to the clock's integer ticks: undefined for a NaN or 1e300 s).
    using float_point = std::chrono::time_point<std::chrono::steady_clock, std::chrono::duration<double>>;
    CHECK_THROWS_WITH(l.try_lock_until(float_point(nan)), what);
    CHECK(l.try_lock_until(float_point(std::chrono::duration<double>(1e300)))); // free: taken at once
    l.release();
    rlock r;
    CHECK_THROWS_WITH(r.acquire(nan), what);
    semaphore sem(0);
    CHECK_THROWS_WITH(sem.acquire(nan), what);
    sem.release();
    CHECK(sem.acquire(false)); // the count is as it was
    condition c;
    c.acquire();
    CHECK_THROWS_WITH(c.wait(nan), what);
    CHECK_THROWS_WITH(c.wait_for([] { return false; }, nan), what);
    c.release(); // still held after the failed waits
    event e;
    CHECK_THROWS_WITH(e.wait(nan), what);
    barrier b(2);
    CHECK_THROWS_WITH(b.wait(nan), what);
    CHECK_FALSE(b.broken());
    CHECK(b.n_waiting() == 0);
    queue<int> q;
    q.put(5);
    CHECK_THROWS_WITH(q.put(6, nan), what);
    CHECK_THROWS_WITH(q.get(nan), what);
    CHECK(q.get() == 5); // nothing was put or taken
    CHECK(q.empty());
    auto [rx, tx] = pipe<int>();
    CHECK_THROWS_WITH(rx.poll(nan), what);
    process p([] {});
    p.start();
    CHECK_THROWS_WITH(p.join(nan), what);
    p.join();
    CHECK(p.exitcode() == 0);
    pool workers(1);
    auto res = workers.apply_async(doubled, 21);
    CHECK_THROWS_WITH(res.wait(nan), what);
    CHECK_THROWS_WITH(multiproc::wait(std::vector{res}, std::optional(nan)), what);
    CHECK(res.get() == 42);
    CHECK_THROWS_WITH(workers.map(nan, doubled, std::vector<int>{1, 2}), what);
}

TEST_CASE("descriptors cut off as they arrive with a message: os_error EMFILE that says so, and the next message "
          "is read",
          "[hostile][limits]") {
    int status = 0;
    std::string said = in_child(
        [](const auto& problem) {
            auto [r, w] = pipe<page_buffer, transport::socketpair>();
            for (int i = 1; i <= 2; ++i) {
                page_buffer b(4096);
                b.data()[0] = std::byte(i);
                w.send(b);
            }
            rlimit old{};
            std::vector<int> hog = test::fill_descriptor_table(256, old);
            if (errno != EMFILE) problem("filling the descriptor table did not end with EMFILE");
            try {
                (void)r.recv();
                problem("a message was received with no descriptor free for its page_buffer");
            } catch (const os_error& e) {
                if (e.code().value() != EMFILE) problem(std::string("os_error of another errno: ") + e.what());
                if (!std::strstr(e.what(), "cut off")) problem(std::string("the error does not say why: ") + e.what());
            } catch (const std::exception& e) {
                problem(std::string("not an os_error: ") + e.what());
            }
            for (int fd : hog) ::close(fd);
            (void)::setrlimit(RLIMIT_NOFILE, &old);
            page_buffer next = r.recv();
            if (next.size() != 4096 || next.data()[0] != std::byte(2)) problem("the next message is not the second");
        },
        status);
    CHECK(said.empty());
    INFO(said);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a process forked while another thread attaches a shared heap can attach it too", "[hostile][limits]") {
    shared_heap heap(1 << 20);
    const pid_t main_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    std::atomic<bool> held{false};
    // A thread in the middle of an attach (holding the lock attaching takes) until this
    // thread sleeps: in fork(), waiting for that lock, or (without it) in join, with a child
    // forked while the lock was held.
    std::thread attacher([&] {
        std::lock_guard lk(detail::heap::attached_mutex());
        held = true;
        while (test::thread_state(main_tid) != 'S') std::this_thread::yield();
    });
    while (!held) std::this_thread::yield();
    process p(fn<&attach_heap>, heap.name());
    p.start();
    p.join(30s); // (a bound for the failure: a child that inherited the lock held never ends)
    attacher.join();
    CHECK_FALSE(p.is_alive());
    if (p.is_alive()) {
        p.kill();
        p.join();
    }
    CHECK(p.exitcode() == 0);
}
