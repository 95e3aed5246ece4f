// Not part of the API: the server of <multiproc/manager.hpp> and the messages it exchanges
// with proxies. The server holds every object as bytes — a dict's keys and values, a list's
// elements, a queue's items as their encodings under the proxies' serializer — so it needs
// no type of the program: one function serves every manager, started under any start method,
// or in a program of its own (`serve`). Keys compare by their encoding (equal values of a
// canonical type encode alike). One thread per connection, as CPython's server: a call that
// waits (a lock, a queue's get, an event) waits in its connection's thread, holding nothing.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/runtime/code_registry.hpp>
#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/function_ref.hpp>
#include <multiproc/error.hpp>
#include <multiproc/shared_memory.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <typeinfo>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::mgr {

/// What an object is, checked on every call: a proxy of another kind or type is refused.
enum class kind : std::uint8_t { dict = 1, list, value, queue, lock, rlock, event, semaphore, condition, barrier, user };

/// The code of a registered type (basic_manager::register_), found by identifier in the
/// server as in any process of the same executable: a constructor (`self` null: it makes
/// the object from the encoded arguments) or a member function (it runs on `self` and
/// returns the encoded result).
using user_fn = std::string (*)(void*& self, const std::string& args);
/// Two registries, so that a constructor is never run as a member function, nor the reverse.
struct user_creator {
    user_fn run;
    bool operator==(const user_creator&) const = default;
};
struct user_method {
    user_fn run;
    bool operator==(const user_method&) const = default;
};
inline code_registry<user_creator>& user_creators() { return code_registry<user_creator>::instance(); }
inline code_registry<user_method>& user_methods() { return code_registry<user_method>::instance(); }

/// The operations. One request, one reply, each atomic on the server.
enum class op : std::uint8_t {
    create = 1, // type = type text, kind, name = object name ("" anonymous), b = initial value
                // (value; a semaphore: "bounded" or ""), n = maxsize (queue), value (semaphore),
                // parties (barrier), values = initial elements (list) or k0, v0, k1, v1, ...
                // (dict), timeout = a barrier's default
    get,        // dict: a = key -> n = 1 and b if there; list: n = index; value; semaphore
    set,        // dict: a = key, b = value; list: n = index, b = value; value: b
    erase,      // dict: a = key -> n = 1 if it was there
    pop,        // dict: a = key -> value if there (n = 1); list: n = index
    contains,   // dict: a = key
    size,       // dict, list, queue
    clear,      // dict, list
    keys,       // dict -> values = keys
    values,     // dict -> values; list -> values = elements
    items,      // dict -> values = k0, v0, k1, v1, ...
    setdefault, // dict: a = key, b = value -> the value now there
    append,     // list: b
    extend,     // list: values
    insert,     // list: n = index, b
    put,        // queue: b, timeout
    take,       // queue: timeout -> b
    acquire,    // lock, rlock, semaphore: timeout (< 0: none) -> n = 1 if acquired
    release,    // lock, rlock, semaphore
    wait,       // event: timeout -> n = whether set
    event_set,
    event_clear,
    is_set,
    shutdown, // the server ends after replying
    ping,
    notify,     // condition: n = how many (< 0: all)
    abort,      // barrier
    reset,      // barrier
    shm_create, // n = size -> b = the name of a segment the server owns until it ends
    shm_release, // b = a name the server made: it unlinks it now
    user_call,  // create with kind user: a = the constructor's identifier, b = its arguments;
                // user_call: a = the member function's identifier, b = its arguments -> b
    count,      // list: b -> n = how many elements equal it
    find,       // list: b, n = where to start -> n = the first index of an element equal to it
    remove,     // list: b: the first element equal to it
    reverse,    // list
    popitem,    // dict -> a = key, b = value of the last inserted, removed
    is_full,    // queue -> n = whether it holds maxsize items
    task_done,  // queue: one item put has been dealt with
    join_tasks, // queue: timeout -> n = whether every item put has been dealt with
};

