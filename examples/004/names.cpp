// Seed 004 (PyMOTW), multiprocessing_names: every process has a name, given or default,
// which it can read through current_process().

#include <multiproc/process.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

void worker() {
    std::string name = multiproc::current_process().name();
    std::cout << name << " Starting" << std::endl;
    std::this_thread::sleep_for(100ms); // PyMOTW: 2 s
    std::cout << name << " Exiting" << std::endl;
}

void my_service() {
    std::string name = multiproc::current_process().name();
    std::cout << name << " Starting" << std::endl;
    std::this_thread::sleep_for(150ms); // PyMOTW: 3 s
    std::cout << name << " Exiting" << std::endl;
}

int main() {
    multiproc::process service(multiproc::process_options{.name = "my_service"}, my_service);
    multiproc::process worker_1(multiproc::process_options{.name = "worker 1"}, worker);
    // Unnamed: Process-3, since it is the third process object made here.
    multiproc::process worker_2(worker);

    worker_1.start();
    worker_2.start();
    service.start();
}
