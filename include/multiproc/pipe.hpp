/// @file pipe.hpp
/// Pipes and their two connections (Python: multiprocessing.Pipe and
/// multiprocessing.connection.Connection).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence
#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/codec/crossing.hpp>
#include <multiproc/detail/net/resource_sharer.hpp>
#include <multiproc/detail/runtime/child_key.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/queue_core.hpp>
#include <multiproc/detail/transport/ring/ring_link.hpp>
#include <multiproc/detail/transport/stream/stream_link.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/policies/resolve.hpp>
#include <multiproc/serialize.hpp>

#include <cerrno>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {
struct connection_access; // <multiproc/connection.hpp>: makes connections on sockets, reaches their ends

} // namespace detail

/// Two connected ends of a pipe carrying T (Python: multiprocessing.Pipe(duplex)). Duplex
/// (the default): both ends send and receive; otherwise the first only receives and the
/// second only sends. `buffer` sizes the transport's buffer in bytes (0: its default).
template <class T, class... Ps>
[[nodiscard]] std::pair<basic_connection<T, Ps...>, basic_connection<T, Ps...>> pipe(bool duplex = true,
                                                                                      std::size_t buffer = 0);

/// One end of a pipe carrying values of T (Python: multiprocessing.connection.Connection).
/// Copies, and copies in children made by fork, are the same end; as in Python, an end is
/// not meant to be read (or written) by two processes at once. Given to a process as an
/// argument, an end closes its peer end in the child (see docs/design/queues.md); the
/// parent closes the end it handed over itself, as in Python, to see EOF later.
template <class T, class... Ps>
class basic_connection {
public:
    using value_type = T;
    using policies = policy_set<Ps...>;
    using serializer = typename policies::serialize;
    using transport = typename policies::transport;
    static_assert(detail::can_carry<T, serializer>());

    /// Sends `obj`, serialized here: a value that cannot be sent fails before any byte
    /// leaves. Waits while the pipe is full (Python: Connection.send()). An object that
    /// crosses by itself — a connection, queue, lock, shared memory, page_buffer — crosses
    /// with its descriptors, as into a spawned child: the receiver gets the same object
    /// (Python: a Connection sent through a Connection). On a Unix-domain socket
    /// (transport::socketpair, listener/client on a Unix address) they go with the message
    /// (SCM_RIGHTS); over transport::shm through this process's resource sharer, as for a
    /// queue (the receiver takes them from the sender, which must still be running then).
    /// TCP refuses them with value_error; a kernel pipe (transport::pipe) carries
    /// page_buffers (alone, or in a vector or tuple) through the sharer too, and refuses
    /// other objects with value_error.
    void send(const T& obj) {
        auto& e = sender();
        if constexpr (detail::crosses_with_descriptors<T, serializer>) {
            crossing_writer w;
            detail::cross_save<serializer>(w, obj);
            if constexpr (carries_descriptors) {
                if (sends_descriptors(e)) return e.send_crossing(std::as_bytes(std::span<const char>(w.bytes())), w.fds());
                if (!detail::crossing_pages::only(w))
                    detail::raise(value_error(
                        "multiproc: over a kernel pipe (transport::pipe) only page_buffers cross, alone or in a "
                        "container; other objects with descriptors (connections, queues, locks, shared memory) cross "
                        "over Unix-domain sockets (transport::socketpair, listener/client on a Unix address) or "
                        "transport::shm"));
            }
            detail::shared_message m(w); // a ring, or page_buffers on a kernel pipe: through this process's sharer
            if constexpr (carries_descriptors)
                e.send_crossing(m.bytes(), {}); // (the frame kind recv_crossed asks for)
            else
                e.send(m.bytes());
            m.sent();
        } else {
            e.send(detail::encode_pieces<serializer>(obj));
        }
    }

    /// Receives the next value, waiting for it; `eof_error` once nothing is left and every
    /// other holder of the other end has closed it (Python: Connection.recv()). It reads
    /// that message and nothing after it, so an end can be read by one process after
    /// another. Bytes that are not a message (a corrupt or forged frame header) raise
    /// `serialization_error` naming what was wrong, as soon as the bytes that show it are in
    /// (a few bytes of another program are not waited on as the start of a frame), and close
    /// the end for reading: later receives raise the same error instead of reading from the
    /// middle of a frame.
    T recv() {
        if constexpr (detail::crosses_with_descriptors<T, serializer>) {
            std::optional<T> out;
            if (!recv_crossed(out)) raise_eof();
            return std::move(*out);
        } else {
            return detail::decode_from<serializer, T>([&](auto take) {
                if (!receiver().recv(take, any_length)) raise_eof();
            });
        }
    }

