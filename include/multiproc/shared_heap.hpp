/// @file shared_heap.hpp
/// Containers that live in shared memory (issue 19): a `shared_heap` is a named segment
/// managed by Boost.Interprocess (`managed_shared_memory`), and `shared_vector`,
/// `shared_string`, `shared_map` are Boost.Interprocess containers whose memory comes from
/// it. `heap.make<C>(...)` builds one there and returns a `shared_object<C>`: a reference
/// that crosses as data (the heap's name and id, and the object's offset), so a pool task,
/// a queue message or a child's argument refers to the same memory, nothing copied; each process
/// attaches to the heap on first use. Python has no counterpart (its SharedMemoryManager and
/// ShareableList hold scalars and strings only).
///
/// Boost.Interprocess needs exceptions and RTTI (its segment manager names types with
/// typeid), so this header does too; it is not in <multiproc/multiproc.hpp>.
#pragma once

#include <multiproc/config.hpp> // first: a pre-C++20 build stops at its sentence

#if !MULTIPROC_EXCEPTIONS || !defined(__GXX_RTTI) && !defined(__cpp_rtti)
#error "multiproc: <multiproc/shared_heap.hpp> needs exceptions and RTTI (Boost.Interprocess's segment manager throws and uses typeid); build without -fno-exceptions/-fno-rtti, or share data with shared_memory, value or array"
#include "multiproc: compilation stopped: shared_heap.hpp needs exceptions and RTTI" // (as config.hpp: stop here)
#endif

#include <multiproc/detail/os/segment_reaper.hpp>
#include <multiproc/detail/os/sys.hpp>
#include <multiproc/error.hpp>

#include <boost/hana/core/when.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/containers/string.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail::heap {

namespace bip = boost::interprocess;
using segment = bip::managed_shared_memory;

/// A heap mapped here, and the id its creator gave it (a random number kept in the heap,
/// under `id_name`): what tells it from a later heap made under the same name.
struct attachment {
    std::shared_ptr<segment> seg;
    std::uint64_t id = 0;
};
inline constexpr const char* id_name = "multiproc.shared_heap.id";

/// The heaps this process has attached to, by name: the newest of each name, kept until
/// the process ends (a fork child inherits them, at the same addresses), or until its owner
/// here destroys it.
inline std::map<std::string, attachment>& attached() {
    static auto* m = new std::map<std::string, attachment>();
    return *m;
}
/// Older heaps of a name, found here before a newer one took their place: still mapped,
/// for the objects in them that this process still refers to.
inline std::multimap<std::string, attachment>& replaced() {
    static auto* m = new std::multimap<std::string, attachment>();
    return *m;
}
inline std::mutex& attached_mutex() {
    static auto* m = new std::mutex();
    return *m;
}
/// fork() takes attached_mutex, so that a child forked while another thread attaches a heap
/// does not inherit it locked by a thread it does not have. Registered during static
/// initialisation, before any thread.
inline void lock_attached() noexcept { attached_mutex().lock(); }
inline void unlock_attached() noexcept { attached_mutex().unlock(); }
inline const int attached_fork_handlers = sys::at_fork(lock_attached, unlock_attached, unlock_attached);

/// Makes `a` the current heap of `name` here, the one before it (if any) kept among the
/// replaced. Under attached_mutex.
inline std::map<std::string, attachment>::iterator make_current(const std::string& name, attachment a) {
    auto& m = attached();
    if (auto it = m.find(name); it != m.end()) {
        replaced().emplace(name, std::move(it->second));
        m.erase(it);
    }
    return m.emplace(name, std::move(a)).first;
}

[[noreturn]] inline void cannot_attach(const std::string& name, const std::string& why) {
    raise(value_error("multiproc: the shared heap '" + name + "' cannot be attached (has its owner destroyed it?): " +
                      why));
}

/// Refuses at once a segment that is not a heap made whole: Boost.Interprocess's open waits
/// up to 300 s for a segment's creator to finish making it before it fails. A managed
/// segment begins with a 32-bit state word, 2 once made (Boost 1.81,
/// managed_open_or_create_impl.hpp); a shared_heap has at least 4096 bytes, and gives out
/// its name only once made.
inline void require_heap(const std::string& name) {
    const std::string path = name.empty() || name[0] != '/' ? "/" + name : name;
    sys::unique_fd fd(sys::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0));
    if (!fd) cannot_attach(name, std::strerror(errno));
    struct stat st {};
    std::uint32_t state = 0;
    if (sys::fstat(fd.get(), &st) != 0) sys::fail("fstat of the shared heap '" + name + "'");
    if (st.st_size < 4096 || sys::pread(fd.get(), &state, sizeof state, 0) != sizeof state || state != 2)
        raise(value_error("multiproc: '" + name + "' is not a shared heap (a shared memory segment of " +
                          std::to_string(st.st_size) + " bytes that no shared_heap made whole)"));
}