/// One message, either way (the serializer of the proxies encodes it).
struct wire {
    std::uint64_t object = 0;
    std::uint8_t code = 0;   // request: an op; reply: a status
    std::uint8_t kind = 0;   // request: the kind the proxy expects
    std::string name;        // create: the object's name
    std::string type;        // the type text the proxy expects (checked on create and by name)
    std::string a, b;        // request operands, or reply value (b) and message (a)
    std::int64_t n = 0;      // index, count, flag
    double timeout = -1;     // seconds; < 0: none
    std::vector<std::string> values;
};

/// Reply status.
enum class status : std::uint8_t { ok = 0, missing, bad_index, wrong_object, not_owner, empty, full, timeout, bad, broken, raised };

struct object {
    kind k{};
    std::string type;
    // dict: insertion-ordered (as Python's), with an index of keys
    std::list<std::pair<std::string, std::string>> items;
    std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index;
    std::vector<std::string> elements; // list
    std::string value;                 // value
    std::deque<std::string> queue;     // queue
    std::int64_t maxsize = 0;          // queue (0: unbounded); semaphore: its value
    std::int64_t unfinished = 0;       // queue: items put and not yet marked task_done
    std::int64_t bound = -1;           // bounded semaphore: its initial value, past which no release goes
    double default_timeout = -1;       // barrier: a wait's timeout when it gives none (< 0: none)
    std::uint64_t owner = 0;           // lock, rlock: the connection holding it (0: none)
    std::int64_t depth = 0;            // rlock: how many times
    bool flag = false;                 // event; barrier: broken
    std::int64_t waiters = 0;          // barrier: how many wait now
    std::deque<bool*> sleepers;        // condition: the waiters, oldest first (each its own flag)
    std::mutex user_mu;                // user: held while one of its member functions runs
    std::uint64_t generation = 0;      // barrier: trips, aborts and resets so far
    std::uint64_t broken_at = ~std::uint64_t{0}; // barrier: the generation an abort or a timeout ended
    std::uint64_t reset_at = ~std::uint64_t{0};  // barrier: the generation a reset ended
    void* user = nullptr;              // user: the object (lives as long as the server)
    std::condition_variable cv;
};

/// What a waiting call raises when its client has hung up (a killed process) by the time
/// it could go on: it takes nothing, and its connection's thread ends (store::call).
struct client_gone {};

/// Who makes a call: its connection's number, and whether its client has hung up.
struct caller {
    std::uint64_t conn;
    function_ref<bool()> gone;
};

