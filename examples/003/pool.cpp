// Seed 003, "2. multiProcess pool": Pool(), two apply_async calls, close(), join(). "Pool is
// just like syntax sugar for basic process": the same two functions as 003/basic.cpp, run by
// pool workers instead of processes of their own.

#include <multiproc/pool.hpp>

#include "003/funcs.hpp"

int main() {
    multiproc::pool pool; // default: one worker per CPU (Python: Pool())
    pool.apply_async(func1, "func1...arg1", "func1...agr2");
    pool.apply_async(func2, "func2...arg1...", "func1...agr2...");

    pool.close(); // you don't need to start a pool, but you close it: no more tasks
    pool.join();  // and join only after close
}
