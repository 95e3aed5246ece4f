#!/usr/bin/env bash
# How an MPI job of a pool of ext::start::mpi ends (issue 18), one case per run:
#   outcomes.sh <case> <job> <job of another build> <launcher>...
# where the launcher is mpiexec with its options (tests/CMakeLists.txt passes launch.sh).
# <job> is tests/mpi/job.cpp built; the other build is the same source with
# MULTIPROC_TEST_VARIANT=1. Every case must end within ctest's timeout and leave no process
# of the job behind (each run carries a marker argument, so that pgrep finds only its own).
set -u
what=$1
job=$2
other=$3
shift 3
mpiexec=("$@")
marker="multiproc-outcome-$$-$RANDOM"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log

fail() {
    echo "FAIL ($what): $*"
    echo "--- what the job printed:"
    cat "$log"
    exit 1
}
# Runs a command, its output to the log; its exit status in $rc.
run() {
    "$@" >"$log" 2>&1
    rc=$?
}
expect_in_log() { grep -qF -- "$1" "$log" || fail "the output does not say: $1"; }
nothing_left() {
    if pgrep -f -- "$marker" >/dev/null; then
        pgrep -af -- "$marker"
        fail "processes of the job are left behind"
    fi
}

case $what in
ok) # a normal job: every rank ends when rank 0 leaves main()
    run "${mpiexec[@]}" -n 3 "$job" ok "$marker"
    [ "$rc" = 0 ] || fail "exit status $rc, not 0"
    expect_in_log "sum 328350"
    ;;
throw) # an exception out of main() on rank 0 ends every rank
    run "${mpiexec[@]}" -n 3 "$job" throw "$marker"
    [ "$rc" != 0 ] || fail "exit status 0"
    expect_in_log "rank 0 gives up"
    ;;
kill-rank) # a rank dies (in_rank: a task that kills its process): the job ends and says so
    run "${mpiexec[@]}" -n 3 "$job" kill-rank "$marker"
    [ "$rc" != 0 ] || fail "exit status 0"
    expect_in_log "signal 9"
    if grep -qF "went on" "$log"; then fail "rank 0 went on without the rank"; fi
    ;;
sigint) # Ctrl-C: SIGINT to mpiexec while a task runs on a rank ends the job
    mkfifo "$tmp/out"
    "${mpiexec[@]}" -n 3 "$job" sigint "$marker" >"$tmp/out" 2>&1 &
    pid=$!
    exec 3<"$tmp/out"
    ready=no
    while IFS= read -r line <&3; do
        echo "$line" >>"$log"
        if [ "$line" = ready ]; then
            ready=yes
            break
        fi
    done
    [ "$ready" = yes ] || fail "the job never said it was ready"
    cat <&3 >>"$log" &
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    wait # (the reader: it ends when mpiexec's output does)
    [ "$rc" != 0 ] || fail "exit status 0 after SIGINT"
    ;;
crash-worker) # a task kills its worker process on a rank (mpi<forkserver>): it fails, the job goes on
    run "${mpiexec[@]}" -n 3 "$job" crash-worker "$marker"
    [ "$rc" = 0 ] || fail "exit status $rc, not 0"
    expect_in_log "was killed by signal 9 (SIGKILL) while running task 0"
    expect_in_log "sum 328350"
    ;;
kill-agent) # rank 1 killed from outside while its worker process runs a task: the job ends
    mkfifo "$tmp/out"
    "${mpiexec[@]}" -n 3 "$job" kill-agent "$marker" >"$tmp/out" 2>&1 &
    pid=$!
    exec 3<"$tmp/out"
    blocking=0
    while [ "$blocking" -lt 2 ] && IFS= read -r line <&3; do
        echo "$line" >>"$log"
        if [ "$line" = blocking ]; then blocking=$((blocking + 1)); fi
    done
    [ "$blocking" = 2 ] || fail "the tasks never said they were blocking"
    cat <&3 >>"$log" &
    # (The job's processes now: the ranks and everything under them, the ranks' forkservers
    # and worker processes included, which do not carry the marker; each must end.)
    tree() { for c in $(pgrep -P "$1"); do echo "$c"; tree "$c"; done; }
    procs=$(tree "$pid")
    [ "$(echo "$procs" | wc -w)" -ge 7 ] || fail "expected 3 ranks, 2 forkservers and 2 workers: $procs"
    for p in $(pgrep -P "$pid"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then kill -KILL "$p"; fi
    done
    wait "$pid"
    rc=$?
    wait # (the reader)
    [ "$rc" != 0 ] || fail "exit status 0 after a rank was killed"
    expect_in_log "signal 9"
    if grep -qF "went on" "$log"; then fail "rank 0 went on without the rank"; fi
    for p in $procs; do # (a worker process of a dead rank ends when it notices: wait for it, bounded)
        timeout 10 tail --pid="$p" -f /dev/null || fail "process $p of the job is left behind"
    done
    ;;
two-builds) # rank 0 and the others run different builds: the job stops before any task
    run "${mpiexec[@]}" -n 1 "$job" ok "$marker" : -n 2 "$other" ok "$marker"
    [ "$rc" != 0 ] || fail "exit status 0"
    expect_in_log "runs a different build of the program than rank 0"
    if grep -qF "sum " "$log"; then fail "a task ran in a job of mixed builds"; fi
    ;;
not-launched) # not started by mpiexec: making the pool says how to start the program
    run "$job" ok "$marker"
    [ "$rc" = 3 ] || fail "exit status $rc, not 3"
    expect_in_log "was not started by an MPI launcher: start it as \`mpiexec -n 3 <program> [args]\`"
    ;;
no-freeze) # main() does not call freeze_support(): every rank says what is missing
    run "${mpiexec[@]}" -n 3 "$job" no-freeze "$marker"
    [ "$rc" != 0 ] || fail "exit status 0"
    expect_in_log "needs main() to call multiproc::freeze_support() first"
    ;;
*)
    echo "unknown case $what"
    exit 2
    ;;
esac
nothing_left
echo "ok ($what)"
