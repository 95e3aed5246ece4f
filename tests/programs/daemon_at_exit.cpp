// At normal exit the main process terminates its daemons, then joins every child.
#include <multiproc/process.hpp>
#include <cstdio>
#include <unistd.h>

int main() {
    multiproc::log_to_stderr(multiproc::log_level::info);
    int ready[2];
    if (::pipe(ready) != 0) return 2;
    multiproc::basic_process<multiproc::daemon::yes> d(multiproc::process_options{.name = "forever"}, [&] {
        ::close(ready[0]);
        ::close(ready[1]); // tells main it runs
        for (;;) ::pause();
    });
    multiproc::process n(multiproc::process_options{.name = "worker"}, [] { std::printf("worker done\n"); });
    d.start();
    ::close(ready[1]);
    char c;
    (void)::read(ready[0], &c, 1); // EOF once the daemon runs
    n.start();
    std::printf("daemon %d\n", static_cast<int>(*d.pid()));
    std::fflush(stdout);
    n.join();
    // main returns with the daemon still running
}
