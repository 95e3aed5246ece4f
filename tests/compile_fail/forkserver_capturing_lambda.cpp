// expect: multiproc: under start::spawn and start::forkserver the target must be stateless: a capturing lambda
#include <multiproc/context.hpp>
int main() {
    int n = 3;
    multiproc::context<multiproc::start::forkserver> ctx;
#ifdef MULTIPROC_COMPILE_FAIL
    auto p = ctx.process([&] { (void)n; });
#else
    auto p = ctx.process([](int k) { (void)k; }, n);
#endif
}
