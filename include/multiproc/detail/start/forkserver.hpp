// Not part of the API: start::forkserver (Python: multiprocessing.forkserver and
// popen_forkserver).
//
// The server is a fresh copy of the program (spawned, so single-threaded and clean), started
// by the first process that needs it and stopped at that process's normal exit; it also
// exits when that process dies. It listens on an abstract unix socket with a random name and
// talks only to processes of the same user (SO_PEERCRED). A requester keeps one connection
// to it and sends each request there, with the requester's stdin, stdout and stderr, one end
// of a bootstrap socket and one end of a status socket (SCM_RIGHTS). The server forks and
// sends the child's pid with a pidfd of it on the status socket; the child installs the
// first four descriptors as 0-3, closes every other one, and runs the bootstrap of a spawn
// child (bootstrap.hpp). The server writes the child's exit status on the status socket
// once it has reaped it, and if that socket hangs up first the requester has died, so a
// daemon child is killed, as a daemon dies with its parent under fork.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/start/bootstrap.hpp>
#include <multiproc/detail/codec/crossing.hpp>
#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <atomic>
#include <multiproc/detail/util/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::forkserver {

inline constexpr std::uint32_t ask_magic = 0x5153464d;     // "MFSQ": a request
inline constexpr std::uint32_t started_magic = 0x5053464d; // "MFSP": the child's pid; its pidfd attached
inline constexpr std::uint32_t refused_magic = 0x4553464d; // "MFSE": why not, as a sentence

/// What a process knows of the forkserver it uses.
struct client_state {
    std::mutex mu;
    pid_t pid = 0;       // the server's pid; 0 when none is known
    pid_t listener_pid = 0; // who made its socket listen: what SO_PEERCRED reports to a client
    bool owned = false;  // started by this process: then it is our child
    int pidfd = -1;      // owned: tells whether it still runs
    int alive_w = -1;    // owned: closing it tells the server to exit
    bool bound = false;  // owned: started with LD_BIND_NOW=1 added (start_server)
    bool lazy = false;   // a server started so could not load: start the next one without
    int conn = -1;       // the connection requests go on, once made; shared with forked children
    bool conn_inherited = false; // conn was made by the process that forked this one
    dev_t conn_dev = 0;  // what conn is (fstat), to tell it from whatever a forked process
    ino_t conn_ino = 0;  // put at its number after closing it
    sockaddr_un addr{};
    socklen_t addr_len = 0;
};

inline constinit sys::never_destroyed<client_state> client_storage;

/// The forkserver state of this process: constant-initialised, never destroyed.
inline client_state& client() noexcept { return client_storage.value; }

// Called with s.mu held.
inline void drop_connection(client_state& s) noexcept {
    if (s.conn >= 0) sys::close(s.conn);
    s.conn = -1;
}

// A forked child must not keep its parent's server alive: it drops the parent's ownership
// (the address stays known, so it can still ask the server for children). It keeps its
// parent's connection, as it keeps every descriptor its parent had, and sends its requests
// there too: each is one datagram, and the answers come on each request's own socket.
inline void before_fork() noexcept { client().mu.lock(); }
inline void after_fork_in_parent() noexcept { client().mu.unlock(); }
inline void after_fork_in_child() noexcept {
    auto& s = client();
    s.conn_inherited = s.conn >= 0;
    if (s.owned) {
        sys::close(s.alive_w);
        sys::close(s.pidfd);
        s.alive_w = s.pidfd = -1;
        s.owned = false;
    }
    s.mu.unlock();
}

// Called with s.mu held.
inline void forget_server(client_state& s) noexcept {
    drop_connection(s);
    if (s.owned) {
        sys::close(s.alive_w); // the server exits when it sees this
        int status = 0;
        if (sys::waitpid(s.pid, &status, 0) == s.pid && s.bound && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            // The dynamic linker's exit: a symbol the program never calls cannot be bound.
            s.lazy = true;
            log(30, "the forkserver could not load with LD_BIND_NOW=1 (the dynamic linker exited with 127: a "
                    "symbol of the program cannot be bound); starting it again binding lazily");
        }
        sys::close(s.pidfd);
    }
    s.pid = 0;
    s.owned = false;
    s.pidfd = s.alive_w = -1;
}

