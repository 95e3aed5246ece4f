// Prints the pids of its pool's workers, then waits to be killed. The start method is the
// first argument (fork when absent).
#include "start_method.hpp"

#include <multiproc/pool.hpp>

#include <cstdio>
#include <unistd.h>

int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        auto p = Ctx{}.pool(2);
        for (auto& c : multiproc::active_children()) std::printf("%d\n", static_cast<int>(*c.pid()));
        std::printf("ready\n");
        std::fflush(stdout);
        for (;;) ::pause();
        return 0;
    });
}
