/// @file 003/funcs.hpp
/// The two functions of seed 003, shared by its "basic usage" (processes) and "multiProcess
/// pool" examples: each prints its arguments, its pid and its parent's pid, turn after turn.
#pragma once

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <unistd.h>

// The seed loops forever (`while True`) and sleeps 1.2 s a turn; three turns of 0.12 s
// show the same.
constexpr int turns = 3;
constexpr std::chrono::milliseconds nap(120);

inline void print_turns(const char* func, const std::string& args1, const std::string& args2) {
    for (int i = 0; i < turns; ++i) {
        std::cout << "this is " << func << " with args: " << args1 << ", " << args2 << "---" << ::getpid() << "---"
                  << ::getppid() << std::endl;
        std::this_thread::sleep_for(nap);
    }
}

inline void func1(const std::string& args1, const std::string& args2) { print_turns("func1", args1, args2); }
inline void func2(const std::string& args1, const std::string& args2) { print_turns("func2", args1, args2); }
