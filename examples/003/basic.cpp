// Seed 003, "basic usage": two processes, each given two arguments, print their pid and
// their parent's pid in a loop while main waits for both.

#include <multiproc/process.hpp>

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
    multiproc::process p1(func1, "func1...arg1", "func1...agr2");
    multiproc::process p2(func2, "func2...arg1...", "func1...agr2...");
    p1.start(); // must start
    p2.start(); // must start

    p1.join(); // join makes the parent wait for p1
    p2.join(); // join makes the parent wait for p2
}
