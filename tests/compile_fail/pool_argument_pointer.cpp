// expect: multiproc: an argument of this type cannot be sent to a pool worker
#include <multiproc/pool.hpp>
int deref(int* p) { return *p; }
int value(int v) { return v; }
int main() {
    multiproc::pool p(1);
    int x = 1;
#ifdef MULTIPROC_COMPILE_FAIL
    (void)p.apply(deref, &x);
#else
    (void)p.apply(value, x);
#endif
}
