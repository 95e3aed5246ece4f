// expect: multiproc: under start::spawn and start::forkserver a process subclass with data members must list them
#include <multiproc/process.hpp>
#include <string>
#include <tuple>
struct worker : multiproc::process_base<worker, multiproc::start::spawn> {
    std::string text;
#ifndef MULTIPROC_COMPILE_FAIL
    auto fields() { return std::tie(text); }
#endif
    void run() {}
};
int main() { worker w; }
