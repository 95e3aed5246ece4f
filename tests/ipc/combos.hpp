// The transport x serializer combinations every IPC test runs over, and the message types
// they send. A test iterates over `test::combos` with TEMPLATE_LIST_TEST_CASE; a value is
// sent only through combinations whose serializer supports its type.
#pragma once

#include "support/support.hpp"

#include <multiproc/multiproc.hpp>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/define_struct.hpp>

#if defined(MULTIPROC_HAVE_CEREAL)
#include <multiproc/ext/serialize/cereal.hpp>

#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>

namespace test {

// ---- message types ------------------------------------------------------------------

/// What the many-producer tests send: who sent it, its number, and a check of both.
struct tagged {
    std::uint32_t producer;
    std::uint32_t seq;
    std::uint64_t check;
    template <class A>
    void serialize(A& a) {
        a(producer, seq, check);
    }
    friend bool operator==(const tagged&, const tagged&) = default;
};
inline std::uint64_t check_of(std::uint32_t producer, std::uint32_t seq) {
    return (std::uint64_t{producer} << 32 | seq) * 0x9e3779b97f4a7c15ULL;
}
inline tagged make_tagged(std::uint32_t producer, std::uint32_t seq) { return {producer, seq, check_of(producer, seq)}; }

struct point {
    int x;
    int y;
    template <class A>
    void serialize(A& a) {
        a(x, y);
    }
    friend bool operator==(const point&, const point&) = default;
};

struct nothing {
    template <class A>
    void serialize(A&) {}
    friend bool operator==(const nothing&, const nothing&) = default;
};

enum class color : std::uint8_t { red, green, blue };

/// A plain aggregate with padding and nested standard types (detail/codec/fields.hpp).
struct person {
    std::string name;
    int age;
    std::vector<point> places;
    std::optional<double> height;
    std::map<std::string, std::vector<int>> scores;
    template <class A>
    void serialize(A& a) {
        a(name, age, places, height, scores);
    }
    friend bool operator==(const person&, const person&) = default;
};

/// A struct defined through Boost.Hana.
struct hana_defined {
    BOOST_HANA_DEFINE_STRUCT(hana_defined, (std::string, label), (std::vector<double>, values), (color, hue));
    template <class A>
    void serialize(A& a) {
        a(label, values, hue);
    }
    friend bool operator==(const hana_defined&, const hana_defined&) = default;
};

/// A class adapted to Hana from outside (not an aggregate: it has a constructor).
class hana_adapted {
public:
    hana_adapted() = default;
    hana_adapted(int id, std::variant<int, std::string, std::monostate> v) : id(id), payload(std::move(v)) {}
    int id = 0;
    std::variant<int, std::string, std::monostate> payload;
    template <class A>
    void serialize(A& a) {
        a(id, payload);
    }
    friend bool operator==(const hana_adapted&, const hana_adapted&) = default;
};

} // namespace test

BOOST_HANA_ADAPT_STRUCT(test::hana_adapted, id, payload);

