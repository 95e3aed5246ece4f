// Seed 004 (PyMOTW), multiprocessing_import_worker: the target, defined in its own file.

#include "import_worker.hpp"

#include <iostream>

void worker() { std::cout << "Worker" << std::endl; }
