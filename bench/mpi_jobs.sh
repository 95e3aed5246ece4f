#!/usr/bin/env bash
# Whole MPI jobs of bench_mpi (bench/mpi.cpp), timed from outside (issue 18), each beside raw
# MPI in the same run:
#   - a job's start to its end: mpiexec of 3 ranks whose rank 0 makes a pool of
#     ext::start::mpi<in_rank> and runs one task, beside MPI_Init_thread + a barrier +
#     MPI_Finalize alone;
#   - how long after a rank dies the job has ended: a task SIGKILLs its rank (printing when),
#     beside a raw job whose rank 1 kills itself while rank 0 waits on it in MPI_Recv.
# Medians of N runs (default 5):
#   mpi_jobs.sh [--runs N] <bench_mpi> <mpiexec> [<mpiexec option>...]
set -u
runs=5
if [ "${1:-}" = --runs ]; then
    runs=$2
    shift 2
fi
bench=$1
shift
mpiexec=("$@")

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
fail() {
    echo "mpi_jobs.sh: $*" >&2
    exit 1
}

# start_us <mode>: the median wall time (µs) of a job of that mode, which must succeed.
start_us() {
    local i t0 t1
    for ((i = 0; i < runs; i++)); do
        t0=$(now_ns)
        "${mpiexec[@]}" -n 3 "$bench" "$1" >/dev/null 2>&1 || fail "the job of bench_mpi $1 failed"
        t1=$(now_ns)
        echo $(((t1 - t0) / 1000))
    done | median
}

# end_after_kill_us <mode>: the median time (µs) from a rank's death (the time it printed)
# to the end of mpiexec, which must report a failure.
end_after_kill_us() {
    local i out rc t1 killed
    for ((i = 0; i < runs; i++)); do
        out=$("${mpiexec[@]}" -n 3 "$bench" "$1" 2>&1)
        rc=$?
        t1=$(now_ns)
        [ "$rc" != 0 ] || fail "the job of bench_mpi $1 ended with status 0 after a rank was killed"
        killed=$(sed -n 's/.*killed at \([0-9][0-9]*\).*/\1/p' <<<"$out" | head -n 1)
        [ -n "$killed" ] || fail "the job of bench_mpi $1 did not say when its rank died:"$'\n'"$out"
        echo $(((t1 - killed) / 1000))
    done | median
}

row() { # <figure> <multiproc µs> <raw µs>
    awk -v f="$1" -v m="$2" -v r="$3" 'BEGIN { printf "%-44s %10.1f ms %10.1f ms %7.2fx\n", f, m / 1000, r / 1000, m / r }'
}

printf '%-44s %13s %13s %8s\n' "whole jobs of 3 ranks (median of $runs)" "multiproc" "raw MPI" "ratio"
mp=$(start_us --start) || exit 1
raw=$(start_us --raw-start) || exit 1
row "job start to end, one task on a pool" "$mp" "$raw"
mp=$(end_after_kill_us --kill) || exit 1
raw=$(end_after_kill_us --raw-kill) || exit 1
row "job end after a worker rank is killed" "$mp" "$raw"
