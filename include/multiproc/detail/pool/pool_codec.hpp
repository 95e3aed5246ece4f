// Not part of the API: how the pool turns task arguments and results into bytes and back.
// Every encode and decode of the pool goes through pool_codec<S>, which hands each value to
// the pool's serialization policy S (serialize::binary by default). A pool message holds
// many values back to back, and a policy decodes one whole frame at a time, so each value
// is framed: a value whose encoding is its object representation (S::encoded_size is
// always sizeof(T)) travels bare, and a run of them is one memcpy; any other value is
// preceded by its length.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/codec/binary.hpp>
#include <multiproc/detail/codec/bytes.hpp>
#include <multiproc/error.hpp>
#include <multiproc/serialize.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A growable run of bytes that never zero-fills: what messages are built in.
class byte_buffer {
public:
    byte_buffer() = default;
    byte_buffer(byte_buffer&& o) noexcept
        : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)), cap_(std::exchange(o.cap_, 0)) {}
    byte_buffer& operator=(byte_buffer&& o) noexcept {
        if (this != &o) {
            std::free(p_);
            p_ = std::exchange(o.p_, nullptr);
            size_ = std::exchange(o.size_, 0);
            cap_ = std::exchange(o.cap_, 0);
        }
        return *this;
    }
    byte_buffer(const byte_buffer&) = delete;
    byte_buffer& operator=(const byte_buffer&) = delete;
    ~byte_buffer() { std::free(p_); }

    [[nodiscard]] std::byte* data() noexcept { return p_; }
    [[nodiscard]] const std::byte* data() const noexcept { return p_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    void clear() noexcept { size_ = 0; }

    /// Makes room for `n` more bytes and returns where they go (uninitialized); size grows by n.
    std::byte* grow(std::size_t n) {
        if (size_ + n > cap_) reserve(std::max(size_ + n, cap_ * 2 + 64));
        std::byte* at = p_ + size_;
        size_ += n;
        return at;
    }
    void append(const void* src, std::size_t n) {
        if (n) std::memcpy(grow(n), src, n);
    }
    /// Makes the content a copy of `n` bytes at `src`; false, leaving it as it was, if there
    /// is no memory for them (never throws).
    [[nodiscard]] bool try_assign(const void* src, std::size_t n) noexcept {
        if (!try_reserve(n)) return false;
        if (n) std::memcpy(p_, src, n);
        size_ = n;
        return true;
    }
    void reserve(std::size_t n) {
        if (!try_reserve(n)) detail::raise(std::bad_alloc());
    }
    /// As reserve; false, with nothing changed, if there is no memory.
    [[nodiscard]] bool try_reserve(std::size_t n) noexcept {
        if (n <= cap_) return true;
        void* q = std::realloc(p_, n);
        if (!q) return false;
        p_ = static_cast<std::byte*>(q);
        cap_ = n;
        return true;
    }
    /// Drops bytes [at, at + n) (moves the rest down).
    void erase(std::size_t at, std::size_t n) noexcept {
        if (at >= size_) return;
        n = std::min(n, size_ - at);
        std::memmove(p_ + at, p_ + at + n, size_ - at - n);
        size_ -= n;
    }
    /// Drops the first `n` bytes (moves the rest down).
    void erase_front(std::size_t n) noexcept {
        if (n >= size_) {
            size_ = 0;
            return;
        }
        std::memmove(p_, p_ + n, size_ - n);
        size_ -= n;
    }
    void shrink(std::size_t n) noexcept { size_ = n; }

private:
    std::byte* p_ = nullptr;
    std::size_t size_ = 0, cap_ = 0;
};

/// Reads values out of a run of bytes; running past the end is a serialization_error.
class pool_reader {
public:
    pool_reader(const std::byte* p, std::size_t n) noexcept : p_(p), end_(p + n) {}
    [[nodiscard]] const std::byte* take(std::size_t n) {
        if (static_cast<std::size_t>(end_ - p_) < n)
            detail::raise(serialization_error("multiproc: a pool message ended early (corrupt or truncated data)"));
        const std::byte* at = p_;
        p_ += n;
        return at;
    }
    [[nodiscard]] const std::byte* pos() const noexcept { return p_; }
    [[nodiscard]] std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

private:
    const std::byte* p_;
    const std::byte* end_;
};

