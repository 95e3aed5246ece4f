// Prints the pid of a running daemon child, then waits to be killed.
#include <multiproc/process.hpp>
#include <cstdio>
#include <unistd.h>

int main() {
    int ready[2];
    if (::pipe(ready) != 0) return 2;
    multiproc::process d(multiproc::process_options{.daemon = true}, [&] {
        ::close(ready[1]);
        for (;;) ::pause();
    });
    d.start();
    ::close(ready[1]);
    char c;
    (void)::read(ready[0], &c, 1); // EOF once the daemon runs (its prctl is done by then)
    std::printf("%d\n", static_cast<int>(*d.pid()));
    std::fflush(stdout);
    for (;;) ::pause();
}
