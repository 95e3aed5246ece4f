// version.hpp must say what project(VERSION) in CMakeLists.txt says. CMake passes its
// version in as MULTIPROC_TEST_PROJECT_VERSION and MULTIPROC_TEST_PROJECT_VERSION_{MAJOR,MINOR,PATCH}.
#include "support/catch.hpp"

#include <multiproc/version.hpp>
#include <multiproc/error.hpp>
#include <multiproc/serialize.hpp>

#include <string>
#include <string_view>
#include <type_traits>

namespace {
struct sent_as_bytes {
    int x;
    sent_as_bytes(int v) : x(v) {} // not an aggregate: bitwise needs the opt-in below
};
} // namespace

// A program reopens the library's namespace by its usual name to specialize a template:
// the inline namespace is found through it.
namespace multiproc::serialize {
template <>
inline constexpr bool enable_bitwise<sent_as_bytes> = true;
} // namespace multiproc::serialize

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

TEST_CASE("everything lives in the inline namespace v<major>_<minor>, spelled multiproc:: as ever",
          "[version][abi]") {
    const std::string expected =
        "v" + std::to_string(MULTIPROC_TEST_PROJECT_VERSION_MAJOR) + "_" + std::to_string(MULTIPROC_TEST_PROJECT_VERSION_MINOR);
    CHECK(std::string_view(MULTIPROC_ABI_NAMESPACE_STRING) == expected);
    STATIC_REQUIRE(std::is_same_v<multiproc::MULTIPROC_ABI_NAMESPACE::value_error, multiproc::value_error>);
    STATIC_REQUIRE(multiproc::serialize::bitwise::supports<sent_as_bytes>);
    // Names the library prints (remote errors, reprs) leave the inline namespace out.
    CHECK(multiproc::detail::type_name<multiproc::value_error>() == "multiproc::value_error");
    CHECK(multiproc::detail::without_abi_namespace("std::vector<multiproc::" MULTIPROC_ABI_NAMESPACE_STRING
                                                   "::queue_empty>") == "std::vector<multiproc::queue_empty>");
}
