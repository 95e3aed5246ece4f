#!/bin/sh
# Builds the decoder fuzz target with clang (libFuzzer, AddressSanitizer, UBSan) in its
# own build directory and runs it for the given number of seconds (default 60), starting
# from the committed seed corpus. New inputs go to the build directory, not the corpus.
#   tests/fuzz/run.sh 60
# Environment: CXX_FUZZ (default clang++-14), FUZZ_BUILD_DIR (default build/fuzz).
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
cxx=${CXX_FUZZ:-clang++-14}
mkdir -p "$build/found"
flags="-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
echo "building $build/decode_fuzz with $cxx"
$cxx $flags -I"$root/include" "$here/decode.cpp" -o "$build/decode_fuzz"
echo "fuzzing for $seconds s"
# rss/malloc limits: a decoder that allocates what a corrupt count claims fails here.
exec "$build/decode_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
    -print_final_stats=1 "$build/found" "$here/corpus"
