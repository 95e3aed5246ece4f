/// @file value.hpp
/// Values and arrays in memory shared between processes (Python: multiprocessing.Value,
/// Array, RawValue and RawArray, from multiprocessing.sharedctypes).
///
/// Copies refer to the same memory: pass one to a child as a process argument. Arithmetic
/// values need no lock for a shared counter: `v.fetch_add(1)` is atomic between processes.
/// A `value`/`array` is its raw form plus a lock (`get_lock()`); through a reference to the
/// raw form, nothing is locked.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/sync/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fwd.hpp>
#include <multiproc/sync.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN

namespace detail {

/// Whether `T` can be operated on atomically in shared memory. A type std::atomic_ref
/// handles with a lock would use libatomic's locks, which are private to each process.
template <class T>
inline constexpr bool lock_free_in_shared_memory =
    std::atomic_ref<T>::is_always_lock_free && alignof(T) >= std::atomic_ref<T>::required_alignment;

template <class T>
inline constexpr bool shareable = std::is_trivially_copyable_v<T> && alignof(T) <= arena::slot_align;

template <class T>
concept arithmetic_not_bool = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;
template <class T>
concept integral_not_bool = std::is_integral_v<T> && !std::is_same_v<T, bool>;

/// An atomic view of a T in shared memory, with a sentence when T does not allow one.
template <class T>
std::atomic_ref<T> atomic_view(T& x) noexcept {
    static_assert(lock_free_in_shared_memory<T>,
                  "multiproc: atomic operations need a T that std::atomic_ref handles without a lock "
                  "(libatomic's fallback locks are not shared between processes); hold get_lock() instead");
    return std::atomic_ref<T>(x);
}

/// Reads `x`: atomically if T allows, else a plain copy (a data race unless locked).
template <class T>
T shared_load(const T& x) noexcept {
    if constexpr (lock_free_in_shared_memory<T>)
        return std::atomic_ref<T>(const_cast<T&>(x)).load();
    else
        return x;
}
/// Writes `x`: atomically if T allows, else a plain copy (a data race unless locked).
template <class T>
void shared_store(T& x, const T& v) noexcept {
    if constexpr (lock_free_in_shared_memory<T>)
        std::atomic_ref<T>(x).store(v);
    else
        x = v;
}

/// Runs `f()` holding `l`, unless T is read and written atomically anyway.
template <class T, class Lock, class F>
decltype(auto) locked_unless_atomic(Lock& l, F f) {
    if constexpr (lock_free_in_shared_memory<T>) {
        return f();
    } else {
        std::lock_guard g(l);
        return f();
    }
}

} // namespace detail

/// A T in shared memory, with no lock (Python: multiprocessing.RawValue). T must be
/// trivially copyable. load/store are atomic when T is lock-free (int, double, pointers,
/// small structs); arithmetic T also has fetch_add and friends, so a counter shared by
/// processes needs no lock.
template <class T>
class raw_value {
    static_assert(std::is_trivially_copyable_v<T>,
                  "multiproc: value<T> and raw_value<T> need a trivially copyable T: only its bytes are "
                  "shared between processes, so it can hold no pointer into one process's memory "
                  "(no std::string, no std::vector)");
    static_assert(alignof(T) <= detail::arena::slot_align, "multiproc: T is aligned beyond 64 bytes");

public:
    using value_type = T;

    /// A value-initialized T (zero for arithmetic types), as Python's RawValue(typecode).
    raw_value() : raw_value(T{}) {}
    /// A T initialized to `init` (Python: RawValue(typecode, init)).
    explicit raw_value(const T& init) : cell_(detail::shared_ptr_in_arena<T>::make(0, init)) {}

    /// Reads the value (Python: .value); atomic if T is lock-free.
    [[nodiscard]] T load() const noexcept { return detail::shared_load(*cell_); }
    /// Writes the value (Python: .value = v); atomic if T is lock-free.
    void store(const T& v) const noexcept { detail::shared_store(*cell_, v); }

