// The program every consumer project under tests/consumers/ builds: multiproc used as a user
// uses it. It exits 0 only if a child process ran and reported the exit code it chose. Where
// the route reports a version (find_package's multiproc_VERSION, pkg-config --modversion),
// the consumer passes it in as CONSUMER_FOUND_VERSION, and it must be the headers' version.
#include <multiproc/process.hpp>
#include <multiproc/version.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#ifdef CONSUMER_FOUND_VERSION
static_assert(std::string_view(MULTIPROC_VERSION_STRING) == CONSUMER_FOUND_VERSION,
              "the build system found another multiproc version than the headers it compiled");
#endif

int main() {
    multiproc::process child([] { std::exit(42); });
    child.start();
    child.join();
    if (child.exitcode() != 42) {
        std::fprintf(stderr, "consumer: the child's exit code was %d, not 42\n",
                     child.exitcode().value_or(-1000));
        return 1;
    }
    std::printf("consumer: multiproc %s ran a child that exited with 42\n", MULTIPROC_VERSION_STRING);
    return 0;
}
