// Not part of the API: std::chrono's durations, time points and clocks. In C++20,
// libstdc++'s <chrono> also brings the calendar, time zones and their I/O (<sstream>,
// <locale>), a quarter of what a small multiproc header costs the compiler; its
// <bits/chrono.h> holds exactly the part used here. Elsewhere, <chrono>.
#pragma once

#include <version> // defines __GLIBCXX__ under libstdc++

#if defined(__GLIBCXX__) && defined(__has_include)
#if __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#define MULTIPROC_DETAIL_CHRONO_CORE 1
#endif
#endif
#ifndef MULTIPROC_DETAIL_CHRONO_CORE
#include <multiproc/detail/util/chrono.hpp>
#endif
