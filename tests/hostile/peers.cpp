// Foreign and hostile peers of listeners, clients and managers, and manager clients that
// die while they wait (issue 20's seventh stop, from an outside fault campaign): bytes that
// are not a frame but fewer than one are refused at once instead of waited for; the
// authentication exchange names a peer that does not speak it; a waiting manager call whose
// client has hung up takes nothing, so the item, unit or notification goes to a live
// waiter; and the manager's errors name their cause.
#include "support/support.hpp"

#include <multiproc/connection.hpp>
#include <multiproc/manager.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <unistd.h>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

/// A plain socket connected to `a`, blocking, as a program that is not multiproc's would
/// hold one.
detail::sys::unique_fd raw_connect(const address& a) {
    const auto where = detail::resolve_address(a, false).front();
    detail::sys::unique_fd fd(::socket(where.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.get() >= 0);
    REQUIRE(::connect(fd.get(), where.get(), where.length) == 0);
    return fd;
}

void write_all(int fd, std::string_view bytes) {
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

/// What CPython's Connection writes for send_bytes(b"hi"): a 4-byte big-endian length,
/// then the bytes. Its first byte is not a frame's.
const std::string python_frame("\0\0\0\x02hi", 6);

namespace mgr = detail::mgr;

/// A request to a manager's store.
mgr::wire request(mgr::op code, mgr::kind k, std::uint64_t object = 0) {
    mgr::wire q;
    q.code = static_cast<std::uint8_t>(code);
    q.kind = static_cast<std::uint8_t>(k);
    q.type = "t";
    q.object = object;
    return q;
}

std::uint64_t make(mgr::store& s, mgr::kind k, std::int64_t n = 0) {
    auto q = request(mgr::op::create, k);
    q.n = n;
    const mgr::wire r = s.call(q, 100, [] { return false; });
    REQUIRE(r.code == 0);
    return r.object;
}

/// Runs `q` in a thread as connection `conn`, whose client is gone: whether the call raised
/// client_gone (1), returned (0), or failed otherwise (2).
std::future<int> call_as_gone(mgr::store& s, mgr::wire q, std::uint64_t conn) {
    return std::async(std::launch::async, [&s, q, conn] {
        try {
            (void)s.call(q, conn, [] { return true; });
            return 0;
        } catch (const mgr::client_gone&) {
            return 1;
        } catch (...) {
            return 2;
        }
    });
}

} // namespace

TEST_CASE("a peer that writes fewer bytes than a frame, and not a frame, is refused at once", "[hostile][peers]") {
    for (std::size_t n : {1u, 2u, 6u}) {
        INFO(n << " bytes");
        listener<std::string> l;
        detail::sys::unique_fd raw = raw_connect(l.address());
        auto c = l.accept();
        write_all(raw.get(), python_frame.substr(0, n));
        CHECK(c.poll(10s));
        CHECK_THROWS_AS(c.recv(), serialization_error); // (it waited for 128 bytes that never came)
        CHECK_THROWS_WITH(c.recv(), Catch::Contains("not a frame"));
    }
}

TEST_CASE("a client that meets a server speaking another protocol gets authentication_error, not a hang",
          "[hostile][peers][auth]") {
    const address at = address::abstract("multiproc-test-peers-" + std::to_string(::getpid()));
    const auto where = detail::resolve_address(at, true).front();
    detail::sys::unique_fd server(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(server.get(), where.get(), where.length) == 0);
    REQUIRE(::listen(server.get(), 1) == 0);
    // As CPython's Listener with an authkey: a 63-byte challenge, then it waits for 256 bytes.
    std::thread python_listener([&] {
        detail::sys::unique_fd c(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
        std::string challenge("\0\0\0\x3b#CHALLENGE#{sha256}", 23);
        challenge += std::string(40, 'r');
        (void)::write(c.get(), challenge.data(), challenge.size());
        char sink[256];
        while (::read(c.get(), sink, sizeof sink) > 0) {
        }
    });
    try {
        (void)client<std::string>(at, std::string("secret"));
        FAIL("the client connected");
    } catch (const authentication_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("not multiproc's authentication exchange"));
    }
    python_listener.join();
}

TEST_CASE("a listener with an authkey meets bytes that are not the exchange: authentication_error, and goes on",
          "[hostile][peers][auth]") {
    listener<std::string> l(std::nullopt, 4, std::string("secret"));
    {
        detail::sys::unique_fd raw = raw_connect(l.address());
        write_all(raw.get(), python_frame);
        CHECK_THROWS_AS(l.accept(), authentication_error);
    }
    std::thread good([at = l.address()] { client<std::string>(at, std::string("secret")).send("hello"); });
    CHECK(l.accept().recv() == "hello");
    good.join();
}

TEST_CASE("manager store: a waiting call whose client is gone takes nothing, and a live one gets it",
          "[hostile][peers][manager]") {
    auto live = [] { return false; };
    mgr::store s;
    // `waits` by a gone client, `unblocks` by a live one, then `waits` at once by another
    // live one: the reply it gets (the gone call took nothing).
    auto left_for_the_living = [&](mgr::wire waits, const mgr::wire& unblocks) {
        auto gone = call_as_gone(s, waits, 1);
        CHECK(s.call(unblocks, 2, live).code == 0);
        CHECK(gone.get() == 1);
        waits.timeout = 0;
        return s.call(waits, 3, live);
    };
    SECTION("a queue's item") {
        const auto q = make(s, mgr::kind::queue);
        auto put = request(mgr::op::put, mgr::kind::queue, q);
        put.b = "item";
        const auto r = left_for_the_living(request(mgr::op::take, mgr::kind::queue, q), put);
        CHECK(r.code == 0);
        CHECK(r.b == "item");
    }
    SECTION("a semaphore's unit") {
        const auto sem = make(s, mgr::kind::semaphore, 0);
        CHECK(left_for_the_living(request(mgr::op::acquire, mgr::kind::semaphore, sem),
                                  request(mgr::op::release, mgr::kind::semaphore, sem))
                  .n == 1);
    }
    SECTION("a lock") {
        const auto lk = make(s, mgr::kind::lock);
        CHECK(s.call(request(mgr::op::acquire, mgr::kind::lock, lk), 2, live).n == 1);
        CHECK(left_for_the_living(request(mgr::op::acquire, mgr::kind::lock, lk),
                                  request(mgr::op::release, mgr::kind::lock, lk))
                  .n == 1);
    }
    SECTION("a condition's notification") {
        const auto cv = make(s, mgr::kind::condition);
        const auto acquire = request(mgr::op::acquire, mgr::kind::condition, cv);
        const auto release = request(mgr::op::release, mgr::kind::condition, cv);
        auto wait = request(mgr::op::wait, mgr::kind::condition, cv);
        wait.timeout = 30; // (a notification lost to the gone waiter: this one times out, n = 0)
        // Each waiter holds the condition's lock until its wait has put it among the
        // sleepers; this thread's acquire after it proves it is there.
        std::promise<void> first_holds;
        auto gone = std::async(std::launch::async, [&] {
            try {
                (void)s.call(acquire, 1, [] { return false; });
                first_holds.set_value();
                (void)s.call(wait, 1, [] { return true; });
                return 0;
            } catch (const mgr::client_gone&) {
                return 1;
            }
        });
        first_holds.get_future().get();
        CHECK(s.call(acquire, 3, live).n == 1);
        CHECK(s.call(release, 3, live).code == 0);
        std::promise<void> second_holds;
        auto second = std::async(std::launch::async, [&] {
            (void)s.call(acquire, 2, [] { return false; });
            second_holds.set_value();
            const auto r = s.call(wait, 2, [] { return false; });
            (void)s.call(release, 2, [] { return false; });
            return r.n;
        });
        second_holds.get_future().get();
        CHECK(s.call(acquire, 3, live).n == 1);
        auto notify = request(mgr::op::notify, mgr::kind::condition, cv);
        notify.n = 1; // the oldest sleeper: the gone one
        CHECK(s.call(notify, 3, live).code == 0);
        CHECK(s.call(release, 3, live).code == 0);
        CHECK(gone.get() == 1);
        CHECK(second.get() == 1); // notified, not timed out
    }
}

TEST_CASE("manager: hung_up tells a closed peer from a live one", "[hostile][peers][manager]") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    detail::sys::unique_fd a(sv[0]), b(sv[1]);
    CHECK_FALSE(mgr::hung_up(a.get()));
    write_all(b.get(), "x"); // (data waiting is not a hang-up)
    CHECK_FALSE(mgr::hung_up(a.get()));
    b.reset();
    CHECK(mgr::hung_up(a.get()));
}

