// Output buffered (not flushed) before a start must be written once, not once per process.
#include <multiproc/process.hpp>
#include <cstdio>
#include <iostream>
int main() {
    std::printf("stdio-before ");       // stdout is a pipe: fully buffered, not yet written
    std::cout << "iostream-before ";    // goes through the same stdio buffer
    multiproc::process p([] { std::printf("child "); }); // flushed by the child at its end
    p.start();
    p.join();
    std::printf("after\n");
}
