// Seed 004 (PyMOTW), multiprocessing_terminate: terminate() kills a process (SIGTERM);
// join() afterwards waits until it is gone and records its exit code. Printing a process
// shows Python 3.12's repr of it.

#include <multiproc/process.hpp>

#include <chrono>
#include <iostream>
#include <thread>

// PyMOTW's worker prints "Starting worker" and "Finished worker", but is terminated before
// either shows. This one prints nothing: whether a first line would get out before the
// SIGTERM is a matter of luck. It sleeps long, never to the end.
void slow_worker() { std::this_thread::sleep_for(std::chrono::seconds(10)); }

int main() {
    multiproc::process p(slow_worker);
    std::cout << std::boolalpha;
    std::cout << "BEFORE: " << p << ' ' << p.is_alive() << '\n';

    p.start();
    std::cout << "DURING: " << p << ' ' << p.is_alive() << '\n';

    p.terminate();
    std::cout << "TERMINATED: " << p << ' ' << p.is_alive() << '\n';

    // Join after terminate(), so that the object learns that the process has ended.
    p.join();
    std::cout << "JOINED: " << p << ' ' << p.is_alive() << '\n';
}
