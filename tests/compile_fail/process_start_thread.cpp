// expect: multiproc: start::thread makes the workers of a pool threads
// start::thread is a start method for pools only (issue 17 item 6): a process cannot be a
// thread, and says so; the control starts the same process under start::fork.
#include <multiproc/process.hpp>

#ifdef MULTIPROC_COMPILE_FAIL
using start_method = multiproc::start::thread;
#else
using start_method = multiproc::start::fork;
#endif

void work() {}

int main() {
    multiproc::basic_process<start_method> p(work);
    p.start();
    p.join();
    return p.exitcode() == 0 ? 0 : 1;
}
