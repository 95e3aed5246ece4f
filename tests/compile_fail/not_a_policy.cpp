// expect: multiproc: every template argument must be a policy, such as start::spawn or transport::shm
#include <multiproc/process.hpp>
struct not_a_policy {};
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_process<multiproc::daemon::yes, not_a_policy> p([] {});
#else
    multiproc::basic_process<multiproc::daemon::yes> p([] {});
#endif
}
