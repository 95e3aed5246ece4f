// Not part of the API: the library's own names for the two ends of a crossing and the
// concept of a type that crosses by itself, now public in <multiproc/crossing.hpp> (kept
// here so that shared objects, locks and values, can cross without the serializers).
#pragma once

#include <multiproc/crossing.hpp>

namespace multiproc::detail {

using multiproc::crosses_itself;
using multiproc::crossing_reader;
using multiproc::crossing_writer;

} // namespace multiproc::detail
