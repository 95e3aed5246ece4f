// Seed 004 (PyMOTW), multiprocessing_exitcode: the exit code tells how a process ended:
// 0 it returned, N it called exit(N) or threw (1), -N it was killed by signal N.

#include <multiproc/process.hpp>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

void exit_error() { std::exit(1); } // Python: sys.exit(1)

void exit_ok() {}

// A return value is not an exit code: the process exits with 0.
int return_value() { return 1; }

// An uncaught exception: exit code 1, and "Process <name>:" with the exception on stderr.
void raises() { throw std::runtime_error("There was an error!"); }

// Terminated at once; the sleep never completes.
void terminated() { std::this_thread::sleep_for(std::chrono::seconds(10)); }

int main() {
    std::vector<multiproc::process> jobs;
    auto start = [&jobs](const std::string& name, auto target) {
        std::cout << "Starting process for " << name << '\n';
        jobs.emplace_back(multiproc::process_options{.name = name}, target);
        jobs.back().start();
    };
    start("exit_error", exit_error);
    start("exit_ok", exit_ok);
    start("return_value", return_value);
    start("raises", raises);
    start("terminated", terminated);

    jobs.back().terminate();

    for (auto& j : jobs) {
        j.join();
        std::cout << std::setw(15) << j.name() << ".exitcode = " << *j.exitcode() << '\n';
    }
}