/// Maps the heap now named `name`, with its id.
inline attachment open(const std::string& name) {
    require_heap(name);
    attachment a;
    try {
        a.seg = std::make_shared<segment>(bip::open_only, name.c_str());
    } catch (const bip::interprocess_exception& e) {
        cannot_attach(name, e.what());
    }
    const auto [id, n] = a.seg->find<std::uint64_t>(id_name);
    if (!id || n != 1)
        raise(value_error("multiproc: '" + name + "' is not a shared heap (a Boost.Interprocess segment that no "
                          "shared_heap made)"));
    a.id = *id;
    return a;
}

/// The heap named `name` whose id is `id` (0: the heap of that name now, its id put in
/// `*found`), attached on first use here. value_error if it is gone: removed, or its name
/// now another heap's (a process that kept its mapping would read the old heap for the new
/// one's objects).
inline segment& find(const std::string& name, std::uint64_t id, std::uint64_t* found = nullptr) {
    std::lock_guard<std::mutex> lk(attached_mutex());
    auto& m = attached();
    auto it = m.find(name);
    if (it != m.end() && id != 0 && it->second.id == id) return *it->second.seg;
    if (id != 0)
        for (auto [r, end] = replaced().equal_range(name); r != end; ++r)
            if (r->second.id == id) return *r->second.seg;
    attachment fresh = open(name);
    const std::uint64_t now = fresh.id;
    if (found) *found = now;
    if (it == m.end() || it->second.id != now) it = make_current(name, std::move(fresh)); // (else: the same heap)
    if (id != 0 && now != id)
        raise(value_error("multiproc: the shared heap '" + name +
                          "' that the object was made in is gone: that name is another heap's now"));
    return *it->second.seg;
}

struct object_access;

} // namespace detail::heap

template <class T>
class shared_object;

/// A heap in a named shared memory segment (Boost.Interprocess managed_shared_memory) that
/// other processes attach to by name. Fixed size: what it holds cannot outgrow it
/// (Boost.Interprocess's `bad_alloc`). The creating object owns the name and removes it
/// when destroyed; the memory lives on while a process still maps it. Move-only.
class shared_heap {
public:
    using segment_manager = detail::heap::segment::segment_manager;
    /// The allocator of containers in a shared heap.
    template <class T>
    using allocator = boost::interprocess::allocator<T, segment_manager>;

    /// Creates a heap of `size` bytes named `name` (a random `mph_…` if empty), mode 0600;
    /// os_error (EEXIST) if the name is taken. "x" and "/x" are one name (glibc's
    /// shm_open drops leading slashes); value_error for a name of slashes only.
    explicit shared_heap(std::size_t size, std::string_view name = {})
        : name_(name.empty() ? random_name() : spelled(name)) {
        if (size < 4096) detail::raise(value_error("multiproc: a shared heap needs at least 4096 bytes"));
        if (!detail::sys::within_file_size_limit(size)) // (else the segment's ftruncate raises SIGXFSZ)
            detail::raise(os_error("multiproc: cannot create the shared heap '" + name_ + "' of " + std::to_string(size) +
                                       " bytes: the file-size limit (RLIMIT_FSIZE, ulimit -f) is lower",
                                   EFBIG));
        std::shared_ptr<detail::heap::segment> s;
        try {
            s = std::make_shared<detail::heap::segment>(boost::interprocess::create_only, name_.c_str(), size,
                                                        nullptr, boost::interprocess::permissions(0600));
        } catch (const boost::interprocess::interprocess_exception& e) {
            // Unless the name was taken, it was made here before the size was refused (no
            // space, no memory): it goes with the failed heap, not left in /dev/shm.
            if (e.get_error_code() != boost::interprocess::already_exists_error)
                boost::interprocess::shared_memory_object::remove(name_.c_str());
            detail::raise(os_error("multiproc: cannot create the shared heap '" + name_ + "' (" + e.what() + ")",
                           e.get_native_error() ? e.get_native_error() : EEXIST));
        }
        try {
            id_ = random_id();
            s->construct<std::uint64_t>(detail::heap::id_name)(id_);
        } catch (...) {
            boost::interprocess::shared_memory_object::remove(name_.c_str());
            throw;
        }
        owner_ = ::getpid();
        reaped_ = reap_at_end(ino_);
        std::lock_guard<std::mutex> lk(detail::heap::attached_mutex());
        (void)detail::heap::make_current(name_, detail::heap::attachment{std::move(s), id_});
    }
    /// Attaches to the heap `name` (value_error if there is none, or for an empty name):
    /// an attacher never removes it.
    static shared_heap attach(std::string_view name) {
        shared_heap h;
        h.name_ = spelled(name);
        (void)detail::heap::find(h.name_, 0, &h.id_);
        return h;
    }

