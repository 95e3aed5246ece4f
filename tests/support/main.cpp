// One Catch2 main shared by every test program. It starts with multiproc's one line, so
// that the tests can start spawn and forkserver children: a fresh copy of a test program
// runs its target there and never reaches Catch2.
#define TEST_SANITIZER_FORK_INSTALL
#include "support/sanitizer_fork.hpp"

#include <multiproc/spawn.hpp>
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

int main(int argc, char* argv[]) {
    multiproc::freeze_support();
    return Catch::Session().run(argc, argv);
}
