/// @file config.hpp
/// Compile-time configuration of multiproc (no Python counterpart).
#pragma once

#if !defined(__linux__)
#error "multiproc: only Linux is supported (it relies on fork, pidfd, futex and memfd)"
#endif
#if __cplusplus < 202002L
#error "multiproc: C++20 or later is required (use -std=c++20)"
// Stop here: #error lets the compiler go on, and it would print thousands of lines about
// the C++20 code that follows. An #include that cannot be found is a fatal error for GCC
// and Clang alike, so nothing after it is parsed. For this to be the first error, every
// public header that is not plain C++17 reaches this file before any C++20 code (most
// through detail/os/sys.hpp; the others include it first). ctest checks every public header.
#include "multiproc: compilation stopped: C++20 is required"
#endif

#include <multiproc/version.hpp>

// Everything the library declares lives in an inline namespace named after its major and
// minor version, multiproc::v0_1 for 0.1.z: code is written `multiproc::process` as ever,
// but two parts of one program built against different minor versions (whose types may
// differ) fail to link instead of meeting in memory. Headers open it with
// `namespace multiproc { MULTIPROC_ABI_BEGIN` and close it with `MULTIPROC_ABI_END }`.
// A program may reopen `namespace multiproc::serialize` (or another of the library's
// namespaces) to specialize a template there: the inline namespace is found through it.
#define MULTIPROC_DETAIL_ABI_NAME_2(major, minor) v##major##_##minor
#define MULTIPROC_DETAIL_ABI_NAME(major, minor) MULTIPROC_DETAIL_ABI_NAME_2(major, minor)
/// The name of the inline namespace: v<major>_<minor>.
#define MULTIPROC_ABI_NAMESPACE MULTIPROC_DETAIL_ABI_NAME(MULTIPROC_VERSION_MAJOR, MULTIPROC_VERSION_MINOR)
#define MULTIPROC_DETAIL_STRINGIFY_2(x) #x
#define MULTIPROC_DETAIL_STRINGIFY(x) MULTIPROC_DETAIL_STRINGIFY_2(x)
/// The same name as a string literal, "v0_1".
#define MULTIPROC_ABI_NAMESPACE_STRING MULTIPROC_DETAIL_STRINGIFY(MULTIPROC_ABI_NAMESPACE)
#define MULTIPROC_ABI_BEGIN inline namespace MULTIPROC_ABI_NAMESPACE {
#define MULTIPROC_ABI_END }

// MULTIPROC_FAULT_INJECTION, when defined before any multiproc header, lets a program
// make chosen system calls fail with a chosen errno (see detail/os/sys.hpp). The test suite
// defines it; it costs one relaxed atomic load per system call, and nothing without it.

// Whether the build has exceptions and RTTI (-fno-exceptions / -fno-rtti turn them off).
// Without exceptions every error multiproc would throw goes to the error handler
// (error.hpp: set_error_handler), which must not return; the try_ forms (try_start,
// try_get, try_put, try_recv, ...) report the errors a caller must be able to react to as
// a result<T> in both builds. Without RTTI, type names come from the compiler's function
// signature (detail/util/demangle.hpp), so a remote error names the task's exception type only
// where it is known statically.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define MULTIPROC_EXCEPTIONS 1
#else
#define MULTIPROC_EXCEPTIONS 0
#endif
#if defined(__GXX_RTTI) || defined(__cpp_rtti)
#define MULTIPROC_RTTI 1
#else
#define MULTIPROC_RTTI 0
#endif

// Not part of the API: try/catch that compile away without exceptions, where the catch
// blocks are dead (nothing can throw) but still type-check. MULTIPROC_CATCH(T, e) declares
// `T e` in the block as `catch (T e)` does; MULTIPROC_RETHROW is `throw;`.
#if MULTIPROC_EXCEPTIONS
#define MULTIPROC_TRY try
#define MULTIPROC_CATCH(T, e) catch (T e)
#define MULTIPROC_CATCH_ALL catch (...)
#define MULTIPROC_RETHROW throw
#else
#define MULTIPROC_TRY if (true)
#define MULTIPROC_CATCH(T, e) else if ([[maybe_unused]] T e = ::multiproc::detail::never_thrown<T>(); false)
#define MULTIPROC_CATCH_ALL else if (false)
#define MULTIPROC_RETHROW ::std::abort()
#include <cstdlib>
namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {
/// The exception a dead catch block names; never called (its block is `if (false)`).
template <class T>
T never_thrown() noexcept {
    ::std::abort();
}
} MULTIPROC_ABI_END } // namespace multiproc::detail
#endif
