// Not part of the API: "{}" formatting for log messages (GCC 12 has no <format>).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <concepts>
#include <optional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <type_traits>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// Whether T is a complete type where this is instantiated.
template <class T>
concept is_complete = requires { sizeof(T); };

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// std::ostringstream, named through T so that this header needs only <iosfwd>: a value
/// printed with its operator<< needs <sstream> where it is formatted, and says so.
template <class T>
struct string_stream_for {
    using type = std::ostringstream;
};

template <class T>
void format_arg(std::string& out, const T& v) {
    if constexpr (is_optional<T>::value) {
        if (v)
            format_arg(out, *v);
        else
            out += "None"; // as Python prints an absent exitcode
    } else if constexpr (std::is_same_v<T, bool>) {
        out += v ? "true" : "false";
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        out += std::string_view(v);
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, char>) {
        out += std::to_string(v);
    } else {
        static_assert(is_complete<typename string_stream_for<T>::type>,
                      "multiproc: a value logged or formatted through its operator<< needs #include <sstream>");
        typename string_stream_for<T>::type os;
        os << v;
        out += os.str();
    }
}

/// Replaces each "{}" of `fmt` with the next argument ("{{" and "}}" are braces);
/// arguments left over are appended, separated by spaces.
template <class... Args>
std::string format(std::string_view fmt, const Args&... args) {
    std::string out;
    out.reserve(fmt.size() + 16 * sizeof...(Args));
    std::size_t pos = 0;
    [[maybe_unused]] auto one = [&](const auto& a) {
        for (;;) {
            auto i = fmt.find_first_of("{}", pos);
            if (i == std::string_view::npos) { // no placeholder left: append
                out.append(fmt.substr(pos));
                pos = fmt.size();
                if (!out.empty()) out += ' ';
                format_arg(out, a);
                return;
            }
            out.append(fmt.substr(pos, i - pos));
            char c = fmt[i];
            bool doubled = i + 1 < fmt.size() && fmt[i + 1] == c;
            if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
                format_arg(out, a);
                pos = i + 2;
                return;
            }
            out += c;
            pos = i + (doubled ? 2 : 1);
        }
    };
    (one(args), ...);
    // the rest, with escapes undone
    while (pos < fmt.size()) {
        char c = fmt[pos];
        out += c;
        pos += (c == '{' || c == '}') && pos + 1 < fmt.size() && fmt[pos + 1] == c ? 2 : 1;
    }
    return out;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
