// expect: multiproc: every template argument must be a policy
// A lock takes policies, like every basic_X<Ps...>: anything else is refused.
#include <multiproc/sync.hpp>

int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_lock<int> l;
#else
    multiproc::basic_lock<multiproc::start::fork> l;
#endif
    return l.acquire(false) ? 0 : 1;
}
