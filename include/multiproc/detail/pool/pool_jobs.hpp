// Not part of the API: the kinds of pool job (Python: ApplyResult, MapResult, IMapIterator)
// and how each decodes the results of its units.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/util/demangle.hpp>
#include <multiproc/detail/pool/pool_codec.hpp>
#include <multiproc/detail/pool/pool_core.hpp>
#include <multiproc/detail/pool/pool_wire.hpp>
#include <multiproc/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// What a task's result is kept as: void becomes std::monostate.
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// Reads the outcome of each element of a unit from its result message, in order:
/// `on_value(index, reader)` must decode one value; `on_error(index, error_ptr)`.
/// A message that cannot be decoded fails the elements it has not yet reported.
template <class OnValue, class OnError>
void read_unit(const unit_meta& u, const std::byte* msg, std::size_t size, const worker_ref& worker, OnValue&& on_value,
               OnError&& on_error) {
    const auto h = load_pod<result_header>(msg);
    std::uint32_t i = u.lo;
    MULTIPROC_TRY {
        if (h.errors_at < sizeof h || h.errors_at > size) detail::raise(serialization_error("multiproc: a malformed result message"));
        pool_reader values(msg + sizeof h, h.errors_at - sizeof h);
        pool_reader errs(msg + h.errors_at, size - h.errors_at);
        std::uint32_t errors_left = h.errors;
        std::optional<error_entry> next;
        auto advance = [&] {
            next.reset();
            if (errors_left) {
                --errors_left;
                next = get_error(errs);
            }
        };
        advance();
        for (; i < u.hi; ++i) {
            const std::uint64_t index = u.first + i;
            if (next && next->element == i) {
                on_error(index, error_ptr(worker.place ? remote_error(next->type, next->what, worker.pid, index,
                                                                      worker.place->rank, worker.place->host)
                                                         : remote_error(next->type, next->what, worker.pid, index)));
                advance();
            } else {
                on_value(index, values);
            }
        }
    } MULTIPROC_CATCH_ALL {
        auto [type, what] = describe_current_exception();
        for (; i < u.hi; ++i)
            on_error(u.first + i, error_ptr(serialization_error(
                                      "multiproc: the result of task " + std::to_string(u.first + i) +
                                      " could not be decoded: " + what)));
    }
}

/// The state behind an async_result<V>: a value or an error, and the callbacks.
template <class V>
struct result_state : job_core {
    using value_type = V;
    using callback_type = std::conditional_t<std::is_void_v<V>, std::function<void()>, std::function<void(const stored_t<V>&)>>;

    explicit result_state(const job_ops* ops) : job_core(ops) {}

    std::optional<stored_t<V>> value;
    error_ptr failure;
    callback_type on_value;
    std::function<void(const multiproc::error&)> on_error;

    void set_callbacks(callback_type c, std::function<void(const multiproc::error&)> e) {
        on_value = std::move(c);
        on_error = std::move(e);
        has_callbacks = static_cast<bool>(on_value) || static_cast<bool>(on_error);
    }

    static void run_callbacks(job_core& jc) {
        auto& j = static_cast<result_state&>(jc);
        MULTIPROC_TRY {
            if (j.failure) {
                if (j.on_error) {
                    j.on_error(*j.failure);
                }
            } else if (j.on_value) {
                if constexpr (std::is_void_v<V>)
                    j.on_value();
                else
                    j.on_value(*j.value);
            }
        } MULTIPROC_CATCH_ALL {
            report_callback_exception();
        }
    }

    static void fail_first(job_core& jc, std::uint64_t, error_ptr e) {
        auto& j = static_cast<result_state&>(jc);
        if (!j.failure) j.failure = std::move(e); // the first error wins, as in CPython
    }
};

/// apply / apply_async: one element.
template <class Codec, class T>
struct value_job : result_state<T> {
    value_job() : result_state<T>(&ops) {}

    static void deliver(job_core& jc, const unit_meta& u, const std::byte* msg, std::size_t size, const worker_ref& worker) {
        auto& j = static_cast<value_job&>(jc);
        read_unit(
            u, msg, size, worker,
            [&](std::uint64_t, pool_reader& in) {
                if constexpr (std::is_void_v<T>)
                    j.value.emplace();
                else
                    j.value.emplace(Codec::template decode<T>(in));
            },
            [&](std::uint64_t i, error_ptr e) { result_state<T>::fail_first(j, i, std::move(e)); });
    }

    static constexpr job_ops ops{&deliver, &result_state<T>::fail_first, &result_state<T>::run_callbacks};
};