    /// As `recv()`, but end of file (and, with exceptions, any other error) comes back in the
    /// result as `eof_error` instead of being raised: the form for builds without exceptions.
    /// `while (auto r = c.try_recv()) use(*r);`
    result<T> try_recv() {
        return detail::capture([&]() -> result<T> {
            std::optional<T> out;
            bool got;
            if constexpr (detail::crosses_with_descriptors<T, serializer>)
                got = recv_crossed(out);
            else
                got = receiver().recv(detail::decode_into<serializer>(out), any_length);
            if (!got) return eof_error(eof_message);
            return std::move(*out);
        });
    }

    /// Whether data (or end of file) is there to receive, waiting at most `timeout` for
    /// some; `poll()` does not wait, `poll(std::nullopt)` waits as long as it takes (Python:
    /// Connection.poll(timeout)). As in Python it reads nothing: a process that only polls
    /// leaves the message to whichever process receives next.
    bool poll(std::optional<std::chrono::duration<double>> timeout = std::chrono::duration<double>(0)) {
        auto& e = receiver();
        return e.wait(detail::deadline_after(timeout)) != detail::frame_status::timeout;
    }

    /// Sends raw bytes as one message: `size` bytes from `offset` (all the rest by
    /// default) (Python: Connection.send_bytes(buf, offset, size)).
    void send_bytes(std::span<const std::byte> buf, std::size_t offset = 0, std::optional<std::size_t> size = {}) {
        if (offset > buf.size()) detail::raise(value_error("multiproc: send_bytes: offset is larger than the buffer"));
        std::size_t n = size.value_or(buf.size() - offset);
        if (n > buf.size() - offset) detail::raise(value_error("multiproc: send_bytes: offset + size is larger than the buffer"));
        sender().send(buf.subspan(offset, n));
    }

    /// Receives one message as raw bytes. A message longer than `maxlength` is refused from
    /// its header, before any of it is read or stored: `os_error` (EMSGSIZE) naming its
    /// length, as in Python; unlike Python's, the connection stays usable, the refused
    /// message's bytes being skipped unread (Python: Connection.recv_bytes(maxlength)).
    std::vector<std::byte> recv_bytes(std::optional<std::size_t> maxlength = {}) {
        std::vector<std::byte> out;
        auto check = [&](std::uint64_t length) {
            if (maxlength && length > *maxlength)
                detail::raise(os_error("multiproc: bad message length: " + std::to_string(length) +
                                   " bytes, more than maxlength " + std::to_string(*maxlength),
                               EMSGSIZE));
        };
        if (!receiver().recv([&](std::span<const std::byte> bytes) { out.assign(bytes.begin(), bytes.end()); }, check))
            raise_eof();
        return out;
    }

    /// Receives one message into `buf` from `offset` and returns its length; if it does not
    /// fit, throws `buffer_too_short` holding the whole message (Python:
    /// Connection.recv_bytes_into(buffer, offset)).
    std::size_t recv_bytes_into(std::span<std::byte> buf, std::size_t offset = 0) {
        if (offset > buf.size()) detail::raise(value_error("multiproc: recv_bytes_into: offset is larger than the buffer"));
        std::size_t n = 0;
        const std::span<std::byte> dest = buf.subspan(offset);
        bool got = receiver().recv(
            [&](std::span<const std::byte> bytes) {
                if (bytes.size() > dest.size()) detail::raise(buffer_too_short(std::vector<std::byte>(bytes.begin(), bytes.end())));
                // (A large message is already there: read or gathered straight into `dest`.)
                if (!bytes.empty() && bytes.data() != dest.data()) std::memcpy(dest.data(), bytes.data(), bytes.size());
                n = bytes.size();
            },
            any_length, dest);
        if (!got) raise_eof();
        return n;
    }

    /// Closes this process's end, in every copy of it here (Python: Connection.close()).
    /// The other end sees end of file once every process that held this one has closed it.
    /// As for a queue, do not close an end while another thread of this process sends or
    /// receives on it.
    void close() noexcept {
        if (s_) s_->close();
    }
    /// Whether the end is closed (Python: Connection.closed).
    [[nodiscard]] bool closed() const noexcept { return !s_ || !s_->open; }
    /// Whether this end can receive (Python: Connection.readable).
    [[nodiscard]] bool readable() const noexcept { return !closed() && s_->end.can_recv(); }
    /// Whether this end can send (Python: Connection.writable).
    [[nodiscard]] bool writable() const noexcept { return !closed() && s_->end.can_send(); }

    /// The descriptor to wait on with poll/select: readable when a message or end of file is
    /// there (Python: Connection.fileno()). It is non-blocking; transport::shm has none and
    /// throws `value_error`.
    [[nodiscard]] int fileno() const { return open_end().fileno(); }

