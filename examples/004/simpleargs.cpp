// Seed 004 (PyMOTW), multiprocessing_simpleargs: each process is given a number to print.
// Python must pickle the arguments for the child; under start::fork the child simply
// gets its own copy of each argument.

#include <multiproc/process.hpp>

#include <iostream>
#include <vector>

void worker(int num) { std::cout << "Worker: " << num << std::endl; }

int main() {
    std::vector<multiproc::process> jobs;
    for (int i = 0; i < 5; ++i) {
        jobs.emplace_back(worker, i);
        jobs.back().start();
    }
}
