// Seed 004 (PyMOTW), multiprocessing_import_main: the target function lives in another
// file (import_worker.cpp). A Python child must be able to import its target; under
// start::fork the child is a copy of this program, so a function from any translation
// unit is a target as it is.

#include <multiproc/process.hpp>

#include "import_worker.hpp"

#include <vector>

int main() {
    std::vector<multiproc::process> jobs;
    for (int i = 0; i < 5; ++i) {
        jobs.emplace_back(worker);
        jobs.back().start();
    }
}
