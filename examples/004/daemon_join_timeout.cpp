// Seed 004 (PyMOTW), multiprocessing_daemon_join_timeout: join(timeout) returns when the
// time is up even if the process is still running; is_alive() tells which happened.

#include <multiproc/process.hpp>

#include <multiproc/sync.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

void daemon_task(multiproc::event& started) {
    std::string name = multiproc::current_process().name();
    std::cout << "Starting: " << name << std::endl;
    started.set();
    // Must outlast the join(100ms) below however busy the machine is: longer than
    // PyMOTW's 2 s. It costs nothing: the daemon is terminated when the program ends.
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::cout << "Exiting : " << name << std::endl;
}

void non_daemon_task() {
    std::string name = multiproc::current_process().name();
    std::cout << "Starting: " << name << std::endl;
    std::cout << "Exiting : " << name << std::endl;
}

int main() {
    multiproc::event daemon_started;
    multiproc::process d(multiproc::process_options{.name = "daemon", .daemon = true}, daemon_task,
                         std::ref(daemon_started));
    multiproc::process n(multiproc::process_options{.name = "non-daemon"}, non_daemon_task);

    d.start();
    n.start();
    // Let the daemon print its first line before the program ends and terminates it,
    // however slowly it starts.
    daemon_started.wait();

    d.join(std::chrono::milliseconds(100)); // PyMOTW: join(1)
    std::cout << "d.is_alive() " << std::boolalpha << d.is_alive() << std::endl;
    n.join();
}
