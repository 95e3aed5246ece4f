// Seed 003, "2. multiProcess pool": Pool(), two apply_async calls, close(), join(). "Pool is
// just like syntax sugar for basic process": the same two functions as 003/basic.cpp, run by
// pool workers instead of processes of their own.

#include <multiproc/pool.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <unistd.h>

// The seed loops forever (`while True`) and sleeps 1.2 s a turn; three turns of 0.12 s
// show the same.
constexpr int turns = 3;
constexpr std::chrono::milliseconds nap(120);

void func1(const std::string& args1, const std::string& args2) {
    for (int i = 0; i < turns; ++i) {
        std::cout << "this is func1 with args: " << args1 << ", " << args2 << "---" << ::getpid() << "---"
                  << ::getppid() << std::endl;
        std::this_thread::sleep_for(nap);
    }
}

void func2(const std::string& args1, const std::string& args2) {
    for (int i = 0; i < turns; ++i) {
        std::cout << "this is func2 with args: " << args1 << ", " << args2 << "---" << ::getpid() << "---"
                  << ::getppid() << std::endl;
        std::this_thread::sleep_for(nap);
    }
}

int main() {
    multiproc::pool pool; // default: one worker per CPU (Python: Pool())
    pool.apply_async(func1, "func1...arg1", "func1...agr2");
    pool.apply_async(func2, "func2...arg1...", "func1...agr2...");

    pool.close(); // you don't need to start a pool, but you close it: no more tasks
    pool.join();  // and join only after close
}
