// Seed 004 (PyMOTW), multiprocessing_log_to_stderr: log_to_stderr() shows what
// multiproc does inside each process. Its lines are below WARNING: none shows until the level is lowered.

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <iostream>

void worker() { std::cout << "Doing some work" << std::endl; }

int main() {
    multiproc::log_to_stderr(multiproc::log_level::debug);
    multiproc::process p(worker);
    p.start();
    p.join();
}
