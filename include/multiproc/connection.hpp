/// @file connection.hpp
/// Connections between processes that are not parent and child (Python:
/// multiprocessing.connection): a `basic_listener` accepts them on a Unix-domain socket
/// (a path, or a name in the abstract namespace) or a TCP address, `client` makes them, and
/// each end is the same typed `basic_connection<T, Ps...>` that `pipe<T, Ps...>()` returns.
/// With an authkey, both sides prove they hold it before any message is decoded, with
/// CPython 3.12's HMAC challenge (digest named in the challenge, sha256 by default).
/// `wait` waits on many connections, listeners, queues, process sentinels and descriptors
/// at once;
/// `send_handle`/`recv_handle` pass descriptors over a Unix-domain connection.
///
/// Needs OpenSSL's libcrypto (HMAC, random challenges): link `multiproc::connection` in
/// CMake. Not in <multiproc/multiproc.hpp>, which needs no library beyond Boost and
/// range-v3. The wire format is multiproc's own (frames and serialize policies), not
/// CPython's: a Python process cannot connect to these listeners, nor C++ to Python's.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence

#include <multiproc/detail/net/auth.hpp>
#include <multiproc/detail/os/futex.hpp> // deadline_after
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/chrono.hpp>
#include <multiproc/error.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

/// The kind of an `address` (Python: multiprocessing.connection.address_type's 'AF_UNIX',
/// 'AF_INET', 'AF_INET6').
enum class address_family { af_unix, af_inet, af_inet6 };

/// Where a listener listens and a client connects (Python: the `address` of Listener and
/// Client). A Unix-domain socket: `address("/run/app.sock")`, or, with a leading '\0', a
/// name in Linux's abstract namespace, which leaves no file behind (`address::abstract`).
/// TCP: `address("localhost", 6000)` (a host name or an IPv4/IPv6 literal; port 0 lets a
/// listener pick one, which `listener.address()` then names).
class address {
public:
    /// A Unix-domain socket at `path` ('\0' first: the abstract name after it).
    address(std::string path) : host_(std::move(path)) {} // NOLINT(google-explicit-constructor): as Python's str
    address(const char* path) : host_(path) {}            // NOLINT(google-explicit-constructor)
    /// A TCP address: a host name or an IPv4/IPv6 literal, and a port.
    address(std::string host, std::uint16_t port) : host_(std::move(host)), port_(port), tcp_(true) {}

    /// A Unix-domain socket in the abstract namespace, named `name` (no file).
    static address abstract(std::string_view name) { return address(std::string(1, '\0') + std::string(name)); }

    /// The address `to_string()` wrote: "@name" (abstract), "[v6]:port" or "host:port" with
    /// a numeric port (TCP), anything else a path. For handing an address to a child as text.
    static address parse(std::string_view text) {
        if (!text.empty() && text.front() == '@') return abstract(text.substr(1));
        const auto colon = text.rfind(':');
        if (colon != std::string_view::npos && colon + 1 < text.size() && text.find('/') == std::string_view::npos) {
            const std::string_view port = text.substr(colon + 1);
            if (port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                const unsigned long p = std::stoul(std::string(port));
                std::string_view host = text.substr(0, colon);
                if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
                if (p <= 65535) return address(std::string(host), static_cast<std::uint16_t>(p));
            }
        }
        return address(std::string(text));
    }

    [[nodiscard]] address_family family() const noexcept {
        if (!tcp_) return address_family::af_unix;
        return host_.find(':') != std::string::npos ? address_family::af_inet6 : address_family::af_inet;
    }
    [[nodiscard]] bool is_unix() const noexcept { return !tcp_; }
    /// A Unix-domain address in the abstract namespace.
    [[nodiscard]] bool is_abstract() const noexcept { return !tcp_ && !host_.empty() && host_.front() == '\0'; }
    /// The path of a Unix-domain socket ('\0' first if abstract), or the host of a TCP one.
    [[nodiscard]] const std::string& path() const noexcept { return host_; }
    [[nodiscard]] const std::string& host() const noexcept { return host_; }
    /// The TCP port (0 for a Unix-domain address).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

    /// "/path", "@abstract-name", "127.0.0.1:6000" or "[::1]:6000"; `parse` reads it back.
    [[nodiscard]] std::string to_string() const {
        if (!tcp_) return is_abstract() ? "@" + host_.substr(1) : host_;
        if (host_.find(':') != std::string::npos) return "[" + host_ + "]:" + std::to_string(port_);
        return host_ + ":" + std::to_string(port_);
    }

