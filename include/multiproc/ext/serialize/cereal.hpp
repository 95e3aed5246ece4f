/// @file ext/serialize/cereal.hpp
/// `ext::serialize::cereal`: a serialization policy for types that already have cereal
/// functions (Python: pickle with a class's own __reduce__). Needs cereal 1.3; not part of
/// multiproc/multiproc.hpp.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#if !MULTIPROC_EXCEPTIONS
#error "multiproc: ext::serialize::cereal needs exceptions (cereal reports every error by throwing); in a build without exceptions use serialize::binary or serialize::bitwise"
#endif
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/error.hpp>
#include <multiproc/policies/kinds.hpp>
#include <multiproc/serialize.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/details/traits.hpp>

#include <cstddef>
#include <ios>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace ext::serialize {

/// Types with cereal `serialize` (or `save`/`load`) functions, through cereal's binary
/// archives. cereal's own loaders decide how far they trust a length read from the bytes
/// (a claimed length is allocated before it is read); errors become `serialization_error`.
struct cereal {
    using policy_kind = multiproc::kind::serialize;
    static constexpr std::string_view name = "cereal";

    /// Whether T has cereal functions for the binary archives.
    template <class T>
    static constexpr bool supports = ::cereal::traits::is_output_serializable<T, ::cereal::BinaryOutputArchive>::value &&
                                     ::cereal::traits::is_input_serializable<T, ::cereal::BinaryInputArchive>::value;

    /// Encodes through a std::ostringstream (cereal writes to a std::ostream; multiproc
    /// keeps its own types free of virtual functions, so it does not adapt the writer into
    /// a streambuf), then hands the bytes to the writer: one copy more than binary.
    template <class T, multiproc::byte_writer W>
        requires supports<T>
    static void encode(const T& v, W& w) {
        std::ostringstream os(std::ios::binary);
        try {
            ::cereal::BinaryOutputArchive ar(os);
            ar(v);
        } catch (const ::cereal::Exception& e) {
            throw serialization_error(std::string("multiproc: cereal cannot encode a ") +
                                      multiproc::detail::type_name<T>() + ": " + e.what());
        }
        std::string bytes = std::move(os).str();
        w.write(bytes.data(), bytes.size());
    }

    /// Decodes the whole frame; left-over bytes are an error too.
    template <class T, multiproc::byte_reader R>
        requires supports<T>
    static T decode(R& r) {
        auto fail = [](const std::string& why) {
            return serialization_error("multiproc: cannot decode a " + multiproc::detail::type_name<T>() +
                                       " (ext::serialize::cereal): " + why);
        };
        std::string bytes(r.remaining(), '\0');
        r.read(bytes.data(), bytes.size());
        std::istringstream is(std::move(bytes), std::ios::binary);
        T v{};
        try {
            ::cereal::BinaryInputArchive ar(is);
            ar(v);
        } catch (const ::cereal::Exception& e) {
            throw fail(e.what());
        } catch (const std::length_error& e) {
            throw fail(std::string("a length is too large: ") + e.what());
        } catch (const std::bad_alloc&) {
            throw fail("a length read from the message could not be allocated");
        }
        if (auto left = is.rdbuf()->in_avail(); left > 0)
            throw fail(std::to_string(left) + " bytes left over after the value");
        return v;
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::ext::serialize
