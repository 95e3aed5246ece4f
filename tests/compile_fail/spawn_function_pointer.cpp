// expect: multiproc: under start::spawn and start::forkserver a function pointer cannot be a target.*multiproc::fn<&your_function>
#include <multiproc/process.hpp>
void work(int) {}
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_process<multiproc::start::spawn> p(work, 1);
#else
    multiproc::basic_process<multiproc::start::spawn> p(multiproc::fn<&work>, 1);
#endif
}