/// Stops the server this process started, if any: at normal exit, after every child has
/// been joined (their exit statuses come from it).
inline void stop_owned_server() noexcept {
    auto& s = client();
    std::lock_guard lk(s.mu);
    if (s.owned && s.pid) forget_server(s);
}

inline void register_stop_at_exit() {
    static std::atomic<pid_t> done{0};
    pid_t me = ::getpid();
    // Per process: a forked child has its own (empty) list of finalizers.
    if (done.exchange(me) != me) register_finalizer(-100, [](void*) { stop_owned_server(); }, nullptr);
}

/// Registered during static initialisation, before main and any thread: registered later (on
/// first use, as it once was), a child forked while another thread held `mu` to start the
/// server would inherit `mu` locked by a thread it does not have.
inline const int fork_handlers = sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child);

// Called with s.mu held.
inline void start_server(client_state& s) {
    sys::unique_fd listener(sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!listener) sys::fail("socket for the forkserver");
    unsigned char rnd[12];
    if (sys::getrandom_all(rnd, sizeof rnd) < 0) sys::fail("getrandom for the forkserver's address");
    std::string name = "multiproc-forkserver-" + std::to_string(::getpid()) + "-";
    for (unsigned char b : rnd) {
        name += "0123456789abcdef"[b >> 4];
        name += "0123456789abcdef"[b & 15];
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size()); // abstract: sun_path[0] is NUL
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (sys::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), len) < 0)
        sys::fail("bind of the forkserver's socket");
    if (sys::listen(listener.get(), 128) < 0) sys::fail("listen on the forkserver's socket");
    int alive[2];
    if (sys::pipe2(alive, O_CLOEXEC) < 0) sys::fail("pipe for the forkserver");
    sys::unique_fd alive_r(alive[0]), alive_w(alive[1]);
    // dup2 onto 3 and 4 in the server must not overwrite the other one before it is moved.
    listener = above(std::move(listener), 5, "dup for the forkserver");
    alive_r = above(std::move(alive_r), 5, "dup for the forkserver");
    // The server's own stdin, stdout and stderr are /dev/null: each child gets its
    // requester's, and a server holding its starter's would keep a pipe open after its
    // starter, or whatever it redirected them to, has finished with it.
    // The server binds every symbol as it starts (LD_BIND_NOW), so that its children find
    // them bound: each would otherwise bind anew, in the dynamic linker, every libc and
    // libstdc++ function the bootstrap calls (about 15% of a start here). The marker's last
    // field tells the server to take the variable out of the environment its children get.
    // Not if the user set the variable (empty: bind lazily), nor after a server that could
    // not load so (a symbol nothing calls that cannot be bound).
    bool bind_now = !s.lazy && std::getenv("LD_BIND_NOW") == nullptr;
    pid_t pid = spawn_self({listener.get(), alive_r.get()},
                           "forkserver:3:4:" + std::to_string(::getpid()) + (bind_now ? ":1" : ":0"),
                           "spawn of /proc/self/exe for the forkserver", /*null_stdio=*/true,
                           bind_now ? "LD_BIND_NOW=1" : nullptr);
    int pidfd = sys::pidfd_open(pid);
    if (pidfd < 0) {
        int e = errno;
        sys::kill(pid, SIGKILL);
        sys::waitpid(pid, nullptr, 0);
        sys::fail("pidfd_open for the forkserver", e);
    }
    s.pid = pid;
    s.listener_pid = ::getpid();
    s.owned = true;
    s.bound = bind_now;
    s.pidfd = pidfd;
    s.alive_w = alive_w.release();
    s.addr = addr;
    s.addr_len = len;
    log(10, "started the forkserver, pid {}", pid);
}

inline bool owned_server_ended(const client_state& s) noexcept {
    pollfd p{s.pidfd, POLLIN, 0};
    return sys::poll_until(&p, 1, std::chrono::steady_clock::now(), false) == 1;
}

// Called with s.mu held: forgets a server known to have gone (`restart`, or ours ended) and
// starts one if none is known.
inline void ensure_running_locked(client_state& s, bool restart) {
    if (restart || (s.owned && owned_server_ended(s))) forget_server(s);
    if (!s.pid) start_server(s);
}

