// Not part of the API: how a child that does not share its parent's memory comes to run its
// target (Python: multiprocessing.spawn and popen_spawn_posix). Used by start::spawn, and by
// start::forkserver, whose children run the same bootstrap after the server forks them.
//
// The parent sends, over a SOCK_SEQPACKET socket: the build identity of the program, the
// child's record (name, identity, daemon and nesting flags, parent), the logger's state, the
// identifier of the target, and the target's arguments with their descriptors (crossing.hpp). The
// child checks that it is the same build, looks the identifier up among the targets its own
// copy of the program registered at static initialisation, rebuilds the arguments, answers
// "ok" or an error sentence, and runs the target as child_main does after a fork.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/runtime/code_registry.hpp>
#include <multiproc/detail/codec/crossing.hpp>
#include <multiproc/detail/runtime/runtime.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <elf.h>
#include <link.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX declares it nowhere

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

// ---------------------------------------------------------------------------------------
// The line main() needs. freeze_support<T>() ODR-uses freeze_support_marker<T>, whose
// dynamic initializer runs at static initialisation in every program that calls it, before
// main: so start() can tell, before spawning anything, whether a fresh copy of this program
// would enter the bootstrap or run main() again.

inline bool freeze_support_recorded = false; // constant-initialized: set before main runs

template <class T>
inline const bool freeze_support_marker = (freeze_support_recorded = true);

/// What freeze_support() runs after the bootstrap check, if set: how a start method that
/// must take over the program's start installs itself (ext::start::mpi sends the worker
/// ranks of an MPI job into their serve loop). Constant-initialized; set before main runs.
inline void (*freeze_support_hook)() = nullptr;

/// The environment variable that tells a fresh copy of the program what it is for:
/// `spawn:<fd>:<parent pid>` or `forkserver:<listener fd>:<alive fd>:<parent pid>`.
inline constexpr const char* bootstrap_variable = "MULTIPROC_BOOTSTRAP";

// ---------------------------------------------------------------------------------------
// The registry of targets (runtime/code_registry.hpp). Each entry is made at static
// initialisation by the variable template `registered<Key>`, which start() ODR-uses for the
// targets it may send: the same executable makes the same entries in the child. A target is
// sent by its identifier, detail::type_key<Key>() (the mangled name of Key where there is
// RTTI), numbered `#N` when other code came first under the same key.

/// How a child rebuilds a target from the request (`load`) and runs it (`run`).
struct target_entry {
    void* (*load)(crossing_reader& in, const child_record& self);
    void (*run)(void* target);
    friend bool operator==(const target_entry&, const target_entry&) = default;
};

/// The targets of this program.
inline code_registry<target_entry>& targets() { return code_registry<target_entry>::instance(); }

/// The identifier of target Key (registered during static initialisation).
template <class Key>
inline const char* const registered = targets().add(type_key<Key>(), target_entry{&Key::load, &Key::run}).id;

/// The identifier of a target.
template <class Key>
const char* target_id() noexcept {
    return registered<Key>;
}

/// What start() hands a launcher that cannot share memory with the child: the target's
/// identifier, and how to write its data.
struct target_ref {
    const char* id = nullptr;
    void (*save)(const void* target, crossing_writer& out) = nullptr;
    const void* target = nullptr;
};

/// The key of a basic_process target: the callable's type (stateless, so the child can
/// make its own), the argument types, and the serialization policy that encodes them.
template <class S, class F, class... Args>
struct function_target {
    using box = std::tuple<F, Args...>;
    static void* load(crossing_reader& in, const child_record&) {
        return new box{F{}, cross_load<S, Args>(in)...}; // braces: arguments read in order
    }
    static void run(void* p) {
        std::apply([](auto& f, auto&... a) { std::invoke(f, a...); }, *static_cast<box*>(p));
    }
    static void save(const void* p, crossing_writer& out) {
        std::apply([&](const auto&, const auto&... a) { (cross_save<S>(out, a), ...); }, *static_cast<const box*>(p));
    }
};

// A hash of the targets' identifiers, in order: equal in two runs of one build.
inline std::uint64_t registry_hash() { return targets().hash(); }

