/// @file spawn.hpp
/// What a program needs for the start methods that run a fresh copy of it, start::spawn and
/// start::forkserver (Python: multiprocessing.freeze_support(), and the rule that a target
/// must be importable by name in the child).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/start/bootstrap.hpp>
#include <multiproc/detail/start/forkserver.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {

// A fresh copy of the program started by spawn_self() finds in the environment what it is
// for, and becomes it instead of running main(). It never runs main(): if the parent that
// set the variable is no longer its parent, that parent has died, and it leaves.
inline void enter_bootstrap_if_asked() {
    const char* v = std::getenv(bootstrap_variable);
    if (!v) return;
    std::string marker = v;
    ::unsetenv(bootstrap_variable); // our own children must not take it for theirs
    int a = -1, b = -1, parent = -1, bound = 0;
    if (std::sscanf(marker.c_str(), "spawn:%d:%d", &a, &parent) == 2 && parent == ::getppid())
        run_bootstrap(a, /*os_parent=*/true);
    if (std::sscanf(marker.c_str(), "forkserver:%d:%d:%d:%d", &a, &b, &parent, &bound) == 4 && parent == ::getppid()) {
        if (bound == 1) ::unsetenv("LD_BIND_NOW"); // set for the server alone (forkserver.hpp start_server)
        forkserver::serve(a, b, parent);
    }
    std::string msg = "multiproc: this program was started as a child (" + std::string(bootstrap_variable) + "=" +
                      marker + "), but the process that started it is gone; exiting without running main()\n";
    (void)sys::write_all(2, msg.data(), msg.size());
    ::_exit(1);
}

} // namespace detail

/// Makes this program able to run as a spawn or forkserver child (Python:
/// multiprocessing.freeze_support()). Write `multiproc::freeze_support();` as the first
/// statement of main(): in a child it runs the target and never returns; anywhere else,
/// and under start::fork, it returns at once and does nothing.
template <class Tag = void>
void freeze_support() {
    // Only a program that calls this instantiates the marker, whose initializer records,
    // before main() runs, that the program may start spawn and forkserver children.
    static_cast<void>(&detail::freeze_support_marker<Tag>);
    detail::enter_bootstrap_if_asked();
    if (detail::freeze_support_hook) detail::freeze_support_hook();
}

/// A function named at compile time, as a stateless callable: `multiproc::fn<&work>`.
/// Under start::spawn and start::forkserver this is how a plain function becomes a target,
/// since the child can know it by its type, where a pointer's value would mean nothing.
template <auto F>
struct fn_t {
    static_assert(std::is_member_function_pointer_v<decltype(F)> ||
                      (std::is_pointer_v<decltype(F)> && std::is_function_v<std::remove_pointer_t<decltype(F)>>),
                  "multiproc: fn<&f> takes the address of a function: multiproc::fn<&work>");

    template <class... Args>
        requires std::is_invocable_v<decltype(F), Args...>
    constexpr decltype(auto) operator()(Args&&... args) const noexcept(std::is_nothrow_invocable_v<decltype(F), Args...>) {
        return std::invoke(F, std::forward<Args>(args)...);
    }
};

/// `multiproc::fn<&work>`: see fn_t.
template <auto F>
inline constexpr fn_t<F> fn{};

MULTIPROC_ABI_END } // namespace multiproc
