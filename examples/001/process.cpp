// Seed 001, Process(target=run_process, args=('test',)): a child runs a function with an
// argument while the parent waits for it.

#include <multiproc/process.hpp>

#include <iostream>
#include <string>

#include <unistd.h>

// Dummy task run in the child. Flush each line (std::endl): a child that is killed loses
// whatever it still buffers.
void run_process(const std::string& name) {
    std::cout << "Running child process '" << name << "' (" << ::getpid() << ")" << std::endl;
}

int main() {
    std::cout << "Parent process " << ::getpid() << '\n';
    multiproc::process p(run_process, std::string("test"));
    std::cout << "Child process starting...\n";
    p.start(); // flushes std::cout first, so the child does not inherit buffered lines
    p.join();
    std::cout << "Child process ends.\n";
    std::cout << "Parent process ends.\n";
}