// The GNU build-id of the running executable, read from its program headers, in hex; empty
// if it was linked without one.
inline std::string read_build_id() {
    std::string out;
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto& hex = *static_cast<std::string*>(data);
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_NOTE) continue;
                auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
                auto* end = p + ph.p_memsz;
                while (p + sizeof(ElfW(Nhdr)) <= end) {
                    ElfW(Nhdr) n;
                    std::memcpy(&n, p, sizeof n);
                    auto* name = p + sizeof n;
                    auto* desc = name + ((n.n_namesz + 3) & ~3U);
                    if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
                        desc + n.n_descsz <= end) {
                        constexpr const char* digits = "0123456789abcdef";
                        for (unsigned k = 0; k < n.n_descsz; ++k) {
                            hex += digits[desc[k] >> 4];
                            hex += digits[desc[k] & 15];
                        }
                        return 1;
                    }
                    p = desc + ((n.n_descsz + 3) & ~3U);
                }
            }
            return 1; // the first object is the executable: look no further
        },
        &out);
    return out;
}

/// The GNU build-id of the running executable, in hex; empty if it was linked without one.
/// Read once per process, at its first use, and kept behind an atomic pointer, not in a
/// lazily initialised static, whose guard a child forked while another thread initialised
/// it would wait on forever: threads that ask first at the same time may each read it, and
/// one copy is kept. A forkserver's children find it read by their server, which checked
/// their requester's against it (reading it cost each child a walk over the program
/// headers, an allocation and the page faults of both).
inline const std::string& build_id() {
    static constinit std::atomic<const std::string*> kept{nullptr};
    if (const std::string* id = kept.load(std::memory_order_acquire)) return *id;
    auto read = std::make_unique<const std::string>(read_build_id());
    const std::string* first = nullptr;
    if (kept.compare_exchange_strong(first, read.get(), std::memory_order_acq_rel)) return *read.release();
    return *first; // another thread's, kept first
}

// ---------------------------------------------------------------------------------------
// Checks made in the parent before anything is started.

/// A fresh copy of this program is starting up and has not reached freeze_support() yet:
/// starting a process now (from a static initializer) would start copies without end. (A
/// program without freeze_support() is never started as such a copy: no check there.)
inline void check_not_bootstrapping() {
    if (freeze_support_recorded && std::getenv(bootstrap_variable))
        detail::raise(state_error("multiproc: a process was started before this process finished starting up (from a "
                          "static initializer, before main() reached multiproc::freeze_support()); start "
                          "processes from main() or later"));
}

inline void check_can_start_fresh(std::string_view method, const target_ref& t, const std::string& name) {
    if (!freeze_support_recorded)
        detail::raise(state_error("multiproc: process " + name + " uses start::" + std::string(method) +
                          ", which starts a fresh copy of this program, but main() does not call "
                          "multiproc::freeze_support(); make `multiproc::freeze_support();` the first "
                          "statement of main(), and start processes from main() or later (not from a static "
                          "initializer, such as a pool at namespace scope)"));
    if (!t.id) // its registration has not run yet: a start during static initialisation
        detail::raise(state_error("multiproc: process " + name + " was started during static initialisation, before "
                                  "its target was registered; start processes from main() or later"));
    if (!targets().find(std::string_view(t.id)))
        detail::raise(error("multiproc: the target of process " + name + " (identifier " + std::string(t.id) +
                    ") is not registered in this program"));
}

// ---------------------------------------------------------------------------------------
// The request.

inline constexpr std::uint32_t request_magic = 0x3142504d; // "MPB1"

/// What the parent tells the child besides the target's own data.
struct bootstrap_request {
    std::string build_id;
    std::uint64_t registry_hash = 0;
    std::string name;
    std::vector<int> identity;
    bool daemon = false;
    bool may_have_children = false;
    pid_t parent_pid = 0;
    std::string parent_name;
    std::string authkey;
    std::vector<std::pair<std::string, std::string>> manager_keys; // runtime::manager_keys
    int log_level = 0;
    std::uint8_t log_handler = 0; // 0 none, 1 stderr; other handlers do not cross
    std::string target;
};

inline bootstrap_request make_request(const child_record& c, const char* target) {
    auto& r = rt();
    bootstrap_request q;
    q.build_id = build_id();
    q.registry_hash = registry_hash();
    q.name = c.name;
    q.identity = c.identity;
    q.daemon = c.daemon;
    q.may_have_children = c.may_have_children;
    q.parent_pid = ::getpid();
    q.parent_name = r.self.name;
    q.authkey = r.self.authkey;
    {
        std::lock_guard<std::mutex> lk(manager_keys_mutex());
        q.manager_keys = r.manager_keys;
    }
    q.log_level = r.log.level.load(std::memory_order_relaxed);
    auto sink = r.log.sink.load(std::memory_order_relaxed);
    q.log_handler = sink == &stderr_sink ? 1 : 0;
    q.target = target;
    return q;
}

