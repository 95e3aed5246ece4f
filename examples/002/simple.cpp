// Seed 002, "Simple Example": one process that does some work while main waits for it.

#include <multiproc/process.hpp>

#include <chrono>
#include <iostream>
#include <thread>

void do_stuff(std::chrono::milliseconds sleep) {
    std::cout << "doing stuff..." << std::endl;
    std::this_thread::sleep_for(sleep);
    std::cout << "stuff done" << std::endl;
}

// Python needs `if __name__ == "__main__":` so that a spawned child, which imports this
// script, does not start processes again. In C++ main() runs once, whatever the start method.
int main() {
    using namespace std::chrono_literals;
    multiproc::process proc(do_stuff, 100ms); // the seed sleeps 10 s
    proc.start();
    proc.join();
}
