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
// through detail/sys.hpp; the others include it first). ctest checks every public header.
#include "multiproc: compilation stopped: C++20 is required"
#endif

// MULTIPROC_FAULT_INJECTION, when defined before any multiproc header, lets a program
// make chosen system calls fail with a chosen errno (see detail/sys.hpp). The test suite
// defines it; it costs one relaxed atomic load per system call, and nothing without it.
