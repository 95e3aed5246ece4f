// Catch2 v3 when it is installed, else the v2 single header (Debian bookworm ships 2.13).
#pragma once
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define MULTIPROC_CATCH3 1
#else
#include <catch2/catch.hpp>
#endif
