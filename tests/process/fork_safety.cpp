// Forking while other threads use the library (issue 14 item 2): a child forked while
// another thread of its parent is inside one of the library's first-use initialisations
// must not wait forever for that thread, which it does not have. Each case runs
// tests/programs/fork_during_init.cpp (a fresh process, so that nothing is initialised yet),
// which stops a thread inside the initialisation with a fault hook and forks meanwhile.
// Only start::fork applies: spawn and forkserver children are fresh programs, and the
// forkserver forks from a single thread.
#include "support/sanitizer_fork.hpp"
#include "support/support.hpp"

#include <atomic>
#include <string>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>

TEST_CASE("a child forked while another thread makes the first holder id, arena or pipe of the process does not hang",
          "[process][fork][threads]") {
    for (const std::string what : {"holder_id", "arena", "pipe_size"}) {
        INFO(what);
        auto r = test::run_program("fork_during_init", {what});
        CHECK(r.err == "");
        CHECK(r.code == 0);
    }
}

// Not the library's: the test programs' own guard (support/sanitizer_fork.hpp) against GCC
// 12's AddressSanitizer runtime, which takes none of its locks around fork(). Without it, a
// worker forked by a pool's engine thread while the test's thread maps a block for new
// allocation stacks spins for ever on its first new stack. Here a thread holds that lock as
// the runtime would, another forks: fork() must wait for the lock, and the child must find
// it free.
#if defined(__SANITIZE_ADDRESS__) && !defined(__clang__) && defined(__linux__) && defined(__x86_64__)
TEST_CASE("the test programs hold AddressSanitizer's stack depot lock across fork (support/sanitizer_fork.hpp)",
          "[process][fork][threads]") {
    namespace sf = test::sanitizer_fork;
    REQUIRE(sf::rt.depot_block_lock != nullptr); // found in libasan's symbol table, handler registered
    const int waited = sf::rt.waited.load();
    sf::lock_depot_blocks(); // as a thread that maps a block for new stacks
    std::atomic<pid_t> child{-1}, forker_tid{0};
    std::thread forker([&] {
        forker_tid = static_cast<pid_t>(::syscall(SYS_gettid));
        pid_t pid = ::fork();
        if (pid == 0) {
            const bool free = *sf::rt.depot_block_lock == 0;
            std::vector<int> fresh(4096, 1); // a new allocation stack in the child
            sigset_t mask;
            ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
            const bool unblocked = ::sigismember(&mask, SIGTERM) == 0; // given back in the child
            _exit(free && fresh.back() == 1 && unblocked ? 0 : 1);
        }
        child = pid;
    });
    while (sf::rt.waited.load() == waited && child.load() == -1) std::this_thread::yield();
    const bool fork_waited = child.load() == -1; // the fork waits in its prepare handler for the lock
    // ... with every signal blocked: a handler that allocates (Catch2's, for SIGTERM) would
    // wait for ever on the runtime's locks, there or in a child not yet past fork(). (Read
    // without allocating: the forking thread holds the allocator's lock.)
    char path[64], proc_status[4096] = {};
    std::snprintf(path, sizeof path, "/proc/self/task/%d/status", static_cast<int>(forker_tid.load()));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    const ssize_t got = fd >= 0 ? ::read(fd, proc_status, sizeof proc_status - 1) : -1;
    if (fd >= 0) ::close(fd);
    const char* sigblk = got > 0 ? std::strstr(proc_status, "SigBlk:") : nullptr;
    const unsigned long long blocked = sigblk ? std::strtoull(sigblk + 7, nullptr, 16) : 0;
    sf::unlock_depot_blocks();
    CHECK(fork_waited);
    CHECK(sigblk != nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGUSR1}) {
        INFO("signal " << sig);
        CHECK((blocked >> (sig - 1) & 1) == 1);
    }
    forker.join();
    REQUIRE(child.load() > 0);
    int status = 0;
    REQUIRE(::waitpid(child.load(), &status, 0) == child.load());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(*sf::rt.depot_block_lock == 0); // and given back in the parent
}
#endif