inline void write_request(crossing_writer& w, const bootstrap_request& q) {
    w.put(request_magic);
    w.put_string(q.build_id);
    w.put(q.registry_hash);
    w.put_string(q.name);
    w.put<std::uint64_t>(q.identity.size());
    for (int i : q.identity) w.put(i);
    // Bit 0: a daemon; bit 1: may have children all the same (nested::allow).
    w.put<std::uint8_t>(static_cast<std::uint8_t>((q.daemon ? 1U : 0U) | (q.may_have_children ? 2U : 0U)));
    w.put<std::int32_t>(q.parent_pid);
    w.put_string(q.parent_name);
    w.put_string(q.authkey);
    w.put<std::uint64_t>(q.manager_keys.size());
    for (const auto& [at, key] : q.manager_keys) {
        w.put_string(at);
        w.put_string(key);
    }
    w.put<std::int32_t>(q.log_level);
    w.put(q.log_handler);
    w.put_string(q.target);
}

inline bootstrap_request read_request(crossing_reader& in) {
    if (in.get<std::uint32_t>() != request_magic)
        detail::raise(serialization_error("multiproc: the child did not receive a multiproc start request"));
    bootstrap_request q;
    q.build_id = in.get_string();
    q.registry_hash = in.get<std::uint64_t>();
    q.name = in.get_string();
    auto n = in.get<std::uint64_t>();
    if (n > in.remaining() / sizeof(int)) detail::raise(serialization_error("multiproc: malformed start request"));
    for (std::uint64_t i = 0; i < n; ++i) q.identity.push_back(in.get<int>());
    auto flags = in.get<std::uint8_t>();
    q.daemon = (flags & 1U) != 0;
    q.may_have_children = (flags & 2U) != 0;
    q.parent_pid = in.get<std::int32_t>();
    q.parent_name = in.get_string();
    q.authkey = in.get_string();
    const auto keys = in.get<std::uint64_t>();
    if (keys > in.remaining() / (2 * sizeof(std::uint64_t))) detail::raise(serialization_error("multiproc: malformed start request"));
    for (std::uint64_t i = 0; i < keys; ++i) {
        std::string at = in.get_string();
        q.manager_keys.emplace_back(std::move(at), in.get_string());
    }
    q.log_level = in.get<std::int32_t>();
    q.log_handler = in.get<std::uint8_t>();
    q.target = in.get_string();
    return q;
}

/// Why a child of this build must refuse a request, or empty if it need not.
inline std::string check_same_build(std::string_view their_build_id, std::uint64_t their_hash) {
    if (their_build_id != build_id())
        return "the child runs a different build of the program than its parent (build-id " +
               (build_id().empty() ? std::string("none") : build_id()) + ", the parent's " +
               (their_build_id.empty() ? std::string("none") : std::string(their_build_id)) + ")";
    if (their_hash != registry_hash())
        return "the child's program registered other targets than its parent's (is it the same build?)";
    return {};
}

// ---------------------------------------------------------------------------------------
// The child's side.

inline void send_reply(int sock, bool ok, std::string_view text) noexcept {
    std::string msg(1, ok ? '\0' : '\1');
    msg.append(text.substr(0, datagram_bytes - 1));
    (void)send_datagram(sock, msg.data(), msg.size(), {});
}