    friend bool operator==(const address&, const address&) = default;

private:
    std::string host_;
    std::uint16_t port_ = 0;
    bool tcp_ = false;
};

namespace detail {

/// Makes connections on connected sockets and reaches the end of one (pipe.hpp befriends it).
struct connection_access {
    template <class Conn>
    static Conn adopt(sys::unique_fd fd) {
        using state = typename Conn::state;
        return Conn(std::make_shared<state>(Conn::end_t::adopt_socket(std::move(fd))));
    }
    template <class Conn>
    static auto& end(const Conn& c) {
        return c.open_end();
    }
    template <class Conn>
    static constexpr bool on_streams = requires(sys::unique_fd fd) { Conn::end_t::adopt_socket(std::move(fd)); };
};

template <class Conn>
inline constexpr bool socket_connection = connection_access::on_streams<Conn>;

/// The authentication exchange's messages over a connection's end: frames of their own
/// kind, at most auth::max_message bytes.
template <class End>
struct auth_channel {
    End& end;
    void send(std::string_view m) {
        end.send(std::span<const std::byte>(reinterpret_cast<const std::byte*>(m.data()), m.size()), End::auth_frame);
    }
    std::string recv() {
        std::string out;
        const bool got = end.recv(
            [&](std::span<const std::byte> b) { out.assign(auth::text(b)); },
            [](std::uint64_t n) {
                if (n > auth::max_message)
                    auth::fail("the peer sent a message of " + std::to_string(n) + " bytes where at most " +
                               std::to_string(auth::max_message) + " belong");
            },
            {}, End::auth_frame);
        if (!got) raise(eof_error("multiproc: end of file during authentication: the peer closed the connection"));
        return out;
    }
};

/// A sockaddr for `a`, resolved (TCP: every address getaddrinfo finds, in its order).
struct socket_address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_UNIX;
    [[nodiscard]] const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

inline std::vector<socket_address> resolve_address(const address& a, bool passive) {
    std::vector<socket_address> out;
    if (a.is_unix()) {
        const std::string& p = a.path();
        sockaddr_un un{};
        if (p.empty()) raise(value_error("multiproc: an empty Unix-domain socket address"));
        if (p.size() >= sizeof un.sun_path)
            raise(value_error("multiproc: the Unix-domain socket address " + a.to_string() + " is " +
                              std::to_string(p.size()) + " bytes long; at most " +
                              std::to_string(sizeof un.sun_path - 1) + " fit"));
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, p.data(), p.size());
        socket_address s;
        std::memcpy(&s.storage, &un, sizeof un);
        // An abstract name is exactly its bytes; a path ends at its NUL.
        s.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size() + (a.is_abstract() ? 0 : 1));
        out.push_back(s);
        return out;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* found = nullptr;
    const std::string port = std::to_string(a.port());
    const int rc = ::getaddrinfo(a.host().empty() ? nullptr : a.host().c_str(), port.c_str(), &hints, &found);
    if (rc != 0)
        raise(os_error("multiproc: cannot resolve " + a.to_string() + " (" + ::gai_strerror(rc) + ")",
                       rc == EAI_SYSTEM ? errno : EHOSTUNREACH));
    for (addrinfo* i = found; i; i = i->ai_next) {
        if (i->ai_addrlen > sizeof(sockaddr_storage)) continue;
        socket_address s;
        std::memcpy(&s.storage, i->ai_addr, i->ai_addrlen);
        s.length = i->ai_addrlen;
        s.family = i->ai_family;
        out.push_back(s);
    }
    ::freeaddrinfo(found);
    if (out.empty()) raise(os_error("multiproc: " + a.to_string() + " resolves to no stream address", EHOSTUNREACH));
    return out;
}

/// The address a socket is bound to (`peer`: connected to); nothing for an unnamed one.
inline std::optional<address> socket_name(int fd, bool peer) {
    sockaddr_storage st{};
    socklen_t len = sizeof st;
    const int rc = peer ? sys::getpeername(fd, reinterpret_cast<sockaddr*>(&st), &len)
                        : sys::getsockname(fd, reinterpret_cast<sockaddr*>(&st), &len);
    if (rc != 0) return std::nullopt;
    char text[INET6_ADDRSTRLEN] = {};
    if (st.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&st);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        return address(text, ntohs(in->sin_port));
    }
    if (st.ss_family == AF_INET6) {
        const auto* in = reinterpret_cast<const sockaddr_in6*>(&st);
        ::inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof text);
        return address(text, ntohs(in->sin6_port));
    }
    const auto* un = reinterpret_cast<const sockaddr_un*>(&st);
    const std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) return std::nullopt;
    std::string p(un->sun_path, n);
    if (p.front() != '\0') p.resize(::strnlen(p.c_str(), n));
    return address(std::move(p));
}