// Called with s.mu held: a new connection to the server known, checked to be the socket its
// starter made listen (same user, that process's pid: SO_PEERCRED names whoever called
// listen()); none if nothing listens there any more.
inline sys::unique_fd connect_locked(const client_state& s, const std::string& for_what) {
    sys::unique_fd fd(sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) sys::fail("socket to the forkserver for " + for_what);
    if (sys::connect(fd.get(), reinterpret_cast<const sockaddr*>(&s.addr), s.addr_len) != 0) {
        if (errno != ECONNREFUSED && errno != ENOENT) sys::fail("connecting to the forkserver for " + for_what);
        return {};
    }
    ucred cr{};
    if (sys::peer_credentials(fd.get(), &cr) < 0) sys::fail("SO_PEERCRED on the forkserver's socket");
    if (cr.uid != ::geteuid() || cr.pid != s.listener_pid)
        detail::raise(error("multiproc: the forkserver's socket was made by process " + std::to_string(cr.pid) +
                    " of uid " + std::to_string(cr.uid) + ", not by process " + std::to_string(s.listener_pid) +
                    " of uid " + std::to_string(::geteuid()) + " that started the forkserver; refusing "
                    "to use it for " + for_what));
    return fd;
}

// Called with s.mu held: a connection to the server, the server started first if needed
// (`restart`: the one known has gone). A server known here that refuses connections has
// gone (it exits with the process that started it): then this process starts its own.
inline sys::unique_fd connect_or_start_locked(client_state& s, bool restart, const std::string& for_what) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        ensure_running_locked(s, restart || attempt > 0);
        if (auto fd = connect_locked(s, for_what)) return fd;
    }
    detail::raise(error("multiproc: the forkserver could not be reached for " + for_what));
}

// Called with s.mu held: the connection this process sends its requests on, made on first
// use. Not checked here: a request the server hangs up on is sent again (send_request).
inline int connection_locked(client_state& s, const std::string& for_what) {
    if (s.conn >= 0) return s.conn;
    sys::unique_fd fd = connect_or_start_locked(s, false, for_what);
    struct stat st {};
    if (sys::fstat(fd.get(), &st) < 0) sys::fail("fstat of the connection to the forkserver");
    s.conn_dev = st.st_dev;
    s.conn_ino = st.st_ino;
    s.conn_inherited = false;
    s.conn = fd.release();
    return s.conn;
}

/// The pid of the forkserver this process would use, starting it and connecting to it if
/// needed (`restart`: the one known has gone; start another). A server this process started
/// that has ended is replaced, and the connection to it with it.
inline pid_t ensure_running(bool restart = false) {
    register_stop_at_exit(); // outside s.mu: it takes the runtime's lock, which fork holds
    auto& s = client();
    std::lock_guard lk(s.mu);
    ensure_running_locked(s, restart);
    (void)connection_locked(s, "the requests of process " + std::to_string(::getpid()));
    return s.pid;
}

/// A new connection to the forkserver, started if needed; checked as `connect_locked` says.
/// Requests go on the connection `ensure_running` keeps; this one is for tests that speak
/// the protocol themselves.
inline sys::unique_fd connect_to_server(const std::string& for_what) {
    register_stop_at_exit();
    auto& s = client();
    std::lock_guard lk(s.mu);
    return connect_or_start_locked(s, false, for_what);
}

// Called with s.mu held: whether the connection this process inherited from the one that
// forked it is still that connection. A forked process may have closed its descriptors, or
// put something else at that number: that is no longer ours to use, or to close.
inline bool inherited_connection_holds(client_state& s) noexcept {
    struct stat st {};
    return sys::fstat(s.conn, &st) == 0 && st.st_dev == s.conn_dev && st.st_ino == s.conn_ino;
}

