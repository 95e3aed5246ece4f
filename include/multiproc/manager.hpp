/// @file manager.hpp
/// Managers and their proxies (Python: multiprocessing.Manager, managers.BaseManager,
/// SyncManager): a server process holds shared objects — dicts, lists, arrays, values, queues,
/// locks, recursive locks, semaphores, events, conditions, barriers, namespaces — and every
/// process that has a proxy of one works on it with calls that are each one round trip,
/// atomic on the server. Proxies are
/// data (the server's address and the object's number): they cross into children of every
/// start method, through queues and pipes, and into pool tasks, and connect on first use
/// with the authkey of the process that uses them, as in Python. A manager serving on a
/// TCP address is reached from other machines with `basic_manager::connect`.
///
/// Needs <multiproc/connection.hpp>, hence OpenSSL's libcrypto: link `multiproc::connection`.
/// Anonymous objects live until the server ends (Python frees them when their last proxy
/// goes).
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence

#if !MULTIPROC_EXCEPTIONS
#error "multiproc: <multiproc/manager.hpp> needs exceptions: its server turns every client's failure (a peer that goes away, a wrong key, a bad request) into an error it catches and outlives; build without -fno-exceptions"
#include "multiproc: compilation stopped: manager.hpp needs exceptions" // (as config.hpp: stop here)
#endif

#include <multiproc/connection.hpp>
#include <multiproc/detail/net/manager_server.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/util/per_thread.hpp>
#include <multiproc/process.hpp>
#include <multiproc/serialize.hpp>

#include <boost/hana/core/when.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/tuple.hpp>

#include <algorithm>
#include <concepts>
#include <cstdlib>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <chrono>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail::mgr {

using link_t = basic_connection<wire>;

/// The authkeys this process was given for manager addresses (by constructing or connecting
/// a manager; runtime::manager_keys, which spawn and forkserver children are given too); any
/// other address is reached with current_process().authkey(), as Python's proxies do.
inline void remember_key(const std::string& at, const std::string& key) {
    auto& r = rt();
    std::lock_guard<std::mutex> lk(manager_keys_mutex());
    for (auto& [a, k] : r.manager_keys)
        if (a == at) {
            k = key;
            return;
        }
    r.manager_keys.emplace_back(at, key);
}
/// This process's authkey, the default key of managers; error if it has none (getrandom
/// failed when the process started, and nobody set one).
inline std::string process_key() {
    std::string k = rt().self.authkey;
    if (k.empty())
        raise(error("multiproc: this process has no authkey (getrandom failed at start): give the manager one, or set "
                    "current_process().authkey()"));
    return k;
}
inline std::string key_for(const std::string& at) {
    {
        auto& r = rt();
        std::lock_guard<std::mutex> lk(manager_keys_mutex());
        for (const auto& [a, k] : r.manager_keys)
            if (a == at) return k;
    }
    return process_key();
}

/// This thread's connection to the manager at `at`, authenticated with `key` (one per
/// thread, as Python's proxies: a call that waits on the server holds only its own thread),
/// made again in a child.
/// A connection is looked up by address alone on every call (no copy, no lock); the key it
/// was made with is kept to tell whether an explicit key (connect()) asks for another.
struct link_entry {
    pid_t pid;
    std::string key;
    link_t conn;
};
using link_map = std::map<std::string, link_entry, std::less<>>;
/// (per_thread: a manager or proxy at namespace scope calls its server from its destructor,
/// after the main thread's thread_local objects are gone.)
inline link_map& thread_links() { return per_thread<link_map>(); }
/// Closes this thread's connection to the manager at `at` (its server has been shut down).
inline void forget_links(const std::string& at) noexcept { thread_links().erase(at); }
/// `key`: the one to use (connect()), or null for the one known for `at`.
inline link_t& link_to(const std::string& at, const std::string* key) {
    auto& links = thread_links();
    auto it = links.find(at);
    if (it != links.end() && it->second.pid == ::getpid() && !it->second.conn.closed() && (!key || it->second.key == *key))
        return it->second.conn;
    if (it != links.end()) links.erase(it);
    std::string k = key ? *key : key_for(at);
    auto conn = client<wire>(address::parse(at), k);
    return links.emplace(at, link_entry{::getpid(), std::move(k), std::move(conn)}).first->second.conn;
}

/// Sends `q` to the manager at `at` (with `key`; by default the one known for it) and
/// returns the reply; the server's refusals raise the error they name, a server that has
/// gone raises eof_error saying so.
inline wire call(const std::string& at, const wire& q, const std::optional<std::string>& key = std::nullopt) {
    link_t* c = nullptr;
    wire r;
    bool ok = false;
    MULTIPROC_TRY {
        c = &link_to(at, key ? &*key : nullptr);
        c->send(q);
        r = c->recv();
        ok = true;
    } MULTIPROC_CATCH(const eof_error&, unnamed_) {
        if (c) c->close();
    } MULTIPROC_CATCH(const os_error&, e) {
        if (c) c->close();
        raise(eof_error("multiproc: the manager at " + at + " cannot be reached (has its server process ended?): " +
                        e.what()));
    } MULTIPROC_CATCH_ALL {
        if (c) c->close(); // (a reply that could not be read: the connection is of no more use)
        MULTIPROC_RETHROW;
    }
    if (!ok) raise(eof_error("multiproc: the manager at " + at + " has gone: its server process ended"));
    const std::string why = "multiproc: manager: " + r.a;
    switch (static_cast<status>(r.code)) {
        case status::ok: return r;
        case status::missing:
        case status::bad_index: raise(index_error(why));
        case status::empty: raise(queue_empty(why));
        case status::full: raise(queue_full(why));
        case status::not_owner: raise(state_error(why));
        case status::timeout: raise(timeout_error(why));
        case status::broken: raise(broken_barrier_error(why));
        case status::raised: raise(remote_error(r.b, r.a, static_cast<pid_t>(r.n), std::nullopt));
        default: raise(value_error(why));
    }
}

/// `text` without `suffix` at its end (an os_error's what() without the words of its errno,
/// which the os_error raised again from it adds back).
inline std::string without_suffix(std::string text, const std::string& suffix) {
    if (text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0)
        text.resize(text.size() - suffix.size());
    return text;
}

/// How long a client may take over the whole authentication exchange before the server
/// drops it.
inline constexpr std::chrono::seconds auth_deadline{30};

/// The exchange's messages on a connection, all of them by one deadline, inside a frame
/// too: a client that connects and says nothing, or starts a message and stops, is dropped
/// (authentication_error) rather than kept.
template <class End>
struct timed_auth_channel : auth_channel<End> {
    steady::time_point deadline;
    std::string recv() {
        if (this->end.wait(deadline) == frame_status::timeout) late();
        MULTIPROC_TRY {
            return auth_channel<End>::recv();
        } MULTIPROC_CATCH(const timeout_error&, unnamed_) {
            late();
        }
    }
    [[noreturn]] static void late() {
        auth::fail("the client did not finish it within " + std::to_string(auth_deadline.count()) + " s");
    }
};