    shared_heap(shared_heap&& o) noexcept
        : name_(std::move(o.name_)), id_(o.id_), owner_(std::exchange(o.owner_, 0)),
          reaped_(std::exchange(o.reaped_, 0)), ino_(std::exchange(o.ino_, 0)) {}
    shared_heap& operator=(shared_heap&&) = delete;
    /// The owner (in the process that created it) removes the name and unmaps the heap
    /// here: the memory is freed once every other process that mapped it has ended or
    /// dropped it. References to it in this process then fail (value_error). A heap made
    /// since by someone else under the name (after another process removed this one's)
    /// stays.
    ~shared_heap() {
        if (owner_ != ::getpid()) return;
        (void)detail::segment_reaper::remove_if_same(name_, ino_, true);
        if (reaped_) detail::segment_reaper::removed(reaped_, name_, true);
        std::lock_guard<std::mutex> lk(detail::heap::attached_mutex());
        auto& m = detail::heap::attached();
        if (auto it = m.find(name_); it != m.end() && it->second.id == id_) m.erase(it);
        auto& old = detail::heap::replaced(); // (a newer heap of this name was made here since)
        for (auto [r, end] = old.equal_range(name_); r != end;) r = r->second.id == id_ ? old.erase(r) : std::next(r);
    }

    /// Builds a T in the heap from `args` — and the heap's allocator last, when T takes one
    /// (every shared container does) — and returns a reference to it.
    template <class T, class... Args>
    shared_object<T> make(Args&&... args) {
        auto& s = seg();
        T* p;
        if constexpr (std::is_constructible_v<T, Args&&..., segment_manager*>)
            p = s.construct<T>(boost::interprocess::anonymous_instance)(std::forward<Args>(args)..., s.get_segment_manager());
        else
            p = s.construct<T>(boost::interprocess::anonymous_instance)(std::forward<Args>(args)...);
        return shared_object<T>(name_, static_cast<std::uint64_t>(reinterpret_cast<char*>(p) - base()), id_);
    }
    /// Destroys an object make() built, and frees its memory.
    template <class T>
    void destroy(const shared_object<T>& o) {
        if (o.heap_name() != name_)
            detail::raise(value_error("multiproc: shared_heap::destroy: the object is in the heap '" + o.heap_name() +
                                      "', not in '" + name_ + "'"));
        if (o.id_ != id_)
            detail::raise(value_error("multiproc: shared_heap::destroy: the object is in another heap that had the name '" +
                                      name_ + "', not in this one"));
        seg().destroy_ptr(o.get());
    }

    /// The allocator for a container built in place of another (a shared_vector of
    /// shared_strings gets each string's allocator here).
    template <class T = char>
    [[nodiscard]] allocator<T> get_allocator() const {
        return allocator<T>(seg().get_segment_manager());
    }

    /// The name, without leading slashes.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t size() const { return seg().get_size(); }
    /// Bytes not yet allocated.
    [[nodiscard]] std::size_t free_memory() const { return seg().get_free_memory(); }
    [[nodiscard]] bool is_owner() const noexcept { return owner_ == ::getpid(); }

private:
    shared_heap() = default;
    detail::heap::segment& seg() const { return detail::heap::find(name_, id_); }
    char* base() const { return static_cast<char*>(seg().get_address()); }