/// A new stream socket of `family`: close-on-exec, blocking.
inline sys::unique_fd stream_socket(int family, const address& a) {
    sys::unique_fd fd(sys::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sys::fail("socket for " + a.to_string());
    return fd;
}

/// A connected socket made non-blocking (connections wait with poll). TCP keeps Nagle's
/// algorithm, as in Python: a frame is written whole with one call, so a request and its
/// reply are never held back, and a stream of small messages goes out in full segments
/// (TCP_NODELAY cut 8-byte messages over loopback from 575 to 173 thousand a second).
inline void ready_connected(int fd) { sys::set_nonblocking(fd, "a connection"); }

/// A name no other listener has: abstract, with the pid and 64 random bits.
inline address arbitrary_address() {
    return address::abstract("multiproc-listener-" + std::to_string(::getpid()) + "-" +
                             sys::random_hex("a listener's address"));
}

} // namespace detail

/// Runs the side of the authentication exchange that challenges: sends a random challenge
/// and checks that the peer's answer proves it holds `authkey`; the peer is told whether
/// it did (Python: multiprocessing.connection.deliver_challenge). authentication_error if
/// not. `digest`: the HMAC digest to ask for (sha256, sha384, sha3_256, sha3_384, md5).
template <class T, class... Ps>
void deliver_challenge(basic_connection<T, Ps...>& conn, std::string_view authkey, std::string_view digest = "sha256") {
    static_assert(detail::socket_connection<basic_connection<T, Ps...>>,
                  "multiproc: the authentication exchange runs on connections of a stream transport "
                  "(transport::pipe or transport::socketpair)");
    if (!detail::auth::digest_named(digest))
        detail::raise(value_error("multiproc: deliver_challenge: unsupported digest " + std::string(digest) +
                                  " (sha256, sha384, sha3_256, sha3_384 or md5)"));
    detail::auth_channel<std::remove_reference_t<decltype(detail::connection_access::end(conn))>> ch{
        detail::connection_access::end(conn)};
    detail::auth::deliver(ch, authkey, digest);
}

/// Runs the side that answers the peer's challenge with `authkey` (Python:
/// multiprocessing.connection.answer_challenge); authentication_error if the peer rejects
/// the answer or sends no challenge.
template <class T, class... Ps>
void answer_challenge(basic_connection<T, Ps...>& conn, std::string_view authkey) {
    static_assert(detail::socket_connection<basic_connection<T, Ps...>>,
                  "multiproc: the authentication exchange runs on connections of a stream transport "
                  "(transport::pipe or transport::socketpair)");
    detail::auth_channel<std::remove_reference_t<decltype(detail::connection_access::end(conn))>> ch{
        detail::connection_access::end(conn)};
    detail::auth::answer(ch, authkey);
}

/// A socket that accepts connections carrying T (Python:
/// multiprocessing.connection.Listener). Bound and listening once constructed; `accept()`
/// returns the next connection, after the authentication exchange if an authkey was given
/// (none: no authentication, as in Python). Move-only; the destructor closes it.
///
/// Without an address it listens on a fresh name in the abstract namespace, which leaves no
/// file behind even if the process is killed, and accepts only processes of the same user
/// (checked with SO_PEERCRED; Python gets the same from a path in a private directory). A
/// path is removed again by `close()`, in the process that bound it.
template <class T, class... Ps>
class basic_listener {
public:
    using connection_type = basic_connection<T, Ps...>;
    static_assert(detail::socket_connection<connection_type>,
                  "multiproc: a listener's connections are sockets: give it a stream transport (transport::pipe, the "
                  "default, or transport::socketpair), not transport::shm");

