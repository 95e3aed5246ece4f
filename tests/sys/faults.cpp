// Failures of system calls, injected through detail::sys: retried when interrupted,
// reported with a message naming the cause otherwise, and nothing leaked either way.
#include "support/support.hpp"

#include <multiproc/process.hpp>

using namespace multiproc;
using detail::sys::call;

TEST_CASE("an interrupted waitpid is retried and join completes", "[sys][eintr]") {
    process p([] { std::_Exit(3); });
    p.start();
    test::inject eintr(call::waitpid, EINTR, 3);
    p.join();
    CHECK(eintr.left() == 0); // all three interruptions happened and were retried
    CHECK(p.exitcode() == 3);
}

TEST_CASE("an interrupted poll in join(timeout) is restarted", "[sys][eintr]") {
    test::gate gate;
    process p([&] { std::_Exit(gate.wait() ? 0 : 1); });
    p.start();
    {
        test::inject eintr(call::poll, EINTR, 2);
        p.join(std::chrono::milliseconds(10));
        CHECK(eintr.left() == 0);
    }
    CHECK(p.is_alive());
    gate.release();
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("a failed fork is an os_error naming the process and the cause, and leaks nothing",
          "[sys][errors]") {
    auto fds = test::open_fds();
    process p([] {});
    {
        test::inject fail(call::fork, EAGAIN);
        try {
            p.start();
            FAIL("start() should have thrown");
        } catch (const os_error& e) {
            CHECK(std::string(e.what()) == "multiproc: fork for process " + p.name() + ": Resource temporarily unavailable");
            CHECK(e.code().value() == EAGAIN);
        }
    }
    CHECK_FALSE(p.pid().has_value());
    CHECK(test::children_of(::getpid()).empty());
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    // The object is still usable once the cause is gone.
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("a failed pidfd_open kills and reaps the new child, and leaks nothing", "[sys][errors]") {
    auto fds = test::open_fds();
    process p([] { for (;;) ::pause(); });
    {
        test::inject fail(call::pidfd_open, EMFILE);
        CHECK_THROWS_WITH(p.start(), "multiproc: pidfd_open for process " + p.name() + ": Too many open files");
    }
    CHECK(test::children_of(::getpid()).empty()); // killed and reaped: no zombie
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

TEST_CASE("a failed signal is reported, ESRCH (already gone) is not an error", "[sys][errors]") {
    test::gate gate;
    process p([&] { gate.wait(); });
    p.start();
    {
        test::inject fail(call::pidfd_send_signal, EPERM);
        CHECK_THROWS_AS(p.terminate(), os_error);
    }
    {
        test::inject gone(call::pidfd_send_signal, ESRCH);
        CHECK_NOTHROW(p.terminate());
    }
    CHECK(p.is_alive());
    p.kill();
    p.join();
    CHECK(p.exitcode() == -SIGKILL);
}