    /// The shared T itself (Python: the ctypes object); plain accesses are not atomic.
    [[nodiscard]] T& get_obj() const noexcept { return *cell_; }
    /// The shared T, as get_obj().
    T& operator*() const noexcept { return *cell_; }
    /// A member of the shared T.
    T* operator->() const noexcept { return cell_.get(); }

    /// A std::atomic_ref to the shared T, for any atomic operation (lock-free T only).
    [[nodiscard]] std::atomic_ref<T> atomic() const noexcept { return detail::atomic_view(*cell_); }
    /// Atomically replaces the value; returns the old one.
    T exchange(const T& v) const noexcept { return atomic().exchange(v); }
    /// If the value equals `expected`, makes it `desired` and returns true; else loads it
    /// into `expected` and returns false (std::atomic's compare_exchange_strong).
    bool compare_exchange(T& expected, const T& desired) const noexcept {
        return atomic().compare_exchange_strong(expected, desired);
    }
    /// Atomically adds `d`; returns the old value.
    T fetch_add(T d) const noexcept
        requires detail::arithmetic_not_bool<T>
    {
        return atomic().fetch_add(d);
    }
    /// Atomically subtracts `d`; returns the old value.
    T fetch_sub(T d) const noexcept
        requires detail::arithmetic_not_bool<T>
    {
        return atomic().fetch_sub(d);
    }
    /// Atomic bitwise and; returns the old value.
    T fetch_and(T m) const noexcept
        requires detail::integral_not_bool<T>
    {
        return atomic().fetch_and(m);
    }
    /// Atomic bitwise or; returns the old value.
    T fetch_or(T m) const noexcept
        requires detail::integral_not_bool<T>
    {
        return atomic().fetch_or(m);
    }
    /// Atomic bitwise xor; returns the old value.
    T fetch_xor(T m) const noexcept
        requires detail::integral_not_bool<T>
    {
        return atomic().fetch_xor(m);
    }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same shared T.
    void cross_out(crossing_writer& w) const { cell_.cross_out(w); }
    /// In the child: the value cross_out sent.
    static raw_value cross_in(crossing_reader& r) { return raw_value(detail::shared_ptr_in_arena<T>::cross_in(r)); }

protected:
    explicit raw_value(detail::shared_ptr_in_arena<T> cell) : cell_(std::move(cell)) {}

private:
    detail::shared_ptr_in_arena<T> cell_;
};

/// A T in shared memory with a lock (Python: multiprocessing.Value): a `raw_value<T>` plus
/// `get_lock()`, an `rlock` unless another lock type is given. load/store take the lock
/// when T is not lock-free, as Python's .value does. `v.fetch_add(1)` is atomic;
/// `v.store(v.load() + 1)` is not, just as `v.value += 1` is not in Python.
template <class T, class Lock>
class value : public raw_value<T> {
public:
    using raw_value<T>::raw_value;
    /// A T initialized to `init`, guarded by `lock`, which may be shared with other objects
    /// (Python: Value(typecode, init, lock=lock)).
    value(const T& init, Lock lock) : raw_value<T>(init), lock_(std::move(lock)) {}

    /// Reads the value (Python: .value), under the lock unless T is lock-free.
    [[nodiscard]] T load() const {
        return detail::locked_unless_atomic<T>(lock_, [&] { return raw_value<T>::load(); });
    }
    /// Writes the value (Python: .value = v), under the lock unless T is lock-free.
    void store(const T& v) const {
        detail::locked_unless_atomic<T>(lock_, [&] { raw_value<T>::store(v); });
    }

    /// The lock that guards the value (Python: get_lock()); hold it for compound updates.
    [[nodiscard]] Lock& get_lock() const noexcept { return lock_; }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets this same value and its lock.
    void cross_out(crossing_writer& w) const
        requires detail::crosses_itself<Lock>
    {
        raw_value<T>::cross_out(w);
        lock_.cross_out(w);
    }
    /// In the child: the value cross_out sent.
    static value cross_in(crossing_reader& r)
        requires detail::crosses_itself<Lock>
    {
        raw_value<T> v = raw_value<T>::cross_in(r);
        return value(std::move(v), Lock::cross_in(r));
    }

private:
    value(raw_value<T> v, Lock lock) : raw_value<T>(std::move(v)), lock_(std::move(lock)) {}

