/// @file config.hpp
/// Compile-time configuration of multiproc (no Python counterpart).
#pragma once

#if !defined(__linux__)
#error "multiproc: only Linux is supported (it relies on fork, pidfd, futex and memfd)"
#endif
#if __cplusplus < 202002L
#error "multiproc: C++20 or later is required (use -std=c++20)"
#endif

// MULTIPROC_FAULT_INJECTION, when defined before any multiproc header, lets a program
// make chosen system calls fail with a chosen errno (see detail/sys.hpp). The test suite
// defines it; it costs one relaxed atomic load per system call, and nothing without it.