/// Sends a request on this process's connection to the server, with `fds` and the far end
/// of a status socket made for it, whose near end goes to `status`: 0, or the errno of a
/// send the server hung up on twice. A connection the server hung up on is dropped and
/// made again once (the server it reaches may be a new one: ours had ended, or the one
/// known refuses connections). The status socket is made, sent and its far end closed under
/// the client's mutex, which every fork() takes: no forked process holds a copy of that
/// end, so it hangs up as soon as the server has gone.
inline int send_request(std::string_view bytes, std::vector<int>& fds, const std::string& who,
                        sys::unique_fd& status) {
    register_stop_at_exit();
    auto& s = client();
    std::lock_guard lk(s.mu);
    int sv[2];
    if (sys::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        sys::fail("socketpair for the status of " + who);
    status.reset(sv[0]);
    sys::unique_fd theirs(sv[1]);
    fds.push_back(theirs.get());
    if (s.conn >= 0 && s.conn_inherited && !inherited_connection_holds(s)) s.conn = -1; // (not closed)
    for (int attempt = 0;; ++attempt) {
        if (send_datagram(connection_locked(s, who), bytes.data(), bytes.size(), fds) == 0) return 0;
        int e = errno;
        if (e != ECONNRESET && e != EPIPE && e != ENOTCONN) sys::fail("sending the forkserver a request for " + who, e);
        drop_connection(s);
        if (attempt > 0) return e;
    }
}

/// Reads the exit status the server reports on `conn` (blocking); 255 if it never comes.
inline int wait_reported(int conn) {
    reported_status msg{};
    pollfd p{conn, POLLIN, 0};
    (void)sys::poll_until(&p, 1, {}, true);
    ssize_t n = sys::read(conn, &msg, sizeof msg);
    return n == static_cast<ssize_t>(sizeof msg) && msg.magic == reported_status::tag ? msg.code : 255;
}

/// Whether the forkserver this process started has ended; its sockets hang up a moment
/// before its pidfd says so, so this waits for that, up to a second.
inline bool owned_server_gone() noexcept {
    auto& s = client();
    std::lock_guard lk(s.mu);
    if (!s.owned) return false;
    pollfd p{s.pidfd, POLLIN, 0};
    return sys::poll_until(&p, 1, std::chrono::steady_clock::now() + std::chrono::seconds(1), false) == 1;
}

/// One request to the server; nothing if it hung up without a word and was the one this
/// process started, now ended. The request's status socket becomes the child's
/// `status_fd`.
inline std::optional<launch_result> request_child_once(const child_record& c, const target_ref& t) {
    check_can_start_fresh("forkserver", t, c.name);
    std::string who = "process " + c.name;
    // The child's request and target, made first: one that cannot be encoded fails the
    // start before any child exists. Sent once the server has answered, not ahead: a child
    // whose start fails after the server forked it (an answer cut short, a server that died
    // before answering, when the request is then sent again) must find nothing to run.
    const crossing_writer q = encode_start(c, t);
    int sv[2];
    if (sys::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) sys::fail("socketpair for " + who);
    sys::unique_fd ours(sv[0]), theirs(sv[1]);
    // The server answers on a socket of this request's own, and writes the exit status
    // there later: the requester's connection carries requests only, from any thread.
    sys::unique_fd status;

    // The child gets our stdin, stdout and stderr, as a forked or spawned child would.
    std::uint8_t stdio = 0;
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) {
        if (sys::fcntl(i, F_GETFD) >= 0) {
            stdio |= static_cast<std::uint8_t>(1U << i);
            fds.push_back(i);
        }
    }
    fds.push_back(theirs.get());
    crossing_writer w;
    w.put(ask_magic);
    w.put<std::uint8_t>(c.daemon);
    w.put(stdio);
    w.put_string(build_id());
    w.put(registry_hash());
    if (int e = send_request(w.bytes(), fds, who, status); e != 0) {
        if (owned_server_gone()) return std::nullopt;
        sys::fail("sending the forkserver a request for " + who, e);
    }
    theirs.reset();

    std::vector<sys::unique_fd> got;
    char buf[1024];
    ssize_t n = recv_datagram(status.get(), buf, sizeof buf, got);
    if (n < 0 && errno != ECONNRESET) sys::fail("receiving the forkserver's answer for " + who);
    if (n <= 0 && owned_server_gone()) return std::nullopt;
    crossing_reader reply(std::string(buf, static_cast<std::size_t>(n > 0 ? n : 0)), std::move(got));
    std::uint32_t magic = n >= 4 ? reply.get<std::uint32_t>() : 0;
    if (magic == refused_magic) detail::raise(error("multiproc: the forkserver refused to start " + who + ": " + reply.get_string()));
    if (magic != started_magic || reply.remaining() != sizeof(std::int32_t))
        detail::raise(error("multiproc: the forkserver ended the connection without starting " + who));
    auto pid = static_cast<pid_t>(reply.get<std::int32_t>());
    sys::unique_fd pidfd = reply.take_fd();

    auto h = handshake(ours.get(), c, q);
    if (h.kind != handshake_result::ok) detail::raise(start_failure(c, h, wait_reported(status.get())));
    return launch_result{pid, pidfd.release(), status.release()};
}

