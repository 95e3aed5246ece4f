/// @file version.hpp
/// The version of multiproc (Python: multiprocessing has none of its own).
#pragma once

#define MULTIPROC_VERSION_MAJOR 0
#define MULTIPROC_VERSION_MINOR 1
#define MULTIPROC_VERSION_PATCH 0
/// One number that grows with each release: major * 10000 + minor * 100 + patch.
#define MULTIPROC_VERSION (MULTIPROC_VERSION_MAJOR * 10000 + MULTIPROC_VERSION_MINOR * 100 + MULTIPROC_VERSION_PATCH)
#define MULTIPROC_VERSION_STRING "0.1.0"
