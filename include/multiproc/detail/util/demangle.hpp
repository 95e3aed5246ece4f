// Not part of the API: type names for messages (exception reports, default process names).
// With RTTI they come from typeid and the C++ ABI's demangler; without it (-fno-rtti), from
// the compiler's own spelling of the type in a function signature, which names every type
// a template sees, but not the dynamic type behind a reference to a base.
#pragma once

#include <multiproc/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#if MULTIPROC_RTTI
#include <typeinfo>
#endif

#include <cxxabi.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// `multiproc::v0_1::value_error` -> `multiproc::value_error`: the library's names as a
/// program spells them, without the inline namespace (config.hpp) the compiler shows.
inline std::string without_abi_namespace(std::string s) {
    constexpr std::string_view library = "multiproc::";
    constexpr std::string_view spelled = "multiproc::" MULTIPROC_ABI_NAMESPACE_STRING "::";
    for (auto at = s.find(spelled); at != std::string::npos; at = s.find(spelled, at))
        s.erase(at + library.size(), spelled.size() - library.size()); // keeps "multiproc::"
    return s;
}

inline std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return without_abi_namespace(status == 0 && p ? std::string(p.get()) : std::string(mangled));
}

/// T's name as the compiler spells it in a signature ("std::vector<int>"), without RTTI.
template <class T>
constexpr std::string_view signature_name() noexcept {
    std::string_view s = __PRETTY_FUNCTION__;
    // GCC: "... signature_name() [with T = X; std::string_view = ...]"; Clang: "... [T = X]".
    auto start = s.find("T = ");
    if (start == std::string_view::npos) return s;
    start += 4;
    auto end = s.find_first_of(";]", start);
    return s.substr(start, end - start);
}

/// T's readable name: from typeid where there is RTTI, else from the compiler's signature.
template <class T>
std::string type_name() {
#if MULTIPROC_RTTI
    return demangle(typeid(T).name());
#else
    return without_abi_namespace(std::string(signature_name<T>()));
#endif
}

template <class T>
struct type_key_storage {
    static constexpr std::string_view name = signature_name<T>();
    static constexpr auto text = [] {
        std::array<char, name.size() + 1> a{};
        for (std::size_t i = 0; i < name.size(); ++i) a[i] = name[i];
        return a;
    }();
};

/// A name for T that is the same in every run of the same executable: the registries of
/// targets and pool functions key on it. With RTTI, the mangled name (unique per type);
/// without, the compiler's spelling, which two local types (say, two lambdas of one
/// function) can share: the registries then refuse the ambiguous name, never mix them up.
template <class T>
const char* type_key() noexcept {
#if MULTIPROC_RTTI
    return typeid(T).name();
#else
    return type_key_storage<T>::text.data();
#endif
}

/// A hash of a type key, equal in every run of the same executable.
inline std::uint64_t key_hash(std::string_view key) noexcept { return std::hash<std::string_view>{}(key); }

/// `ns::worker<int>` -> `worker`: the name a class gives its instances in Python.
inline std::string unqualified_name(std::string s) {
    if (auto lt = s.find('<'); lt != std::string::npos) s.erase(lt);
    if (auto c = s.rfind("::"); c != std::string::npos) s.erase(0, c + 2);
    return s;
}

#if MULTIPROC_EXCEPTIONS
/// The exception being handled, as {dynamic type name, what()}; what() is empty for a
/// type not derived from std::exception. Call only inside a catch block. The C++ ABI
/// names the dynamic type even without RTTI.
inline std::pair<std::string, std::string> describe_current_exception() {
    const std::type_info* t = abi::__cxa_current_exception_type();
    std::string type = t ? demangle(t->name()) : std::string("unknown exception");
    MULTIPROC_TRY {
        MULTIPROC_RETHROW;
    } MULTIPROC_CATCH(const std::exception&, e) {
        return {type, e.what()};
    } MULTIPROC_CATCH_ALL {
        return {type, std::string()};
    }
}
#else
/// Without exceptions nothing is ever being handled: only dead catch blocks call this.
inline std::pair<std::string, std::string> describe_current_exception() { return {"unknown exception", {}}; }
#endif

} MULTIPROC_ABI_END } // namespace multiproc::detail