    /// Whether `a` and `b` are the same end (copies of one another), so that Python's
    /// `readers.remove(r)` after wait() is `std::erase(readers, r)`; a closed end still equals
    /// its copies.
    friend bool operator==(const basic_connection& a, const basic_connection& b) noexcept { return a.s_ == b.s_; }

    /// For process start: this end is an argument of the child being started.
    void claim_in_child(detail::child_key) noexcept {
        if (s_) s_->claimed = true;
    }
    /// For process start: in the child, closes the peer of this end, unless the peer is an
    /// argument too, so that the child holds only what it was given.
    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this end (its descriptors travel with SCM_RIGHTS) and nothing of its peer;
    /// `os_error` EBADF if this end is closed.
    void cross_out(crossing_writer& w) const { open_end().cross_out(w); }
    /// In the child: the end cross_out sent.
    static basic_connection cross_in(crossing_reader& r) {
        return basic_connection(std::make_shared<state>(end_t::cross_in(r)));
    }

    void adopt_in_child(detail::child_key) noexcept {
        if (!s_) return;
        if (auto p = s_->peer.lock(); p && !p->claimed) p->close();
    }

private:
    using end_t = typename transport::connection_end;

    struct state {
        end_t end;
        bool open = true;
        bool claimed = false;
        std::weak_ptr<state> peer;
        explicit state(end_t e) : end(std::move(e)) {}
        void close() noexcept {
            end.close();
            open = false;
        }
    };

    explicit basic_connection(std::shared_ptr<state> s) : s_(std::move(s)) {}

    /// Whether the end can carry descriptors with a message (a stream transport's).
    static constexpr bool carries_descriptors = requires { end_t::crossing_frame; };

    /// Receives an object that crossed by itself into `out`; false at end of file.
    bool recv_crossed(std::optional<T>& out) {
        auto& e = receiver();
        std::string bytes;
        auto keep = [&](std::span<const std::byte> b) { bytes.assign(reinterpret_cast<const char*>(b.data()), b.size()); };
        if constexpr (carries_descriptors) {
            if (!e.recv(keep, any_length, {}, end_t::crossing_frame)) return false;
            if (sends_descriptors(e)) {
                crossing_reader r(std::move(bytes), e.take_passed());
                out.emplace(detail::cross_load<serializer, T>(r));
                return true;
            }
        } else {
            if (!e.recv(keep, any_length)) return false;
        }
        crossing_reader r = detail::claim_message(bytes); // from the sender's sharer
        out.emplace(detail::cross_load<serializer, T>(r));
        return true;
    }

    /// Whether objects with descriptors cross with the message (SCM_RIGHTS on a Unix
    /// socket; a TCP connection refuses them there), not through the sender's resource
    /// sharer, which a ring always uses, and a kernel pipe for page_buffers (send refuses
    /// other objects on a pipe before any byte is written). Asked only of stream ends; both
    /// ends of a connection are of one kind, so sender and receiver agree.
    static bool sends_descriptors(end_t& e) { return !e.on_pipe(); }

    /// The length check of a receive that takes a message of any length.
    static constexpr auto any_length = [](std::uint64_t) noexcept {};

    static constexpr const char* eof_message =
        "multiproc: end of file: every other holder of the connection has closed it";
    [[noreturn]] static void raise_eof() { detail::raise(eof_error(eof_message)); }

    // A closed end, and a direction the end does not have, are os_error EBADF, as CPython's
    // Connection raises OSError for them (its queues raise ValueError when closed, and so do
    // ours).
    end_t& open_end() const {
        if (closed()) detail::raise(os_error("multiproc: handle is closed", EBADF));
        return s_->end;
    }
    end_t& receiver() const {
        auto& e = open_end();
        if (!e.can_recv()) detail::raise(os_error("multiproc: connection is write-only", EBADF));
        return e;
    }
    end_t& sender() const {
        auto& e = open_end();
        if (!e.can_send()) detail::raise(os_error("multiproc: connection is read-only", EBADF));
        return e;
    }

    std::shared_ptr<state> s_;

    template <class U, class... Qs>
    friend std::pair<basic_connection<U, Qs...>, basic_connection<U, Qs...>> pipe(bool, std::size_t);
    friend struct detail::connection_access;
};

template <class T, class... Ps>
std::pair<basic_connection<T, Ps...>, basic_connection<T, Ps...>> pipe(bool duplex, std::size_t buffer) {
    using conn = basic_connection<T, Ps...>;
    using state = typename conn::state;
    auto ends = conn::end_t::open_pair(duplex, buffer);
    auto a = std::make_shared<state>(std::move(ends[0]));
    auto b = std::make_shared<state>(std::move(ends[1]));
    a->peer = b;
    b->peer = a;
    return {conn(std::move(a)), conn(std::move(b))};
}

MULTIPROC_ABI_END } // namespace multiproc