/// start::forkserver: asks the server for a child and gives it its target. Once more if the
/// server this process started died before it answered (one that could not load under
/// LD_BIND_NOW dies as it starts, after the request may have been sent): a new one is
/// started then, and no child was (or one that waits for its target, and gets end of file:
/// the target is sent only after the server's answer).
inline launch_result request_child(const child_record& c, const target_ref& t) {
    for (int attempt = 0;; ++attempt) {
        if (auto r = request_child_once(c, t)) return *r;
        if (attempt > 0)
            detail::raise(error("multiproc: the forkserver ended the connection without starting process " + c.name));
    }
}

// ---------------------------------------------------------------------------------------
// The server.

struct served_child {
    pid_t pid;
    int pidfd;
    int status; // the request's status socket; -1 once the requester has gone
    bool daemon;
};

// The server's sends on a requester's sockets never wait: a socket another process of the
// user handed over full would stall every request (a requester's own reads each answer).
inline void refuse(int conn, const std::string& why) noexcept {
    crossing_writer w;
    w.put(refused_magic);
    w.put_string(why);
    (void)send_datagram(conn, w.bytes().data(), w.bytes().size(), {}, MSG_DONTWAIT);
}

// In the newly forked child: the requester's descriptors become 0-3, nothing else stays.
[[noreturn]] inline void become_requested_child(std::vector<sys::unique_fd>& fds, std::uint8_t stdio) noexcept {
    (void)sys::set_signal_disposition(SIGINT, SIG_DFL);
    std::size_t k = 0;
    for (int i = 0; i < 3; ++i) {
        if (stdio & (1U << i))
            (void)sys::dup2(fds[k++].get(), i);
        else
            sys::close(i);
    }
    (void)sys::dup2(fds[k].get(), 3);
    (void)sys::close_from(4);
    run_bootstrap(3, /*os_parent=*/false);
}

/// What reading a requester's connection came to.
enum class request_read { waiting, served, ended };