/// Whether S encodes every T as its object representation, sizeof(T) bytes: then values
/// travel bare and a contiguous run of them is copied at once. True for serialize::bitwise
/// and for serialize::binary's block types (arithmetic types, fixed enums, arrays and
/// aggregates of those without padding); a policy of your own can say so with a member
/// `template <class T> static constexpr bool object_representation`.
template <class S, class T>
consteval bool encodes_as_object_representation() {
    if constexpr (!serializer_for<S, T>)
        return false;
    else if constexpr (std::is_same_v<S, serialize::bitwise>)
        return true;
    else if constexpr (std::is_same_v<S, serialize::binary>)
        return bin::block<T>();
    else if constexpr (requires { S::template object_representation<T>; })
        return S::template object_representation<T>;
    else
        return false;
}

/// The codec of the pool: encode into a byte_buffer, decode from a pool_reader.
template <class S>
struct pool_codec {
    using serializer = S;
    /// Values cross as bytes (workers are processes); see thread_codec for the other kind.
    static constexpr bool in_memory = false;

    /// Whether T can travel to or from a worker.
    template <class T>
    static constexpr bool supports() {
        return serializer_for<S, T>;
    }

    /// Bytes per value when every T travels bare as its sizeof(T) bytes (then n values are
    /// n times that, back to back), else 0.
    template <class T>
    static constexpr std::size_t fixed_size() {
        if constexpr (encodes_as_object_representation<S, T>())
            return sizeof(T);
        else
            return 0;
    }

    template <class T>
    static void encode(byte_buffer& out, const T& v) {
        if constexpr (fixed_size<T>() != 0) {
            out.append(std::addressof(v), sizeof(T));
        } else {
            // Room for the length, then the value, then the length filled in.
            const std::size_t at = out.size();
            (void)out.grow(sizeof(std::uint64_t));
            writer w{out};
            S::encode(v, w);
            const std::uint64_t n = out.size() - at - sizeof(std::uint64_t);
            std::memcpy(out.data() + at, &n, sizeof n);
        }
    }

    template <class T>
    static T decode(pool_reader& in) {
        if constexpr (fixed_size<T>() != 0) {
            span_reader r({in.take(sizeof(T)), sizeof(T)});
            return S::template decode<T>(r);
        } else {
            const std::size_t n = get_size(in);
            span_reader r({in.take(n), n});
            return S::template decode<T>(r);
        }
    }

    /// Moves past one encoded T without building it.
    template <class T>
    static void skip(pool_reader& in) {
        if constexpr (fixed_size<T>() != 0)
            (void)in.take(sizeof(T));
        else
            (void)in.take(get_size(in));
    }

    /// Whether a T can be written and read in place (store_bare, load_bare): it travels bare
    /// and is trivially copyable.
    template <class T>
    static constexpr bool in_place() {
        return fixed_size<T>() != 0 && std::is_trivially_copyable_v<T>;
    }

    /// A T that travels bare, written at `to` / read from `at`, which the caller checked hold
    /// its sizeof(T) bytes: the value's object representation, as encode writes it (S says
    /// that is its encoding), with no frame or bounds check.
    template <class T>
        requires(in_place<T>())
    static void store_bare(std::byte* to, const T& v) noexcept {
        std::memcpy(to, std::addressof(v), sizeof(T));
    }
    template <class T>
        requires(in_place<T>())
    static T load_bare(const std::byte* at) noexcept {
        std::array<std::byte, sizeof(T)> bytes;
        std::memcpy(bytes.data(), at, sizeof(T));
        return std::bit_cast<T>(bytes);
    }

private:
    struct writer {
        byte_buffer& out;
        void write(const void* p, std::size_t n) { out.append(p, n); }
    };
    static std::size_t get_size(pool_reader& in) {
        std::uint64_t v;
        std::memcpy(&v, in.take(sizeof v), sizeof v);
        if (v > in.left())
            detail::raise(serialization_error("multiproc: a pool message ended early: a value of " + std::to_string(v) +
                                      " bytes, " + std::to_string(in.left()) + " left (corrupt or truncated data)"));
        return static_cast<std::size_t>(v);
    }
};


// ---------------------------------------------------------------------------------------
// start::thread: values that stay in memory.

/// One value a thread pool's message points at (box<T>), linked into the arena of the job
/// it belongs to. `destroy` frees it (a function pointer: no virtual dispatch).
struct box_base {
    box_base* prev = nullptr;
    box_base* next = nullptr;
    class box_arena* arena = nullptr;
    void (*destroy)(box_base*) noexcept = nullptr;
};

template <class T>
struct box : box_base {
    template <class V>
    explicit box(V&& v) : value(std::forward<V>(v)) {}
    T value;
    static void destroy_box(box_base* b) noexcept { delete static_cast<box*>(b); }
};

