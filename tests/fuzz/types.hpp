// The message types the decoder fuzz target decodes, shared with the seed generator. The
// first byte of an input picks a type (modulo the count); the rest is the frame.
#pragma once

#include <multiproc/serialize.hpp>

#include <boost/hana/define_struct.hpp>

#include <array>
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
#include <variant>
#include <vector>

namespace fuzz {

enum class level : std::uint8_t { low, high };
enum class flag : bool { off, on };

struct point {
    int x;
    int y;
    friend bool operator==(const point&, const point&) = default;
};

struct record {
    std::string name;
    std::uint16_t id;
    std::vector<point> path;
    std::optional<std::variant<std::int64_t, std::string, std::monostate>> extra;
    level lv;
    flag fl;
    friend bool operator==(const record&, const record&) = default;
};

struct hana_record {
    BOOST_HANA_DEFINE_STRUCT(hana_record, (std::vector<bool>, bits), (std::array<std::string, 2>, pair),
                             (std::chrono::milliseconds, age));
    friend bool operator==(const hana_record&, const hana_record&) = default;
};

struct empty {
    friend bool operator==(const empty&, const empty&) = default;
};

// Canonical types: a frame they decode from re-encodes to the very same bytes.
using canonical = std::tuple<std::string, std::vector<int>, std::vector<std::string>, record, hana_record,
                             std::tuple<int, std::optional<std::string>, std::vector<bool>>,
                             std::vector<std::vector<empty>>, std::list<std::deque<std::u32string>>,
                             std::array<point, 3>, std::pair<std::optional<std::tuple<>>, std::variant<char, level>>>;
// Others: maps and sets drop duplicate keys and reorder, floats have many NaNs.
using other = std::tuple<std::map<std::string, std::vector<std::optional<double>>>, std::unordered_map<int, record>,
                         std::set<std::vector<std::uint8_t>>, std::multimap<char, float>,
                         std::chrono::system_clock::time_point>;

inline constexpr std::size_t canonical_count = std::tuple_size_v<canonical>;
inline constexpr std::size_t type_count = canonical_count + std::tuple_size_v<other>;

template <std::size_t I>
using type_at = std::conditional_t<(I < canonical_count), std::tuple_element<I, canonical>,
                                   std::tuple_element<I - (I < canonical_count ? 0 : canonical_count), other>>;

} // namespace fuzz
