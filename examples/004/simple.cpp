// Seed 004 (PyMOTW), multiprocessing_simple: five processes run a target function.

#include <multiproc/process.hpp>

#include <iostream>
#include <vector>

void worker() { std::cout << "Worker" << std::endl; }

int main() {
    std::vector<multiproc::process> jobs;
    for (int i = 0; i < 5; ++i) {
        jobs.emplace_back(worker);
        jobs.back().start();
    }
    // No join: at exit, multiproc waits for the children, as Python does.
}
