// Not part of the API: type names for messages (exception reports, default process names).
#pragma once

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>

#include <cxxabi.h>

namespace multiproc::detail {

inline std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return status == 0 && p ? std::string(p.get()) : std::string(mangled);
}

/// `ns::worker<int>` -> `worker`: the name a class gives its instances in Python.
inline std::string unqualified_name(std::string s) {
    if (auto lt = s.find('<'); lt != std::string::npos) s.erase(lt);
    if (auto c = s.rfind("::"); c != std::string::npos) s.erase(0, c + 2);
    return s;
}

/// The exception being handled, as {dynamic type name, what()}; what() is empty for a
/// type not derived from std::exception. Call only inside a catch block.
inline std::pair<std::string, std::string> describe_current_exception() {
    try {
        throw;
    } catch (const std::exception& e) {
        return {demangle(typeid(e).name()), e.what()};
    } catch (...) {
        const std::type_info* t = abi::__cxa_current_exception_type();
        return {t ? demangle(t->name()) : std::string("unknown exception"), std::string()};
    }
}

} // namespace multiproc::detail
