// Not part of the API: how a value crosses into a process that does not share the sender's
// memory (a spawn or forkserver child) — as bytes plus file descriptors passed with
// SCM_RIGHTS (Python: pickling with multiprocessing.reduction's fd passing).
//
// A type says how it crosses with two members (the public customization point of
// <multiproc/crossing.hpp>; queues, pipes, locks and shared memory implement it too):
//
//     void cross_out(multiproc::crossing_writer& w) const;  // bytes and descriptors
//     static T cross_in(multiproc::crossing_reader& r);      // rebuilt from them
//
// Everything else is data, encoded by the serialization policy (serialize::binary by
// default). Pointers (and views holding them) mean nothing in another program and are
// refused at compile time.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/detail/codec/crossing_io.hpp>
#include <multiproc/detail/os/fd_passing.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/serialize.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A std::vector of objects that cross themselves.
template <class T>
inline constexpr bool crossing_vector = false;
template <class E>
inline constexpr bool crossing_vector<std::vector<E>> = crosses_itself<E>;

template <class S, class T>
constexpr bool crossable();

/// The element types of a std::tuple or std::pair, as a std::tuple (void for other types).
template <class T>
struct tuple_elements {
    using type = void;
};
template <class... Es>
struct tuple_elements<std::tuple<Es...>> {
    using type = std::tuple<Es...>;
};
template <class A, class B>
struct tuple_elements<std::pair<A, B>> {
    using type = std::tuple<A, B>;
};

// Whether a tuple of these element types crosses element by element (see crossing_tuple).
template <class S, class Elements>
inline constexpr bool crossing_elements = false;
template <class S, class... Es>
inline constexpr bool crossing_elements<S, std::tuple<Es...>> =
    (... || (crosses_itself<Es> || crossing_vector<Es> || crossing_elements<S, typename tuple_elements<Es>::type>)) &&
    (... && crossable<S, Es>());

/// A std::tuple or std::pair of which some element crosses itself (or is a vector or tuple
/// of such): it crosses element by element, each as an argument would.
template <class S, class T>
inline constexpr bool crossing_tuple = crossing_elements<S, typename tuple_elements<T>::type>;

// Types that hold an address: their bytes mean nothing in another program, whatever a
// serializer would make of them (even one a user declared them to, as
// serialize::enable_bitwise can).
template <class T>
constexpr bool holds_address = std::is_pointer_v<T> || std::is_member_pointer_v<T> ||
                               std::is_same_v<T, std::nullptr_t> || std::is_same_v<T, std::string_view> ||
                               is_span<T>::value;

/// What can be an argument of a spawn or forkserver process (or a member a process
/// subclass lists in fields()), with S the serialization policy: an object that crosses
/// itself, a std::vector of those, a std::tuple or std::pair holding one, or data S can send.
template <class S, class T>
constexpr bool crossable() {
    if constexpr (crosses_itself<T>)
        return true;
    else if constexpr (crossing_vector<T> || crossing_tuple<S, T>)
        return true;
    else
        return serializer_for<S, T> && !holds_address<T>;
}

/// Writes `v` for a child: itself, or its encoding by S after its length.
template <class S, class T>
void cross_save(crossing_writer& w, const T& v) {
    static_assert(crossable<S, T>());
    if constexpr (crosses_itself<T>) {
        v.cross_out(w);
    } else if constexpr (crossing_vector<T>) {
        w.put<std::uint64_t>(v.size());
        for (const auto& x : v) x.cross_out(w);
    } else if constexpr (crossing_tuple<S, T>) {
        std::apply([&](const auto&... x) { (cross_save<S>(w, x), ...); }, v);
    } else {
        std::vector<std::byte> bytes;
        vector_writer out(bytes);
        S::encode(v, out);
        w.put<std::uint64_t>(bytes.size());
        w.write(bytes.data(), bytes.size());
    }
}

/// Rebuilds a value written by cross_save.
template <class S, class T>
T cross_load(crossing_reader& r) {
    static_assert(crossable<S, T>());
    if constexpr (crosses_itself<T>) {
        return T::cross_in(r);
    } else if constexpr (crossing_vector<T>) {
        auto n = r.get<std::uint64_t>();
        if (n > r.remaining()) detail::raise(serialization_error("multiproc: the data sent to the child is truncated"));
        T v;
        for (std::uint64_t i = 0; i < n; ++i) v.push_back(T::value_type::cross_in(r));
        return v;
    } else if constexpr (crossing_tuple<S, T>) {
        return [&]<class... Es>(std::type_identity<std::tuple<Es...>>) {
            return T{cross_load<S, Es>(r)...}; // braces: elements read in order
        }(std::type_identity<typename tuple_elements<T>::type>{});
    } else {
        const std::string_view bytes = r.get_view(); // the length, checked, then the encoding
        span_reader in({reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()});
        return S::template decode<T>(in);
    }
}

// ---------------------------------------------------------------------------------------
// Framing: one logical message (bytes + descriptors) over a SOCK_SEQPACKET unix socket, in
// as many datagrams as needed. Each datagram: u32 length of its bytes, then the bytes, with
// at most max_fds_per_datagram descriptors attached. The first datagram starts with the
// totals (u64 bytes, u32 descriptors).

