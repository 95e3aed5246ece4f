// expect: multiproc: under start::spawn and start::forkserver every argument must be data the child can rebuild
#include <multiproc/process.hpp>
#include <string>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_process<multiproc::start::spawn> p([](const std::string&) {}, "a literal is a pointer");
#else
    multiproc::basic_process<multiproc::start::spawn> p([](const std::string&) {}, std::string("a string"));
#endif
}
