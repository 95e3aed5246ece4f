// expect: multiproc: a pool task's argument or result T is an object with descriptors
#include <multiproc/pool.hpp>
#include <multiproc/shared_memory.hpp>
std::size_t size_of(const multiproc::page_buffer& b) { return b.size(); }
int value(int v) { return v; }
int main() {
    multiproc::pool p(1);
#ifdef MULTIPROC_COMPILE_FAIL
    (void)p.apply(size_of, multiproc::page_buffer(4096));
#else
    (void)p.apply(value, 1);
#endif
}