inline constexpr std::size_t datagram_bytes = 32 * 1024;
inline constexpr std::size_t max_fds_per_datagram = max_fds_per_message;

/// Sends one datagram with descriptors; -1 with errno on failure. Never raises SIGPIPE.
/// `flags`: more sendmsg flags (MSG_DONTWAIT).
inline int send_datagram(int sock, const void* data, std::size_t n, std::span<const int> fds, int flags = 0) noexcept {
    iovec iov{const_cast<void*>(data), n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    rights_buffer control;
    attach_rights(msg, control, fds);
    return sys::sendmsg(sock, &msg, MSG_NOSIGNAL | flags) < 0 ? -1 : 0;
}

/// Receives one datagram into `buf` and appends its descriptors (close-on-exec) to `fds`.
/// Returns the byte count, 0 at end of stream, -1 with errno on failure; a datagram longer
/// than `cap`, or descriptors cut off, is EMSGSIZE.
inline ssize_t recv_datagram(int sock, void* buf, std::size_t cap, std::vector<sys::unique_fd>& fds) noexcept {
    iovec iov{buf, cap};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    rights_buffer control;
    expect_rights(msg, control);
    ssize_t n = sys::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    take_rights(msg, fds);
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

/// Sends everything `w` holds as one logical message; -1 with errno on failure.
inline int send_message(int sock, const crossing_writer& w) {
    const std::string& b = w.bytes();
    const std::vector<int>& fds = w.fds();
    std::size_t sent = 0, fds_sent = 0;
    std::string dgram;
    bool first = true;
    while (first || sent < b.size() || fds_sent < fds.size()) {
        dgram.clear();
        auto put = [&](const auto& v) { dgram.append(reinterpret_cast<const char*>(&v), sizeof v); };
        std::size_t room = datagram_bytes;
        if (first) {
            put(static_cast<std::uint64_t>(b.size()));
            put(static_cast<std::uint32_t>(fds.size()));
            room -= 12;
        }
        std::size_t take = std::min(room, b.size() - sent);
        put(static_cast<std::uint32_t>(take));
        dgram.append(b, sent, take);
        std::size_t nfds = std::min(max_fds_per_datagram, fds.size() - fds_sent);
        if (send_datagram(sock, dgram.data(), dgram.size(), std::span<const int>(fds.data() + fds_sent, nfds)) < 0)
            return -1;
        sent += take;
        fds_sent += nfds;
        first = false;
    }
    return 0;
}

/// Receives one logical message sent by send_message; nothing at a clean end of stream
/// before anything arrived. Throws os_error or serialization_error, naming `what`.
inline std::optional<crossing_reader> recv_message(int sock, const std::string& what) {
    // Not zeroed: a forkserver child would fault in and clear 32 KiB of fresh heap for a
    // request of a few hundred bytes.
    std::unique_ptr<char[]> buf(new char[datagram_bytes + 16]);
    std::vector<sys::unique_fd> fds;
    std::string bytes;
    std::uint64_t total = 0;
    std::uint32_t total_fds = 0;
    bool first = true;
    while (first || bytes.size() < total || fds.size() < total_fds) {
        ssize_t n = recv_datagram(sock, buf.get(), datagram_bytes + 16, fds);
        if (n < 0) sys::fail("receiving " + what);
        if (n == 0) {
            if (first) return std::nullopt;
            detail::raise(serialization_error("multiproc: " + what + " ended early"));
        }
        const char* p = buf.get();
        std::size_t left = static_cast<std::size_t>(n);
        auto take = [&](auto& v) {
            if (left < sizeof v) detail::raise(serialization_error("multiproc: " + what + ": malformed datagram"));
            std::memcpy(&v, p, sizeof v);
            p += sizeof v;
            left -= sizeof v;
        };
        if (first) {
            take(total);
            take(total_fds);
            if (total > (std::uint64_t(1) << 40)) detail::raise(serialization_error("multiproc: " + what + ": absurd length"));
            bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(total, std::uint64_t(1) << 26)));
        }
        std::uint32_t len = 0;
        take(len);
        if (len != left || bytes.size() + len > total)
            detail::raise(serialization_error("multiproc: " + what + ": malformed datagram"));
        bytes.append(p, len);
        if (fds.size() > total_fds) detail::raise(serialization_error("multiproc: " + what + ": too many descriptors"));
        first = false;
    }
    return crossing_reader(std::move(bytes), std::move(fds));
}

/// Whether T crosses with descriptors: an object that crosses by itself (a connection, a
/// queue, a lock, shared memory), a std::vector of those, or a tuple or pair holding one
/// (the rest of it data for S), as the arguments of a spawned process.
template <class T, class S>
inline constexpr bool crosses_with_descriptors = crosses_itself<T> || crossing_vector<T> || crossing_tuple<S, T>;

/// Whether a connection or a queue can carry T: a type that crosses with descriptors, or
/// data for S.
template <class T, class S>
constexpr bool can_carry() {
    if constexpr (crosses_with_descriptors<T, S>)
        return true;
    else
        return check_serializable<T, S>();
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
