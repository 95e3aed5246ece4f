// Not part of the API: what may be a pool task (checked at compile time, with sentences
// that say what to do), and how the submitting thread encodes chunks of tasks.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/pool/pool_codec.hpp>
#include <multiproc/detail/pool/pool_core.hpp>
#include <multiproc/detail/pool/pool_wire.hpp>
#include <multiproc/detail/util/per_thread.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What an argument travels as: text of any kind as std::string, anything else decayed.
template <class T>
struct wire_type {
    using type = std::remove_cvref_t<T>;
};
template <class T>
    requires std::is_convertible_v<const std::remove_cvref_t<T>&, std::string_view> &&
             (!std::is_same_v<std::remove_cvref_t<T>, std::string>)
struct wire_type<T> {
    using type = std::string;
};
template <class T>
using wire_t = typename wire_type<T>::type;

template <class T>
decltype(auto) to_wire(T&& v) {
    if constexpr (std::is_same_v<wire_t<T>, std::remove_cvref_t<T>>)
        return std::forward<T>(v);
    else
        return wire_t<T>(std::string_view(v));
}

// ============================================================================================
// READ THIS IF YOUR COMPILE BREAKS HERE
// --------------------------------------------------------------------------------------------
// A pool runs each task in a worker process that was started (forked) when the pool was made,
// before the task existed. Whatever a callable carries inside itself -- the captures of a
// lambda, the data members of a function object -- exists only in the process that made it,
// so a worker could never see it. The callable of a pool task must therefore be stateless:
// a plain function, a function pointer, or a lambda or function object without captures or
// data members. Pass the state as an argument instead:
//
//     int k = 3;
//     pool.map([k](int x) { return x * k; }, xs);                  // does not compile
//     pool.starmap([](int x, int k) { return x * k; }, pairs);     // k travels with each task
//     pool.apply([](int x, int k) { return x * k; }, 5, k);
//
// (multiproc::process, unlike a pool, forks after the callable exists, and takes any callable.)
// ============================================================================================
template <class F>
struct check_pool_callable {
    static_assert(is_stateless_callable<F>,
                  "multiproc: a pool task's callable must not carry state (no lambda captures, no data "
                  "members): the pool's workers were started before the task existed and cannot see it; "
                  "pass the state as an argument instead (see the comment above this line)");
    static constexpr bool value = is_stateless_callable<F>;
};

/// A task's callable under a start method whose workers run a fresh copy of the program.
template <class F, bool WorkersShareMemory>
struct check_callable_reaches_workers {
    static_assert(WorkersShareMemory || !is_function_pointer<F>,
                  "multiproc: under start::spawn and start::forkserver a pool task cannot be a function pointer, "
                  "because its value means nothing in a worker started from a fresh copy of the program; name "
                  "the function at compile time instead: multiproc::fn<&your_function>");
    static constexpr bool value = WorkersShareMemory || !is_function_pointer<F>;
};

/// check_serializable for a task's argument or result, with a sentence of its own for an
/// object with descriptors, which a pool cannot send (its tasks travel as data).
template <class T, class S>
constexpr bool check_task_value() {
    if constexpr (crosses_with_descriptors<T, S> && !serializer_for<S, T>) {
        static_assert(serializer_for<S, T>,
                      "multiproc: a pool task's argument or result T is an object with descriptors (a connection, "
                      "queue, lock, shared memory, page_buffer, or a vector or tuple of them), and a pool sends its "
                      "tasks and results as data, as Python's pool refuses a Queue; send it through a queue or a "
                      "connection the task reads, give it to a process as an argument, or under start::fork let "
                      "the initializer capture it");
        type_cannot_be_serialized_by<T, S> carrier;
        (void)carrier;
        return true;
    } else {
        return check_serializable<T, S>();
    }
}

