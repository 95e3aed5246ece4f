// Seed 004 (PyMOTW), multiprocessing_subclass: a process defined by a class whose run()
// does the work. Python overrides Process.run; C++ derives from process_base<Self> (no
// virtual functions). The class name gives the default process names: Worker-1, ...

#include <multiproc/process.hpp>

#include <iostream>
#include <vector>

struct Worker : multiproc::process_base<Worker> {
    void run() { std::cout << "In " << name() << std::endl; }
};

int main() {
    std::vector<Worker> jobs;
    for (int i = 0; i < 5; ++i) {
        jobs.emplace_back();
        jobs.back().start();
    }
    for (auto& j : jobs) j.join();
}
