// Seed 002, "Child Processes and Daemons": any process may start a process. Here the
// child starts a daemon child of its own and ends; ending, it terminates its daemon
// child, so "child done" is never printed. (A daemon itself may not start children.)

#include <multiproc/process.hpp>

#include <multiproc/sync.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

void foo_child(multiproc::event& started) {
    std::cout << "daemon child sleeping for 10 seconds..." << std::endl;
    started.set();
    // Never runs to its end: the daemon is terminated when its parent ends, 0.2 s in.
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::cout << "child done" << std::endl;
}

void foo() {
    // Start a daemon child: a process starting a process.
    multiproc::event child_started;
    multiproc::process child_proc(foo_child, std::ref(child_started));
    child_proc.daemon(true); // Python: Process(target=foo_child, daemon=True)
    child_proc.start();
    std::cout << "parent sleeping for 0.2 seconds..." << std::endl; // the seed: 5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // However slowly the daemon child starts, let it print its line before this process
    // ends and terminates it.
    child_started.wait();
    std::cout << "parent done" << std::endl;
}

int main() {
    multiproc::process proc(foo);
    proc.start();
    // main does not wait here; at exit, multiproc joins proc.
}