TEST_CASE("manager: a client that starts the authentication exchange and stops is dropped at its deadline",
          "[hostile][peers][manager]") {
    manager m(address("127.0.0.1", 0));
    detail::sys::unique_fd raw = raw_connect(m.address());
    const timeval bound{detail::mgr::auth_deadline.count() + 15, 0}; // (before: the server waited forever)
    REQUIRE(::setsockopt(raw.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound) == 0);
    write_all(raw.get(), "M"); // the first byte of a frame, and no more
    char sink[512];
    ssize_t r = 0;
    while ((r = ::read(raw.get(), sink, sizeof sink)) > 0) { // (the server's challenge)
    }
    CHECK(r == 0); // the server hung up, where a timed-out read is -1
    auto d = m.dict<int, int>(); // and it goes on serving
    d.set(1, 2);
    CHECK(d.at(1) == 2);
}

TEST_CASE("manager: a negative semaphore is value_error, on the proxy and on the server",
          "[hostile][peers][manager]") {
    manager m;
    CHECK_THROWS_AS(m.semaphore(-1), value_error);
    CHECK(m.semaphore(0).get_value() == 0);
    mgr::store s;
    auto q = request(mgr::op::create, mgr::kind::semaphore);
    q.n = -5;
    CHECK(s.call(q, 1, [] { return false; }).code == static_cast<std::uint8_t>(mgr::status::bad));
}

