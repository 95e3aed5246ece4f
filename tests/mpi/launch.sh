#!/usr/bin/env bash
# The launcher of the MPI test programs (their CROSSCOMPILING_EMULATOR, tests/CMakeLists.txt):
#   launch.sh <mpiexec> [<mpiexec option>...] -- <program> [<argument>...]
# Runs the program under mpiexec, except when Catch2 is asked to list (test discovery): then
# the program runs alone (it lists and needs no ranks), and its exit status, the count Catch2
# returns, is not taken by mpiexec for a failed job. tests/mpi/outcomes.sh starts its jobs
# through it too.
set -u
# Under AddressSanitizer, LeakSanitizer is off in MPI jobs: Open MPI 4.1 leaves thousands of
# allocations behind at MPI_Finalize, most of them made in plugins it has unloaded by then,
# which leaves no module name for a suppression to match. The rest of ASan and UBSan stays
# on (docs/design/mpi.md, "Testing").
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
launcher=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    launcher+=("$1")
    shift
done
shift # --
for arg in "$@"; do
    case $arg in
    --list-*) exec "$@" ;;
    esac
done
exec "${launcher[@]}" "$@"
