/// @file policies/start.hpp
/// Start-method policies (Python: multiprocessing.get_context('fork' | 'spawn' | 'forkserver')).
#pragma once

#include <multiproc/detail/sys.hpp>
#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <string_view>

namespace multiproc {

namespace start {
/// The child is a copy of the caller made by fork(): it inherits memory, so any callable,
/// capturing lambdas included, can be a target. The default, as in CPython on Linux.
struct fork {
    using policy_kind = kind::start;
    static constexpr std::string_view name = "fork";
    static constexpr bool inherits_memory = true;

    /// Creates the child: in it, `child.run_in_child()` runs and never returns; in the
    /// caller, returns the child's pid, or -1 with errno set.
    template <class Child>
    static pid_t launch(Child& child) noexcept {
        pid_t pid = detail::sys::fork();
        if (pid == 0) child.run_in_child();
        return pid;
    }
};
} // namespace start

template <>
struct default_policy<kind::start> {
    using type = start::fork;
};

/// What a start-method policy provides: its `name` as in Python and whether the child
/// `inherits_memory` of its creator (only then may a target carry state of its own).
template <class P>
concept start_policy = policy_of_kind<P, kind::start> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
    { P::inherits_memory } -> std::convertible_to<bool>;
};

} // namespace multiproc
