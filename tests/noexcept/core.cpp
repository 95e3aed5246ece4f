// Built with -fno-exceptions -fno-rtti (issue 16): the library's objects work, errors reach
// the caller through the try_ forms' results and everything else goes to the error handler.
// Catch2 needs exceptions, so this program reports through its exit code: it runs every
// check under the start method named by argv[1] (fork, spawn or forkserver), prints
// "ok <check>" or "FAIL <check>: <why>", and exits 1 if any check failed.
#include <multiproc/multiproc.hpp>

#if MULTIPROC_EXCEPTIONS || MULTIPROC_RTTI
#error "tests/noexcept/core.cpp must be built with -fno-exceptions -fno-rtti"
#endif

#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace mp = multiproc;

namespace {

int failures = 0;

void check(bool ok, const char* name, const std::string& why = {}) {
    if (ok) {
        std::printf("ok %s\n", name);
    } else {
        std::printf("FAIL %s: %s\n", name, why.c_str());
        ++failures;
    }
    std::fflush(stdout);
}

int square(int x) { return x * x; }

// Called in a worker through the library: raising an error there ends the worker.
int fails_in_worker(int) {
    mp::queue<int> empty;
    return empty.get_nowait(); // queue_empty: the worker's fallback handler ends it with 1
}

void on_error_exit_42(const mp::error& e) noexcept {
    const char* prefix = "handled: ";
    (void)!::write(2, prefix, std::strlen(prefix));
    (void)!::write(2, e.what(), std::strlen(e.what()));
    (void)!::write(2, "\n", 1);
    ::_exit(42);
}

template <class Start>
void run_checks() {
    using ctx_t = mp::context<Start>;
    ctx_t ctx;

    if constexpr (std::is_same_v<Start, mp::start::forkserver>) {
        // A request cut short is refused, and the server lives on: it reads a request with
        // bounds checked by hand, since a reader that raised would end it here.
        pid_t server = mp::detail::forkserver::ensure_running();
        auto refusal = [](const std::string& bytes) {
            auto c = mp::detail::forkserver::connect_to_server("the test");
            (void)!::send(c.get(), bytes.data(), bytes.size(), 0);
            char buf[512];
            ssize_t k = ::recv(c.get(), buf, sizeof buf, 0);
            return k > 12 ? std::string(buf + 12, static_cast<std::size_t>(k) - 12) : std::string(); // after magic, length
        };
        mp::crossing_writer w;
        w.put(mp::detail::forkserver::ask_magic);
        w.put<std::uint8_t>(0);
        w.put<std::uint8_t>(0);
        w.put_string("0123456789abcdef");
        w.put<std::uint64_t>(0);
        std::string huge = w.bytes().substr(0, 6) + std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
        const std::string got[] = {refusal("garbage"), refusal(w.bytes().substr(0, 7)), refusal(huge),
                                   refusal(w.bytes().substr(0, w.bytes().size() - 1))};
        check(got[0] == "not a multiproc forkserver request" && got[1] == "malformed request" &&
                  got[2] == "malformed request" && got[3] == "malformed request",
              "forkserver.malformed_requests_refused", got[0] + " / " + got[1] + " / " + got[2] + " / " + got[3]);
        check(::kill(server, 0) == 0 && mp::detail::forkserver::ensure_running() == server,
              "forkserver.survives_malformed_requests");
    }
    { // a target that returns: exit code 0; a second start: state_error as a result
        auto p = ctx.process([] {});
        auto first = p.try_start();
        auto second = p.try_start();
        p.join();
        check(first.has_value() && p.exitcode() == 0, "process.start_join");
        check(!second && second.error().code() == mp::errc::state_error, "process.try_start_twice",
              second ? "started twice" : second.error().what());
    }
    { // with no handler set, the default prints the message once, without the library's
      // own "multiproc: " before it (it printed "multiproc error: multiproc: ..."), and
      // aborts; a NaN timeout is such an error (it was taken as "do not wait")
        int err[2];
        check(::pipe(err) == 0, "default_handler.pipe");
        const pid_t child = ::fork();
        if (child == 0) {
            ::dup2(err[1], 2);
            mp::set_error_handler(nullptr);
            mp::lock l;
            (void)l.acquire(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN()));
            ::_exit(3); // (not reached)
        }
        ::close(err[1]);
        std::string text;
        char buf[256];
        for (ssize_t k; (k = ::read(err[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(k));
        ::close(err[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        check(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
                  text == "multiproc error: timeout is not a number\n",
              "default_handler.prints_once_and_aborts", "status " + std::to_string(status) + ", stderr: " + text);
    }
    { // a target whose library call raises: the child leaves with exit code 1, as with exceptions
        auto p = ctx.process([] {
            mp::queue<int> q;
            (void)q.get_nowait();
        });
        p.start();
        p.join();
        check(p.exitcode() == 1, "process.error_in_child_exits_1",
              "exitcode " + std::to_string(p.exitcode().value_or(-999)));
    }
    { // a handler the program set is called with the error, in the child that raised it
        auto p = ctx.process([] {
            mp::set_error_handler(&on_error_exit_42);
            mp::queue<int> q;
            (void)q.get_nowait();
        });
        p.start();
        p.join();
        check(p.exitcode() == 42, "error_handler.called",
              "exitcode " + std::to_string(p.exitcode().value_or(-999)));
    }
    { // a shared_memory creation that fails part-way (mmap of 1 PiB: ENOMEM) removes its
      // name before the handler runs (from an outside trial: it was left in /dev/shm)
        const std::string name = "/mp_noexc_" + std::to_string(::getpid());
        auto p = ctx.process(
            [](std::string n) {
                mp::set_error_handler(&on_error_exit_42);
                mp::shared_memory big(n, true, std::size_t{1} << 50);
                std::_Exit(3); // (not reached: the mapping cannot be made)
            },
            name);
        p.start();
        p.join();
        const int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
        const int open_errno = errno;
        if (fd >= 0) {
            ::close(fd);
            ::shm_unlink(name.c_str());
        }
        check(p.exitcode() == 42 && fd < 0 && open_errno == ENOENT, "shared_memory.failed_create_leaves_no_name",
              "exitcode " + std::to_string(p.exitcode().value_or(-999)) + (fd >= 0 ? ", the name is still there" : ""));
    }
    { // pipe: values in order, then end of file as a result
        auto [a, b] = ctx.template pipe<int>();
        auto p = ctx.process(
            [](mp::basic_connection<int, Start> c) {
                for (int i = 1; i <= 3; ++i) c.send(i * 10);
                c.close();
            },
            b);
        p.start();
        b.close();
        std::vector<int> got;
        auto r = a.try_recv();
        for (; r; r = a.try_recv()) got.push_back(*r);
        p.join();
        check(got == std::vector<int>{10, 20, 30} && r.error().code() == mp::errc::eof_error, "pipe.try_recv_eof",
              std::to_string(got.size()) + " values");
    }
    { // queue: full and empty as results; a message through a child and back
        auto q = ctx.template queue<int>(1);
        auto back = ctx.template queue<int>();
        auto e = q.try_get_nowait();
        check(!e && e.error().code() == mp::errc::queue_empty, "queue.try_get_nowait_empty");
        auto put = q.try_put(21);
        auto full = q.try_put_nowait(22);
        check(put.has_value() && !full && full.error().code() == mp::errc::queue_full, "queue.try_put_full");
        auto p = ctx.process(
            [](mp::basic_queue<int, Start> in, mp::basic_queue<int, Start> out) { out.put(in.get() * 2); }, q, back);
        p.start();
        auto v = back.try_get(30s);
        p.join();
        check(v && *v == 42, "queue.round_trip", v ? std::to_string(*v) : v.error().what());
    }
    { // put_many / get_many as results: a bound met, runs in order, an empty queue
        auto q = ctx.template queue<int>(3);
        const std::vector<int> v{1, 2, 3, 4};
        auto put = q.try_put_many(v, 0s);
        auto none = q.try_put_many(v, 0s);
        check(put && *put == 3 && !none && none.error().code() == mp::errc::queue_full, "queue.try_put_many_bounded");
        auto got = q.try_get_many(10, 30s);
        auto empty = q.try_get_many_nowait(10);
        check(got && *got == std::vector<int>{1, 2, 3} && !empty && empty.error().code() == mp::errc::queue_empty,
              "queue.try_get_many", got ? std::to_string(got->size()) + " values" : got.error().what());
    }
    { // queue shutdown: refused puts and, once drained, refused gets reported as results
        auto q = ctx.template queue<int>();
        (void)q.try_put(7);
        q.shutdown();
        auto put = q.try_put(8);
        check(!put && put.error().code() == mp::errc::queue_shut_down, "queue.try_put_after_shutdown");
        auto left = q.try_get();
        auto drained = q.try_get(30s);
        check(left && *left == 7 && !drained && drained.error().code() == mp::errc::queue_shut_down,
              "queue.try_get_drains_then_shut_down");
    }
    { // lock and value: two children add 1000 each under the value's lock
        mp::value<int> total(0);
        auto add = [](mp::value<int> t) {
            for (int i = 0; i < 1000; ++i) {
                std::lock_guard g(t.get_lock()); // get_lock() names the lock; the guard holds it
                t.store(t.load() + 1);
            }
        };
        auto p1 = ctx.process(add, total);
        auto p2 = ctx.process(add, total);
        p1.start();
        p2.start();
        p1.join();
        p2.join();
        check(total.load() == 2000, "sync.value_lock", std::to_string(total.load()));
    }
    { // event: set by a child, seen by the parent
        mp::event ev;
        auto p = ctx.process([](mp::event e) { e.set(); }, ev);
        p.start();
        bool seen = ev.wait(30s);
        p.join();
        check(seen, "sync.event");
    }
    { // pool: map, and a task whose worker fails reported through try_get
        auto pool = ctx.pool(2);
        auto squares = pool.map(mp::fn<&square>, std::vector<int>{1, 2, 3, 4});
        check(std::accumulate(squares.begin(), squares.end(), 0) == 30, "pool.map");
        auto r = pool.apply_async(mp::fn<&fails_in_worker>, 1).try_get(60s);
        check(!r && r.error().code() == mp::errc::broken_pool, "pool.failed_task_as_result",
              r ? "succeeded" : r.error().what());
        auto after = pool.apply(mp::fn<&square>, 5);
        check(after == 25, "pool.goes_on_after_failure");
        pool.close();
        pool.join();
    }
}

} // namespace

int main(int argc, char** argv) {
    mp::freeze_support();
    std::string_view method = argc > 1 ? argv[1] : "fork";
    if (method == "fork")
        run_checks<mp::start::fork>();
    else if (method == "spawn")
        run_checks<mp::start::spawn>();
    else if (method == "forkserver")
        run_checks<mp::start::forkserver>();
    else {
        std::printf("usage: %s fork|spawn|forkserver\n", argv[0]);
        return 2;
    }
    return failures == 0 ? 0 : 1;
}
