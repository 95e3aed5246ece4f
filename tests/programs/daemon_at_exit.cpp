// At normal exit the main process terminates its daemons, then joins every child.
#include "start_method.hpp"
#include "support/crossing_fd.hpp"
#include <cstdio>
#include <unistd.h>

int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        multiproc::log_to_stderr(multiproc::log_level::info);
        int ready[2];
        if (::pipe(ready) != 0) return 2;
        Ctx ctx;
        auto d = ctx.process(
            [](test::fd_arg r) {
                ::close(r.fd); // tells main it runs
                for (;;) ::pause();
            },
            test::fd_arg{ready[1]});
        d.name("forever");
        d.daemon(true);
        auto n = ctx.process([] { std::printf("worker done\n"); });
        n.name("worker");
        d.start();
        ::close(ready[1]);
        char c;
        (void)::read(ready[0], &c, 1); // EOF once the daemon runs
        n.start();
        std::printf("daemon %d\n", static_cast<int>(*d.pid()));
        std::fflush(stdout);
        n.join();
        return 0; // main returns with the daemon still running
    });
}