    /// Binds `where` (nothing: an arbitrary abstract name) and listens with `backlog`
    /// pending connections (Python's default, 1). TCP addresses are bound with SO_REUSEADDR,
    /// as in Python. `authkey`: the secret both sides must hold; nothing: no authentication.
    explicit basic_listener(std::optional<multiproc::address> where = std::nullopt, int backlog = 1,
                            std::optional<std::string> authkey = std::nullopt)
        : authkey_(std::move(authkey)) {
        same_user_ = !where.has_value();
        multiproc::address a = where ? std::move(*where) : detail::arbitrary_address();
        int last = 0;
        for (const auto& s : detail::resolve_address(a, true)) {
            sys_fd fd = detail::stream_socket(s.family, a);
            if (s.family != AF_UNIX) (void)detail::sys::setsockopt_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
            if (detail::sys::bind(fd.get(), s.get(), s.length) != 0 || detail::sys::listen(fd.get(), backlog) != 0) {
                last = errno;
                continue;
            }
            detail::sys::set_nonblocking(fd.get(), "a listener");
            fd_ = std::move(fd);
            break;
        }
        if (!fd_) detail::raise(os_error("multiproc: listener: cannot listen on " + a.to_string(), last));
        owner_ = ::getpid();
        if (auto bound = detail::socket_name(fd_.get(), false); bound && !a.is_unix())
            address_ = std::move(*bound);
        else
            address_ = std::move(a);
    }

    basic_listener(basic_listener&&) noexcept = default;
    basic_listener& operator=(basic_listener&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::move(o.fd_);
            address_ = std::move(o.address_);
            last_ = std::move(o.last_);
            authkey_ = std::move(o.authkey_);
            owner_ = o.owner_;
            same_user_ = o.same_user_;
            o.owner_ = 0;
        }
        return *this;
    }
    ~basic_listener() { close(); }

    /// Waits for the next connection and returns it, after the authentication exchange when
    /// the listener has an authkey (Python: Listener.accept()). A peer that fails it is
    /// disconnected and the call raises authentication_error; the listener stays usable.
    /// os_error ("listener is closed") after close().
    connection_type accept() {
        for (;;) {
            if (!fd_) detail::raise(os_error("multiproc: listener is closed", EBADF));
            pollfd p{fd_.get(), POLLIN, 0};
            if (detail::sys::poll_until(&p, 1, {}, true) < 0) detail::sys::fail("poll on a listener");
            sys_fd fd(detail::sys::accept4(fd_.get(), SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) continue;
                detail::sys::fail("accept on " + address_.to_string());
            }
            if (same_user_ && !from_same_user(fd.get())) continue; // (closed: not ours to serve)
            detail::ready_connected(fd.get());
            last_ = detail::socket_name(fd.get(), true);
            auto conn = detail::connection_access::adopt<connection_type>(std::move(fd));
            if (authkey_) {
                deliver_challenge(conn, *authkey_);
                answer_challenge(conn, *authkey_);
            }
            return conn;
        }
    }

    /// Stops listening; a path socket's file is removed (by the process that bound it).
    /// Idempotent (Python: Listener.close()).
    void close() noexcept {
        if (!fd_) return;
        fd_.reset();
        if (owner_ == ::getpid() && address_.is_unix() && !address_.is_abstract()) (void)::unlink(address_.path().c_str());
    }
    [[nodiscard]] bool closed() const noexcept { return !fd_; }

    /// The address it listens on; for TCP the bound one (port 0 replaced by the port the
    /// system chose) (Python: Listener.address).
    [[nodiscard]] const multiproc::address& address() const noexcept { return address_; }
    /// The peer address of the last accepted connection; nothing before the first and for
    /// an unnamed Unix-domain peer (Python: Listener.last_accepted).
    [[nodiscard]] const std::optional<multiproc::address>& last_accepted() const noexcept { return last_; }
    /// The listening socket, readable when a connection is pending: for `wait` and poll.
    [[nodiscard]] int fileno() const {
        if (!fd_) detail::raise(os_error("multiproc: listener is closed", EBADF));
        return fd_.get();
    }

private:
    using sys_fd = detail::sys::unique_fd;

    static bool from_same_user(int fd) noexcept {
        ucred c{};
        return detail::sys::peer_credentials(fd, &c) == 0 && c.uid == ::getuid();
    }

    sys_fd fd_;
    multiproc::address address_{std::string()};
    std::optional<multiproc::address> last_;
    std::optional<std::string> authkey_;
    pid_t owner_ = 0;
    bool same_user_ = false;
};

/// A listener of connections carrying T, with the default policies.
template <class T>
using listener = basic_listener<T>;