/// Owns every value of one job that a message of a thread pool points at: an argument until
/// the worker thread takes it, a result until the caller's side takes it. What is never
/// taken (a task cancelled or withdrawn before it ran, a result nobody wants, the pool
/// terminated) goes with the job, so no path that drops a message undecoded leaks it. The
/// job outlives every thread that may still read its values (pool_core keeps it listed
/// while a unit of it is in flight, and a slot pins it past terminate() until its thread
/// has left).
class box_arena {
public:
    box_arena() = default;
    box_arena(const box_arena&) = delete;
    box_arena& operator=(const box_arena&) = delete;
    ~box_arena() {
        for (box_base* b = head_; b;) {
            box_base* next = b->next;
            b->destroy(b);
            b = next;
        }
    }

    void add(box_base* b) noexcept {
        std::lock_guard lk(mu_);
        b->arena = this;
        b->prev = nullptr;
        b->next = head_;
        if (head_) head_->prev = b;
        head_ = b;
    }
    /// Unlinks `b` (the caller then owns it).
    void remove(box_base* b) noexcept {
        std::lock_guard lk(mu_);
        if (b->prev) b->prev->next = b->next;
        else head_ = b->next;
        if (b->next) b->next->prev = b->prev;
    }

    /// The arena that values encoded on this thread now go to (arena_scope sets it).
    static box_arena*& current() noexcept {
        thread_local box_arena* a = nullptr;
        return a;
    }

private:
    std::mutex mu_;
    box_base* head_ = nullptr;
};

/// Makes `a` the arena of the values encoded on this thread until the scope ends; nothing
/// at all unless `Active` (a codec's in_memory: process pools pay no thread-local write).
template <bool Active>
class arena_scope {
public:
    explicit arena_scope(box_arena* a) noexcept : saved_(std::exchange(box_arena::current(), a)) {}
    arena_scope(const arena_scope&) = delete;
    arena_scope& operator=(const arena_scope&) = delete;
    ~arena_scope() { box_arena::current() = saved_; }

private:
    box_arena* saved_;
};
template <>
class arena_scope<false> {
public:
    explicit arena_scope(box_arena*) noexcept {}
};

/// The codec of a pool whose workers are threads of this process (start::thread): nothing
/// is serialized. A value that S would send as its object representation (arithmetic types,
/// arrays and aggregates of them) is still copied into the message, as that is the cheapest
/// way; any other value is moved (or copied, from an lvalue) into a box owned by the job,
/// and the message carries its address; the receiving side moves it out. So a task may take
/// and return types that no serialization policy knows (std::unique_ptr, a pointer, a type
/// of your own), and a 100 MB vector crosses without a byte copied.
template <class S>
struct thread_codec {
    using serializer = S;
    static constexpr bool in_memory = true;
    using bytes = pool_codec<S>;

    /// Whether T travels as its bytes (else in a box).
    template <class T>
    static constexpr bool bare = bytes::template fixed_size<T>() != 0;

    template <class T>
    static constexpr bool supports() {
        return bare<T> || std::is_move_constructible_v<T>;
    }

    template <class T>
    static constexpr std::size_t fixed_size() {
        return bytes::template fixed_size<T>();
    }

    template <class T, class V>
    static void encode(byte_buffer& out, V&& v) {
        if constexpr (bare<T>) {
            bytes::template encode<T>(out, v);
        } else {
            box_arena* a = box_arena::current();
            if (!a) detail::raise(state_error("multiproc: a thread pool's value was encoded outside of a job (a bug)"));
            auto* b = new box<T>(std::forward<V>(v));
            b->destroy = &box<T>::destroy_box;
            a->add(b);
            box_base* p = b;
            out.append(&p, sizeof p);
        }
    }

    template <class T>
    static T decode(pool_reader& in) {
        if constexpr (bare<T>) {
            return bytes::template decode<T>(in);
        } else {
            box_base* p = nullptr;
            std::memcpy(&p, in.take(sizeof p), sizeof p);
            auto* b = static_cast<box<T>*>(p);
            b->arena->remove(b);
            std::unique_ptr<box<T>> owned(b);
            return T(std::move(b->value));
        }
    }

    template <class T>
    static void skip(pool_reader& in) {
        if constexpr (bare<T>)
            bytes::template skip<T>(in);
        else
            (void)in.take(sizeof(box_base*));
    }

    template <class T>
    static constexpr bool in_place() {
        return bytes::template in_place<T>();
    }
    template <class T>
        requires(in_place<T>())
    static void store_bare(std::byte* to, const T& v) noexcept {
        bytes::template store_bare<T>(to, v);
    }
    template <class T>
        requires(in_place<T>())
    static T load_bare(const std::byte* at) noexcept {
        return bytes::template load_bare<T>(at);
    }
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