/// map / starmap and their async forms: a vector filled chunk by chunk (void: nothing kept).
template <class Codec, class T>
struct map_job : result_state<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> {
    using base = result_state<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>;

    /// Whether a chunk's values are just the bytes of its elements, back to back.
    static constexpr bool bulk_copyable_impl() {
        if constexpr (std::is_void_v<T> || std::is_same_v<T, bool>)
            return false;
        else
            return Codec::template fixed_size<T>() == sizeof(T);
    }
    template <class>
    static constexpr bool bulk_copyable() { return bulk_copyable_impl(); }

    explicit map_job(std::size_t n) : base(&ops) {
        if constexpr (std::is_void_v<T>)
            this->value.emplace();
        else
            this->value.emplace(n);
    }

    static void deliver(job_core& jc, const unit_meta& u, const std::byte* msg, std::size_t size, const worker_ref& worker) {
        auto& j = static_cast<map_job&>(jc);
        if constexpr (bulk_copyable<T>()) {
            // No errors: the values are the elements' bytes, back to back. One memcpy.
            const auto h = load_pod<result_header>(msg);
            const std::size_t n = u.hi - u.lo;
            if (h.errors == 0 && h.errors_at == sizeof h + n * sizeof(T) && h.errors_at <= size) {
                std::memcpy(static_cast<void*>(j.value->data() + (u.first + u.lo)), msg + sizeof h, n * sizeof(T));
                return;
            }
        }
        read_unit(
            u, msg, size, worker,
            [&](std::uint64_t i, pool_reader& in) {
                if constexpr (std::is_void_v<T>)
                    (void)i, (void)in;
                else
                    (*j.value)[static_cast<std::size_t>(i)] = Codec::template decode<T>(in);
            },
            [&](std::uint64_t i, error_ptr e) { base::fail_first(j, i, std::move(e)); });
    }

    static constexpr job_ops ops{&deliver, &base::fail_first, &base::run_callbacks};
};

/// One element's outcome, as imap yields it.
template <class T>
struct outcome {
    std::optional<stored_t<T>> value;
    error_ptr failure;
};

/// imap / imap_unordered: outcomes kept until the iterating thread takes them. Ordered:
/// slot k holds index base+k, and the complete prefix can be taken. Unordered: as they come.
template <class Codec, class T, bool Ordered>
struct imap_job : job_core {
    imap_job() : job_core(&ops) {
        notify_each = true;
        open = true;
    }

    std::deque<std::optional<outcome<T>>> slots; // ordered
    std::uint64_t base = 0;
    std::size_t prefix = 0;
    std::deque<outcome<T>> arrived; // unordered
    std::atomic<std::size_t> available{0};

    void put(std::uint64_t index, outcome<T>&& o) {
        if constexpr (Ordered) {
            const auto k = static_cast<std::size_t>(index - base);
            if (slots.size() <= k) slots.resize(k + 1);
            slots[k].emplace(std::move(o));
            while (prefix < slots.size() && slots[prefix]) ++prefix;
            available.store(prefix, std::memory_order_release);
        } else {
            arrived.push_back(std::move(o));
            available.store(arrived.size(), std::memory_order_release);
        }
    }

    /// Moves every outcome that may be yielded now to `out` (under the pool's lock).
    void take(std::deque<outcome<T>>& out) {
        if constexpr (Ordered) {
            for (std::size_t k = 0; k < prefix; ++k) out.push_back(std::move(*slots.front())), slots.pop_front();
            base += prefix;
            prefix = 0;
        } else {
            for (auto& o : arrived) out.push_back(std::move(o));
            arrived.clear();
        }
        available.store(0, std::memory_order_release);
    }

    static void deliver(job_core& jc, const unit_meta& u, const std::byte* msg, std::size_t size, const worker_ref& worker) {
        auto& j = static_cast<imap_job&>(jc);
        read_unit(
            u, msg, size, worker,
            [&](std::uint64_t i, pool_reader& in) {
                outcome<T> o;
                if constexpr (std::is_void_v<T>)
                    o.value.emplace();
                else
                    o.value.emplace(Codec::template decode<T>(in));
                j.put(i, std::move(o));
            },
            [&](std::uint64_t i, error_ptr e) { j.put(i, outcome<T>{std::nullopt, std::move(e)}); });
    }

    static void fail(job_core& jc, std::uint64_t index, error_ptr e) {
        static_cast<imap_job&>(jc).put(index, outcome<T>{std::nullopt, std::move(e)});
    }

    static constexpr job_ops ops{&deliver, &fail, nullptr};
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
