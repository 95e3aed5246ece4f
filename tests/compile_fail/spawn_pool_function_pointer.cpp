// expect: multiproc: under start::spawn and start::forkserver a pool task cannot be a function pointer
#include <multiproc/pool.hpp>
int square(int x) { return x * x; }
int main() {
    multiproc::freeze_support();
    multiproc::basic_pool<multiproc::start::spawn> p(1);
#ifdef MULTIPROC_COMPILE_FAIL
    (void)p.apply(square, 3);
#else
    (void)p.apply(multiproc::fn<&square>, 3);
#endif
}
