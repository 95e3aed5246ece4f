// expect: multiproc: at most one start-method policy \(start::fork \| start::spawn \| start::forkserver\)
#include <multiproc/process.hpp>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_process<multiproc::start::fork, multiproc::daemon::yes, multiproc::start::fork> p([] {});
#else
    multiproc::basic_process<multiproc::start::fork, multiproc::daemon::yes> p([] {});
#endif
}
