// detail/codec/fields.hpp, the reflection of plain aggregates under serialize::binary and
// serialize::bitwise: member counts (arrays of any size count once), member types, which
// types are not reflectable, and tie_of's references.
#include "support/catch.hpp"

#include <multiproc/detail/codec/fields.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace fields = multiproc::detail::fields;

namespace {

struct empty {};
struct two {
    int a;
    double b;
};
struct c_array {
    int x[3];
    char c;
};
/// 64 MiB in one member: counted as one, without the compiler spreading initializers over it.
struct big_c_array {
    std::uint8_t bytes[std::size_t{64} << 20];
    int tail;
};
struct big_std_array {
    std::array<std::uint8_t, std::size_t{64} << 20> bytes;
};
struct standard_members {
    std::string s;
    std::vector<int> v;
    std::map<int, std::string> m;
    std::optional<double> o;
    std::variant<int, std::string, std::monostate> var;
    std::pair<int, std::string> p;
    std::tuple<int, char> t;
    empty e;
};
struct addresses {
    const char* p;
    std::string_view sv;
    void (*f)();
    int two::*mp;
    const int& cref;
};
struct nested {
    two t;
    c_array arr[2];
    empty e;
};
struct with_reference {
    int& r;
    int n;
};
struct base {
    int q;
};
struct derived : base {
    int z;
};
struct no_default {
    explicit no_default(int) {}
};
struct holds_no_default {
    int a;
    no_default n;
};
union either {
    int i;
    float f;
};
class hidden {
    int x = 0;

public:
    int get() const { return x; }
};
struct sixty_four {
    int a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, c0, c1, c2, c3, c4, c5, c6,
        c7, c8, c9, d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, f0, f1, f2, f3, f4,
        f5, f6, f7, f8, f9, g0, g1, g2, g3;
};
struct bits {
    unsigned a : 3;
    unsigned b : 5;
};

static_assert(fields::count<empty>() == 0);
static_assert(fields::count<two>() == 2);
static_assert(fields::count<c_array>() == 2);
static_assert(fields::count<big_c_array>() == 2);
static_assert(fields::count<big_std_array>() == 1);
static_assert(fields::count<standard_members>() == 8);
static_assert(fields::count<addresses>() == 5);
static_assert(fields::count<nested>() == 3);
static_assert(fields::count<sixty_four>() == 64);
static_assert(fields::count<bits>() == 2);
static_assert(fields::count<const two>() == 2);

static_assert(std::is_same_v<fields::types_of<c_array>, fields::types<int[3], char>>);
static_assert(std::is_same_v<fields::types_of<big_c_array>, fields::types<std::uint8_t[std::size_t{64} << 20], int>>);
static_assert(std::is_same_v<fields::types_of<addresses>,
                             fields::types<const char*, std::string_view, void (*)(), int two::*, const int&>>);
static_assert(std::is_same_v<fields::types_of<nested>, fields::types<two, c_array[2], empty>>);

static_assert(!fields::reflectable<int>);
static_assert(!fields::reflectable<int*>);
static_assert(!fields::reflectable<std::string>);
static_assert(!fields::reflectable<std::array<int, 3>>); // tuple-like: its elements, not its members
static_assert(!fields::reflectable<with_reference>);    // an empty brace pair cannot bind int&
static_assert(!fields::reflectable<derived>);
static_assert(!fields::reflectable<holds_no_default>);
static_assert(!fields::reflectable<either>);
static_assert(!fields::reflectable<hidden>);

} // namespace

TEST_CASE("fold_types hands over the member types in order", "[detail][fields]") {
    auto sizes = fields::fold_types<two>([]<class... Fs>() { return std::array<std::size_t, sizeof...(Fs)>{sizeof(Fs)...}; });
    CHECK(sizes == std::array<std::size_t, 2>{sizeof(int), sizeof(double)});
    CHECK(fields::fold_types<empty>([]<class... Fs>() { return sizeof...(Fs); }) == 0);
}

TEST_CASE("tie_of refers to the members themselves", "[detail][fields]") {
    nested n{};
    auto t = fields::tie_of(n);
    STATIC_REQUIRE(std::is_same_v<decltype(t), std::tuple<two&, c_array (&)[2], empty&>>);
    std::get<0>(t).a = 7;
    std::get<1>(t)[1].x[2] = 9;
    CHECK(n.t.a == 7);
    CHECK(n.arr[1].x[2] == 9);

    const two c{3, 4.5};
    auto ct = fields::tie_of(c);
    STATIC_REQUIRE(std::is_same_v<decltype(ct), std::tuple<const int&, const double&>>);
    CHECK(&std::get<0>(ct) == &c.a);
    CHECK(ct == std::make_tuple(3, 4.5));

    // A round trip: every member read through one tie and written through another.
    two from{11, -0.25}, to{};
    fields::tie_of(to) = fields::tie_of(from);
    CHECK(to.a == 11);
    CHECK(to.b == -0.25);

    std::size_t visited = 0;
    fields::for_each(from, [&](auto& m) { visited += sizeof(m); });
    CHECK(visited == sizeof(int) + sizeof(double));
}