    mutable Lock lock_;
};

/// Ts in shared memory, with no lock (Python: multiprocessing.RawArray): a fixed size,
/// indexing, iteration as a contiguous range. T must be trivially copyable. Copies refer to
/// the same elements; like std::span, a const array still gives access to them.
template <class T>
class raw_array {
    static_assert(std::is_trivially_copyable_v<T>,
                  "multiproc: array<T> and raw_array<T> need a trivially copyable T: only its bytes are "
                  "shared between processes, so it can hold no pointer into one process's memory "
                  "(no std::string, no std::vector)");
    static_assert(alignof(T) <= detail::arena::slot_align, "multiproc: T is aligned beyond 64 bytes");

public:
    using value_type = T;
    using size_type = std::size_t;
    using iterator = T*;
    using reference = T&;

    /// `n` value-initialized elements, zero for arithmetic T (Python: RawArray(typecode, n)).
    /// `n` is any integer type, checked by value: a negative one is CPython's value_error
    /// ("Array length must be >= 0, not -1"), not a huge size.
    template <std::integral N>
        requires(!std::same_as<N, bool> && sizeof(N) <= sizeof(std::uintmax_t))
    explicit raw_array(N n) : raw_array(allocate(length(n))) {
        std::uninitialized_value_construct_n(data_, size_);
    }
    /// The elements given (Python: RawArray(typecode, [1, 2, 3])).
    raw_array(std::initializer_list<T> init) : raw_array(allocate(init.size())) {
        std::uninitialized_copy(init.begin(), init.end(), data_);
    }
    /// A copy of a sized range (Python: RawArray(typecode, iterable)).
    template <std::ranges::sized_range R>
        requires(std::convertible_to<std::ranges::range_reference_t<R>, T> &&
                 !std::derived_from<std::remove_cvref_t<R>, raw_array>)
    explicit raw_array(R&& r) : raw_array(allocate(std::ranges::size(r))) {
        std::size_t i = 0;
        for (auto&& x : r) ::new (data_ + i++) T(static_cast<T>(x));
    }

    /// The number of elements (Python: len(a)).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// Whether there are no elements.
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    /// The first element, in shared memory.
    [[nodiscard]] T* data() const noexcept { return data_; }
    /// Iteration over the elements (a contiguous range); accesses are not atomic.
    [[nodiscard]] T* begin() const noexcept { return data_; }
    /// The end of the elements.
    [[nodiscard]] T* end() const noexcept { return data_ + size_; }

    /// The element at `i`, unchecked.
    T& operator[](std::size_t i) const noexcept { return data_[i]; }
    /// The element at `i`; index_error("invalid index") past the end, as Python's IndexError.
    [[nodiscard]] T& at(std::size_t i) const {
        if (i >= size_) detail::raise(index_error("invalid index"));
        return data_[i];
    }
    /// Reads element `i` (checked); atomic if T is lock-free.
    [[nodiscard]] T load(std::size_t i) const { return detail::shared_load(at(i)); }
    /// Writes element `i` (checked); atomic if T is lock-free.
    void store(std::size_t i, const T& v) const { detail::shared_store(at(i), v); }
    /// A std::atomic_ref to element `i` (checked), for any atomic operation (lock-free T only).
    [[nodiscard]] std::atomic_ref<T> atomic(std::size_t i) const { return detail::atomic_view(at(i)); }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets these same elements.
    void cross_out(crossing_writer& w) const {
        block_.cross_out(w);
        w.put<std::uint64_t>(size_);
    }
    /// In the child: the array cross_out sent.
    static raw_array cross_in(crossing_reader& r) { return raw_array(r); }

protected:
    // In the child of a crossing: the elements cross_out sent.
    explicit raw_array(crossing_reader& r) : raw_array(crossed(r)) {}

private:

