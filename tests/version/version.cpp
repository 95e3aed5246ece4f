// version.hpp must say what project(VERSION) in CMakeLists.txt says. CMake passes its
// version in as MULTIPROC_TEST_PROJECT_VERSION and MULTIPROC_TEST_PROJECT_VERSION_{MAJOR,MINOR,PATCH}.
#include "support/catch.hpp"

#include <multiproc/version.hpp>

#include <string_view>

TEST_CASE("version.hpp carries the version that project() in CMakeLists.txt declares", "[version]") {
    CHECK(MULTIPROC_VERSION_MAJOR == MULTIPROC_TEST_PROJECT_VERSION_MAJOR);
    CHECK(MULTIPROC_VERSION_MINOR == MULTIPROC_TEST_PROJECT_VERSION_MINOR);
    CHECK(MULTIPROC_VERSION_PATCH == MULTIPROC_TEST_PROJECT_VERSION_PATCH);
    CHECK(std::string_view(MULTIPROC_VERSION_STRING) == MULTIPROC_TEST_PROJECT_VERSION);
}

TEST_CASE("MULTIPROC_VERSION is one number that grows with each release", "[version]") {
    // Two decimal digits each for minor and patch keep the encoding unambiguous.
    STATIC_REQUIRE(MULTIPROC_VERSION_MINOR < 100);
    STATIC_REQUIRE(MULTIPROC_VERSION_PATCH < 100);
    CHECK(MULTIPROC_VERSION ==
          MULTIPROC_VERSION_MAJOR * 10000 + MULTIPROC_VERSION_MINOR * 100 + MULTIPROC_VERSION_PATCH);
}
