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

namespace {
/// How many words of this process's fork gates are in use (detail/start/fork_gate.hpp).
int gate_words_in_use() {
    int n = 0;
    for (auto& b : detail::gate_words.busy) n += __builtin_popcountll(b.load());
    return n;
}
} // namespace

TEST_CASE("a failed pidfd_open kills and reaps the new child, and leaks nothing", "[sys][errors]") {
    auto fds = test::open_fds();
    const int words = gate_words_in_use();
    process p([] { for (;;) ::pause(); });
    {
        test::inject fail(call::pidfd_open, EMFILE);
        CHECK_THROWS_WITH(p.start(), "multiproc: pidfd_open for process " + p.name() + ": Too many open files");
    }
    CHECK(test::children_of(::getpid()).empty()); // killed and reaped: no zombie
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
    CHECK(gate_words_in_use() == words); // its gate's word is given back: the child is dead
}

TEST_CASE("a fork start gives its gate's word back, and one with every word in use has a page of its own",
          "[sys][gate]") {
    process first([] {});
    first.start(); // maps this process's page of gates if no start had yet
    first.join();
    const int words = gate_words_in_use();
    for (int i = 0; i < 50; ++i) {
        process p([] { std::_Exit(4); });
        p.start();
        p.join();
        REQUIRE(p.exitcode() == 4);
    }
    CHECK(gate_words_in_use() == words);
    // Every word taken (as by a thousand starts in flight): a start still runs its child.
    std::vector<std::unique_ptr<detail::fork_gate>> taken;
    {
        std::lock_guard lk(detail::rt().mu);
        for (std::size_t i = 0; i < detail::fork_gate_words::count; ++i) {
            taken.push_back(std::make_unique<detail::fork_gate>());
            if (!taken.back()->take()) break;
        }
    }
    CHECK(gate_words_in_use() == static_cast<int>(detail::fork_gate_words::count));
    process p([] { std::_Exit(5); });
    p.start(); // (with no word to take, start() would fail: "mmap of the fork gate")
    p.join();
    CHECK(p.exitcode() == 5);
    CHECK(gate_words_in_use() == static_cast<int>(detail::fork_gate_words::count)); // none given back twice
    for (auto& g : taken) g->forget();
    CHECK(gate_words_in_use() == words);
}

TEST_CASE("a fork gate's word used again reads as open to a slow child of its last use, and refused only to its own",
          "[sys][gate]") {
    // What a child passing its gate sees, by the word's values alone (pass() is the child's
    // wait): a child of an earlier start that looks only after the word went to a later
    // start must see "open", whatever the later start does with it.
    const pid_t me = ::getpid(); // as the children's parent: pass() checks it only asleep
    std::atomic<std::uint32_t>* word = nullptr;
    std::uint32_t first = 0;
    {
        std::lock_guard lk(detail::rt().mu);
        detail::fork_gate a;
        REQUIRE(a.take());
        word = a.word();
        first = a.closed_value();
        a.open(); // gives the word back
    }
    std::lock_guard lk(detail::rt().mu);
    detail::fork_gate b;
    REQUIRE(b.take());
    REQUIRE(b.word() == word); // the lowest free word: the same one
    CHECK(b.closed_value() > first + 3);
    CHECK(detail::fork_gate::pass(*word, first, me)); // closed for b's child: open for a's
    b.refuse(true);
    CHECK_FALSE(detail::fork_gate::pass(*word, b.closed_value(), me)); // refused: b's child leaves
    CHECK(detail::fork_gate::pass(*word, first, me));                  // a's child still goes
}

TEST_CASE("a fork gate whose page cannot be mapped fails start() with a sentence, and leaks nothing",
          "[sys][errors][gate]") {
    process warm([] {});
    warm.start(); // this process has its page; a process forked from it maps one of its own
    warm.join();
    int report[2];
    REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
    const pid_t forked = ::fork();
    REQUIRE(forked >= 0);
    if (forked == 0) { // never returns into Catch2: reports through the pipe, then _Exit
        ::close(report[0]);
        std::string got = "no error";
        MULTIPROC_TRY {
            process p([] { std::_Exit(6); });
            {
                test::inject fail(call::mmap, ENOMEM);
                MULTIPROC_TRY {
                    p.start();
                } MULTIPROC_CATCH(const os_error&, e) {
                    got = e.what();
                }
            }
            if (got == "multiproc: mmap of the fork gate for process " + p.name() + ": Cannot allocate memory")
                got = "sentence";
            bool ok = test::children_of(::getpid()).empty();
            p.start(); // the cause gone, the same object starts
            p.join();
            ok = ok && p.exitcode() == 6;
            got += ok ? "|ok" : "|leaked or failed after";
        } MULTIPROC_CATCH_ALL {
            got += "|threw";
        }
        (void)!::write(report[1], got.data(), got.size());
        std::_Exit(0);
    }
    ::close(report[1]);
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    ::close(report[0]);
    CHECK(test::wait_exit(forked));
    int st = 0;
    CHECK(::waitpid(forked, &st, 0) == forked);
    CHECK(got == "sentence|ok");
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
