// Seed 002, "Multiple processes": five processes are started and main does not wait for
// them. As in Python, the program does not end before them: at exit, multiproc joins
// every child that is not a daemon.

#include <multiproc/process.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

void do_stuff(const std::string& name, std::chrono::milliseconds sleep) {
    std::cout << name << " doing stuff..." << std::endl;
    std::this_thread::sleep_for(sleep);
    std::cout << name << " stuff done" << std::endl;
}

std::vector<multiproc::process> create_procs(int n_procs) {
    using namespace std::chrono_literals;
    std::vector<multiproc::process> procs;
    for (int i = 0; i < n_procs; ++i) procs.emplace_back(do_stuff, std::to_string(i), 100ms); // the seed: 10 s
    return procs;
}

void start_procs(std::vector<multiproc::process>& procs) {
    for (auto& proc : procs) proc.start();
}

int main() {
    auto procs = create_procs(5);
    start_procs(procs);
    // Destroying the process objects neither stops nor waits for the children.
}
