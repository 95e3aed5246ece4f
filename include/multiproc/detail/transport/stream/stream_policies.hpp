// Not part of the API: the operations of the stream transports (transport::pipe and
// transport::socketpair), declared in policies/transport.hpp, which only names them.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/transport/stream/stream.hpp>
#include <multiproc/policies/transport.hpp>

#include <array>
#include <cstddef>

#include <sys/socket.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace transport {

inline stream_ends pipe::open_stream(std::size_t buffer) {
    std::size_t cap = 0;
    auto [r, w] = detail::make_pipe(buffer, cap);
    return {r.release(), w.release(), cap};
}

inline ssize_t pipe::send(int fd, const iovec* iov, int n, bool reader_may_be_gone) noexcept {
    return reader_may_be_gone ? detail::sys::writev_nosigpipe(fd, iov, n) : detail::sys::writev(fd, iov, n);
}

inline stream_ends socketpair::open_stream(std::size_t buffer) {
    std::size_t cap = 0;
    auto [a, b] = detail::make_socketpair(buffer, cap);
    return {a.release(), b.release(), cap};
}

inline std::array<int, 2> socketpair::open_duplex(std::size_t buffer) {
    std::size_t cap = 0;
    auto [a, b] = detail::make_socketpair(buffer, cap);
    return {a.release(), b.release()};
}

inline std::size_t socketpair::readable(int fd) { return detail::socket_readable(fd); }

inline ssize_t socketpair::peek(int fd, void* buf, std::size_t n) noexcept { return detail::socket_peek(fd, buf, n); }

inline ssize_t socketpair::send(int fd, const iovec* iov, int n, bool) noexcept {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = static_cast<std::size_t>(n);
    return detail::sys::sendmsg(fd, &m, 0);
}

} MULTIPROC_ABI_END } // namespace multiproc::transport
