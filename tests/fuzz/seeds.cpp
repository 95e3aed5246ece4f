// Writes the seed corpus of the decoder fuzz target: one valid frame of each type, and a
// few near misses. Run by hand after changing types.hpp: seeds <dir>.
#include "types.hpp"

#include <multiproc/detail/bytes.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

int written = 0;

void save(const std::string& dir, std::size_t type, const std::vector<std::byte>& frame, const char* tag) {
    std::ofstream out(dir + "/" + std::to_string(type) + "-" + tag, std::ios::binary);
    char t = static_cast<char>(type);
    out.write(&t, 1);
    out.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
    ++written;
}

template <std::size_t I>
void seed(const std::string& dir, const typename fuzz::type_at<I>::type& value) {
    std::vector<std::byte> frame;
    multiproc::detail::vector_writer w(frame);
    multiproc::serialize::binary::encode(value, w);
    save(dir, I, frame, "valid");
    if (frame.size() > 1) save(dir, I, std::vector<std::byte>(frame.begin(), frame.end() - 1), "truncated");
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: seeds <corpus dir>\n");
        return 2;
    }
    std::string dir = argv[1];
    using namespace fuzz;
    using namespace std::chrono_literals;
    record rec{"rec", 7, {{1, 2}, {3, 4}}, std::variant<std::int64_t, std::string, std::monostate>("x"), level::high,
               flag::on};
    hana_record h;
    h.bits = {true, false, true};
    h.pair = {"a", "bb"};
    h.age = 1500ms;
    seed<0>(dir, "hello");
    seed<1>(dir, {1, 2, 3});
    seed<2>(dir, {"a", "", "ccc"});
    seed<3>(dir, rec);
    seed<4>(dir, h);
    seed<5>(dir, {42, std::nullopt, {true, false}});
    seed<6>(dir, {{empty{}, empty{}}, {}});
    seed<7>(dir, {{U"x", U"yz"}, {}});
    seed<8>(dir, {point{1, 2}, point{3, 4}, point{5, 6}});
    seed<9>(dir, {std::tuple<>{}, level::low});
    seed<10>(dir, {{"k", {1.5, std::nullopt}}});
    seed<11>(dir, {{1, rec}});
    seed<12>(dir, {{1, 2}, {3}});
    seed<13>(dir, {{'a', 1.0f}, {'a', 2.0f}});
    seed<14>(dir, std::chrono::system_clock::time_point(123456us));
    // A count claiming 2^60 elements, for every type that starts with one.
    std::vector<std::byte> huge(8);
    std::uint64_t n = std::uint64_t{1} << 60;
    std::memcpy(huge.data(), &n, 8);
    for (std::size_t t = 0; t < type_count; ++t) save(dir, t, huge, "huge-count");
    std::printf("%d seeds written to %s\n", written, dir.c_str());
}
