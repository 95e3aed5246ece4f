// AddressSanitizer's runtime made fork-safe for the test programs.
//
// The pools of the library fork their workers from an engine thread while the test's own
// thread goes on allocating. GCC 12's ASan runtime (libasan.so.8) takes none of its own locks
// around fork(). When the fork lands while another thread holds one of them, the child
// inherits it held, with no thread to let it go:
//   - the stack depot's block allocator (`__sanitizer::traceAllocator`), held while the
//     thread maps a fresh block for new allocation stacks: the child's first allocation with
//     a new stack spins for ever in `StaticSpinMutex::LockSlow` (google/sanitizers#774; seen
//     in CI as a replacement pool worker that never answered, about once in 20 runs of a test
//     that forks one while the test's thread calls `map`);
//   - the allocator's size-class regions, held while a thread refills or drains its cache;
//   - the thread registry, held while a thread starts or ends.
// glibc makes its own malloc safe across fork; LLVM 18's runtimes lock their thread
// registry, allocator and stack depot in a pthread_atfork handler. This does the same for
// the runtime these tests run with. Those functions and that object are internal to
// libasan, not exported: their addresses are read from the library's own symbol table
// (Debian does not strip it) once, at start. The allocator's lock is its first byte, as
// `refillAndAlloc` takes it (`xchg %al,(%rdi)`), and held and freed as the runtime does.
// Where any name is missing (another runtime, a stripped library), nothing is registered;
// with Clang (whose runtime is linked in statically) this header is empty.
//
// Registered by a constructor of priority 101, before any of the program's static
// initialisers, so before the library registers its own fork handlers (inline variables):
// prepare handlers run in the reverse order of registration, so this one runs last before
// fork() and first after it. The library's handlers take its own mutexes, which another
// thread may hold while it allocates: taking the runtime's locks after them cannot wait on
// such a thread, and the library's handlers after fork may allocate again.
//
// support/main.cpp includes this with TEST_SANITIZER_FORK_INSTALL defined, which registers
// the handler; tests/process/fork_safety.cpp includes it to check that the handler is there
// and that fork() waits for the lock.
#pragma once

#if defined(__SANITIZE_ADDRESS__) && !defined(__clang__) && defined(__linux__) && defined(__x86_64__)
#include <atomic>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace test::sanitizer_fork {

struct runtime {
    void (*lock_threads)() = nullptr;
    void (*unlock_threads)() = nullptr;
    void (*lock_allocator)() = nullptr;
    void (*unlock_allocator)() = nullptr;
    unsigned char* depot_block_lock = nullptr; // traceAllocator's StaticSpinMutex
    std::atomic<int> waited{0};                // times lock_depot_blocks found it held
};
inline runtime rt;

// Fills `rt` from the symbol table of the loaded libasan; false when a name is missing.
inline bool find_runtime() {
    struct found {
        const char* path = nullptr;
        ElfW(Addr) base = 0;
    } lib;
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* out) {
            if (info->dlpi_name && std::strstr(info->dlpi_name, "/libasan.so")) {
                *static_cast<found*>(out) = {info->dlpi_name, info->dlpi_addr};
                return 1;
            }
            return 0;
        },
        &lib);
    if (!lib.path) return false;
    const int fd = ::open(lib.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    void* map = ::fstat(fd, &st) == 0 ? ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                                     : MAP_FAILED;
    ::close(fd);
    if (map == MAP_FAILED) return false;
    const auto* bytes = static_cast<const unsigned char*>(map);
    const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(bytes);
    bool ok = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
              eh->e_shoff + std::size_t{eh->e_shnum} * sizeof(ElfW(Shdr)) <= static_cast<std::size_t>(st.st_size);
    void* fn[4] = {};
    void* depot = nullptr;
    if (ok) {
        const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(bytes + eh->e_shoff);
        for (unsigned i = 0; i < eh->e_shnum; ++i) {
            if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
            const auto& strtab = sh[sh[i].sh_link];
            if (sh[i].sh_offset + sh[i].sh_size > static_cast<std::size_t>(st.st_size) ||
                strtab.sh_offset + strtab.sh_size > static_cast<std::size_t>(st.st_size))
                break;
            const auto* sym = reinterpret_cast<const ElfW(Sym)*>(bytes + sh[i].sh_offset);
            const char* names = reinterpret_cast<const char*>(bytes + strtab.sh_offset);
            static const char* const wanted[] = {"_ZN6__lsan18LockThreadRegistryEv", "_ZN6__lsan20UnlockThreadRegistryEv",
                                                 "_ZN6__lsan13LockAllocatorEv", "_ZN6__lsan15UnlockAllocatorEv"};
            for (std::size_t k = 0; k < sh[i].sh_size / sizeof(ElfW(Sym)); ++k) {
                if (sym[k].st_name >= strtab.sh_size || sym[k].st_value == 0) continue;
                const char* name = names + sym[k].st_name;
                void* at = reinterpret_cast<void*>(lib.base + sym[k].st_value);
                for (int w = 0; w < 4; ++w)
                    if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && std::strcmp(name, wanted[w]) == 0) fn[w] = at;
                if (ELF64_ST_TYPE(sym[k].st_info) == STT_OBJECT &&
                    std::strcmp(name, "_ZN11__sanitizerL14traceAllocatorE") == 0)
                    depot = at;
            }
        }
    }
    ::munmap(map, static_cast<size_t>(st.st_size));
    if (!ok || !fn[0] || !fn[1] || !fn[2] || !fn[3] || !depot) return false;
    rt.lock_threads = reinterpret_cast<void (*)()>(fn[0]);
    rt.unlock_threads = reinterpret_cast<void (*)()>(fn[1]);
    rt.lock_allocator = reinterpret_cast<void (*)()>(fn[2]);
    rt.unlock_allocator = reinterpret_cast<void (*)()>(fn[3]);
    rt.depot_block_lock = static_cast<unsigned char*>(depot);
    return true;
}

// The depot's block lock, taken and given back as StaticSpinMutex does (an exchange of its
// byte, acquire; a store of 0, release).
inline void lock_depot_blocks() {
    std::atomic_ref<unsigned char> lock(*rt.depot_block_lock);
    if (lock.exchange(1, std::memory_order_acquire) == 0) return;
    rt.waited.fetch_add(1);
    while (lock.exchange(1, std::memory_order_acquire) != 0) ::sched_yield();
}
inline void unlock_depot_blocks() {
    std::atomic_ref<unsigned char>(*rt.depot_block_lock).store(0, std::memory_order_release);
}

// The forking thread's signal mask, kept from the prepare handler to the parent's and the
// child's (the runtime's locks, held meanwhile, let one fork at a time through).
inline sigset_t saved_mask;
// Signals are blocked while the locks are held: a handler that allocates (Catch2's, which
// reports a fatal signal) would wait for ever on the allocator's lock, in the parent, or in
// a child signalled before its first fork handler ran (seen: a test's terminate() reaching
// a child still inside fork(), which then never ended). Pending ones come once unlocked.
inline void lock_runtime() {
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old);
    rt.lock_threads();
    rt.lock_allocator();
    lock_depot_blocks();
    saved_mask = old;
}
inline void unlock_runtime() {
    const sigset_t old = saved_mask;
    unlock_depot_blocks();
    rt.unlock_allocator();
    rt.unlock_threads();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

#if defined(TEST_SANITIZER_FORK_INSTALL)
[[gnu::constructor(101), gnu::used]] static void install() {
    if (find_runtime()) ::pthread_atfork(lock_runtime, unlock_runtime, unlock_runtime);
}
#endif

} // namespace test::sanitizer_fork
#endif
