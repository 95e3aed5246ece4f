// expect: multiproc: under start::spawn and start::forkserver the target must be stateless: a capturing lambda
#include <multiproc/process.hpp>
int main() {
    int n = 3;
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_process<multiproc::start::spawn> p([n] { (void)n; });
#else
    multiproc::basic_process<multiproc::start::spawn> p([](int k) { (void)k; }, n);
#endif
}
