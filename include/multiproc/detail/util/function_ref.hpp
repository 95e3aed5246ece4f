// Not part of the API: a non-owning reference to a callable, so that the queue and pipe
// engines take their per-message-type callbacks (encode into a span, decode from one)
// without being instantiated once per message type. A function pointer and a context
// pointer: no allocation, no virtual function.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <memory>
#include <type_traits>
#include <utility>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

template <class Signature>
class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
public:
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, function_ref> && std::is_invocable_r_v<R, F&, Args...>)
    function_ref(F&& f) noexcept // NOLINT: converts implicitly, as a lambda argument should
        : ctx_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* ctx, Args... args) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(ctx))(std::forward<Args>(args)...);
          }) {}

    R operator()(Args... args) const { return call_(ctx_, std::forward<Args>(args)...); }

private:
    void* ctx_;
    R (*call_)(void*, Args...);
};

} MULTIPROC_ABI_END } // namespace multiproc::detail
