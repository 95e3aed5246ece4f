#!/bin/sh
# Builds the fuzz targets with clang (libFuzzer, AddressSanitizer, UBSan) in their own
# build directory and runs each for a third of the given number of seconds (default 60 in all),
# starting from the committed seed corpora. New inputs go to the build directory, not the
# corpora.
#   decode_fuzz  the message decoder of serialize::binary        (corpus/)
#   frames_fuzz  the framing layer of every transport: stream    (corpus_frames/)
#                frames, chunks and the chunk journal, rings
#   handshake_fuzz  the authkey exchange of connection.hpp       (corpus_handshake/)
#   tests/fuzz/run.sh 60
# Environment: CXX_FUZZ (default clang++-14), FUZZ_BUILD_DIR (default build/fuzz).
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
cxx=${CXX_FUZZ:-clang++-14}
flags="-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
third=$(( (seconds + 2) / 3 ))
# run <target> <corpus dir> [<link flags>]: rss/malloc limits make a decoder or a framing layer that
# allocates what a corrupt length claims fail here.
run() {
    mkdir -p "$build/found-$1"
    echo "building $build/$1_fuzz with $cxx"
    $cxx $flags -I"$root/include" -I"$root/tests" "$here/$1.cpp" -o "$build/$1_fuzz" ${3:-}
    echo "fuzzing $1 for $third s"
    "$build/$1_fuzz" -max_total_time="$third" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -print_final_stats=1 "$build/found-$1" "$here/$2"
}
run decode corpus
run frames corpus_frames
run handshake corpus_handshake -lcrypto
