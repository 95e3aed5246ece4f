// Seed 004 (PyMOTW), multiprocessing_daemon_join: join() waits for a daemon too, so this
// time the daemon gets to print "Exiting".

#include <multiproc/process.hpp>

#include <chrono>
#include <iostream>
#include <thread>

void daemon_task() {
    std::string name = multiproc::current_process().name();
    std::cout << "Starting: " << name << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // PyMOTW: 2 s
    std::cout << "Exiting : " << name << std::endl;
}

void non_daemon_task() {
    std::string name = multiproc::current_process().name();
    std::cout << "Starting: " << name << std::endl;
    std::cout << "Exiting : " << name << std::endl;
}

int main() {
    multiproc::process d(multiproc::process_options{.name = "daemon", .daemon = true}, daemon_task);
    multiproc::process n(multiproc::process_options{.name = "non-daemon"}, non_daemon_task);

    d.start();
    n.start();

    d.join();
    n.join();
}
