// Writes the seed corpora of the fuzz targets. Run by hand after changing types.hpp or
// the record format of frames.cpp:
//   seeds <dir>            the decoder's: one valid frame of each type, and near misses
//   seeds --frames <dir>   the framing layer's: for each layer, well-formed messages, and
//                          headers claiming huge, wrapping or truncated lengths, and garbage
#include "types.hpp"

#include <multiproc/detail/codec/bytes.hpp>

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

/// The records of one frames.cpp input.
struct rec {
    std::vector<std::uint8_t> b;
    rec& u8(std::uint8_t v) {
        b.push_back(v);
        return *this;
    }
    template <class T>
    rec& le(T v) {
        for (std::size_t i = 0; i < sizeof v; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
        return *this;
    }
};

/// Seeds of frames.cpp: layer byte, calls byte, then records (see frames.cpp).
int frame_seeds(const std::string& dir) {
    auto message = [](rec& r, std::uint16_t n) { r.u8(3).le(n); };
    auto filler = [](rec& r, std::uint16_t n) { r.u8(2).le(n); };
    // A header claiming `length`: a stream frame's (right magic) or a data chunk's (index 0).
    auto header = [](rec& r, bool chunk, std::uint64_t length, std::uint32_t chunk_length) {
        r.u8(1);
        if (chunk)
            r.u8(0).u8(1).u8(0).le(chunk_length).le(length);
        else
            r.u8(0).le(length);
    };
    int n = 0;
    for (std::uint8_t layer = 0; layer < 6; ++layer) {
        const bool chunk = layer >= 2;
        auto save_rec = [&](const char* tag, std::uint8_t calls, const rec& r) {
            std::ofstream out(dir + "/" + std::to_string(layer) + "-" + tag, std::ios::binary);
            out.put(static_cast<char>(layer)).put(static_cast<char>(calls));
            out.write(reinterpret_cast<const char*>(r.b.data()), static_cast<std::streamsize>(r.b.size()));
            ++n;
        };
        rec valid;
        message(valid, 10);
        message(valid, 300);
        message(valid, 5000);
        save_rec("valid", 0x00, valid);
        save_rec("valid-bytes", 0x55, valid);
        rec huge;
        header(huge, chunk, std::uint64_t{1} << 30, 100);
        filler(huge, 100);
        message(huge, 20);
        save_rec("huge", 0x5a, huge);
        rec wraps;
        header(wraps, chunk, ~std::uint64_t{0} - 7, 100);
        filler(wraps, 100);
        save_rec("wraps", 0x00, wraps);
        rec cut;
        header(cut, chunk, 1000, 1000);
        filler(cut, 10);
        save_rec("truncated", 0xaa, cut);
        rec junk;
        junk.u8(0).u8(64);
        for (int i = 0; i < 64; ++i) junk.u8('x');
        message(junk, 10);
        save_rec("garbage", 0x00, junk);
    }
    std::printf("%d seeds written to %s\n", n, dir.c_str());
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--frames") return frame_seeds(argv[2]);
    if (argc != 2) {
        std::fprintf(stderr, "usage: seeds <corpus dir> | seeds --frames <corpus dir>\n");
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
