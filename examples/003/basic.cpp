// Seed 003, "basic usage": two processes, each given two arguments, print their pid and
// their parent's pid in a loop while main waits for both.

#include <multiproc/process.hpp>

#include "003/funcs.hpp"

int main() {
    multiproc::process p1(func1, "func1...arg1", "func1...agr2");
    multiproc::process p2(func2, "func2...arg1...", "func1...agr2...");
    p1.start(); // must start
    p2.start(); // must start

    p1.join(); // join makes the parent wait for p1
    p2.join(); // join makes the parent wait for p2
}
