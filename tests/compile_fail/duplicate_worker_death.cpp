// expect: multiproc: at most one worker-death policy
#include <multiproc/pool.hpp>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_pool<multiproc::worker_death::fail, multiproc::worker_death::retry<2>>* p = nullptr;
    (void)sizeof(*p);
#else
    multiproc::basic_pool<multiproc::worker_death::retry<2>>* p = nullptr;
    (void)p;
#endif
}
