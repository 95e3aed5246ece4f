// expect: multiproc: a pool task's callable must not carry state \(no lambda captures
#include <multiproc/pool.hpp>
#include <vector>
int main() {
    multiproc::pool p(1);
    int k = 3;
    std::vector<int> xs{1, 2, 3};
#ifdef MULTIPROC_COMPILE_FAIL
    (void)p.map([k](int x) { return x * k; }, xs);
#else
    (void)p.starmap([](int x, int k) { return x * k; }, std::vector<std::pair<int, int>>{{1, k}});
#endif
}
