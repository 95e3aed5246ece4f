// ext::serialize::cereal on its own (built only when cereal is found): round trips of every
// sample type cereal can handle, and truncated or padded frames as serialization errors.
#include "ipc/combos.hpp"

#include <multiproc/ext/serialize/cereal.hpp>

using namespace multiproc;
using cereal_policy = ext::serialize::cereal;

namespace {
struct no_cereal_functions {
    int x;
};
} // namespace

TEST_CASE("cereal round-trips every sample type that has cereal functions", "[serialize][cereal]") {
    int sent = 0;
    test::for_each_sample<test::combo<transport::pipe, cereal_policy>>([&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        std::vector<std::byte> bytes;
        detail::vector_writer w(bytes);
        cereal_policy::encode(v, w);
        detail::span_reader r(bytes);
        CHECK(cereal_policy::decode<T>(r) == v);
        ++sent;
    });
    CHECK(sent > 30);
    STATIC_REQUIRE_FALSE(serializer_for<cereal_policy, no_cereal_functions>);
    STATIC_REQUIRE_FALSE(serializer_for<cereal_policy, std::unique_ptr<int>>);
}

TEST_CASE("cereal: truncated frames and left-over bytes are serialization errors", "[serialize][cereal][corrupt]") {
    test::person p{"ada", 36, {{1, 2}}, 1.65, {{"math", {10, 9}}}};
    std::vector<std::byte> bytes;
    detail::vector_writer w(bytes);
    cereal_policy::encode(p, w);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        detail::span_reader r(std::span<const std::byte>(bytes.data(), n));
        CHECK_THROWS_AS(cereal_policy::decode<test::person>(r), serialization_error);
    }
    bytes.push_back(std::byte{0});
    detail::span_reader r(bytes);
    CHECK_THROWS_WITH(cereal_policy::decode<test::person>(r), Catch::Contains("1 bytes left over after the value"));
}
