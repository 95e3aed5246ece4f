// Not part of the API: the code a program registers so that another process running the
// same executable (a spawn or forkserver child, a pool worker started as a fresh program)
// finds it again: process targets (start/bootstrap.hpp) by identifier, pool invokers and
// initializers (pool/pool_wire.hpp) by number. One mechanism for both: entries are made
// during static initialisation, by the initializer of a variable template the sending code
// ODR-uses, so every run of the executable makes the same entries in the same order.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>
#include <multiproc/detail/util/demangle.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// The entries of one kind (Entry: a function pointer, or a struct of them with ==).
/// Never destroyed: a worker may look code up while the program's statics are torn down.
/// Every registry is guarded by sys::code_registry_mutex(), which fork holds: a child never
/// inherits one half-made or half-changed (a pool made during static initialisation forks
/// while the registrations go on).
template <class Entry>
class code_registry {
public:
    /// Where an entry is: its number (its place in registration order) and its identifier.
    struct place {
        std::uint32_t index = 0;
        const char* id = nullptr;
    };

    static code_registry& instance() {
        // (No function-local static: its guard, left "in progress" by a fork, would hang the child.)
        static constinit std::atomic<code_registry*> made{nullptr};
        if (code_registry* r = made.load(std::memory_order_acquire)) return *r;
        std::lock_guard lk(sys::code_registry_mutex());
        if (!made.load(std::memory_order_relaxed)) made.store(new code_registry(), std::memory_order_release);
        return *made.load(std::memory_order_relaxed);
    }

    /// Adds `e` under `key` (a type_key). Its identifier is `key`, or `key#N` when N entries
    /// with the same key and other code came first: types with internal linkage in different
    /// translation units can share a mangled name, and without RTTI two lambdas of one
    /// function share a spelling. The same code under the same key is one entry.
    place add(std::string_view key, Entry e) {
        std::lock_guard lk(sys::code_registry_mutex());
        for (unsigned n = 0;; ++n) {
            std::string id = n == 0 ? std::string(key) : std::string(key) + "#" + std::to_string(n);
            if (auto it = by_id_.find(id); it != by_id_.end()) {
                if (entries_[it->second].code == e) return {it->second, entries_[it->second].id.c_str()};
                continue;
            }
            auto index = static_cast<std::uint32_t>(entries_.size());
            entries_.push_back({std::move(id), key_hash(key), e});
            by_id_.emplace(entries_.back().id, index);
            return {index, entries_.back().id.c_str()};
        }
    }

    /// The entry numbered `index` if it was registered under a key of hash `signature`.
    const Entry* find(std::uint32_t index, std::uint64_t signature) const {
        std::lock_guard lk(sys::code_registry_mutex());
        if (index >= entries_.size() || entries_[index].signature != signature) return nullptr;
        return &entries_[index].code;
    }

    /// How many entries there are: a copy of the program forked during static initialisation
    /// has the entries made before the fork, numbered as in its parent, and none after.
    std::size_t size() const {
        std::lock_guard lk(sys::code_registry_mutex());
        return entries_.size();
    }

    /// The entry with identifier `id`, if there is one.
    const Entry* find(std::string_view id) const {
        std::lock_guard lk(sys::code_registry_mutex());
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &entries_[it->second].code;
    }

    /// A hash of the identifiers in registration order: equal in two runs of one build.
    std::uint64_t hash() const {
        std::lock_guard lk(sys::code_registry_mutex());
        std::string all;
        for (auto& e : entries_) (all += e.id) += '\n';
        return key_hash(all);
    }

private:
    struct entry {
        std::string id;
        std::uint64_t signature;
        Entry code;
    };
    std::deque<entry> entries_; // a deque: identifiers handed out stay where they are
    std::map<std::string, std::uint32_t, std::less<>> by_id_;
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
