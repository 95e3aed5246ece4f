// Output buffered (not flushed) before a start must be written once, not once per process.
#include "start_method.hpp"
#include <cstdio>
#include <iostream>
int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        std::printf("stdio-before ");    // stdout is a pipe: fully buffered, not yet written
        std::cout << "iostream-before "; // goes through the same stdio buffer
        auto p = Ctx{}.process([] { std::printf("child "); }); // flushed by the child at its end
        p.start();
        p.join();
        std::printf("after\n");
        return 0;
    });
}