    struct storage {
        detail::shared_block block;
        std::size_t n;
    };
    template <class N>
    static std::size_t length(N n) {
        if constexpr (std::is_signed_v<N>)
            if (n < 0)
                detail::raise(value_error("Array length must be >= 0, not " + std::to_string(static_cast<std::intmax_t>(n))));
        if constexpr (sizeof(N) > sizeof(std::size_t))
            if (static_cast<std::uintmax_t>(n) > std::numeric_limits<std::size_t>::max())
                detail::raise(value_error("array is too large"));
        return static_cast<std::size_t>(n);
    }
    static storage allocate(std::size_t n) {
        // (At most 2^62 bytes: no machine maps that many, and rounded up to the arena's
        // alignment the size still fits an off_t, which sizes the memory.)
        if (n > std::numeric_limits<std::size_t>::max() / 4 / sizeof(T)) detail::raise(value_error("array is too large"));
        return {detail::arena::instance().allocate(n * sizeof(T)), n};
    }
    static storage crossed(crossing_reader& r) {
        // The block first (its descriptor and offset), then the count, checked against the
        // memory mapped.
        detail::shared_block b = detail::shared_block::cross_in(r, 0);
        const auto n = r.get<std::uint64_t>();
        const std::size_t room = b.chunk->region.size() - b.offset();
        if (n > room / sizeof(T)) detail::raise(serialization_error("multiproc: an array sent to the child lies outside its memory"));
        return {std::move(b), static_cast<std::size_t>(n)};
    }
    explicit raw_array(storage s)
        : block_(std::move(s.block)), data_(static_cast<T*>(block_.ptr)), size_(s.n) {}

    detail::shared_block block_;
    T* data_;
    std::size_t size_;
};

/// Ts in shared memory with a lock (Python: multiprocessing.Array): a `raw_array<T>` plus
/// `get_lock()`, an `rlock` unless another lock type is given. load/store take the lock
/// when T is not lock-free; indexing and iteration never do: hold get_lock() around them.
template <class T, class Lock>
class array : public raw_array<T> {
public:
    using raw_array<T>::raw_array;
    /// `n` value-initialized elements guarded by `lock` (Python: Array(typecode, n, lock=lock)).
    template <std::integral N>
        requires(!std::same_as<N, bool> && sizeof(N) <= sizeof(std::uintmax_t))
    array(N n, Lock lock) : raw_array<T>(n), lock_(std::move(lock)) {}
    /// The elements given, guarded by `lock`.
    array(std::initializer_list<T> init, Lock lock) : raw_array<T>(init), lock_(std::move(lock)) {}

    /// Reads element `i` (checked), under the lock unless T is lock-free.
    [[nodiscard]] T load(std::size_t i) const {
        return detail::locked_unless_atomic<T>(lock_, [&] { return raw_array<T>::load(i); });
    }
    /// Writes element `i` (checked), under the lock unless T is lock-free.
    void store(std::size_t i, const T& v) const {
        detail::locked_unless_atomic<T>(lock_, [&] { raw_array<T>::store(i, v); });
    }

    /// The lock that guards the elements (Python: get_lock()).
    [[nodiscard]] Lock& get_lock() const noexcept { return lock_; }

    /// Crossing into a start::spawn or start::forkserver child, as a process argument: the
    /// child gets these same elements and their lock.
    void cross_out(crossing_writer& w) const
        requires detail::crosses_itself<Lock>
    {
        raw_array<T>::cross_out(w);
        lock_.cross_out(w);
    }
    /// In the child: the array cross_out sent.
    static array cross_in(crossing_reader& r)
        requires detail::crosses_itself<Lock>
    {
        return array(r);
    }

private:
    // Base first (the elements), then the lock: the order cross_out wrote them.
    explicit array(crossing_reader& r) : raw_array<T>(r), lock_(Lock::cross_in(r)) {}

    mutable Lock lock_;
};

MULTIPROC_ABI_END } // namespace multiproc
