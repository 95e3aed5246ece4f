// Seed 001, the subprocess snippet: subprocess.call runs a command as if typed in a shell,
// and Popen(...).communicate(input) feeds a program its input and collects its output.
// The seed queries DNS with nslookup, which needs a network and is not on every machine;
// here `ls` stands in for the first command and `sort`, fed three lines, for the second.

#include <multiproc/subprocess.hpp>

#include <iostream>

namespace subprocess = multiproc::subprocess;

int main() {
    std::cout << "$ ls -l /dev/null\n";
    // call() flushes std::cout first, so the line above comes before the child's output.
    int r = subprocess::call({"ls", "-l", "/dev/null"}); // as if typed on the command line
    std::cout << "Exit code: " << r << "\n\n";

    // A program that needs input.
    std::cout << "$ sort\n";
    subprocess::popen p({"sort"}, {.in = subprocess::pipe, .out = subprocess::pipe, .err = subprocess::pipe});
    auto [output, errors] = p.communicate("set q=mx\npython.org\nexit\n"); // typed, then end of input
    std::cout << output << '\n';
    std::cout << "Exit code: " << *p.returncode() << "\n\n";
}