/// Connects to a listener at `where` and returns the connection, after the authentication
/// exchange if `authkey` is given: it must be the listener's (Python:
/// multiprocessing.connection.Client). os_error naming the address if nothing listens
/// there; authentication_error if the keys differ.
template <class T, class... Ps>
[[nodiscard]] basic_connection<T, Ps...> client(const address& where, std::optional<std::string> authkey = std::nullopt) {
    using connection_type = basic_connection<T, Ps...>;
    static_assert(detail::socket_connection<connection_type>,
                  "multiproc: a client's connection is a socket: give it a stream transport (transport::pipe, the "
                  "default, or transport::socketpair), not transport::shm");
    int last = 0;
    for (const auto& s : detail::resolve_address(where, false)) {
        detail::sys::unique_fd fd = detail::stream_socket(s.family, where);
        int rc = detail::sys::connect(fd.get(), s.get(), s.length);
        if (rc != 0 && errno == EINTR) {
            // The connection goes on being made: wait for its outcome.
            pollfd p{fd.get(), POLLOUT, 0};
            int err = 0;
            if (detail::sys::poll_until(&p, 1, {}, true) >= 0 && detail::sys::getsockopt_int(fd.get(), SOL_SOCKET, SO_ERROR, err) == 0) {
                rc = err == 0 ? 0 : -1;
                errno = err;
            }
        }
        if (rc != 0) {
            last = errno;
            continue;
        }
        detail::ready_connected(fd.get());
        auto conn = detail::connection_access::adopt<connection_type>(std::move(fd));
        if (authkey) {
            answer_challenge(conn, *authkey);
            deliver_challenge(conn, *authkey);
        }
        return conn;
    }
    detail::raise(os_error("multiproc: client: cannot connect to " + where.to_string(), last));
}

namespace detail {
/// What `wait` watches for one object: the descriptor it polls, and for a queue the
/// reader whose readiness decides (its descriptor is only a hint).
struct wait_item {
    int fd;
    std::optional<queue_reader> queue;
};

/// The wait_item of `x`: an int is a descriptor; a process gives its sentinel; a queue
/// (or its reader()) its reader; a std::variant what its alternative gives; any other
/// object its fileno() (connections, listeners).
template <class X>
wait_item wait_item_of(const X& x) {
    if constexpr (std::is_same_v<X, queue_reader>)
        return {x.fileno(), x};
    else if constexpr (requires { { x.reader() } -> std::same_as<queue_reader>; })
        return wait_item_of(x.reader());
    else if constexpr (requires { std::variant_size<X>::value; })
        return std::visit([](const auto& a) { return wait_item_of(a); }, x);
    else if constexpr (std::is_convertible_v<const X&, int>)
        return {static_cast<int>(x), std::nullopt};
    else if constexpr (requires { x.sentinel(); })
        return {x.sentinel(), std::nullopt};
    else
        return {x.fileno(), std::nullopt};
}

template <class X>
concept waitable_one = std::is_convertible_v<const X&, int> || requires(const X& x) { x.sentinel(); } ||
                       requires(const X& x) { x.fileno(); } || requires(const X& x) { x.reader(); };

template <class X>
struct waitable_alternatives : std::false_type {};
template <class... A>
struct waitable_alternatives<std::variant<A...>> : std::bool_constant<(waitable_one<A> && ...)> {};

template <class X>
concept waitable = waitable_one<X> || waitable_alternatives<X>::value;

/// Keeps queues watched for the length of one wait (queue_core's readiness protocol).
class queue_watch {
public:
    explicit queue_watch(const std::vector<wait_item>& items) : items_(items) {
        for (const auto& i : items_)
            if (i.queue) queue_reader_access::watch(*i.queue, +1);
    }
    ~queue_watch() {
        for (const auto& i : items_)
            if (i.queue) queue_reader_access::watch(*i.queue, -1);
    }
    queue_watch(const queue_watch&) = delete;
    queue_watch& operator=(const queue_watch&) = delete;

private:
    const std::vector<wait_item>& items_;
};
} // namespace detail

/// Waits until at least one of `objects` is ready, or `timeout` has passed (nothing: no
/// limit), and returns those that are ready, in their order in `objects` (Python:
/// multiprocessing.connection.wait). A connection is ready when a message or end of file
/// can be received; a listener when a connection is pending; a process (or its
/// sentinel()) when it has ended; an int descriptor when it is readable; a queue (or its
/// reader()) when a get would not wait (queue_reader says exactly when). Objects of
/// different kinds go in one range as a std::variant of them. Empty after a timeout.
/// Objects are copied into the result: give connections, queues and descriptors (a
/// process is not copyable: give `p.sentinel()`).
template <std::ranges::input_range R>
    requires detail::waitable<std::ranges::range_value_t<R>>
