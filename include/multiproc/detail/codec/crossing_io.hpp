// Not part of the API: the library's own names for the two ends of a crossing and the
// concept of a type that crosses by itself, now public in <multiproc/crossing.hpp> (kept
// here so that shared objects, locks and values, can cross without the serializers).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/crossing.hpp>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

using multiproc::crosses_itself;
using multiproc::crossing_reader;
using multiproc::crossing_writer;

} MULTIPROC_ABI_END } // namespace multiproc::detail
