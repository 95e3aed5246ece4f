// expect: multiproc: at most one nesting policy \(nested::forbid \| nested::allow\)
#include <multiproc/context.hpp>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::context<multiproc::nested::allow, multiproc::nested::forbid> ctx;
#else
    multiproc::context<multiproc::nested::allow> ctx;
#endif
    (void)ctx.process([] {});
}
