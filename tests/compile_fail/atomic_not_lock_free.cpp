// expect: multiproc: atomic operations need a T that std::atomic_ref handles without a lock
// A 24-byte struct would take libatomic's per-process locks: useless between processes.
#include <multiproc/value.hpp>

struct point {
    double x, y, z;
};

int main() {
    multiproc::value<point> p(point{1, 2, 3});
#ifdef MULTIPROC_COMPILE_FAIL
    p.exchange(point{4, 5, 6});
#endif
    return p.load().x == 1 ? 0 : 1;
}
