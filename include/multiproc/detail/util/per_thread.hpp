// Not part of the API: buffers and tables kept per thread, usable to the thread's very end.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <pthread.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

// The slots behind per_thread<T, Tag>: the thread's own `T`, and the one it gets late.
template <class T, class Tag>
struct per_thread_slots {
    static inline thread_local bool gone = false; // (trivially destructible: readable after the owner is gone)
    static inline thread_local T* late = nullptr;

    // A thread's pthread keys' destructors run after its thread_local objects' (glibc's
    // thread exit: the C++ destructors, then the keys'), so the late `T` is freed there. A
    // use from a later key destructor of someone else's gets another, freed the same way
    // (the keys' destructors run again for values set meanwhile, up to
    // PTHREAD_DESTRUCTOR_ITERATIONS rounds).
    static void free_late(void* p) noexcept {
        if (late == p) late = nullptr;
        delete static_cast<T*>(p);
    }

    static T& make_late() {
        // (A function-local static: made once, by the first thread that needs it.)
        static const struct key_holder {
            pthread_key_t key{};
            bool made = pthread_key_create(&key, &free_late) == 0;
        } k;
        late = new T();
        // Without a key (the process used up PTHREAD_KEYS_MAX), the late `T` is never freed:
        // the thread is ending. The main thread's is not either: it ends with the process
        // (exit() runs no key destructors).
        if (k.made) (void)pthread_setspecific(k.key, late);
        return *late;
    }
};

/// A `T` per thread, kept from one use to the next (`Tag` tells apart two uses of one type).
/// A thread's thread_local objects are destroyed first when it ends, and the main thread's
/// when the program exits, before the program's static objects: a library object at
/// namespace scope (a manager, a proxy) still sends and receives from its destructor then,
/// and so can a thread_local object of the program's own. After its own `T` is gone, a
/// thread gets another, freed when the thread's pthread keys are (the main thread's: never,
/// the process is ending).
template <class T, class Tag = T>
T& per_thread() {
    using slots = per_thread_slots<T, Tag>;
    if (slots::gone) [[unlikely]]
        return slots::late ? *slots::late : slots::make_late();
    struct owner {
        T value{};
        owner() = default;
        owner(const owner&) = delete;
        owner& operator=(const owner&) = delete;
        ~owner() { slots::gone = true; }
    };
    thread_local owner mine;
    return mine.value;
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