std::vector<std::ranges::range_value_t<R>> wait(const R& objects,
                                                std::optional<std::chrono::duration<double>> timeout = std::nullopt) {
    std::vector<detail::wait_item> items;
    for (const auto& x : objects) items.push_back(detail::wait_item_of(x));
    std::vector<pollfd> fds;
    for (const auto& i : items) fds.push_back(pollfd{i.fd, POLLIN, 0});
    const auto deadline = detail::deadline_after(timeout); // (a NaN raises before the queues are watched)
    const detail::queue_watch watching(items);
    const auto queue_ready = [&] {
        return std::ranges::any_of(items, [](const detail::wait_item& i) { return i.queue && i.queue->ready(); });
    };
    const bool queues = std::ranges::any_of(items, [](const detail::wait_item& i) { return i.queue.has_value(); });
    std::vector<std::ranges::range_value_t<R>> ready;
    for (bool look_only = queue_ready();;) {
        // A queue found ready makes this only a look at the rest. Queues are looked after
        // every liveness_slice: a producer killed between putting a message and publishing
        // it (or a shutdown killed half-way) leaves no hint, only a state to settle.
        const auto now = detail::steady::now();
        const bool expired = deadline && now >= *deadline;
        auto until = deadline;
        if (queues && (!until || *until > now + detail::liveness_slice)) until = now + detail::liveness_slice;
        const int n = detail::sys::poll_until(fds.data(), fds.size(), look_only || expired ? now : until.value_or(now),
                                              !look_only && !expired && !until.has_value());
        if (n < 0) detail::sys::fail("poll in wait");
        if (n == 0 && !look_only)
            for (const auto& it : items)
                if (it.queue) detail::queue_reader_access::look(*it.queue);
        std::size_t i = 0;
        for (const auto& x : objects) {
            const auto& it = items[i];
            const short revents = fds[i++].revents;
            if (it.queue) {
                if (revents != 0) detail::queue_reader_access::rearm(*it.queue);
                if (it.queue->ready()) ready.push_back(x);
            } else if (revents != 0) {
                ready.push_back(x);
            }
        }
        if (!ready.empty() || expired || (deadline && detail::steady::now() >= *deadline)) return ready;
        look_only = false; // stale hints, or another consumer was first: wait on
    }
}

/// `wait` over a braced list: `wait({a, b}, 1s)`.
template <class X>
    requires detail::waitable<X>
std::vector<X> wait(std::initializer_list<X> objects, std::optional<std::chrono::duration<double>> timeout = std::nullopt) {
    return wait(std::vector<X>(objects), timeout);
}

/// Sends the descriptor `handle` over `conn` (Python: multiprocessing.reduction.send_handle);
/// the receiver gets its own descriptor of the same open file with `recv_handle`. `conn`
/// must be a Unix-domain socket: a connection from listener/client on a Unix address, or
/// of `transport::socketpair` (value_error otherwise). `destination_pid` is accepted for
/// Python's signature and not needed on Linux.
template <class T, class... Ps>
void send_handle(basic_connection<T, Ps...>& conn, int handle, pid_t destination_pid = 0) {
    static_assert(detail::socket_connection<basic_connection<T, Ps...>>,
                  "multiproc: descriptors pass over connections of a stream transport (transport::socketpair, or "
                  "listener/client connections)");
    (void)destination_pid;
    const int one[1] = {handle};
    detail::connection_access::end(conn).send_fds(one);
}

/// Receives a descriptor `send_handle` sent: a new descriptor (close-on-exec) that the
/// caller owns and closes (Python: multiprocessing.reduction.recv_handle). eof_error at end
/// of file; value_error, the message dropped, if the next message is an ordinary one.
template <class T, class... Ps>
[[nodiscard]] int recv_handle(basic_connection<T, Ps...>& conn) {
    static_assert(detail::socket_connection<basic_connection<T, Ps...>>,
                  "multiproc: descriptors pass over connections of a stream transport (transport::socketpair, or "
                  "listener/client connections)");
    auto fds = detail::connection_access::end(conn).recv_fds();
    if (fds.size() != 1)
        detail::raise(value_error("multiproc: recv_handle: " + std::to_string(fds.size()) +
                                  " descriptors came where one was sent"));
    return fds.front().release();
}

MULTIPROC_ABI_END } // namespace multiproc
