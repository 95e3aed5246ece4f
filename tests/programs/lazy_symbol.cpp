// A program with a symbol that cannot be bound (tests/programs/lib/lazy_symbol_lib.cpp): its
// first forkserver, started with LD_BIND_NOW=1, cannot load; multiproc starts another that
// binds lazily, says so in the log, and the child runs. Prints the child's line and its
// exit code.
#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>
#include <multiproc/spawn.hpp>

#include <cstdio>

void multiproc_test_never_called();

int main() {
    multiproc::freeze_support();
    multiproc::log_to_stderr(multiproc::log_level::warning);
    // The library must be loaded: the program takes the address of its function.
    static void (*volatile keep)() = &multiproc_test_never_called;
    (void)keep;
    multiproc::basic_process<multiproc::start::forkserver> p([] {
        std::printf("child ran\n");
        std::fflush(stdout);
    });
    p.start();
    p.join();
    std::printf("exitcode %d\n", p.exitcode().value_or(-1000));
    return 0;
}