    /// `name` as this process keeps it (the key of its attachments, and an object's heap
    /// name): without leading slashes, so "x" and "/x", one segment, are one heap here too.
    static std::string spelled(std::string_view name) {
        const auto first = name.find_first_not_of('/');
        if (first == std::string_view::npos)
            detail::raise(value_error("multiproc: '" + std::string(name) + "' is not a shared heap's name (it is empty "
                                      "or slashes only)"));
        return std::string(name.substr(first));
    }
    /// Has this process's segment reaper remove the name if the process ends without the
    /// owner's destructor (design §5.5); which reaper knows it (0: none). Sets `ino` to the
    /// segment's inode (0 if it cannot be read).
    detail::segment_reaper::ticket reap_at_end(std::uint64_t& ino) const noexcept {
        ino = 0;
        std::string path;
        MULTIPROC_TRY {
            path = "/" + name_;
        } MULTIPROC_CATCH_ALL {
            return 0;
        }
        detail::sys::unique_fd fd(detail::sys::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0));
        struct stat st {};
        if (!fd || detail::sys::fstat(fd.get(), &st) != 0) return 0;
        ino = static_cast<std::uint64_t>(st.st_ino);
        return detail::segment_reaper::made(path, st.st_ino);
    }
    static std::string random_name() { return "mph_" + detail::sys::random_hex("a shared heap's name"); }
    static std::uint64_t random_id() {
        std::uint64_t id = 0;
        while (id == 0) // (0 means "whichever heap has the name")
            if (detail::sys::getrandom_all(&id, sizeof id) != 0) detail::sys::fail("getrandom for a shared heap's id");
        return id;
    }

    std::string name_;
    std::uint64_t id_ = 0; // the heap's own (an attacher's: the heap it found under the name)
    pid_t owner_ = 0;
    detail::segment_reaper::ticket reaped_ = 0; // which segment reaper of the owner's knows the name (detail/os/segment_reaper.hpp)
    std::uint64_t ino_ = 0; // the owner's: the segment's inode (0: unknown, the name is removed whatever it is)
};

/// A vector of T in a shared heap (Boost.Interprocess vector): `heap.make<shared_vector<T>>()`.
template <class T>
using shared_vector = boost::interprocess::vector<T, shared_heap::allocator<T>>;
/// A string in a shared heap: `heap.make<shared_string>("text")`.
using shared_string = boost::interprocess::basic_string<char, std::char_traits<char>, shared_heap::allocator<char>>;
/// An ordered map in a shared heap: `heap.make<shared_map<K, V>>()`.
template <class K, class V, class Compare = std::less<K>>
using shared_map = boost::interprocess::map<K, V, Compare, shared_heap::allocator<std::pair<const K, V>>>;

/// A reference to an object in a shared heap: the heap's name and id (which tells it from a
/// later heap of the same name) and the object's offset. It is data — it crosses into
/// children, pool tasks and queues as any value does — and every process that dereferences
/// it sees the same object, attaching to the heap on first use (value_error if the heap is
/// gone). Copies refer to the same object; nothing is copied.
/// Nothing orders concurrent writers: guard with a lock of sync.hpp.
template <class T>
class shared_object {
public:
    shared_object() = default;
    [[nodiscard]] T* get() const {
        if (heap_.empty()) detail::raise(value_error("multiproc: a shared_object that refers to nothing (made by default)"));
        auto& s = detail::heap::find(heap_, id_);
        if (offset_ > s.get_size() || s.get_size() - offset_ < sizeof(T))
            detail::raise(value_error("multiproc: a shared_object points past the end of the shared heap '" + heap_ + "'"));
        return reinterpret_cast<T*>(static_cast<char*>(s.get_address()) + offset_);
    }
    T& operator*() const { return *get(); }
    T* operator->() const { return get(); }
    [[nodiscard]] const std::string& heap_name() const noexcept { return heap_; }
    friend bool operator==(const shared_object&, const shared_object&) = default;

private:
    friend class shared_heap;
    friend struct detail::heap::object_access;
    shared_object(std::string heap, std::uint64_t offset, std::uint64_t id)
        : heap_(std::move(heap)), offset_(offset), id_(id) {}
    std::string heap_;
    std::uint64_t offset_ = 0;
    std::uint64_t id_ = 0; // the heap's own
};

namespace detail::heap {
struct object_access {
    template <class O>
    static auto& heap(O& o) noexcept {
        return o.heap_;
    }
    template <class O>
    static auto& offset(O& o) noexcept {
        return o.offset_;
    }
    template <class O>
    static auto& id(O& o) noexcept {
        return o.id_;
    }
};
} // namespace detail::heap

MULTIPROC_ABI_END } // namespace multiproc

/// A shared_object is data for serializers that read Hana structs (serialize::binary).
namespace boost::hana {
template <class T>
struct accessors_impl<multiproc::shared_object<T>, when<true>> {
    static constexpr auto apply() {
        using access = multiproc::detail::heap::object_access;
        return make_tuple(
            make_pair(BOOST_HANA_STRING("heap"), [](auto&& o) -> decltype(auto) { return access::heap(o); }),
            make_pair(BOOST_HANA_STRING("offset"), [](auto&& o) -> decltype(auto) { return access::offset(o); }),
            make_pair(BOOST_HANA_STRING("id"), [](auto&& o) -> decltype(auto) { return access::id(o); }));
    }
};
} // namespace boost::hana
