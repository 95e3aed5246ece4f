// A pool whose workers are busy when Ctrl-C comes. Makes itself a process group (as a shell
// does for a job), prints the workers' pids, then "ready", then waits. The start method is
// the first argument. Without a second argument, SIGINT has its default action (the
// program dies, and its workers with it); with "handle", main waits for SIGINT with
// sigwait and terminates the pool.
#include "start_method.hpp"

#include <multiproc/pool.hpp>

#include <cstdio>
#include <cstring>
#include <signal.h>
#include <unistd.h>

namespace {
int busy(int) {
    for (;;) ::pause(); // until killed: SIGINT does not stop a worker
}
} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    ::setpgid(0, 0); // the test signals the group, as a terminal does on Ctrl-C
    const bool handle = argc > 2 && std::strcmp(argv[2], "handle") == 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    if (handle) pthread_sigmask(SIG_BLOCK, &set, nullptr); // before the pool's threads exist
    return with_start_method(argc, argv, [&]<class Ctx>() {
        auto p = Ctx{}.pool(2);
        for (auto& c : multiproc::active_children()) std::printf("%d\n", static_cast<int>(*c.pid()));
        auto a = p.apply_async(multiproc::fn<&busy>, 1);
        auto b = p.apply_async(multiproc::fn<&busy>, 2);
        std::printf("ready\n");
        std::fflush(stdout);
        if (!handle) {
            for (;;) ::pause();
        }
        int sig = 0;
        sigwait(&set, &sig);
        p.terminate();
        std::printf("terminated: %s\n", a.ready() && b.ready() ? "both tasks failed" : "tasks still pending");
        return 0;
    });
}
