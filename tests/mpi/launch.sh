#!/usr/bin/env bash
# The launcher of the MPI test programs (their CROSSCOMPILING_EMULATOR, tests/CMakeLists.txt):
#   launch.sh <mpiexec> [<mpiexec option>...] -- <program> [<argument>...]
# Runs the program under mpiexec, except when Catch2 is asked to list (test discovery): then
# the program runs alone (it lists and needs no ranks), and its exit status, the count Catch2
# returns, is not taken by mpiexec for a failed job.
set -u
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