class store {
public:
    /// Serves one request of the connection numbered `conn`. `gone` tells whether its client
    /// has hung up: a call that waited (a queue's get or put, an acquire, a wait) and whose
    /// client is gone when it could go on raises client_gone instead, taking nothing, so
    /// that the item, unit or notification goes to a live waiter.
    wire call(const wire& q, std::uint64_t conn, function_ref<bool()> gone) {
        const caller who{conn, gone};
        std::unique_lock<std::mutex> lk(mu_);
        wire r;
        if (static_cast<op>(q.code) == op::create) return create(q, lk);
        if (static_cast<op>(q.code) == op::ping) return r;
        if (static_cast<op>(q.code) == op::shm_create) {
            if (q.n <= 0) return fail(status::bad, "a shared memory segment needs a positive size");
            MULTIPROC_TRY {
                segments_.push_back(shared_memory::create(q.n));
            } MULTIPROC_CATCH(const std::exception&, e) {
                return fail(status::bad, e.what());
            }
            r.b = segments_.back().name(); // (the server's segment reaper removes it if the server is killed)
            return r;
        }
        if (static_cast<op>(q.code) == op::shm_release) {
            (void)std::erase_if(segments_, [&](const shared_memory& m) { return m.name() == q.b; });
            return r;
        }
        auto it = objects_.find(q.object);
        if (it == objects_.end()) return fail(status::wrong_object, "no object " + std::to_string(q.object) + " on the server");
        object& o = *it->second;
        if (static_cast<std::uint8_t>(o.k) != q.kind || o.type != q.type)
            return fail(status::wrong_object, "the object is a " + o.type + ", not a " + q.type);
        // A peer's NaN timeout (our proxies refuse one before they send) is refused as the
        // caller's do it, not taken as "no limit"; Python's waits raise ValueError for it.
        if (q.timeout != q.timeout) return fail(status::bad, "timeout is not a number");
        switch (o.k) {
            case kind::dict: return dict_op(o, q);
            case kind::list: return list_op(o, q);
            case kind::value:
                if (static_cast<op>(q.code) == op::set) o.value = q.b;
                r.b = o.value;
                return r;
            case kind::queue: return queue_op(o, q, who, lk);
            case kind::lock:
            case kind::rlock:
            case kind::semaphore: return lock_op(o, q, who, lk);
            case kind::event: return event_op(o, q, who, lk);
            case kind::condition: return condition_op(o, q, who, lk);
            case kind::barrier: return barrier_op(o, q, who, lk);
            case kind::user: {
                if (static_cast<op>(q.code) != op::user_call) return fail(status::bad, "not an operation of an object");
                // Atomic for the object, not for the server: a member function that takes its
                // time, or that calls other objects of this manager through their proxies
                // (another connection, another thread here), holds up no other object.
                // Objects are never removed, so `o` stays valid without the store's lock.
                lk.unlock();
                std::lock_guard<std::mutex> one(o.user_mu);
                return run_user<user_method>(o.user, q);
            }
        }
        return fail(status::bad, "unknown object kind");
    }

    /// Removes the names of the segments made by shm_create (at shutdown).
    void release_segments() noexcept {
        std::lock_guard<std::mutex> lk(mu_);
        segments_.clear();
    }

    /// A connection ended: the locks it held are released (CPython keeps them held).
    void forget(std::uint64_t conn) {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto& [id, o] : objects_) {
            if ((o->k == kind::lock || o->k == kind::rlock || o->k == kind::condition) && o->owner == conn) {
                o->owner = 0;
                o->depth = 0;
                o->cv.notify_all();
            }
        }
    }

