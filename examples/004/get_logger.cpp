// Seed 004 (PyMOTW), multiprocessing_get_logger: get_logger() gives the same logger, to
// change its level (or its handler) directly.

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <iostream>

void worker() { std::cout << "Doing some work" << std::endl; }

int main() {
    multiproc::log_to_stderr();
    auto logger = multiproc::get_logger();
    logger.set_level(multiproc::log_level::info);

    multiproc::process p(worker);
    p.start();
    p.join();
}