/// The server's side of the exchange on `c`, as listener::accept runs it. The end's
/// receives stay bounded by the exchange's deadline only while it runs.
inline void authenticate(link_t& c, const std::string& key) {
    auto& end = connection_access::end(c);
    const auto deadline = steady::now() + auth_deadline;
    end.read_deadline(deadline);
    timed_auth_channel<std::remove_reference_t<decltype(end)>> ch{{end}, deadline};
    auth::deliver(ch, key);
    auth::answer(ch, key);
    end.read_deadline(std::nullopt);
}

/// Whether the peer of the connected socket `fd` has hung up (its process ended), without
/// waiting: a manager's waiting call asks before it takes what it waited for.
inline bool hung_up(int fd) noexcept {
    pollfd p{fd, POLLRDHUP, 0};
    return sys::poll_until(&p, 1, steady::time_point{}, false) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/// Serves the manager's objects on `l` (a listener without authkey) until a shutdown
/// request, each connection in a thread of its own that first runs the authentication
/// exchange with `key`, so that a client that connects and never speaks holds up no other;
/// never returns.
[[noreturn]] inline void serve_on(basic_listener<wire>& l, std::string key) {
    auto* s = new store(); // lives as long as the process: connection threads are detached
    std::uint64_t next = 1;
    const std::string unix_path =
        l.address().is_unix() && !l.address().is_abstract() ? l.address().path() : std::string();
    for (;;) {
        std::optional<link_t> conn;
        MULTIPROC_TRY {
            conn = l.accept();
        } MULTIPROC_CATCH(const error&, unnamed_) {
            // Out of descriptors (EMFILE) for now, or a client of another user: wait a little
            // rather than spin on a listener that stays readable.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        MULTIPROC_TRY {
            std::thread([s, key, unix_path, id = next++, c = std::move(*conn)]() mutable {
                MULTIPROC_TRY {
                    authenticate(c, key); // (in this thread: a silent client holds up nobody)
                    for (;;) {
                        const wire q = c.recv();
                        if (static_cast<op>(q.code) == op::shutdown) {
                            log(10, "manager received shutdown message");
                            s->release_segments();
                            // (The listener is not closed, its thread being in accept: a
                            // path socket's file goes here, so that a manager can start at
                            // the same path again, as CPython's does.)
                            if (!unix_path.empty()) (void)::unlink(unix_path.c_str());
                            c.send(wire{});
                            // As CPython's server leaves serve_forever by sys.exit(0): the
                            // process's shutdown ("process shutting down", its children
                            // joined, its finalizers run, "process exiting with exitcode 0"),
                            // then _Exit, as other threads still run.
                            finish_child_steps(0, {}); // (which flushes the standard streams last)
                            std::_Exit(0);
                        }
                        wire r;
                        MULTIPROC_TRY {
                            r = s->call(q, id, [&c] { return hung_up(c.fileno()); }); // (client_gone: ends the thread)
                        } MULTIPROC_CATCH(const std::exception&, e) {
                            r.code = static_cast<std::uint8_t>(status::bad);
                            r.a = std::string("the server failed: ") + e.what();
                        }
                        c.send(r);
                    }
                } MULTIPROC_CATCH_ALL {
                }
                s->forget(id);
            }).detach();
        } MULTIPROC_CATCH(const std::exception&, unnamed_) {
            // No thread to spare (std::system_error): this client is dropped, the server goes on.
        }
    }
}

/// The text of the type of the proxy class P, "dict<std::string,int>", which the server
/// compares on every call: made once per proxy class (type_name demangles), not per call.
template <class P, class... T>
const std::string& type_text(const char* kind_name) {
    static const std::string text = [&] {
        std::string s = kind_name;
        s += "<";
        ((s += type_name<T>() + ","), ...);
        s.back() = '>';
        return s;
    }();
    return text;
}

struct proxy_access;

/// What every proxy is: the manager's address and the object's number (the data that
/// crosses), and how it calls.
class proxy_base {
public:
    /// The address of the manager's server, as address::to_string.
    [[nodiscard]] const std::string& manager_address() const noexcept { return address_; }
    /// The object's number on the server.
    [[nodiscard]] std::uint64_t object_id() const noexcept { return id_; }
    friend bool operator==(const proxy_base& a, const proxy_base& b) noexcept {
        return a.address_ == b.address_ && a.id_ == b.id_;
    }

protected:
    using wire = mgr::wire;
    using op = mgr::op;

    proxy_base() = default;
    proxy_base(std::string at, std::uint64_t id) : address_(std::move(at)), id_(id) {}

    wire request(op o, kind k, const std::string& type) const {
        wire q;
        q.object = id_;
        q.code = static_cast<std::uint8_t>(o);
        q.kind = static_cast<std::uint8_t>(k);
        q.type = type;
        return q;
    }
    wire call(const wire& q) const {
        if (address_.empty()) raise(value_error("multiproc: a proxy that refers to no object (made by default)"));
        return mgr::call(address_, q);
    }
    /// A call that may wait on the server, at most `timeout` (nothing: as long as it takes).
    wire call_waiting(op o, kind k, const std::string& type, std::optional<std::chrono::duration<double>> timeout) const {
        wire q = request(o, k, type);
        return call(with_timeout(q, timeout));
    }
    /// `q` with `timeout` in seconds (none: -1, no limit); a NaN is value_error, as for
    /// every other timeout.
    static wire& with_timeout(wire& q, std::optional<std::chrono::duration<double>> timeout) {
        if (timeout) detail::check_timeout(*timeout);
        q.timeout = timeout ? std::max(0.0, timeout->count()) : -1.0;
        return q;
    }

private:
    std::string address_;
    std::uint64_t id_ = 0;
    friend struct proxy_access;
};

struct proxy_access {
    static std::string& address(proxy_base& p) noexcept { return p.address_; }
    static const std::string& address(const proxy_base& p) noexcept { return p.address_; }
    static std::uint64_t& id(proxy_base& p) noexcept { return p.id_; }
    static const std::uint64_t& id(const proxy_base& p) noexcept { return p.id_; }
};

template <class S, class T>
std::string encode_str(const T& v) {
    const auto bytes = encode_to_scratch<S>(v);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
template <class S, class T>
T decode_str(const std::string& b) {
    return decode_from<S, T>([&](auto take) { take(std::as_bytes(std::span<const char>(b))); });
}

/// What a list or an array may be made from: a range of values that convert to T (not a
/// string, which names an object).
template <class R, class T>
concept initial_elements = !std::convertible_to<const R&, std::string> && requires(const R& r) {
    { *std::begin(r) } -> std::convertible_to<const T&>;
    std::end(r);
};
/// What a dict may be made from: a range of pairs (a map, a vector of pairs) whose first
/// converts to K and second to V.
template <class R, class K, class V>
concept initial_items = !std::convertible_to<const R&, std::string> && requires(const R& r) {
    { std::get<0>(*std::begin(r)) } -> std::convertible_to<const K&>;
    { std::get<1>(*std::begin(r)) } -> std::convertible_to<const V&>;
    std::end(r);
};

} // namespace detail::mgr

template <class... Ps>
class basic_manager;

/// A proxy of a dict on a manager's server, from keys K to values V (Python: the proxy
/// `Manager().dict()` returns). Insertion-ordered as Python's; keys compare by their
/// encoding under S (equal values of a type with one encoding per value compare equal).
/// Copies refer to the same dict.
template <class K, class V, class S = serialize::binary>
class dict_proxy : public detail::mgr::proxy_base {

public:
    dict_proxy() = default;
    /// d[k] = v
    void set(const K& k, const V& v) const { call(with(op::set, k, &v)); }
    /// d[k]: index_error if there is none (Python: KeyError).
    [[nodiscard]] V at(const K& k) const {
        auto r = call(with(op::get, k));
        if (r.n == 0) detail::raise(index_error("multiproc: manager dict: key not found"));
        return detail::mgr::decode_str<S, V>(r.b);
    }
    /// d.get(k): the value, or nothing.
    [[nodiscard]] std::optional<V> get(const K& k) const {
        auto r = call(with(op::get, k));
        if (r.n == 0) return std::nullopt;
        return detail::mgr::decode_str<S, V>(r.b);
    }
    /// k in d
    [[nodiscard]] bool contains(const K& k) const { return call(with(op::contains, k)).n != 0; }
    /// d.setdefault(k, v): the value there, v put there first if there was none.
    V setdefault(const K& k, const V& v) const {
        return detail::mgr::decode_str<S, V>(call(with(op::setdefault, k, &v)).b);
    }
    /// d.pop(k, None): the value it held, or nothing.
    std::optional<V> pop(const K& k) const {
        auto r = call(with(op::pop, k));
        if (r.n == 0) return std::nullopt;
        return detail::mgr::decode_str<S, V>(r.b);
    }
    /// del d[k]: whether it was there.
    bool erase(const K& k) const { return call(with(op::erase, k)).n != 0; }
    /// d.popitem(): the pair inserted last, removed; index_error if it is empty (Python:
    /// KeyError).
    std::pair<K, V> popitem() const {
        const auto r = call(req(op::popitem));
        return {detail::mgr::decode_str<S, K>(r.a), detail::mgr::decode_str<S, V>(r.b)};
    }
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(call(req(op::size)).n); }
    [[nodiscard]] bool empty() const { return size() == 0; }
    void clear() const { call(req(op::clear)); }
    [[nodiscard]] std::vector<K> keys() const { return decode_all<K>(call(req(op::keys)).values); }
    [[nodiscard]] std::vector<V> values() const { return decode_all<V>(call(req(op::values)).values); }
    /// d.items(), in insertion order (also Python's dict(d), d.copy()).
    [[nodiscard]] std::vector<std::pair<K, V>> items() const {
        const auto r = call(req(op::items));
        std::vector<std::pair<K, V>> out;
        for (std::size_t i = 0; i + 1 < r.values.size(); i += 2)
            out.emplace_back(detail::mgr::decode_str<S, K>(r.values[i]), detail::mgr::decode_str<S, V>(r.values[i + 1]));
        return out;
    }
    /// d.update(pairs): each pair set in turn.
    template <class R>
    void update(const R& pairs) const {
        for (const auto& [k, v] : pairs) set(k, v);
    }

    static const std::string& type() { return detail::mgr::type_text<dict_proxy, K, V>("dict"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::dict;

private:
    template <class...>
    friend class basic_manager;
    dict_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
    wire req(op o) const { return request(o, kind, type()); }
    wire with(op o, const K& k, const V* v = nullptr) const {
        wire q = req(o);
        q.a = detail::mgr::encode_str<S>(k);
        if (v) q.b = detail::mgr::encode_str<S>(*v);
        return q;
    }
    template <class X>
    static std::vector<X> decode_all(const std::vector<std::string>& v) {
        std::vector<X> out;
        out.reserve(v.size());
        for (const auto& b : v) out.push_back(detail::mgr::decode_str<S, X>(b));
        return out;
    }
};

namespace detail::mgr {
/// What a list's and an array's proxies share (P: the proxy, for its kind and type text):
/// elements by index (negative: from the end; out of range: index_error), the length, a
/// copy of all.
template <class P, class T, class S>
class indexed_proxy : public proxy_base {
public:
    /// l[i]
    [[nodiscard]] T at(std::int64_t i) const { return decode_str<S, T>(call(with(op::get, i)).b); }
    /// l[i] = v
    void set(std::int64_t i, const T& v) const { call(with(op::set, i, &v)); }
    /// len(l)
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(call(req(op::size)).n); }
    /// list(l): every element, in one round trip.
    [[nodiscard]] std::vector<T> to_vector() const {
        std::vector<T> out;
        for (const auto& b : call(req(op::values)).values) out.push_back(decode_str<S, T>(b));
        return out;
    }

protected:
    indexed_proxy() = default;
    indexed_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
    wire req(op o) const { return request(o, P::kind, P::type()); }
    wire with(op o, std::int64_t i, const T* v = nullptr) const {
        wire q = req(o);
        q.n = i;
        if (v) q.b = encode_str<S>(*v);
        return q;
    }
};
} // namespace detail::mgr

/// A proxy of a list of T on a manager's server (Python: `Manager().list()`). Indexes may
/// be negative, counting from the end, as in Python; out of range: index_error. Elements
/// compare by their encoding under S (count, index, remove, contains), as a dict's keys; the
/// server holds encodings, so there is no sort (sort a copy: to_vector()).
template <class T, class S = serialize::binary>
class list_proxy : public detail::mgr::indexed_proxy<list_proxy<T, S>, T, S> {
    using base = detail::mgr::indexed_proxy<list_proxy<T, S>, T, S>;
    using typename base::op;
    using typename base::wire;
    using base::call;
    using base::req;
    using base::with;

public:
    list_proxy() = default;
    void append(const T& v) const { call(with(op::append, 0, &v)); }
    template <class R>
    void extend(const R& vs) const {
        wire q = req(op::extend);
        for (const auto& v : vs) q.values.push_back(detail::mgr::encode_str<S>(v));
        call(q);
    }
    void insert(std::int64_t i, const T& v) const { call(with(op::insert, i, &v)); }
    /// l.pop(i): the element taken (the last by default).
    T pop(std::int64_t i = -1) const { return detail::mgr::decode_str<S, T>(call(with(op::pop, i)).b); }
    /// l.count(v): how many elements equal `v`.
    [[nodiscard]] std::size_t count(const T& v) const { return static_cast<std::size_t>(call(with(op::count, 0, &v)).n); }
    /// l.index(v, start): the first position from `start` (negative: from the end) of an
    /// element equal to `v`; value_error if there is none (as Python's ValueError).
    [[nodiscard]] std::size_t index(const T& v, std::int64_t start = 0) const {
        return static_cast<std::size_t>(call(with(op::find, start, &v)).n);
    }
    /// v in l
    [[nodiscard]] bool contains(const T& v) const { return count(v) != 0; }
    /// l.remove(v): removes the first element equal to `v`; value_error if there is none.
    void remove(const T& v) const { call(with(op::remove, 0, &v)); }
    /// l.reverse(), in place on the server (one call: no other call sees it half done).
    void reverse() const { call(req(op::reverse)); }
    [[nodiscard]] bool empty() const { return this->size() == 0; }
    void clear() const { call(req(op::clear)); }

    static const std::string& type() { return detail::mgr::type_text<list_proxy, T>("list"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::list;

private:
    template <class...>
    friend class basic_manager;
    list_proxy(std::string at, std::uint64_t id) : base(std::move(at), id) {}
};

/// A proxy of an array of T on a manager's server (Python: `Manager().Array(typecode,
/// sequence)`): a list of fixed length, whose elements are read and set in place: at(i),
/// set(i, v), size(), to_vector(). Indexes may be negative, counting from the end; out of
/// range: index_error.
template <class T, class S = serialize::binary>
class array_proxy : public detail::mgr::indexed_proxy<array_proxy<T, S>, T, S> {
public:
    array_proxy() = default;

    static const std::string& type() { return detail::mgr::type_text<array_proxy, T>("array"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::list; // (held as a list, reached as an array)

private:
    template <class...>
    friend class basic_manager;
    array_proxy(std::string at, std::uint64_t id) : detail::mgr::indexed_proxy<array_proxy, T, S>(std::move(at), id) {}
};

/// A proxy of one value of T on a manager's server (Python: `Manager().Value(typecode,
/// value)`): get() and set(v), each one round trip.
template <class T, class S = serialize::binary>
class value_proxy : public detail::mgr::proxy_base {

public:
    value_proxy() = default;
    [[nodiscard]] T get() const { return detail::mgr::decode_str<S, T>(call(request(op::get, kind, type())).b); }
    void set(const T& v) const {
        wire q = request(op::set, kind, type());
        q.b = detail::mgr::encode_str<S>(v);
        call(q);
    }

    static const std::string& type() { return detail::mgr::type_text<value_proxy, T>("value"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::value;

private:
    template <class...>
    friend class basic_manager;
    value_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

/// A proxy of a queue of T on a manager's server (Python: `Manager().Queue(maxsize)`),
/// which any process that holds the proxy may use, started by this program or not.
template <class T, class S = serialize::binary>
class queue_proxy : public detail::mgr::proxy_base {

public:
    queue_proxy() = default;
    /// Puts `v`, waiting at most `timeout` for room (nothing: as long as it takes); queue_full.
    /// A negative timeout is value_error, as Python's queue.Queue says.
    void put(const T& v, std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        non_negative(timeout);
        wire q = request(op::put, kind, type());
        q.b = detail::mgr::encode_str<S>(v);
        call(with_timeout(q, timeout));
    }
    void put_nowait(const T& v) const { put(v, std::chrono::duration<double>(0)); }
    /// Takes the next item, waiting at most `timeout` (nothing: as long as it takes);
    /// queue_empty. A negative timeout is value_error, as for put.
    T get(std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        non_negative(timeout);
        return detail::mgr::decode_str<S, T>(call_waiting(op::take, kind, type(), timeout).b);
    }
    T get_nowait() const { return get(std::chrono::duration<double>(0)); }
    [[nodiscard]] std::size_t qsize() const { return static_cast<std::size_t>(call(request(op::size, kind, type())).n); }
    [[nodiscard]] bool empty() const { return qsize() == 0; }
    /// Whether it holds maxsize items (never, if it has no bound).
    [[nodiscard]] bool full() const { return call(request(op::is_full, kind, type())).n != 0; }
    /// Marks one item taken as dealt with (Python: Queue.task_done(), which the proxies of
    /// `Manager().Queue()` and `JoinableQueue()` both have); value_error if called more
    /// times than items were put.
    void task_done() const { call(request(op::task_done, kind, type())); }
    /// Waits until every item ever put has been marked task_done (Python: Queue.join()).
    void join() const { (void)call_waiting(op::join_tasks, kind, type(), std::nullopt); }

    static const std::string& type() { return detail::mgr::type_text<queue_proxy, T>("queue"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::queue;

private:
    static void non_negative(const std::optional<std::chrono::duration<double>>& timeout) {
        if (timeout && timeout->count() < 0)
            detail::raise(value_error("multiproc: 'timeout' must be a non-negative number"));
    }

    template <class...>
    friend class basic_manager;
    queue_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

/// A proxy of a lock, recursive lock or semaphore on a manager's server (Python:
/// `Manager().Lock()`, `RLock()`, `Semaphore(n)`); usable with std::lock_guard and
/// std::unique_lock. Held per connection: a process whose connection ends (it exited, or
/// was killed) releases what it held, where CPython's stays held for good.
template <detail::mgr::kind K>
class basic_lock_proxy : public detail::mgr::proxy_base {

public:
    basic_lock_proxy() = default;
    /// Waits at most `timeout` (nothing, or -1 s as Python's -1: as long as it takes);
    /// whether it was acquired. As Python's, a timeout with `block` false, or another
    /// negative one, is value_error.
    bool acquire(bool block = true, std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        if (timeout && timeout->count() == -1.0) timeout.reset();
        if (!block && timeout) detail::raise(value_error("multiproc: can't specify a timeout for a non-blocking call"));
        if (timeout && timeout->count() < 0)
            detail::raise(value_error("multiproc: timeout value must be a non-negative number"));
        return call_waiting(op::acquire, K, type(), block ? timeout : std::chrono::duration<double>(0)).n != 0;
    }
    /// state_error if it is not held (for a recursive lock: not by this thread's connection).
    void release() const { call(request(op::release, K, type())); }
    void lock() const { (void)acquire(); }
    bool try_lock() const { return acquire(false); }
    void unlock() const { release(); }
    /// A semaphore's value (Python: get_value()).
    [[nodiscard]] std::int64_t get_value() const
        requires(K == detail::mgr::kind::semaphore)
    {
        return call(request(op::get, K, type())).n;
    }

    static std::string type() {
        switch (K) {
            case detail::mgr::kind::lock: return "lock";
            case detail::mgr::kind::rlock: return "rlock";
            case detail::mgr::kind::condition: return "condition";
            default: return "semaphore";
        }
    }
    static constexpr detail::mgr::kind kind = K;

protected:
    template <class...>
    friend class basic_manager;
    basic_lock_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};
using lock_proxy = basic_lock_proxy<detail::mgr::kind::lock>;
using rlock_proxy = basic_lock_proxy<detail::mgr::kind::rlock>;
using semaphore_proxy = basic_lock_proxy<detail::mgr::kind::semaphore>;

/// A proxy of an event on a manager's server (Python: `Manager().Event()`).
class event_proxy : public detail::mgr::proxy_base {

public:
    event_proxy() = default;
    void set() const { call(request(op::event_set, kind, type())); }
    void clear() const { call(request(op::event_clear, kind, type())); }
    [[nodiscard]] bool is_set() const { return call(request(op::is_set, kind, type())).n != 0; }
    /// Waits until it is set, at most `timeout`; whether it is set.
    bool wait(std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        return call_waiting(op::wait, kind, type(), timeout).n != 0;
    }

    static std::string type() { return "event"; }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::event;

private:
    template <class...>
    friend class basic_manager;
    event_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

/// A proxy of a condition variable on a manager's server, over a recursive lock of its own
/// (Python: `Manager().Condition()`); usable with std::unique_lock. `wait` releases the
/// lock, waits for a notification, and takes the lock again; it and `notify` need the lock
/// held by this thread (state_error otherwise).
class condition_proxy : public basic_lock_proxy<detail::mgr::kind::condition> {

public:
    condition_proxy() = default;
    /// Waits for a notification, at most `timeout`; whether one came.
    bool wait(std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        return call_waiting(op::wait, kind, type(), timeout).n != 0;
    }
    /// Waits until `pred()` holds, checking it after each notification (Python: wait_for).
    template <class Pred>
    bool wait_for(Pred pred, std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        const auto deadline = detail::deadline_after(timeout);
        while (!pred()) {
            std::optional<std::chrono::duration<double>> left;
            if (deadline) {
                left = *deadline - detail::steady::now();
                if (left->count() <= 0) return pred();
            }
            (void)wait(left);
        }
        return true;
    }
    /// Wakes up to `n` waiting processes (Python: notify(n)).
    void notify(std::int64_t n = 1) const {
        wire q = request(op::notify, kind, type());
        q.n = n;
        call(q);
    }
    void notify_all() const { notify(-1); }

private:
    template <class...>
    friend class basic_manager;
    condition_proxy(std::string at, std::uint64_t id) : basic_lock_proxy(std::move(at), id) {}
};

/// A proxy of a barrier on a manager's server (Python: `Manager().Barrier(parties,
/// timeout)`): `wait` returns each party's arrival index (0 .. parties - 1); a wait that
/// times out breaks it for everyone (broken_barrier_error), as do abort() and reset() for
/// those waiting.
class barrier_proxy : public detail::mgr::proxy_base {

public:
    barrier_proxy() = default;
    std::int64_t wait(std::optional<std::chrono::duration<double>> timeout = std::nullopt) const {
        return call_waiting(op::wait, kind, type(), timeout).n;
    }
    void abort() const { call(request(op::abort, kind, type())); }
    void reset() const { call(request(op::reset, kind, type())); }
    [[nodiscard]] std::int64_t parties() const { return call(request(op::get, kind, type())).n; }
    [[nodiscard]] std::int64_t n_waiting() const { return call(request(op::size, kind, type())).n; }
    [[nodiscard]] bool broken() const { return call(request(op::is_set, kind, type())).n != 0; }

    static std::string type() { return "barrier"; }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::barrier;

private:
    template <class...>
    friend class basic_manager;
    barrier_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

/// A proxy of a namespace on a manager's server (Python: `Manager().Namespace()`): named
/// fields, each holding a value of one of Ts (a std::variant<Ts...> on the wire).
/// `get<T>(name)` is index_error for a name that is not there, value_error if it holds
/// another of Ts.
template <class... Ts>
class namespace_proxy : public detail::mgr::proxy_base {
    using variant = std::variant<Ts...>;

public:
    namespace_proxy() = default;
    /// ns.name = v
    template <class T>
    void set(const std::string& name, T&& v) const {
        wire q = request(op::set, kind, type());
        q.a = name;
        q.b = detail::mgr::encode_str<serialize::binary>(variant(std::forward<T>(v)));
        call(q);
    }
    /// ns.name, as a T.
    template <class T>
    [[nodiscard]] T get(const std::string& name) const {
        variant v = get_variant(name);
        if (!std::holds_alternative<T>(v))
            detail::raise(value_error("multiproc: manager namespace: " + name + " holds a " +
                                      std::visit([]<class U>(const U&) { return detail::type_name<U>(); }, v) +
                                      ", not a " + detail::type_name<T>()));
        return std::get<T>(std::move(v));
    }
    /// ns.name, whichever of Ts it holds.
    [[nodiscard]] variant get_variant(const std::string& name) const {
        wire q = request(op::get, kind, type());
        q.a = name;
        auto r = call(q);
        if (r.n == 0) detail::raise(index_error("multiproc: manager namespace has no field " + name));
        return detail::mgr::decode_str<serialize::binary, variant>(r.b);
    }
    [[nodiscard]] bool contains(const std::string& name) const {
        wire q = request(op::contains, kind, type());
        q.a = name;
        return call(q).n != 0;
    }
    /// del ns.name: whether it was there.
    bool erase(const std::string& name) const {
        wire q = request(op::erase, kind, type());
        q.a = name;
        return call(q).n != 0;
    }
    /// The names, in the order they were first set.
    [[nodiscard]] std::vector<std::string> names() const { return call(request(op::keys, kind, type())).values; }

    static const std::string& type() { return detail::mgr::type_text<namespace_proxy, Ts...>("namespace"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::dict; // (a dict of names on the server)

private:
    template <class...>
    friend class basic_manager;
    namespace_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

namespace detail::mgr {

template <class M>
struct member_traits;
template <class R, class C, class... A>
struct member_traits<R (C::*)(A...)> {
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class C, class... A>
struct member_traits<R (C::*)(A...) const> : member_traits<R (C::*)(A...)> {};
template <class R, class C, class... A>
struct member_traits<R (C::*)(A...) noexcept> : member_traits<R (C::*)(A...)> {};
template <class R, class C, class... A>
struct member_traits<R (C::*)(A...) const noexcept> : member_traits<R (C::*)(A...)> {};

template <class T, auto M>
struct method_tag {};

/// Whether two member pointers, of any types, are the same member: by the identity of the
/// template arguments, not `M == N`, which GCC 12 does not take as a constant expression
/// under -fsanitize=undefined (two exposed members of the same type failed to compile).
template <auto M, auto N>
constexpr bool same_member() {
    return std::is_same_v<method_tag<void, M>, method_tag<void, N>>;
}
template <class T, class... Args>
struct creator_tag {};

/// Runs member function M of the T at `self` with the encoded arguments; its result, encoded.
template <class T, auto M>
std::string run_method(void*& self, const std::string& args) {
    using tr = member_traits<decltype(M)>;
    auto a = decode_str<serialize::binary, typename tr::args>(args);
    T& obj = *static_cast<T*>(self);
    if constexpr (std::is_void_v<typename tr::result>) {
        std::apply([&](auto&... x) { (obj.*M)(std::move(x)...); }, a);
        return {};
    } else {
        return encode_str<serialize::binary>(std::apply([&](auto&... x) { return (obj.*M)(std::move(x)...); }, a));
    }
}
/// Makes a T from the encoded constructor arguments.
template <class T, class... Args>
std::string run_creator(void*& self, const std::string& args) {
    auto a = decode_str<serialize::binary, std::tuple<Args...>>(args);
    self = std::apply([](auto&... x) { return static_cast<void*>(new T(std::move(x)...)); }, a);
    return {};
}
// Registered during static initialization, so that the server (any run of the executable)
// finds the same code under the same identifier.
template <class T, auto M>
inline const char* const method_id =
    user_methods().add(type_key<method_tag<T, M>>(), user_method{&run_method<T, M>}).id;
template <class T, class... Args>
inline const char* const creator_id =
    user_creators().add(type_key<creator_tag<T, Args...>>(), user_creator{&run_creator<T, Args...>}).id;

} // namespace detail::mgr

/// A proxy of an object of a type of the program, held by a manager's server (Python: the
/// proxy of a type given to BaseManager.register, with `exposed` methods). `Methods` are the
/// member functions of T it may call, listed at compile time; each call is one round trip,
/// atomic for the object (calls on one object run one at a time; other objects go on, so
/// a member function may use other objects of the manager through their proxies), its
/// arguments and result serialized (serialize::binary). What a member function throws
/// comes back as remote_error with its type and message. T needs
/// no virtual function and no RTTI; its code runs in the server process, found by an
/// identifier the executable registers at start, so the server may be of any start method
/// (a server of another build refuses the call with value_error).
template <class T, auto... Methods>
class object_proxy : public detail::mgr::proxy_base {
public:
    object_proxy() = default;
    /// Calls member function M on the server's object with `args`, returning its result.
    template <auto M, class... Args>
    auto call(Args&&... args) const {
        static_assert((detail::mgr::same_member<M, Methods>() || ...),
                      "multiproc: this member function is not exposed by the proxy: list it in register_<T, ...>");
        using tr = detail::mgr::member_traits<decltype(M)>;
        static_assert(std::is_constructible_v<typename tr::args, Args&&...>,
                      "multiproc: these arguments do not convert to the member function's parameters");
        wire q = request(op::user_call, kind, type());
        q.a = detail::mgr::method_id<T, M>;
        q.b = detail::mgr::encode_str<serialize::binary>(typename tr::args(std::forward<Args>(args)...));
        auto r = proxy_base::call(q);
        if constexpr (!std::is_void_v<typename tr::result>)
            return detail::mgr::decode_str<serialize::binary, std::decay_t<typename tr::result>>(r.b);
    }

    static const std::string& type() { return detail::mgr::type_text<object_proxy, T>("object"); }
    static constexpr detail::mgr::kind kind = detail::mgr::kind::user;

private:
    template <class...>
    friend class basic_manager;
    object_proxy(std::string at, std::uint64_t id) : proxy_base(std::move(at), id) {}
};

/// A manager: a server process holding shared objects, and the factory of their proxies
/// (Python: multiprocessing.Manager(), managers.SyncManager). Ps: the server process's
/// policies (start method: `start::fork` by default, or spawn, forkserver).
///
/// `basic_manager m;` starts a server on a fresh abstract address with the authkey of this
/// process (Python: `Manager()`); `basic_manager m(address("0.0.0.0", 50000), key);` serves
/// on TCP, for other machines, which reach it with `basic_manager<>::connect(address, key)`
/// (Python: `BaseManager(address, authkey).connect()`). The manager that started a server
/// shuts it down when destroyed (or by `shutdown()`); one made by `connect` leaves it
/// running. Objects made with a name (`m.dict<K, V>("jobs")`) are found again by that name,
/// from any process connected to the same server.
template <class... Ps>
class basic_manager {
public:
    using policies = policy_set<Ps...>;

    /// Starts a server on `where` (nothing: a fresh abstract name), which only clients that
    /// prove they hold `authkey` may use (nothing: this process's authkey).
    explicit basic_manager(std::optional<multiproc::address> where = std::nullopt, std::optional<std::string> authkey = std::nullopt)
        : key_((authkey ? *authkey : detail::mgr::process_key())) {
        auto [r, w] = multiproc::pipe<std::string>(false);
        server_ = std::make_unique<basic_process<Ps...>>(
            process_options{.name = "SyncManager-" + std::to_string(next_number()), .daemon = true},
            [](std::string at, std::string key, connection<std::string> report) {
                std::optional<basic_listener<detail::mgr::wire>> l;
                MULTIPROC_TRY {
                    l.emplace(at.empty() ? std::nullopt : std::optional<multiproc::address>(multiproc::address::parse(at)), 64);
                } MULTIPROC_CATCH(const os_error&, e) { // "!errno text": the parent raises the same error
                    report.send("!" + std::to_string(e.code().value()) + " " +
                                detail::mgr::without_suffix(e.what(), ": " + e.code().message()));
                    std::_Exit(1);
                } MULTIPROC_CATCH(const std::exception&, e) { // (an address the listener refuses)
                    report.send(std::string("!0 ") + e.what());
                    std::_Exit(1);
                }
                const std::string serving = l->address().to_string();
                detail::log(20, "manager serving at '{}'", serving); // (CPython: before it answers)
                report.send(serving);
                report.close();
                detail::mgr::serve_on(*l, key);
            },
            where ? where->to_string() : std::string(), key_, w);
        server_->start();
        w.close();
        std::string got;
        MULTIPROC_TRY {
            got = r.recv();
        } MULTIPROC_CATCH(const eof_error&, unnamed_) {
            server_->join();
            detail::raise(error("multiproc: the manager's server process ended before it listened (exit code " +
                                std::to_string(server_->exitcode().value_or(0)) + ")"));
        }
        if (!got.empty() && got.front() == '!') {
            server_->join();
            const auto space = got.find(' ');
            const int errnum = std::atoi(got.c_str() + 1);
            const std::string why = "multiproc: the manager's server could not listen: " +
                                    (space == std::string::npos ? std::string() : got.substr(space + 1));
            if (errnum > 0) detail::raise(os_error(why, errnum));
            detail::raise(value_error(why));
        }
        address_ = got;
        detail::mgr::remember_key(address_, key_);
    }

    /// A manager for the server already serving at `where` (Python:
    /// BaseManager(address, authkey).connect()): checks it answers, leaves it running.
    /// Where nothing listens: the connection's `os_error` (ECONNREFUSED, ENOENT), as CPython's
    /// ConnectionRefusedError or FileNotFoundError; a server that goes later is `eof_error`.
    static basic_manager connect(const multiproc::address& where, std::optional<std::string> authkey = std::nullopt) {
        basic_manager m{connected_tag{}};
        m.key_ = (authkey ? *authkey : detail::mgr::process_key());
        m.address_ = where.to_string();
        (void)detail::mgr::link_to(m.address_, &m.key_); // (outside call(), which says "has gone")
        detail::mgr::wire q;
        q.code = static_cast<std::uint8_t>(detail::mgr::op::ping);
        detail::mgr::call(m.address_, q, m.key_);
        detail::mgr::remember_key(m.address_, m.key_); // (once the server has accepted it)
        return m;
    }

    /// Runs a manager's server in this process, on `where`, for ever (Python:
    /// `BaseManager(address, authkey).get_server().serve_forever()`): never returns. A
    /// manager made with `connect` leaves it running when shut down or destroyed, as CPython's
    /// does; the server ends with its process (a signal).
    [[noreturn]] static void serve(const multiproc::address& where, std::optional<std::string> authkey = std::nullopt) {
        basic_listener<detail::mgr::wire> l(where, 64);
        detail::mgr::serve_on(l, (authkey ? *authkey : detail::mgr::process_key()));
    }

    basic_manager(basic_manager&&) noexcept = default;
    basic_manager& operator=(basic_manager&&) = delete;
    ~basic_manager() { shutdown(); }

    /// Ends the server this manager started (Python: shutdown()): it is asked to, then
    /// joined. Proxies of its objects then fail with eof_error; server() stays, ended, for
    /// its exit code. Idempotent; a manager made by connect() asks nothing of the server.
    void shutdown() noexcept {
        if (!server_ || shut_down_) return;
        shut_down_ = true;
        MULTIPROC_TRY {
            if (server_->is_alive()) {
                detail::log(20, "sending shutdown message to manager");
                detail::mgr::wire q;
                q.code = static_cast<std::uint8_t>(detail::mgr::op::shutdown);
                MULTIPROC_TRY {
                    (void)detail::mgr::call(address_, q, key_);
                } MULTIPROC_CATCH_ALL {
                    server_->terminate();
                }
            }
            server_->join();
        } MULTIPROC_CATCH_ALL {
        }
        detail::mgr::forget_links(address_); // (other threads' close at their next call, or when they end)
    }

    /// The address of the server, for connect() elsewhere (Python: Manager().address).
    [[nodiscard]] multiproc::address address() const { return multiproc::address::parse(address_); }
    /// The server process (none for a manager made by connect()); after shutdown(), ended
    /// (Python: the manager's `_process`, whose exitcode is then 0).
    [[nodiscard]] const basic_process<Ps...>* server() const noexcept { return server_.get(); }

    /// A new dict, or the one named `name` (Python: dict()).
    template <class K, class V, class S = serialize::binary>
    dict_proxy<K, V, S> dict(const std::string& name = {}) const {
        return make<dict_proxy<K, V, S>>(name);
    }
    /// A new dict holding the (key, value) pairs of `items` (Python: dict(mapping or
    /// iterable)): a key given twice keeps its first place and its last value.
    template <class K, class V, class S = serialize::binary, class R>
        requires detail::mgr::initial_items<R, K, V>
    dict_proxy<K, V, S> dict(const R& items) const {
        auto q = creation<dict_proxy<K, V, S>>({});
        for (const auto& [k, v] : items) {
            q.values.push_back(detail::mgr::encode_str<S>(static_cast<const K&>(k)));
            q.values.push_back(detail::mgr::encode_str<S>(static_cast<const V&>(v)));
        }
        return made<dict_proxy<K, V, S>>(q);
    }
    template <class K, class V, class S = serialize::binary>
    dict_proxy<K, V, S> dict(std::initializer_list<std::pair<K, V>> items) const {
        return dict<K, V, S, std::initializer_list<std::pair<K, V>>>(items);
    }
    /// A new empty list, or the one named `name` (Python: list()).
    template <class T, class S = serialize::binary>
    list_proxy<T, S> list(const std::string& name = {}) const {
        return make<list_proxy<T, S>>(name);
    }
    /// A new list holding `elements`, a range or `{a, b, ...}` (Python: list(iterable)). A
    /// braced list is contents, also of one string: a name is given as a string alone.
    template <class T, class S = serialize::binary, class R>
        requires detail::mgr::initial_elements<R, T>
    list_proxy<T, S> list(const R& elements) const { return holding<list_proxy<T, S>, S, T>(elements); }
    template <class T, class S = serialize::binary>
    list_proxy<T, S> list(std::initializer_list<T> elements) const { return holding<list_proxy<T, S>, S, T>(elements); }
    /// A new array of `size` elements T{} (no Python counterpart: a manager's Array takes a
    /// sequence; sharedctypes' Array(typecode, size) gives zeros so).
    template <class T, class S = serialize::binary>
    array_proxy<T, S> array(std::size_t size) const { return holding<array_proxy<T, S>, S, T>(std::vector<T>(size)); }
    /// A new array holding `elements`, a range or `{a, b, ...}` (Python: Array(typecode,
    /// sequence)).
    template <class T, class S = serialize::binary, class R>
        requires detail::mgr::initial_elements<R, T>
    array_proxy<T, S> array(const R& elements) const { return holding<array_proxy<T, S>, S, T>(elements); }
    template <class T, class S = serialize::binary>
    array_proxy<T, S> array(std::initializer_list<T> elements) const { return holding<array_proxy<T, S>, S, T>(elements); }
    /// A new value holding `initial`, or the one named `name` (Python: Value()).
    template <class T, class S = serialize::binary>
    value_proxy<T, S> value(const T& initial = T{}, const std::string& name = {}) const {
        return make<value_proxy<T, S>>(name, detail::mgr::encode_str<S>(initial));
    }
    /// A new queue holding at most `maxsize` items (0: no bound), or the one named `name`
    /// (Python: Queue(maxsize)).
    template <class T, class S = serialize::binary>
    queue_proxy<T, S> queue(std::int64_t maxsize = 0, const std::string& name = {}) const {
        return make<queue_proxy<T, S>>(name, {}, maxsize);
    }
    lock_proxy lock(const std::string& name = {}) const { return make<lock_proxy>(name); }
    rlock_proxy rlock(const std::string& name = {}) const { return make<rlock_proxy>(name); }
    /// A semaphore of value `value` (Python: Semaphore(value)); `value_error` if it is
    /// negative.
    semaphore_proxy semaphore(std::int64_t value = 1, const std::string& name = {}) const {
        return semaphore_of(value, name, false);
    }
    /// A semaphore of value `value` that may not be released past it (Python:
    /// BoundedSemaphore(value)): such a release is `value_error("Semaphore released too many
    /// times")`, as Python's ValueError.
    semaphore_proxy bounded_semaphore(std::int64_t value = 1, const std::string& name = {}) const {
        return semaphore_of(value, name, true);
    }
    event_proxy event(const std::string& name = {}) const { return make<event_proxy>(name); }
    /// A condition over a recursive lock (Python: Condition()).
    condition_proxy condition(const std::string& name = {}) const { return make<condition_proxy>(name); }
    /// A barrier for `parties` processes (Python: Barrier(parties)).
    barrier_proxy barrier(std::int64_t parties, const std::string& name = {}) const { return barrier_of(parties, -1, name); }
    /// A barrier for `parties` processes whose wait() without a timeout gives up after
    /// `timeout`, breaking it (Python: Barrier(parties, timeout=t)); a negative timeout is
    /// 0, as Python's (every wait but the last breaks it), a NaN is value_error.
    barrier_proxy barrier(std::int64_t parties, std::chrono::duration<double> timeout, const std::string& name = {}) const {
        detail::check_timeout(timeout);
        return barrier_of(parties, std::max(0.0, timeout.count()), name);
    }
    /// A T of the program on the server, made from `args`, whose member functions `Methods`
    /// the returned proxy may call (Python: BaseManager.register(typeid, callable, exposed)
    /// and then m.typeid(args)). With a name, the object is made once and found again by
    /// that name (then `args` are not used).
    template <class T, auto... Methods, class... Args>
    object_proxy<T, Methods...> register_(const std::string& name = {}, Args&&... args) const {
        static_assert(sizeof...(Methods) > 0, "multiproc: register_<T, &T::f, ...> lists the member functions to expose");
        static_assert((std::is_member_function_pointer_v<decltype(Methods)> && ...),
                      "multiproc: register_<T, ...> exposes member functions of T: &T::f");
        static_assert(std::is_constructible_v<T, std::decay_t<Args>...>,
                      "multiproc: T cannot be made from these arguments");
        detail::mgr::wire q;
        q.a = detail::mgr::creator_id<T, std::decay_t<Args>...>;
        q.b = detail::mgr::encode_str<serialize::binary>(std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
        using P = object_proxy<T, Methods...>;
        return make<P>(name, std::move(q.b), 0, std::move(q.a));
    }
    /// A namespace whose fields hold one of Ts each (Python: Namespace()).
    template <class... Ts>
    namespace_proxy<Ts...> namespace_(const std::string& name = {}) const {
        return make<namespace_proxy<Ts...>>(name);
    }

protected:
    /// Sends `q` to the server with this manager's key.
    detail::mgr::wire call_server(const detail::mgr::wire& q) const { return detail::mgr::call(address_, q, key_); }

private:
    struct connected_tag {};
    explicit basic_manager(connected_tag) {}

    static int next_number() {
        static std::atomic<int> n{0};
        return ++n;
    }

    /// The request that makes a P named `name` ("": anonymous).
    template <class P>
    static detail::mgr::wire creation(const std::string& name) {
        detail::mgr::wire q;
        q.code = static_cast<std::uint8_t>(detail::mgr::op::create);
        q.kind = static_cast<std::uint8_t>(P::kind);
        q.type = P::type();
        q.name = name;
        return q;
    }
    /// Sends the creation request `q`: the proxy of the object made (or found by name).
    template <class P>
    P made(const detail::mgr::wire& q) const {
        return P(address_, detail::mgr::call(address_, q, key_).object);
    }
    template <class P>
    P make(const std::string& name, std::string initial = {}, std::int64_t n = 0, std::string code = {}) const {
        auto q = creation<P>(name);
        q.a = std::move(code);
        q.b = std::move(initial);
        q.n = n;
        return made<P>(q);
    }
    /// A semaphore of `value` (Python's ValueError if negative), bounded or not.
    semaphore_proxy semaphore_of(std::int64_t value, const std::string& name, bool bounded) const {
        if (value < 0) detail::raise(value_error("multiproc: semaphore initial value must be >= 0"));
        return make<semaphore_proxy>(name, bounded ? "bounded" : "", value);
    }
    /// A barrier of `parties`, whose waits without a timeout of their own take `timeout`
    /// seconds (< 0: none).
    barrier_proxy barrier_of(std::int64_t parties, double timeout, const std::string& name) const {
        if (parties < 1) detail::raise(value_error("multiproc: a barrier needs at least one party"));
        auto q = creation<barrier_proxy>(name);
        q.n = parties;
        q.timeout = timeout;
        return made<barrier_proxy>(q);
    }
    /// A new anonymous P (a list or an array) holding `elements`, each encoded under S as a T.
    template <class P, class S, class T, class R>
    P holding(const R& elements) const {
        auto q = creation<P>({});
        for (const auto& v : elements) q.values.push_back(detail::mgr::encode_str<S>(static_cast<const T&>(v)));
        return made<P>(q);
    }

    std::string key_;
    std::string address_;
    std::unique_ptr<basic_process<Ps...>> server_;
    bool shut_down_ = false;
};

/// A manager with the default policies (Python: multiprocessing.Manager()).
using manager = basic_manager<>;

/// A manager whose server also makes shared memory segments and shareable lists, and
/// removes them all when it shuts down (Python: multiprocessing.managers.SharedMemoryManager).
/// The segments are owned by the server process: they outlive the process that asked for
/// them, and every process may attach to them by name until the manager shuts down.
template <class... Ps>
class basic_shared_memory_manager : public basic_manager<Ps...> {
public:
    using basic_manager<Ps...>::basic_manager;

    /// A new segment of `size` bytes (Python: SharedMemory(size)), attached here.
    [[nodiscard]] multiproc::shared_memory shared_memory(std::size_t size) const {
        return multiproc::shared_memory::attach(make_segment(size));
    }
    /// A new shareable list of `items` (Python: ShareableList(sequence)), in a segment of the
    /// server's.
    [[nodiscard]] multiproc::shareable_list shareable_list(const std::vector<multiproc::shareable_list::item>& items) const {
        return multiproc::shareable_list(items, multiproc::shared_memory::attach(
                                                    make_segment(multiproc::shareable_list::size_for(items))));
    }

private:
    std::string make_segment(std::size_t size) const {
        detail::mgr::wire q;
        q.code = static_cast<std::uint8_t>(detail::mgr::op::shm_create);
        q.n = static_cast<std::int64_t>(detail::checked_segment_size(size)); // (one past off_t's range would wrap)
        return this->call_server(q).b;
    }
};
using shared_memory_manager = basic_shared_memory_manager<>;

MULTIPROC_ABI_END } // namespace multiproc

/// Proxies are data — the manager's address and the object's number — for every serializer
/// that reads Hana structs (serialize::binary): they cross into children, queues and tasks.
namespace boost::hana {
template <class T>
struct accessors_impl<T, when<std::is_base_of_v<multiproc::detail::mgr::proxy_base, T>>> {
    static constexpr auto apply() {
        using access = multiproc::detail::mgr::proxy_access;
        return make_tuple(
            make_pair(BOOST_HANA_STRING("address"), [](auto&& p) -> decltype(auto) { return access::address(p); }),
            make_pair(BOOST_HANA_STRING("id"), [](auto&& p) -> decltype(auto) { return access::id(p); }));
    }
};
} // namespace boost::hana
