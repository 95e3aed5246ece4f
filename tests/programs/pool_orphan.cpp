// Prints the pids of its pool's workers, then waits to be killed.
#include <multiproc/pool.hpp>

#include <cstdio>
#include <unistd.h>

int main() {
    multiproc::pool p(2);
    for (auto& c : multiproc::active_children()) std::printf("%d\n", static_cast<int>(*c.pid()));
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) ::pause();
}
