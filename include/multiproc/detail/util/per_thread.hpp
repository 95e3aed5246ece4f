// Not part of the API: buffers and tables kept per thread, usable to the thread's very end.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// A `T` per thread, kept from one use to the next (`Tag` tells apart two uses of one type).
/// A thread's thread_local objects are destroyed first when it ends, and the main thread's
/// when the program exits, before the program's static objects: a library object at
/// namespace scope (a manager, a proxy) still sends and receives from its destructor then.
/// After its own `T` is gone, a thread gets another, never freed: the thread is ending.
template <class T, class Tag = T>
T& per_thread() {
    thread_local bool gone = false; // (trivially destructible: readable after the owner is gone)
    if (gone) {
        thread_local T* late = nullptr;
        if (!late) late = new T();
        return *late;
    }
    struct owner {
        T value{};
        owner() = default;
        owner(const owner&) = delete;
        owner& operator=(const owner&) = delete;
        ~owner() { gone = true; }
    };
    thread_local owner mine;
    return mine.value;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
