/// @file policies/transport.hpp
/// IPC transport policies (Python: the pipe under Queue and Pipe; shm is ours).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/policies/kinds.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <string_view>

#include <limits.h>
#include <sys/types.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {
template <class Stream>
class stream_channel;
template <class Stream>
class stream_link;
class ring_channel;
class ring_link;
} // namespace detail

/// One direction of a kernel byte stream, as a stream transport's `open_stream` returns
/// it. The caller owns both descriptors, which must be non-blocking and close-on-exec.
struct stream_ends {
    int receive = -1;          ///< read from this one
    int send = -1;             ///< write to this one
    std::size_t capacity = 0;  ///< an upper bound on the bytes the stream can hold at once
};

/// What a transport built on kernel byte streams provides: `open_stream(buffer)` (buffer
/// 0: the default size), `send(fd, iov, n, reader_may_be_gone)` (a writev; when the reader
/// may be gone it must report that as EPIPE, never as SIGPIPE), and `atomic_write`, the
/// largest write that is never split nor interleaved with others (PIPE_BUF for pipes).
/// `transport::stream_base` turns one into a transport policy.
///
/// A stream whose read goes on taking bytes written while it copies (a socket, unlike a
/// pipe) must also provide `readable(fd)`, the bytes a read can take now (FIONREAD), and
/// should provide `peek(fd, buf, n)`, a copy of the bytes at the stream's front that leaves
/// them there (MSG_PEEK): a queue's consumer reads exactly what is readable, so that a read
/// never ends inside a chunk, and peeks to find where chunks end if that is more than it
/// has room for.
template <class P>
concept byte_stream = requires(std::size_t n, int fd, const iovec* iov, int k, bool b) {
    { P::open_stream(n) } -> std::same_as<stream_ends>;
    { P::send(fd, iov, k, b) } -> std::same_as<ssize_t>;
    { P::atomic_write } -> std::convertible_to<std::size_t>;
};

/// The transports' operations are declared here and defined with the stream machinery
/// (detail/transport/stream/stream_policies.hpp), which the queue and connection headers
/// include: choosing a transport costs a program no implementation.
namespace transport {

/// Base of a transport on kernel byte streams (CRTP): `Derived` provides what `byte_stream`
/// asks for, plus `name` and `policy_kind`; the base supplies the queue channel and the
/// connection end the library uses. Derived may also provide `open_duplex(buffer)`,
/// returning two descriptors that each read and write (as socketpair does).
template <class Derived>
struct stream_base {
    using queue_channel = detail::stream_channel<Derived>;
    using connection_end = detail::stream_link<Derived>;
};

/// Anonymous pipes, as CPython uses; the default. Buffers are raised to
/// /proc/sys/fs/pipe-max-size (1 MiB) where the kernel allows.
struct pipe : stream_base<pipe> {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "pipe";
    static constexpr std::size_t atomic_write = PIPE_BUF;

    static stream_ends open_stream(std::size_t buffer);
    /// A queue's writer always holds a read end itself, so only a connection's write must
    /// not raise SIGPIPE: one `pwritev2` with RWF_NOSIGNAL where the kernel takes it (Linux
    /// 6.18), else a `writev` with SIGPIPE blocked around it (two more system calls).
    static ssize_t send(int fd, const iovec* iov, int n, bool reader_may_be_gone) noexcept;
};

/// Unix-domain stream socket pairs (duplex by nature: one descriptor per end). Send
/// buffers are raised to net.core.wmem_max where the kernel allows.
struct socketpair : stream_base<socketpair> {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "socketpair";
    static constexpr std::size_t atomic_write = PIPE_BUF;

    static stream_ends open_stream(std::size_t buffer);
    /// Two connected descriptors, each both readable and writable.
    static std::array<int, 2> open_duplex(std::size_t buffer);
    /// Bytes a read can take now (a read from a Unix stream socket would also take what is
    /// written while it copies).
    static std::size_t readable(int fd);
    /// Copies up to `n` bytes from the socket's front without taking them.
    static ssize_t peek(int fd, void* buf, std::size_t n) noexcept;
    static ssize_t send(int fd, const iovec* iov, int n, bool) noexcept;
};

/// A bounded ring in shared memory (a memfd); waits spin briefly, then sleep on a futex.
/// The ring is reserved at `default_capacity` (256 MiB) unless a buffer size is given,
/// but memory is only used as deep as the queue gets; a message larger than the ring
/// streams through it.
struct shm {
    using policy_kind = kind::transport;
    static constexpr std::string_view name = "shm";
    static constexpr std::size_t default_capacity = std::size_t{256} << 20;
    using queue_channel = detail::ring_channel;
    using connection_end = detail::ring_link;
};

} // namespace transport

template <>
struct default_policy<kind::transport> {
    using type = transport::pipe;
};

/// What a transport policy provides: its `name`, a `queue_channel` type (the engine's
/// many-to-many chunk channel) and a `connection_end` type (one end of a pipe). Write one
/// on kernel byte streams by deriving from `transport::stream_base` (see `byte_stream`).
template <class P>
concept transport_policy = policy_of_kind<P, kind::transport> && requires {
    { P::name } -> std::convertible_to<std::string_view>;
    typename P::queue_channel;
    typename P::connection_end;
};

MULTIPROC_ABI_END } // namespace multiproc
