// expect: multiproc: the message type T cannot be serialized by the serialization policy S
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