/// Runs the target a parent sends over `sock` and never returns: the life of a spawn or
/// forkserver child after its program has started. `os_parent`: see child_main.
[[noreturn]] inline void run_bootstrap(int sock, bool os_parent) noexcept {
    auto& r = rt();
    const child_record* self = nullptr;
    target_entry entry{};
    void* target = nullptr;
    MULTIPROC_TRY {
        auto in = recv_message(sock, "the start request from the parent");
        if (!in) ::_exit(1); // the parent went away before it asked anything
        auto q = read_request(*in);
        if (auto why = check_same_build(q.build_id, q.registry_hash); !why.empty()) {
            send_reply(sock, false, why);
            ::_exit(1);
        }
        const target_entry* found = targets().find(std::string_view(q.target));
        if (!found) {
            send_reply(sock, false,
                       "unknown target identifier " + q.target + ": the child's program has no single target by that name");
            ::_exit(1);
        }
        entry = *found;
        auto* rec = new child_record(); // lives as long as the process
        rec->name = q.name;
        rec->identity = q.identity;
        rec->daemon = q.daemon;
        rec->may_have_children = q.may_have_children;
        rec->parent_pid = q.parent_pid;
        self = rec;
        r.self.name = q.parent_name; // become_child takes it as the parent's name
        r.self.authkey = q.authkey;
        r.manager_keys = std::move(q.manager_keys); // (one thread here yet)
        r.log.level.store(q.log_level, std::memory_order_relaxed);
        r.log.sink.store(q.log_handler == 1 ? &stderr_sink : nullptr, std::memory_order_relaxed);
        if (!os_parent) {
            // The creator is not our OS parent: a pidfd answers parent_process().is_alive().
            // It is alive now: it waits for our answer.
            r.self.parent_sentinel = sys::pidfd_open(q.parent_pid);
        }
        MULTIPROC_TRY {
            target = entry.load(*in, *rec);
        } MULTIPROC_CATCH(const std::exception&, e) {
            send_reply(sock, false, "cannot rebuild the target and arguments of process " + q.name + ": " + e.what());
            ::_exit(1);
        }
        in.reset(); // descriptors nobody took are closed here
    } MULTIPROC_CATCH(const std::exception&, e) {
        send_reply(sock, false, e.what());
        ::_exit(1);
    } MULTIPROC_CATCH_ALL {
        ::_exit(1);
    }
    send_reply(sock, true, {});
    sys::close(sock);
    child_main(*self, entry.run, target, os_parent);
}

// ---------------------------------------------------------------------------------------
// The parent's side of the handshake.

struct handshake_result {
    enum kind_t { ok, refused, ended } kind = ok;
    std::string text; // why the child refused
};

/// The start request for `c` and its target, as its child reads them. Made before the child
/// exists, so that an argument that cannot be encoded fails the start with no child made;
/// sent only once the child is ours to watch (with its target it can end, and be reaped by
/// someone else, at once) and, under forkserver, is known to be the one asked for (a child
/// of a request that failed after the fork must find nothing to run).
inline crossing_writer encode_start(const child_record& c, const target_ref& t) {
    crossing_writer w;
    write_request(w, make_request(c, t.id));
    t.save(t.target, w);
    return w;
}

/// Sends the request for `c` and its target (`encode_start`) over `sock`, and reads the
/// child's answer.
inline handshake_result handshake(int sock, const child_record& c, const crossing_writer& q) {
    if (send_message(sock, q) < 0) {
        if (errno != EPIPE && errno != ECONNRESET) sys::fail("sending process " + c.name + " its target");
        return {handshake_result::ended, {}};
    }
    std::vector<sys::unique_fd> none;
    std::unique_ptr<char[]> buf(new char[datagram_bytes]); // not zeroed: an answer is short
    ssize_t n = recv_datagram(sock, buf.get(), datagram_bytes, none);
    if (n < 0 && errno != ECONNRESET) sys::fail("receiving the answer of process " + c.name);
    if (n <= 0) return {handshake_result::ended, {}};
    if (buf[0] == '\0') return {};
    return {handshake_result::refused, std::string(buf.get() + 1, static_cast<std::size_t>(n) - 1)};
}

/// The exit code of the child whose start last failed in this thread because it ended
/// before it received its target, for a caller that decides by how it ended (a pool starts
/// another worker in place of one killed from outside while it started). Empty otherwise.
inline std::optional<int>& child_ended_before_target() {
    thread_local std::optional<int> code;
    return code;
}

/// The exception for a child that did not take its target; `code` is its exit code, or
/// nothing if something else reaped it.
inline error start_failure(const child_record& c, const handshake_result& h, std::optional<int> code) {
    child_ended_before_target().reset();
    if (h.kind == handshake_result::refused)
        return error("multiproc: process " + c.name + " could not start: " + h.text);
    child_ended_before_target() = code;
    std::string how = code ? "(exit code " + std::to_string(*code) + ")"
                           : "(" + lost_status_cause() + ", so its exit code is unknown)";
    return error("multiproc: process " + c.name + " ended " + how + " before it received its target; a fresh copy "
                 "of the program runs its static initializers first: did one of them fail or exit?");
}

struct launch_result {
    pid_t pid = -1;
    int pidfd = -1;     // if the launcher got one itself
    int status_fd = -1; // where the exit status is reported, if the child is not ours to wait for
};

