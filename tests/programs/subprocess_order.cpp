// Output buffered before subprocess::call comes before the child's, even when stdout is a
// pipe (CPython leaves it in the buffer, so it comes after).
#include <multiproc/subprocess.hpp>
#include <cstdio>
#include <iostream>

int main() {
    std::printf("printf before\n");
    std::cout << "cout before\n";
    int rc = multiproc::subprocess::call({"echo", "child"});
    std::printf("after %d\n", rc);
}