TEST_CASE("manager store: a peer's NaN timeout is refused, not taken as no limit", "[hostile][peers][manager]") {
    // (Before, a NaN was "no limit": each call below succeeded, or waited for ever.)
    auto live = [] { return false; };
    mgr::store s;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto q = make(s, mgr::kind::queue);
    auto put = request(mgr::op::put, mgr::kind::queue, q);
    put.b = "item";
    CHECK(s.call(put, 1, live).code == 0);
    auto take = request(mgr::op::take, mgr::kind::queue, q);
    take.timeout = nan;
    auto r = s.call(take, 1, live);
    CHECK(r.code == static_cast<std::uint8_t>(mgr::status::bad));
    CHECK(r.a == "timeout is not a number");
    const auto sem = make(s, mgr::kind::semaphore, 1);
    auto acquire = request(mgr::op::acquire, mgr::kind::semaphore, sem);
    acquire.timeout = nan;
    CHECK(s.call(acquire, 1, live).code == static_cast<std::uint8_t>(mgr::status::bad));
    // The refused calls took nothing.
    acquire.timeout = 0;
    CHECK(s.call(acquire, 1, live).n == 1);
    take.timeout = 0;
    r = s.call(take, 1, live);
    CHECK(r.code == 0);
    CHECK(r.b == "item");
}

TEST_CASE("manager: a server that cannot listen raises the listener's errno and says it once",
          "[hostile][peers][manager]") {
    manager first(address("127.0.0.1", 0));
    try {
        manager second(first.address());
        FAIL("a second server listened on the same port");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EADDRINUSE);
        const std::string what = e.what();
        const std::string words = std::strerror(EADDRINUSE);
        CHECK(what.find(words) != std::string::npos);
        CHECK(what.find(words) == what.rfind(words));
    }
    try {
        manager nowhere(address("/nonexistent-multiproc-test-dir/socket"));
        FAIL("a server listened in a directory that does not exist");
    } catch (const os_error& e) {
        CHECK(e.code().value() == ENOENT);
    }
}

TEST_CASE("shared_memory_manager: a size past any segment says so", "[hostile][peers][manager]") {
    shared_memory_manager smm;
    for (std::size_t size : {std::size_t(1) << 63, ~std::size_t{0}}) {
        INFO(size);
        CHECK_THROWS_WITH((void)smm.shared_memory(size), Catch::Contains("larger than any shared memory segment"));
    }
    CHECK_THROWS_WITH((void)smm.shared_memory(0), Catch::Contains("positive size"));
}

TEST_CASE("shared_memory_manager: the segments are removed when the process that started it is killed",
          "[hostile][peers][manager]") {
    REQUIRE(test::children_of(::getpid()).empty());
    // Orphans come to this process, so that it can wait for every one (the server, then
    // the server's reaper) instead of guessing when they are done.
    struct subreaper {
        subreaper() { REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
        ~subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
    } adopts_orphans;
    test::pipe_pair names, hold;
    std::fflush(nullptr); // (what Catch printed is not printed again by the child)
    const pid_t owner = ::fork();
    REQUIRE(owner >= 0);
    if (owner == 0) {
        try {
            shared_memory_manager smm;
            auto a = smm.shared_memory(4096);
            auto b = smm.shared_memory(1 << 20);
            test::write_str(names.w, a.name() + "\n" + b.name() + "\n");
            char c;
            (void)::read(hold.r, &c, 1); // until it is killed
        } catch (...) {
        }
        ::_exit(3);
    }
    const std::string first = test::read_line(names.r), second = test::read_line(names.r);
    auto exists = [](const std::string& name) {
        struct stat st {};
        return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
    };
    CHECK(exists(first));
    CHECK(exists(second));
    REQUIRE(::kill(owner, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(owner, &status, 0) == owner);
    while (::waitpid(-1, &status, 0) > 0) { // the server (killed with its parent), then its reaper
    }
    CHECK_FALSE(exists(first)); // (before: both were left in /dev/shm)
    CHECK_FALSE(exists(second));
    (void)::shm_unlink(("/" + first).c_str());
    (void)::shm_unlink(("/" + second).c_str());
}
