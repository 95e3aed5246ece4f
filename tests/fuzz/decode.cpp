// libFuzzer target for the decoder of serialize::binary (frames.cpp fuzzes the framing
// under it): no input may crash, hang, leak or allocate more than its frame justifies; bad
// bytes are a serialization_error. A frame that a canonical type accepts must re-encode to
// the same bytes. Built and run by run.sh with clang's -fsanitize=fuzzer,address,undefined;
// it includes every public header, so it also proves that clang compiles them.
#include "types.hpp"

#include <multiproc/multiproc.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

namespace {

using multiproc::serialize::binary;

template <class T>
void decode_one(std::span<const std::byte> frame, bool canonical) {
    multiproc::detail::span_reader r(frame);
    T value = binary::decode<T>(r);
    std::vector<std::byte> again;
    multiproc::detail::vector_writer w(again);
    binary::encode(value, w);
    if (again.size() != binary::encoded_size(value)) std::abort();
    if (canonical && (again.size() != frame.size() || std::memcmp(again.data(), frame.data(), frame.size()) != 0))
        std::abort();
}

template <std::size_t... I>
void dispatch(std::size_t which, std::span<const std::byte> frame, std::index_sequence<I...>) {
    ((which == I ? decode_one<typename fuzz::type_at<I>::type>(frame, I < fuzz::canonical_count) : void()), ...);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
    try {
        dispatch(data[0] % fuzz::type_count, frame, std::make_index_sequence<fuzz::type_count>{});
    } catch (const multiproc::serialization_error&) {
    }
    return 0;
}
