// serialize::bitwise sends plain data only: nested aggregates, arrays, enums and the types
// declared with enable_bitwise round-trip through a pipe under every start method, and
// everything that holds an address (or that bitwise cannot look inside) is refused at
// compile time (the sentences: tests/compile_fail/bitwise_*.cpp).
#include "ipc/combos.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/serialize.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

using namespace multiproc;

namespace bw {

enum class mode : std::uint8_t { idle, busy, done };
enum legacy { l_zero, l_one, l_two }; // no fixed underlying type: still its bytes

struct vec3 {
    double x, y, z;
    friend bool operator==(const vec3&, const vec3&) = default;
};

/// Not an aggregate (private members, a constructor): sent only because it opts in below.
class sealed {
public:
    sealed() = default;
    sealed(int a, double b) : a_(a), b_(b) {}
    friend bool operator==(const sealed&, const sealed&) = default;

private:
    int a_ = 0;
    double b_ = 0;
};

/// Nested aggregates, C and std arrays (of aggregates too), enums, a bool, a duration and
/// an opted-in class: all plain data.
struct reading {
    int id;
    vec3 where;
    vec3 trail[3];
    std::array<std::int16_t, 5> codes;
    char tag[8];
    mode m;
    legacy l;
    bool ok;
    std::chrono::milliseconds age;
    sealed seal;
    friend bool operator==(const reading&, const reading&) = default;
};

struct with_pointer {
    int n;
    const char* label;
};
struct with_nested_pointer {
    double d;
    with_pointer inner[2];
};
struct with_reference {
    int& r;
};
struct with_string_view {
    std::string_view s;
};
struct with_span {
    std::span<const int> s;
};
struct with_function_pointer {
    void (*f)();
};
struct with_member_pointer {
    int vec3::*m;
};
class unopted { // like sealed, without the opt-in
public:
    int get() const { return a_; }

private:
    int a_ = 0;
};
struct holds_unopted {
    unopted u;
};
/// A pointer on purpose, declared: the opt-in lets an aggregate through too.
struct deliberate {
    void* cookie;
};
union number {
    int i;
    float f;
};

reading make_reading() {
    reading r{};
    r.id = 42;
    r.where = {1.5, -2.5, 3.25};
    for (int i = 0; i < 3; ++i) r.trail[i] = {i * 1.0, i * 2.0, i * 3.0};
    r.codes = {-1, 2, -3, 4, -5};
    std::memcpy(r.tag, "sensor7", 8);
    r.m = mode::busy;
    r.l = l_two;
    r.ok = true;
    r.age = std::chrono::milliseconds(1234);
    r.seal = sealed(7, 0.125);
    return r;
}

} // namespace bw

template <>
inline constexpr bool multiproc::serialize::enable_bitwise<bw::sealed> = true; // pure data, private
template <>
inline constexpr bool multiproc::serialize::enable_bitwise<bw::deliberate> = true; // the cookie is a number

TEST_CASE("bitwise accepts plain data and refuses what holds an address", "[serialize][bitwise]") {
    using B = serialize::bitwise;
    STATIC_REQUIRE(serializer_for<B, int>);
    STATIC_REQUIRE(serializer_for<B, double>);
    STATIC_REQUIRE(serializer_for<B, bw::mode>);
    STATIC_REQUIRE(serializer_for<B, bw::legacy>);
    STATIC_REQUIRE(serializer_for<B, bw::vec3>);
    STATIC_REQUIRE(serializer_for<B, bw::reading>);
    STATIC_REQUIRE(serializer_for<B, std::array<bw::vec3, 4>>);
    STATIC_REQUIRE(serializer_for<B, bw::sealed>);
    STATIC_REQUIRE(serializer_for<B, bw::deliberate>);
    STATIC_REQUIRE(serializer_for<B, std::chrono::seconds>);
    STATIC_REQUIRE_FALSE(serializer_for<B, int*>);
    STATIC_REQUIRE_FALSE(serializer_for<B, std::nullptr_t>);
    STATIC_REQUIRE_FALSE(serializer_for<B, std::string_view>);
    STATIC_REQUIRE_FALSE(serializer_for<B, std::array<int*, 2>>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_pointer>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_nested_pointer>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_reference>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_string_view>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_span>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_function_pointer>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::with_member_pointer>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::unopted>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::holds_unopted>);
    STATIC_REQUIRE_FALSE(serializer_for<B, bw::number>);
    STATIC_REQUIRE_FALSE(serializer_for<B, std::string>);
    // The member at fault, as the compile-time sentence names it.
    using fault = detail::bitwise_data::fault<bw::with_nested_pointer>;
    STATIC_REQUIRE(std::is_same_v<fault::holder, bw::with_pointer>);
    STATIC_REQUIRE(fault::index == 1);
    STATIC_REQUIRE(std::is_same_v<fault::type, const char*>);
}

TEST_CASE("nested aggregates, arrays, enums and an opted-in class round-trip through a pipe", "[serialize][bitwise]") {
    test::for_each_start([]<class Ctx>() {
        test::leak_check leaks;
        auto [mine, theirs] = multiproc::pipe<bw::reading, transport::pipe, serialize::bitwise>();
        // The child compares what it got with its own copy of the value, then echoes it.
        test::process_t<Ctx> echo(
            [](basic_connection<bw::reading, transport::pipe, serialize::bitwise> c) {
                bw::reading got = c.recv();
                c.send(got);
                std::_Exit(got == bw::make_reading() ? 0 : 1);
            },
            theirs);
        echo.start();
        theirs.close();
        const bw::reading sent = bw::make_reading();
        mine.send(sent);
        CHECK(mine.recv() == sent);
        echo.join();
        CHECK(echo.exitcode() == 0);
    });
}