/// The compile-time checks of a task `f(a...)`, each with a sentence naming the fix.
template <class Codec, class F, class... A>
constexpr bool check_task() {
    (void)check_pool_callable<F>::value; // its static_assert is the message
    if constexpr (is_stateless_callable<F>) {
        static_assert(std::is_invocable_v<F&, A&...>,
                      "multiproc: the task cannot be called with these arguments; a worker calls f(args...) with "
                      "its own decoded copy of each argument, passed as an lvalue (text arrives as std::string)");
        if constexpr (Codec::in_memory) {
            // start::thread: values are moved, not serialized.
            static_assert((Codec::template supports<A>() && ...),
                          "multiproc: an argument of a start::thread pool's task must be move-constructible "
                          "(it is moved, or copied from an lvalue, into the task and then to the worker thread)");
            if constexpr (std::is_invocable_v<F&, A&...>) {
                using R = std::remove_cvref_t<std::invoke_result_t<F&, A&...>>;
                static_assert(std::is_void_v<R> || Codec::template supports<R>(),
                              "multiproc: the result of a start::thread pool's task must be move-constructible");
            }
        } else {
            // An argument or result the pool's serialization policy cannot send fails here,
            // with check_serializable's sentence naming the type and the policy.
            (void)(check_task_value<A, typename Codec::serializer>() && ...);
            if constexpr (std::is_invocable_v<F&, A&...>) {
                using R = std::remove_cvref_t<std::invoke_result_t<F&, A&...>>;
                if constexpr (!std::is_void_v<R>) (void)check_task_value<R, typename Codec::serializer>();
            }
        }
    }
    return true;
}

/// Appends one task message of `count` elements (written by `encode_elements(out)`) for
/// `Inv`, and its unit, whose element 0 has index `first` in the job's input. With
/// `ext_len`, the elements are not written here but borrowed: `ext_len` bytes at `ext` in
/// the job's input (job_core::source), which go from there straight into a worker's task
/// ring; only the header is appended (encode_elements writes nothing).
template <class Inv, class F, class Enc>
void encode_chunk(byte_buffer& out, std::vector<unit_meta>& units, job_core* job, const F& f, std::uint64_t first,
                  std::uint32_t count, Enc&& encode_elements, std::uint64_t ext = 0, std::size_t ext_len = 0) {
    const std::size_t at = begin_task<Inv>(out, f);
    box_arena* arena = Inv::codec::in_memory ? &job->boxes : nullptr;
    {
        arena_scope<Inv::codec::in_memory> values_go_to(arena);
        encode_elements(out);
    }
    unit_meta u;
    u.job = job;
    u.first = first;
    u.lo = 0;
    u.hi = count;
    u.size = end_task(out, at, count, arena, ext_len);
    u.own = checked_size(out.size() - at); // (all of it, padding included, unless it borrows)
    u.ext = ext;
    u.ext_len = checked_size(ext_len);
    units.push_back(u);
}

/// Whether a task of callable F has own bytes (header and callable) of a multiple of 8,
/// as a unit that borrows its elements must (the next unit's header in a worker's log
/// holds the claim word, read atomically).
template <class F>
inline constexpr bool borrows_aligned = (sizeof(task_header) + callable_wire<F>::size) % 8 == 0;


/// Encodes elements [0, n) of a random-access range of single arguments, `W` on the wire.
template <class Codec, class W, class It>
void encode_run(byte_buffer& out, It it, std::size_t n) {
    using V = std::remove_cvref_t<decltype(*it)>;
    if constexpr (std::is_same_v<V, W> && Codec::template fixed_size<W>() == sizeof(W) && std::contiguous_iterator<It>) {
        out.append(std::to_address(it), n * sizeof(W)); // the whole run at once
    } else {
        for (std::size_t i = 0; i < n; ++i, ++it) Codec::template encode<W>(out, to_wire(*it));
    }
}

/// A chunksize given by the user, checked as CPython checks it ("Chunksize must be 1+, not
/// -1"); capped at what a chunk can count (2^32 - 1 elements).
inline std::size_t checked_chunksize(std::ptrdiff_t n) {
    if (n < 1) detail::raise(value_error("Chunksize must be 1+, not " + std::to_string(n)));
    return static_cast<std::size_t>(std::min<std::ptrdiff_t>(n, 0xffffffff));
}

/// A scratch buffer per thread for building messages, so that submitting does not allocate
/// once it has grown to size.
inline byte_buffer& scratch_buffer() {
    byte_buffer& b = per_thread<byte_buffer>();
    b.clear();
    return b;
}
inline std::vector<unit_meta>& scratch_units() {
    std::vector<unit_meta>& u = per_thread<std::vector<unit_meta>>();
    u.clear();
    return u;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