namespace test {

/// One value of every supported kind of type (the ones bitwise can send among them).
inline auto sample_values() {
    using namespace std::chrono_literals;
    std::vector<std::map<std::string, std::vector<std::optional<point>>>> nested{
        {{"a", {point{1, 2}, std::nullopt}}, {"b", {}}}, {}};
    return std::make_tuple(
        true, 'x', std::int8_t{-5}, std::uint16_t{65000}, -123456789, std::uint64_t{1} << 63, 3.5f, -2.25,
        color::blue, std::string(), std::string("hello, world"), std::string(5000, 'z'), std::vector<int>{1, 2, 3},
        std::vector<std::string>{"a", "", "ccc"}, std::vector<bool>{true, false, true}, std::array<int, 3>{7, 8, 9},
        std::array<std::string, 2>{"x", "y"}, std::deque<double>{1.5, 2.5}, std::list<std::string>{"l1", "l2"},
        std::map<std::string, int>{{"one", 1}, {"two", 2}},
        std::unordered_map<int, std::string>{{1, "one"}, {2, "two"}}, std::set<int>{3, 1, 2},
        std::multiset<int>{1, 1, 2}, std::unordered_set<std::string>{"p", "q"}, std::pair<int, std::string>{4, "four"},
        std::tuple<int, std::optional<int>, std::string>{42, std::nullopt, "Hello"}, std::optional<std::string>(),
        std::optional<std::string>("present"), std::variant<int, std::string, std::monostate>(std::string("alt")),
        std::variant<int, std::string, std::monostate>(std::monostate{}), std::chrono::milliseconds(1500),
        std::chrono::nanoseconds(-7), std::chrono::system_clock::time_point(123456789us), point{-1, 1},
        make_tagged(3, 4), nothing{}, person{"ada", 36, {{1, 2}, {3, 4}}, 1.65, {{"math", {10, 9}}}},
        hana_defined{"h", {0.5, 1.5}, color::green}, hana_adapted{9, std::string("adapted")}, nested);
}

// ---- combinations -------------------------------------------------------------------

template <class Transport, class Serializer>
struct combo {
    using transport = Transport;
    using serializer = Serializer;
    template <class T>
    using queue = multiproc::basic_queue<T, Transport, Serializer>;
    template <class T>
    using joinable_queue = multiproc::basic_joinable_queue<T, Transport, Serializer>;
    template <class T>
    using simple_queue = multiproc::basic_simple_queue<T, Transport, Serializer>;
    template <class T>
    using connection = multiproc::basic_connection<T, Transport, Serializer>;
    template <class T>
    static auto pipe(bool duplex = true, std::size_t buffer = 0) {
        return multiproc::pipe<T, Transport, Serializer>(duplex, buffer);
    }
    /// Whether this combination's serializer can send a T.
    template <class T>
    static constexpr bool can = multiproc::serializer_for<Serializer, T>;
    static std::string name() { return std::string(Transport::name) + " x " + std::string(Serializer::name); }
};

using multiproc::serialize::binary;
using multiproc::serialize::bitwise;
namespace tr = multiproc::transport;

#if defined(MULTIPROC_HAVE_CEREAL)
using cereal_policy = multiproc::ext::serialize::cereal;
using all_combos = std::tuple<combo<tr::pipe, binary>, combo<tr::pipe, bitwise>, combo<tr::socketpair, binary>,
                              combo<tr::socketpair, bitwise>, combo<tr::shm, binary>, combo<tr::shm, bitwise>,
                              combo<tr::pipe, cereal_policy>, combo<tr::socketpair, cereal_policy>,
                              combo<tr::shm, cereal_policy>>;
#else
using all_combos = std::tuple<combo<tr::pipe, binary>, combo<tr::pipe, bitwise>, combo<tr::socketpair, binary>,
                              combo<tr::socketpair, bitwise>, combo<tr::shm, binary>, combo<tr::shm, bitwise>>;
#endif
using all_transports = std::tuple<combo<tr::pipe, binary>, combo<tr::socketpair, binary>, combo<tr::shm, binary>>;

// A test file too heavy to build in one program per start method (over 2.5 GiB of compiler
// memory under ASan, issue 16) is built as one program per start method and transport
// (multiproc_test_per_start in tests/CMakeLists.txt): MULTIPROC_TEST_PART names the
// program's transport (pipe, socketpair or shm), and `combos` and `transports` hold that
// transport's combinations alone, so that each combination runs in exactly one program per
// start method. A case over neither list is built into the first part (pipe) only:
// `#if MULTIPROC_TEST_PART_ONCE` around it.
namespace part {
using pipe = tr::pipe;
using socketpair = tr::socketpair;
using shm = tr::shm;
/// Whether the combination belongs to this program's part.
template <class C>
#if defined(MULTIPROC_TEST_PART)
constexpr bool holds = std::is_same_v<typename C::transport, MULTIPROC_TEST_PART>;
#else
constexpr bool holds = true;
#endif
template <class... Cs>
auto only(std::tuple<Cs...>) -> decltype(std::tuple_cat(std::conditional_t<holds<Cs>, std::tuple<Cs>, std::tuple<>>{}...));
} // namespace part
#if !defined(MULTIPROC_TEST_PART) || defined(MULTIPROC_TEST_PART_FIRST)
#define MULTIPROC_TEST_PART_ONCE 1
#else
#define MULTIPROC_TEST_PART_ONCE 0
#endif

/// Every transport x serializer combination (of this program's part).
using combos = decltype(part::only(all_combos{}));
/// Only the transports (the serializer matters little to what a test checks).
using transports = decltype(part::only(all_transports{}));

/// Calls f(value) for every sample value the combination can send.
template <class C, class F>
void for_each_sample(F&& f) {
    std::apply([&](const auto&... v) { (..., [&](const auto& x) {
        if constexpr (C::template can<std::decay_t<decltype(x)>>) f(x);
    }(v)); }, sample_values());
}

/// The type of the sample value at index I of sample_values().
template <std::size_t I>
using sample_t = std::tuple_element_t<I, decltype(sample_values())>;

/// Calls `f.template operator()<I...>()` with the indices in sample_values() of every sample
/// the combination can send, in order: a child of any start method, given the indices, builds
/// its own copies of the values with `sample<I>()` (nothing captured, nothing inherited).
template <class C, class F>
void with_sendable_samples(F&& f) {
    constexpr std::size_t n = std::tuple_size_v<decltype(sample_values())>;
    constexpr auto picked = []<std::size_t... I>(std::index_sequence<I...>) {
        std::array<std::size_t, n> at{};
        std::size_t k = 0;
        (..., (C::template can<sample_t<I>> ? void(at[k++] = I) : void()));
        return std::pair{at, k};
    }(std::make_index_sequence<n>{});
    [&]<std::size_t... K>(std::index_sequence<K...>) {
        f.template operator()<picked.first[K]...>();
    }(std::make_index_sequence<picked.second>{});
}

/// Calls `f.template operator()<J, I>()` for each sample index I of the pack, in order, J
/// being its position in the pack (its element in a std::tuple built over the pack).
template <std::size_t... I, class F>
void for_each_sample_at(F&& f) {
    [&]<std::size_t... J>(std::index_sequence<J...>) {
        (..., f.template operator()<J, I>());
    }(std::make_index_sequence<sizeof...(I)>{});
}

/// The sample value at index I of sample_values().
template <std::size_t I>
auto sample() {
    return std::get<I>(sample_values());
}

/// Zeroed memory shared with the children forked after it is made (counters the children
/// update with std::atomic_ref, so that the test can check what each one received).
template <class T>
class shared_array {
public:
    explicit shared_array(std::size_t n) : n_(n) {
        void* p = ::mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
        p_ = static_cast<T*>(p);
    }
    shared_array(const shared_array&) = delete;
    shared_array& operator=(const shared_array&) = delete;
    ~shared_array() { ::munmap(p_, n_ * sizeof(T)); }
    std::atomic_ref<T> operator[](std::size_t i) const { return std::atomic_ref<T>(p_[i]); }
    [[nodiscard]] std::size_t size() const { return n_; }

private:
    T* p_;
    std::size_t n_;
};

/// Runs `f()` on a thread with a stack of `bytes` and waits for it: a function that
/// returns a very large value (a 64 MiB trivially copyable struct) needs room for it.
template <class F>
void run_with_stack(std::size_t bytes, F f) {
    pthread_attr_t attr;
    ::pthread_attr_init(&attr);
    ::pthread_attr_setstacksize(&attr, bytes);
    pthread_t t;
    auto trampoline = [](void* p) -> void* {
        (*static_cast<F*>(p))();
        return nullptr;
    };
    REQUIRE(::pthread_create(&t, &attr, trampoline, &f) == 0);
    ::pthread_attr_destroy(&attr);
    ::pthread_join(t, nullptr);
}

/// Descriptors and children before and after a test: nothing may leak.
struct leak_check {
    std::map<int, std::string> fds = open_fds();
    ~leak_check() noexcept(false) {
        CHECK(describe_fds(open_fds()) == describe_fds(fds));
        CHECK(children_of(::getpid()).empty());
    }
};

} // namespace test