/// Moves `fd` to a number >= `floor` (close-on-exec), so that dup2 onto low numbers in a
/// child cannot overwrite another descriptor still to be moved.
inline sys::unique_fd above(sys::unique_fd fd, int floor, const std::string& what) {
    if (fd.get() >= floor) return fd;
    int moved = sys::fcntl(fd.get(), F_DUPFD_CLOEXEC, floor);
    if (moved < 0) sys::fail(what);
    return sys::unique_fd(moved);
}

/// Starts a fresh copy of this program with `fds[i]` at descriptor 3 + i and nothing else
/// but 0, 1 and 2 (ours, or /dev/null if `null_stdio`), and `marker` in the environment,
/// with `also` ("NAME=value") if given. Returns the pid; throws os_error.
inline pid_t spawn_self(const std::vector<int>& fds, const std::string& marker, const std::string& what,
                        bool null_stdio = false, const char* also = nullptr) {
    std::string var = std::string(bootstrap_variable) + "=" + marker;
    std::vector<char*> envp;
    std::size_t prefix = std::strlen(bootstrap_variable) + 1;
    for (char** e = environ; e && *e; ++e)
        if (std::strncmp(*e, var.c_str(), prefix) != 0) envp.push_back(*e);
    envp.push_back(var.data());
    std::string extra = also ? also : "";
    if (also) envp.push_back(extra.data());
    envp.push_back(nullptr);
    std::string arg0 = program_invocation_name ? program_invocation_name : "multiproc-child";
    char* argv[] = {arg0.data(), nullptr};

    posix_spawn_file_actions_t fa;
    if (int e = ::posix_spawn_file_actions_init(&fa)) sys::fail(what, e);
    struct destroy {
        posix_spawn_file_actions_t* p;
        ~destroy() { ::posix_spawn_file_actions_destroy(p); }
    } guard{&fa};
    for (std::size_t i = 0; i < fds.size(); ++i)
        if (int e = ::posix_spawn_file_actions_adddup2(&fa, fds[i], 3 + static_cast<int>(i))) sys::fail(what, e);
    for (int i = 0; null_stdio && i < 3; ++i)
        if (int e = ::posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_RDWR, 0)) sys::fail(what, e);
    if (int e = ::posix_spawn_file_actions_addclosefrom_np(&fa, 3 + static_cast<int>(fds.size()))) sys::fail(what, e);
    pid_t pid = -1;
    if (sys::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp.data()) < 0) sys::fail(what);
    return pid;
}

/// start::spawn: a fresh copy of this program, given its target over a socket at fd 3.
inline launch_result spawn_child(const child_record& c, const target_ref& t) {
    check_can_start_fresh("spawn", t, c.name);
    int sv[2];
    if (sys::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) sys::fail("socketpair for process " + c.name);
    sys::unique_fd ours(sv[0]), theirs(sv[1]);
    const crossing_writer q = encode_start(c, t);
    pid_t pid = spawn_self({theirs.get()}, "spawn:3:" + std::to_string(::getpid()),
                           "spawn of /proc/self/exe for process " + c.name);
    theirs.reset();
    // The pidfd before the handshake: until the child has its target it cannot end unless
    // its program fails to start, so it is ours to watch whoever reaps it (a SIGCHLD
    // handler, or SIG_IGN). If it is gone already, it ended that way.
    sys::unique_fd pidfd(sys::pidfd_open(pid));
    if (!pidfd) {
        int e = errno;
        if (e == ESRCH)
            detail::raise(start_failure(c, {handshake_result::ended, {}}, std::nullopt));
        sys::kill(pid, SIGKILL);
        sys::waitpid(pid, nullptr, 0);
        sys::fail("pidfd_open for process " + c.name, e);
    }
    handshake_result h;
    MULTIPROC_TRY {
        h = handshake(ours.get(), c, q);
    } MULTIPROC_CATCH_ALL {
        (void)sys::pidfd_send_signal(pidfd.get(), SIGKILL);
        bool lost = false;
        MULTIPROC_TRY {
            (void)collect_child(pidfd.get(), c.name, lost, /*block=*/true);
        } MULTIPROC_CATCH(const error&, unnamed_) {
        }
        MULTIPROC_RETHROW;
    }
    if (h.kind != handshake_result::ok) {
        bool lost = false;
        auto code = collect_child(pidfd.get(), c.name, lost, /*block=*/true);
        detail::raise(start_failure(c, h, code));
    }
    return {pid, pidfd.release(), -1};
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