// Reads one request from `conn`, a requester's connection, and, if it is sound, forks the
// child it asks for. The answer goes on the request's status socket (its last descriptor),
// which then becomes the child's entry in `kids`; a request that cannot be read is refused
// on `conn` itself.
inline request_read serve_request_unguarded(int conn, std::vector<served_child>& kids) {
    std::vector<sys::unique_fd> fds;
    char buf[1024];
    ssize_t n = recv_datagram(conn, buf, sizeof buf, fds);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return request_read::waiting;
    // A datagram that could not be taken whole (EMSGSIZE: too long, or its descriptors cut
    // off with the server's table full) is gone, its descriptors closed, so its requester's
    // status socket hangs up: the connection, which other threads and processes share,
    // stays.
    if (n < 0 && errno != ECONNRESET && errno != ENOTCONN) return request_read::served;
    if (n <= 0) return request_read::ended;
    // Read with bounds checked here, not by a crossing_reader, which raises at a request cut
    // short: without exceptions that is the error handler, and a malformed datagram from
    // any process of the user would end the server.
    const char* at = buf;
    std::size_t left = static_cast<std::size_t>(n);
    auto take = [&](void* to, std::size_t k) {
        if (k > left) return false;
        std::memcpy(to, at, k);
        at += k;
        left -= k;
        return true;
    };
    std::uint32_t magic = 0;
    std::uint8_t daemon = 0, stdio = 0;
    std::uint64_t id_len = 0, hash = 0;
    constexpr auto served = request_read::served;
    if (!take(&magic, sizeof magic)) return refuse(conn, "malformed request"), served;
    if (magic != ask_magic) return refuse(conn, "not a multiproc forkserver request"), served;
    if (!take(&daemon, 1) || !take(&stdio, 1) || !take(&id_len, sizeof id_len) || id_len > left)
        return refuse(conn, "malformed request"), served;
    std::string_view id(at, static_cast<std::size_t>(id_len));
    at += id_len;
    left -= static_cast<std::size_t>(id_len);
    if (!take(&hash, sizeof hash)) return refuse(conn, "malformed request"), served;
    if (fds.size() != static_cast<std::size_t>(__builtin_popcount(stdio & 7U)) + 2)
        return refuse(conn, "the request carries the wrong number of descriptors"), served;
    sys::unique_fd status = std::move(fds.back());
    fds.pop_back();
    if (auto why = check_same_build(id, hash); !why.empty()) return refuse(status.get(), why), served;
    kids.reserve(kids.size() + 1); // no allocation between the fork and the child's record
    pid_t pid = sys::fork();
    if (pid == 0) become_requested_child(fds, stdio);
    if (pid < 0) return refuse(status.get(), std::string("fork failed: ") + std::strerror(errno)), served;
    fds.clear();
    int pidfd = sys::pidfd_open(pid);
    if (pidfd < 0) {
        int e = errno;
        sys::kill(pid, SIGKILL);
        sys::waitpid(pid, nullptr, 0);
        return refuse(status.get(), std::string("pidfd_open failed: ") + std::strerror(e)), served;
    }
    crossing_writer w;
    w.put(started_magic);
    w.put<std::int32_t>(pid);
    bool told =
        send_datagram(status.get(), w.bytes().data(), w.bytes().size(), std::span<const int>(&pidfd, 1), MSG_DONTWAIT) == 0;
    served_child kid{pid, pidfd, told ? status.release() : -1, daemon != 0};
    if (!told && kid.daemon) (void)sys::pidfd_send_signal(pidfd, SIGKILL); // its parent is gone already
    kids.push_back(kid);
    return served;
}

inline request_read serve_request(int conn, std::vector<served_child>& kids) noexcept {
    MULTIPROC_TRY {
        return serve_request_unguarded(conn, kids);
    } MULTIPROC_CATCH_ALL {
        // Out of memory: the request's descriptors were closed on the way out, so its
        // requester sees its status socket hang up.
        return request_read::served;
    }
}

inline void requester_gone(served_child& k) noexcept {
    if (k.daemon) (void)sys::pidfd_send_signal(k.pidfd, SIGKILL);
    sys::close(k.status);
    k.status = -1;
}

// Reaps the child if it has ended and reports its status; true if it has.
inline bool reap(served_child& k) noexcept {
    int status = 0;
    if (sys::waitpid(k.pid, &status, WNOHANG) != k.pid) return false;
    if (k.status >= 0) {
        reported_status msg;
        msg.code = decode_wait_status(status);
        (void)send_datagram(k.status, &msg, sizeof msg, {}, MSG_DONTWAIT);
        sys::close(k.status);
    }
    sys::close(k.pidfd);
    return true;
}

inline bool hung_up(int fd, int timeout_ms) noexcept {
    pollfd p{fd, POLLIN, 0};
    return sys::poll_until(&p, 1, std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms), false) == 1;
}

/// On the way out: kills each daemon whose requester has gone. A requester may be dying
/// itself: a daemon with daemons of its own (nested::allow), killed a moment ago here or by
/// the kernel as its parent died. Its status sockets hang up once it has died, so until
/// `deadline` this waits for each daemon's status socket to hang up. One pass is enough: a
/// requester that is our child comes before the children it asked for, so it has been
/// killed by the time its own are waited for; no daemon outlives the tree it belongs to.
inline void kill_orphaned_daemons(std::vector<served_child>& kids, std::chrono::steady_clock::time_point deadline) noexcept {
    for (auto& k : kids) {
        if (k.status < 0) continue;
        pollfd p{k.status, POLLIN, 0};
        if (sys::poll_until(&p, 1, k.daemon ? deadline : std::chrono::steady_clock::now(), false) == 1) requester_gone(k);
    }
}