private:
    static wire fail(status s, std::string why) {
        wire r;
        r.code = static_cast<std::uint8_t>(s);
        r.a = std::move(why);
        return r;
    }

    /// The reply to a create request for the name `q.name` if an object has it already.
    std::optional<wire> named(const wire& q) const {
        if (q.name.empty()) return std::nullopt;
        const auto n = names_.find(q.name);
        if (n == names_.end()) return std::nullopt;
        const object& o = *objects_.at(n->second);
        if (static_cast<std::uint8_t>(o.k) != q.kind || o.type != q.type)
            return fail(status::wrong_object, "the object named '" + q.name + "' is a " + o.type + ", not a " + q.type);
        wire r;
        r.object = n->second;
        return r;
    }

    /// Called with the store's lock held (`lk`); a registered type's constructor runs without
    /// it, so that it may use this manager's other objects through their proxies.
    wire create(const wire& q, std::unique_lock<std::mutex>& lk) {
        wire r;
        if (auto there = named(q)) return *there;
        if (static_cast<kind>(q.kind) == kind::semaphore && q.n < 0)
            return fail(status::bad, "semaphore initial value must be >= 0"); // (as Python's ValueError)
        if (q.timeout != q.timeout) return fail(status::bad, "timeout is not a number");
        if (static_cast<kind>(q.kind) == kind::dict && q.values.size() % 2 != 0)
            return fail(status::bad, "a dict's initial items come in pairs");
        auto o = std::make_unique<object>();
        o->k = static_cast<kind>(q.kind);
        o->type = q.type;
        o->maxsize = q.n;
        o->default_timeout = q.timeout;
        if (o->k == kind::semaphore && q.b == "bounded") o->bound = q.n;
        if (o->k == kind::user) {
            lk.unlock();
            wire made = run_user<user_creator>(o->user, q);
            lk.lock();
            if (made.code != 0) return made;
            // Another client made one by that name meanwhile: theirs is the one. (Ours stays
            // made, unreachable, until the server ends, as every object does: the registry
            // keeps no destructor.)
            if (auto there = named(q)) return *there;
        } else {
            o->value = q.b;
        }
        if (o->k == kind::list) o->elements = q.values;
        if (o->k == kind::dict) { // (as dict(pairs): a key given twice keeps its first place and its last value)
            wire set;
            set.code = static_cast<std::uint8_t>(op::set);
            for (std::size_t i = 0; i + 1 < q.values.size(); i += 2) {
                set.a = q.values[i];
                set.b = q.values[i + 1];
                (void)dict_op(*o, set);
            }
        }
        const std::uint64_t id = next_++;
        objects_.emplace(id, std::move(o));
        if (!q.name.empty()) names_.emplace(q.name, id);
        r.object = id;
        return r;
    }

    /// Runs registered code `q.a` on `self` with the arguments `q.b`; what it throws comes
    /// back as status raised, "type: what".
    template <class Entry>
    static wire run_user(void*& self, const wire& q) {
        wire r;
        const Entry* f = code_registry<Entry>::instance().find(std::string_view(q.a));
        if (!f) return fail(status::bad, "the server's program has no registered code " + q.a + " (is it another build?)");
        MULTIPROC_TRY {
            r.b = f->run(self, q.b);
        } MULTIPROC_CATCH(const std::exception&, e) {
            wire x = fail(status::raised, e.what());
            x.n = ::getpid(); // (the server's: where it was raised)
#if MULTIPROC_RTTI
            x.b = demangle(typeid(e).name());
#else
            x.b = "std::exception";
#endif
            return x;
        } MULTIPROC_CATCH_ALL { // (an int, a type of the program's own: raised all the same, the connection goes on)
            wire x = fail(status::raised, "the registered code threw an object that is not a std::exception");
            x.n = ::getpid();
            x.b = "(not a std::exception)";
            return x;
        }
        return r;
    }

    static bool index_of(std::int64_t i, std::size_t size, std::size_t& at) {
        const auto n = static_cast<std::int64_t>(size);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return false;
        at = static_cast<std::size_t>(i);
        return true;
    }

    /// Index `i` of a list of `size` as Python's insert and index(x, start) take it: negative
    /// counts from the end, and one past either end clamps to it.
    static std::size_t clamped_index(std::int64_t i, std::size_t size) {
        const auto n = static_cast<std::int64_t>(size);
        return static_cast<std::size_t>(i < 0 ? std::max<std::int64_t>(0, i + n) : std::min(i, n));
    }

    static wire dict_op(object& o, const wire& q) {
        wire r;
        auto found = o.index.find(q.a);
        switch (static_cast<op>(q.code)) {
            case op::get: // n = whether the key is there
                if (found == o.index.end()) return r;
                r.n = 1;
                r.b = found->second->second;
                return r;
            case op::set:
                if (found != o.index.end()) {
                    found->second->second = q.b;
                } else {
                    o.items.emplace_back(q.a, q.b);
                    o.index.emplace(q.a, std::prev(o.items.end()));
                }
                return r;
            case op::setdefault:
                if (found == o.index.end()) {
                    o.items.emplace_back(q.a, q.b);
                    found = o.index.emplace(q.a, std::prev(o.items.end())).first;
                }
                r.b = found->second->second;
                return r;
            case op::erase:
            case op::pop:
                if (found == o.index.end()) return r; // n = 0
                r.n = 1;
                r.b = std::move(found->second->second);
                o.items.erase(found->second);
                o.index.erase(found);
                return r;
            case op::contains: r.n = found != o.index.end(); return r;
            case op::popitem: // (the last inserted, as Python's: LIFO)
                if (o.items.empty()) return fail(status::missing, "popitem(): dictionary is empty");
                r.a = std::move(o.items.back().first);
                r.b = std::move(o.items.back().second);
                o.index.erase(r.a);
                o.items.pop_back();
                return r;
            case op::size: r.n = static_cast<std::int64_t>(o.items.size()); return r;
            case op::clear:
                o.items.clear();
                o.index.clear();
                return r;
            case op::keys:
            case op::values:
            case op::items:
                for (const auto& [k, v] : o.items) {
                    if (static_cast<op>(q.code) != op::values) r.values.push_back(k);
                    if (static_cast<op>(q.code) != op::keys) r.values.push_back(v);
                }
                return r;
            default: return fail(status::bad, "not an operation of a dict");
        }
    }

    static wire list_op(object& o, const wire& q) {
        wire r;
        std::size_t at = 0;
        auto& e = o.elements;
        switch (static_cast<op>(q.code)) {
            case op::get:
                if (!index_of(q.n, e.size(), at)) return fail(status::bad_index, "list index out of range");
                r.b = e[at];
                return r;
            case op::set:
                if (!index_of(q.n, e.size(), at)) return fail(status::bad_index, "list assignment index out of range");
                e[at] = q.b;
                return r;
            case op::pop:
                if (e.empty()) return fail(status::bad_index, "pop from empty list");
                if (!index_of(q.n, e.size(), at)) return fail(status::bad_index, "pop index out of range");
                r.b = std::move(e[at]);
                e.erase(e.begin() + static_cast<std::ptrdiff_t>(at));
                return r;
            case op::append: e.push_back(q.b); return r;
            case op::extend: e.insert(e.end(), q.values.begin(), q.values.end()); return r;
            case op::insert:
                e.insert(e.begin() + static_cast<std::ptrdiff_t>(clamped_index(q.n, e.size())), q.b);
                return r;
            case op::size: r.n = static_cast<std::int64_t>(e.size()); return r;
            case op::clear: e.clear(); return r;
            case op::values: r.values = e; return r;
            case op::count: r.n = static_cast<std::int64_t>(std::count(e.begin(), e.end(), q.b)); return r;
            case op::find: {
                const auto from = static_cast<std::ptrdiff_t>(clamped_index(q.n, e.size()));
                const auto it = std::find(e.begin() + from, e.end(), q.b);
                if (it == e.end()) return fail(status::bad, "list.index(x): x not in list");
                r.n = it - e.begin();
                return r;
            }
            case op::remove: {
                const auto it = std::find(e.begin(), e.end(), q.b);
                if (it == e.end()) return fail(status::bad, "list.remove(x): x not in list");
                e.erase(it);
                return r;
            }
            case op::reverse: std::reverse(e.begin(), e.end()); return r;
            default: return fail(status::bad, "not an operation of a list");
        }
    }

    /// Waits on `o` until `ready()` or `timeout` seconds (< 0: none, as a request's); false
    /// on timeout. Once ready,
    /// raises client_gone if the caller's client has hung up: every change a waiter waits
    /// for wakes all of them (notify_all), so what this one leaves goes to another.
    template <class Ready>
    static bool wait_for(object& o, double timeout, std::unique_lock<std::mutex>& lk, const caller& who, Ready ready) {
        auto live = [&] {
            if (!ready()) return false;
            if (who.gone()) throw client_gone{};
            return true;
        };
        // No limit: negative, or too large for the clock's nanoseconds (a peer's value).
        if (!(timeout >= 0) || timeout > 1e9) {
            o.cv.wait(lk, live);
            return true;
        }
        return o.cv.wait_for(lk, std::chrono::duration<double>(timeout), live);
    }

    static wire queue_op(object& o, const wire& q, const caller& who, std::unique_lock<std::mutex>& lk) {
        wire r;
        switch (static_cast<op>(q.code)) {
            case op::put:
                if (!wait_for(o, q.timeout, lk, who, [&] { return o.maxsize <= 0 || static_cast<std::int64_t>(o.queue.size()) < o.maxsize; }))
                    return fail(status::full, "the queue is full");
                o.queue.push_back(q.b);
                ++o.unfinished;
                o.cv.notify_all();
                return r;
            case op::take:
                if (!wait_for(o, q.timeout, lk, who, [&] { return !o.queue.empty(); })) return fail(status::empty, "the queue is empty");
                r.b = std::move(o.queue.front());
                o.queue.pop_front();
                o.cv.notify_all();
                return r;
            case op::size: r.n = static_cast<std::int64_t>(o.queue.size()); return r;
            case op::is_full: r.n = o.maxsize > 0 && static_cast<std::int64_t>(o.queue.size()) >= o.maxsize; return r;
            case op::task_done: // (Python's queue.Queue.task_done, and its ValueError)
                if (o.unfinished <= 0) return fail(status::bad, "task_done() called too many times");
                if (--o.unfinished == 0) o.cv.notify_all();
                return r;
            case op::join_tasks: r.n = wait_for(o, q.timeout, lk, who, [&] { return o.unfinished == 0; }); return r;
            default: return fail(status::bad, "not an operation of a queue");
        }
    }

    static wire lock_op(object& o, const wire& q, const caller& who, std::unique_lock<std::mutex>& lk) {
        const std::uint64_t conn = who.conn;
        wire r;
        if (o.k == kind::semaphore) {
            if (static_cast<op>(q.code) == op::acquire) {
                r.n = wait_for(o, q.timeout, lk, who, [&] { return o.maxsize > 0; });
                if (r.n) --o.maxsize;
            } else if (static_cast<op>(q.code) == op::release) {
                if (o.bound >= 0 && o.maxsize >= o.bound) // (Python's BoundedSemaphore: ValueError)
                    return fail(status::bad, "Semaphore released too many times");
                ++o.maxsize;
                o.cv.notify_all();
            } else if (static_cast<op>(q.code) == op::get) {
                r.n = o.maxsize;
            }
            return r;
        }
        switch (static_cast<op>(q.code)) {
            case op::acquire:
                if ((o.k == kind::rlock || o.k == kind::condition) && o.owner == conn) {
                    ++o.depth;
                    r.n = 1;
                    return r;
                }
                r.n = wait_for(o, q.timeout, lk, who, [&] { return o.owner == 0; });
                if (r.n) {
                    o.owner = conn;
                    o.depth = 1;
                }
                return r;
            case op::release:
                // A lock may be released by any process, as Python's threading.Lock; a
                // recursive lock only by its holder.
                if (o.owner == 0) return fail(status::not_owner, "release of an unlocked lock");
                if ((o.k == kind::rlock || o.k == kind::condition) && o.owner != conn)
                    return fail(status::not_owner, "cannot release a recursive lock held by another process");
                if (--o.depth == 0) {
                    o.owner = 0;
                    o.cv.notify_all();
                }
                return r;
            default: return fail(status::bad, "not an operation of a lock");
        }
    }

    /// A condition over a recursive lock of its own (Python's default): acquire/release as an
    /// rlock; wait releases it, waits for a notification, and takes it again.
    static wire condition_op(object& o, const wire& q, const caller& who, std::unique_lock<std::mutex>& lk) {
        const std::uint64_t conn = who.conn;
        wire r;
        switch (static_cast<op>(q.code)) {
            case op::acquire:
            case op::release: return lock_op(o, q, who, lk);
            case op::wait: {
                if (o.owner != conn) return fail(status::not_owner, "cannot wait on un-acquired lock");
                const std::int64_t depth = o.depth;
                o.owner = 0;
                o.depth = 0;
                o.cv.notify_all();
                bool woken = false; // notify sets it for the oldest waiters, as Python's
                o.sleepers.push_back(&woken);
                try {
                    r.n = wait_for(o, q.timeout, lk, who, [&] { return woken; });
                } catch (const client_gone&) { // (notified: the notification goes to the next sleeper)
                    if (!o.sleepers.empty()) {
                        *o.sleepers.front() = true;
                        o.sleepers.pop_front();
                        o.cv.notify_all();
                    }
                    throw;
                }
                if (!woken) std::erase(o.sleepers, &woken); // (timed out: not counted by a later notify)
                o.cv.wait(lk, [&] { return o.owner == 0; });
                o.owner = conn;
                o.depth = depth;
                return r;
            }
            case op::notify: {
                if (o.owner != conn) return fail(status::not_owner, "cannot notify on un-acquired lock");
                for (std::int64_t k = 0; (q.n < 0 || k < q.n) && !o.sleepers.empty(); ++k) {
                    *o.sleepers.front() = true;
                    o.sleepers.pop_front();
                }
                o.cv.notify_all();
                return r;
            }
            default: return fail(status::bad, "not an operation of a condition");
        }
    }

    /// A barrier of `maxsize` parties: wait -> n = the arrival index (0 .. parties - 1).
    /// Every trip, abort, timeout and reset with waiters ends a generation; a waiter learns
    /// how its generation ended from broken_at / reset_at.
    static wire barrier_op(object& o, const wire& q, const caller& who, std::unique_lock<std::mutex>& lk) {
        wire r;
        auto break_it = [&] { // (Python: abort(); also a wait that times out)
            o.flag = true;
            if (o.waiters > 0) {
                o.broken_at = o.generation++;
                o.waiters = 0;
            }
            o.cv.notify_all();
        };
        switch (static_cast<op>(q.code)) {
            case op::wait: {
                if (o.flag) return fail(status::broken, "the barrier is broken");
                const std::uint64_t gen = o.generation;
                r.n = o.waiters++;
                if (o.waiters == o.maxsize) {
                    o.waiters = 0;
                    ++o.generation;
                    o.cv.notify_all();
                    return r;
                }
                // (No timeout given: the barrier's own, as threading.Barrier's.)
                const double timeout = q.timeout < 0 ? o.default_timeout : q.timeout;
                if (!wait_for(o, timeout, lk, who, [&] { return o.generation != gen; })) {
                    break_it();
                    return fail(status::broken, "the barrier is broken (a wait timed out)");
                }
                if (o.broken_at == gen || o.reset_at == gen) return fail(status::broken, "the barrier is broken");
                return r;
            }
            case op::abort: break_it(); return r;
            case op::reset:
                if (o.waiters > 0) { // those waiting now fail
                    o.reset_at = o.generation++;
                    o.waiters = 0;
                }
                o.flag = false;
                o.cv.notify_all();
                return r;
            case op::get: r.n = o.maxsize; return r;
            case op::size: r.n = o.waiters; return r;
            case op::is_set: r.n = o.flag; return r;
            default: return fail(status::bad, "not an operation of a barrier");
        }
    }

    static wire event_op(object& o, const wire& q, const caller& who, std::unique_lock<std::mutex>& lk) {
        wire r;
        switch (static_cast<op>(q.code)) {
            case op::event_set:
                o.flag = true;
                o.cv.notify_all();
                return r;
            case op::event_clear: o.flag = false; return r;
            case op::is_set: r.n = o.flag; return r;
            case op::wait: r.n = wait_for(o, q.timeout, lk, who, [&] { return o.flag; }); return r;
            default: return fail(status::bad, "not an operation of an event");
        }
    }

    std::mutex mu_;
    std::map<std::uint64_t, std::unique_ptr<object>> objects_;
    std::map<std::string, std::uint64_t> names_;
    /// The first object number: random below 2^48, so that a proxy made by an earlier
    /// server at the same address names no object here (CPython's ids are addresses).
    static std::uint64_t first_number() noexcept {
        std::uint64_t r = 0;
        if (sys::getrandom_all(&r, sizeof r) != 0) r = static_cast<std::uint64_t>(::getpid()) << 20;
        return (r & ((std::uint64_t(1) << 48) - 1)) + 1;
    }
    std::uint64_t next_ = first_number(); // (random: a proxy of another server at this address finds nothing)
    std::vector<shared_memory> segments_; // made for a shared_memory_manager: owned (unlinked) here, and by
                                          // this process's segment reaper if it is killed
};

} MULTIPROC_ABI_END } // namespace multiproc::detail::mgr
