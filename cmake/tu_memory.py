#!/usr/bin/env python3
"""Peak compiler memory per translation unit (issue 16: no test TU may need more than 2.5 GiB).

As CMAKE_CXX_COMPILER_LAUNCHER (CMakeLists.txt sets it when MULTIPROC_TU_MEMORY is ON, as
the dev and asan presets do):

    tu_memory.py --log <file> <compiler> <arguments...>

runs the compiler command, then appends "<peak KiB> <CPU seconds> <object file, absolute>" to
<file>: the largest resident set of the compiler and its children (cc1plus) and the CPU time
they took (user + system), from getrusage(RUSAGE_CHILDREN). The compiler's exit code is passed
through.

    tu_memory.py --check <file> <limit KiB>

prints the 10 largest and the 10 slowest translation units of the log and their total CPU time
(the last entry of each object still there: a rebuild supersedes the earlier one), and fails
with a sentence naming every one over the memory limit.
"""
import os
import resource
import subprocess
import sys


def run(log, command):
    code = subprocess.call(command)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    obj = os.path.abspath(command[command.index("-o") + 1]) if "-o" in command[:-1] else "?"
    if code == 0:
        # One write in append mode: lines from parallel compilers do not interleave.
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{peak} {cpu:.2f} {obj}\n".encode())
        finally:
            os.close(fd)
    return code


def check(log, limit):
    peaks, cpus = {}, {}
    with open(log) as f:
        for line in f:
            kib, cpu, obj = line.rstrip("\n").split(" ", 2)
            if os.path.exists(obj):  # (not an object of a target since removed)
                peaks[obj], cpus[obj] = int(kib), float(cpu)
    ranked = sorted(peaks.items(), key=lambda item: item[1], reverse=True)
    print(f"The 10 largest of {len(ranked)} translation units (peak compiler memory, {log}):")
    for obj, kib in ranked[:10]:
        print(f"{kib / 1048576:8.2f} GiB  {obj}")
    print(f"The 10 slowest (compiler CPU time; all {len(ranked)} together: {sum(cpus.values()) / 60:.1f} min):")
    for obj, cpu in sorted(cpus.items(), key=lambda item: item[1], reverse=True)[:10]:
        print(f"{cpu:8.1f} s    {obj}")
    over = [(obj, kib) for obj, kib in ranked if kib > limit]
    for obj, kib in over:
        print(f"multiproc: {obj} took {kib} KiB ({kib / 1048576:.2f} GiB) to compile, over the limit of "
              f"{limit} KiB ({limit / 1048576:.2f} GiB); split it (see tests/CMakeLists.txt, "
              "multiproc_test_per_start).", file=sys.stderr)
    return 1 if over else 0


def main(argv):
    if len(argv) == 3 and argv[0] == "--check":
        return check(argv[1], int(argv[2]))
    if len(argv) >= 3 and argv[0] == "--log":
        return run(argv[1], argv[2:])
    print("usage: tu_memory.py --log <file> <compiler> <arguments...> | --check <file> <limit KiB>",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
