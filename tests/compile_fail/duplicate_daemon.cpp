// expect: multiproc: at most one daemon policy \(daemon::no \| daemon::yes\)
#include <multiproc/context.hpp>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::context<multiproc::daemon::yes, multiproc::daemon::no> ctx;
#else
    multiproc::context<multiproc::daemon::yes> ctx;
#endif
    (void)ctx.process([] {});
}
