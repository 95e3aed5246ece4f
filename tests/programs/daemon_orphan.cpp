// Prints the pid of a running daemon child (and of its forkserver, or 0), then waits to
// be killed.
#include "start_method.hpp"
#include "support/crossing_fd.hpp"
#include <cstdio>
#include <unistd.h>

int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        int ready[2];
        if (::pipe(ready) != 0) return 2;
        auto d = Ctx{}.process(
            [](test::fd_arg r) {
                ::close(r.fd);
                for (;;) ::pause();
            },
            test::fd_arg{ready[1]});
        d.daemon(true);
        d.start();
        ::close(ready[1]);
        char c;
        (void)::read(ready[0], &c, 1); // EOF once the daemon runs (its prctl is done by then)
        auto& fs = multiproc::detail::forkserver::client();
        std::printf("%d %d\n", static_cast<int>(*d.pid()), static_cast<int>(fs.owned ? fs.pid : 0));
        std::fflush(stdout);
        for (;;) ::pause();
    });
}