/// The server's life: serves requests until the process that started it ends, then kills
/// the daemon children whose requesters have gone, and leaves with _exit.
[[noreturn]] inline void serve(int listener, int alive, pid_t parent) noexcept {
    (void)sys::set_signal_disposition(SIGINT, SIG_IGN); // Ctrl-C is for the children
    // The server reaps its children itself: SIGCHLD ignored by the program that started it
    // (inherited through exec) would have the kernel reap them and lose their exit codes.
    // Its children start with SIGCHLD at SIG_DFL too.
    (void)sys::set_signal_disposition(SIGCHLD, SIG_DFL);
    int parent_fd = sys::pidfd_open(parent);
    {
        auto& s = client(); // our own children ask this server for theirs
        s.pid = ::getpid();
        s.listener_pid = parent;
        s.addr_len = sizeof s.addr;
        if (sys::getsockname(listener, reinterpret_cast<sockaddr*>(&s.addr), &s.addr_len) < 0) ::_exit(3);
    }
    (void)sys::fcntl(listener, F_SETFL, O_NONBLOCK);
    std::vector<int> clients; // requesters' connections
    std::vector<served_child> kids;
    std::vector<pollfd> p;
    for (;;) {
        p.clear();
        p.push_back({listener, POLLIN, 0});
        p.push_back({alive, POLLIN, 0});
        p.push_back({parent_fd, POLLIN, 0});
        for (int fd : clients) p.push_back({fd, POLLIN, 0});
        for (auto& k : kids) p.push_back({k.status, POLLIN, 0}); // only ever readable at hang-up
        for (auto& k : kids) p.push_back({k.pidfd, POLLIN, 0});
        if (sys::poll_until(p.data(), p.size(), {}, true) < 0) ::_exit(3);
        if (p[1].revents || p[2].revents) break;
        // The children known when poll() began first: serving a request adds to kids.
        std::size_t at = 3 + clients.size(), known = kids.size();
        for (std::size_t i = 0; i < known; ++i)
            if (p[at + i].revents && kids[i].status >= 0) requester_gone(kids[i]);
        for (std::size_t i = 0; i < known; ++i)
            if (p[at + known + i].revents && reap(kids[i])) kids[i].pid = 0;
        std::erase_if(kids, [](const served_child& k) { return k.pid == 0; });
        // One request per connection and round: poll() reports a connection with more.
        std::size_t kept = 0;
        for (std::size_t i = 0; i < clients.size(); ++i) {
            if (p[3 + i].revents && serve_request(clients[i], kids) == request_read::ended)
                sys::close(clients[i]); // its process has gone, or closed it
            else
                clients[kept++] = clients[i];
        }
        clients.resize(kept);
        if (p[0].revents & POLLIN) {
            int fd = sys::accept4(listener, SOCK_CLOEXEC | SOCK_NONBLOCK);
            ucred cr{};
            if (fd >= 0 && (sys::peer_credentials(fd, &cr) < 0 || cr.uid != ::geteuid()))
                sys::close(fd); // only the same user may ask for children
            else if (fd >= 0 && serve_request(fd, kids) == request_read::ended) // its request may be here already
                sys::close(fd);
            else if (fd >= 0)
                clients.push_back(fd);
        }
    }
    // The process that started us has ended (or closed `alive` at its normal exit). A dying
    // process closes its descriptors before its pidfd says it has ended: wait for that, so
    // that every status socket of a dead requester has hung up, then kill their daemons.
    bool daemons = false;
    for (auto& k : kids) daemons |= k.daemon && k.status >= 0;
    bool died = daemons && hung_up(parent_fd, 2000);
    // At a normal exit every child was joined first, its daemons killed as it ended; when
    // the process died instead, daemons of daemons may still be on their way out.
    kill_orphaned_daemons(kids, std::chrono::steady_clock::now() + std::chrono::milliseconds(died ? 2000 : 0));
    ::_exit(0);
}

} MULTIPROC_ABI_END } // namespace multiproc::detail::forkserver
