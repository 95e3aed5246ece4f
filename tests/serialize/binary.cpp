// serialize::binary and serialize::bitwise on their own: round trips, the wire format,
// and decoding that never trusts the bytes (truncation, corrupt counts, bad tags).
#include "ipc/combos.hpp"

#include <multiproc/serialize.hpp>

#include <cstring>
#include <random>

using namespace multiproc;

namespace {

template <class S, class T>
std::vector<std::byte> encode(const T& v) {
    std::vector<std::byte> out;
    detail::vector_writer w(out);
    S::encode(v, w);
    return out;
}

template <class S, class T>
T decode(std::span<const std::byte> bytes) {
    detail::span_reader r(bytes);
    return S::template decode<T>(r);
}

template <class T>
std::vector<std::byte> raw(const T& v) {
    std::vector<std::byte> out(sizeof v);
    std::memcpy(out.data(), &v, sizeof v);
    return out;
}

std::vector<std::byte> cat(std::initializer_list<std::vector<std::byte>> parts) {
    std::vector<std::byte> out;
    for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

struct padded {
    char c;
    double d;
};
struct empty_struct {};
enum unfixed { u1, u2 };
enum class flag : bool { off, on };

} // namespace

TEST_CASE("binary round-trips every supported kind of value, and announces its exact size", "[serialize][binary]") {
    test::for_each_sample<test::combo<transport::pipe, serialize::binary>>([](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        auto bytes = encode<serialize::binary>(v);
        CHECK(serialize::binary::encoded_size(v) == bytes.size());
        CHECK(decode<serialize::binary, T>(bytes) == v);
    });
}

TEST_CASE("bitwise round-trips plain data as its bytes", "[serialize][bitwise]") {
    int sent = 0;
    test::for_each_sample<test::combo<transport::pipe, serialize::bitwise>>([&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        auto bytes = encode<serialize::bitwise>(v);
        CHECK(bytes == raw(v));
        CHECK(decode<serialize::bitwise, T>(bytes) == v);
        ++sent;
    });
    CHECK(sent > 10);
    auto bytes = encode<serialize::bitwise>(12345);
    bytes.push_back(std::byte{0});
    CHECK_THROWS_WITH((decode<serialize::bitwise, int>(bytes)),
                      "multiproc: cannot decode a int (serialize::bitwise): the frame holds 5 bytes, not 4");
}

TEST_CASE("binary writes what its format says", "[serialize][binary]") {
    CHECK(encode<serialize::binary>(std::int32_t{7}) == raw(std::int32_t{7}));
    CHECK(encode<serialize::binary>(true) == std::vector<std::byte>{std::byte{1}});
    CHECK(encode<serialize::binary>(std::string("ab")) ==
          cat({raw(std::uint64_t{2}), {std::byte{'a'}, std::byte{'b'}}}));
    // Contiguous trivially copyable data travels as one block after its count.
    CHECK(encode<serialize::binary>(std::vector<int>{1, 2}) == cat({raw(std::uint64_t{2}), raw(1), raw(2)}));
    // A padded aggregate goes field by field: no padding bytes on the wire.
    CHECK(encode<serialize::binary>(padded{'x', 2.0}) == cat({raw('x'), raw(2.0)}));
    CHECK(encode<serialize::binary>(test::point{3, 4}) == raw(test::point{3, 4}));
    // Every value takes at least one byte, even an empty one.
    CHECK(encode<serialize::binary>(empty_struct{}) == std::vector<std::byte>{std::byte{0}});
    CHECK(encode<serialize::binary>(std::monostate{}) == std::vector<std::byte>{std::byte{0}});
    CHECK(encode<serialize::binary>(std::optional<int>()) == std::vector<std::byte>{std::byte{0}});
    CHECK(encode<serialize::binary>(std::variant<char, int>(5)) == cat({raw(std::uint32_t{1}), raw(5)}));
    CHECK(encode<serialize::binary>(flag::on) == std::vector<std::byte>{std::byte{1}});
}

TEST_CASE("binary's concept accepts supported types and rejects the others", "[serialize][binary]") {
    STATIC_REQUIRE(serializer_for<serialize::binary, test::person>);
    STATIC_REQUIRE(serializer_for<serialize::binary, test::hana_defined>);
    STATIC_REQUIRE(serializer_for<serialize::binary, test::hana_adapted>);
    STATIC_REQUIRE(serializer_for<serialize::binary, std::vector<std::map<std::string, std::optional<padded>>>>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::binary, int*>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::binary, std::unique_ptr<int>>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::binary, std::vector<void*>>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::binary, unfixed>); // its values cannot be checked
    STATIC_REQUIRE(serializer_for<serialize::bitwise, padded>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::bitwise, std::string>);
    STATIC_REQUIRE_FALSE(serializer_for<serialize::bitwise, int[4]>);
}

TEST_CASE("a count claiming 2^60 elements fails at once instead of allocating", "[serialize][binary][corrupt]") {
    auto huge = raw(std::uint64_t{1} << 60);
    CHECK_THROWS_AS((decode<serialize::binary, std::vector<int>>(huge)), serialization_error);
    CHECK_THROWS_AS((decode<serialize::binary, std::vector<std::vector<int>>>(huge)), serialization_error);
    CHECK_THROWS_AS((decode<serialize::binary, std::string>(huge)), serialization_error);
    CHECK_THROWS_AS((decode<serialize::binary, std::vector<empty_struct>>(huge)), serialization_error);
    CHECK_THROWS_AS((decode<serialize::binary, std::map<int, int>>(huge)), serialization_error);
    CHECK_THROWS_AS((decode<serialize::binary, std::unordered_set<std::string>>(huge)), serialization_error);
    CHECK_THROWS_WITH((decode<serialize::binary, std::vector<int>>(cat({huge, raw(1)}))),
                      Catch::Contains("cannot decode a std::vector<int") &&
                          Catch::Contains("a count of 1152921504606846976 elements of at least 4 bytes each, with 4 "
                                          "bytes left in the frame"));
}

TEST_CASE("corrupt tags and left-over bytes are serialization errors", "[serialize][binary][corrupt]") {
    CHECK_THROWS_WITH((decode<serialize::binary, bool>(std::vector<std::byte>{std::byte{2}})),
                      Catch::Contains("a bool byte is 2, not 0 or 1"));
    CHECK_THROWS_WITH((decode<serialize::binary, std::optional<int>>(std::vector<std::byte>{std::byte{7}})),
                      Catch::Contains("an optional's presence byte is 7"));
    CHECK_THROWS_WITH((decode<serialize::binary, std::variant<int, char>>(cat({raw(std::uint32_t{2}), raw(1)}))),
                      Catch::Contains("variant index 2 of a variant with 2 alternatives"));
    CHECK_THROWS_WITH((decode<serialize::binary, empty_struct>(std::vector<std::byte>{std::byte{1}})),
                      Catch::Contains("marker byte is not 0"));
    CHECK_THROWS_WITH((decode<serialize::binary, int>(cat({raw(1), raw(2)}))),
                      Catch::Contains("4 bytes left over after the value"));
    CHECK_THROWS_WITH((decode<serialize::binary, int>(std::vector<std::byte>{std::byte{1}})),
                      Catch::Contains("truncated message: 4 more bytes needed, 1 left in the frame"));
}

TEST_CASE("every truncation and many mutations of a valid encoding decode or fail cleanly",
          "[serialize][binary][corrupt]") {
    test::person p{"grace", 85, {{1, 2}, {3, 4}, {5, 6}}, 1.5, {{"navy", {1, 2, 3}}, {"cobol", {}}}};
    auto good = encode<serialize::binary>(std::make_tuple(p, test::hana_adapted{1, std::string("x")}));
    using T = std::tuple<test::person, test::hana_adapted>;
    for (std::size_t n = 0; n < good.size(); ++n)
        CHECK_THROWS_AS((decode<serialize::binary, T>(std::span<const std::byte>(good.data(), n))), serialization_error);
    std::mt19937 rng(12345);
    int decoded = 0, rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        auto bad = good;
        for (int k = 0; k < 1 + i % 4; ++k) bad[rng() % bad.size()] = static_cast<std::byte>(rng());
        try {
            (void)decode<serialize::binary, T>(bad);
            ++decoded;
        } catch (const serialization_error&) {
            ++rejected;
        }
    }
    CHECK(decoded + rejected == 20000);
    CHECK(rejected > 0);
}
