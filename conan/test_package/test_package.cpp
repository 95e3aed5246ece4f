// Proves the package is usable: its headers, Boost, range-v3 and the system libraries are
// found, and a child process runs and reports its exit code.
#include <multiproc/process.hpp>
#include <multiproc/version.hpp>

#include <cstdio>
#include <cstdlib>

int main() {
    multiproc::process child([] { std::exit(7); });
    child.start();
    child.join();
    std::printf("multiproc %s: child exit code %d\n", MULTIPROC_VERSION_STRING, child.exitcode().value_or(-1));
    return child.exitcode() == 7 ? EXIT_SUCCESS : EXIT_FAILURE;
}
