/// @file policies/transport.hpp
/// IPC transport policies (Python: the pipe under Queue and Pipe; shm is ours).
#pragma once

#include <multiproc/policies/kinds.hpp>

#include <concepts>
#include <string_view>

namespace multiproc {

namespace transport {
/// Anonymous pipes, as CPython uses. The default.
struct pipe {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "pipe";
};
/// Unix-domain socket pairs (duplex by nature).
struct socketpair {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "socketpair";
};
/// A bounded ring in shared memory; waits spin briefly, then sleep on a futex.
struct shm {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "shm";
};
} // namespace transport

template <>
struct default_policy<kind::transport> {
    using type = transport::pipe;
};

/// What a transport policy provides: its `name`.
template <class P>
concept transport_policy = policy_of_kind<P, kind::transport> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
};

} // namespace multiproc
