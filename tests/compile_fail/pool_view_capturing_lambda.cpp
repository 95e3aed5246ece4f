// expect: multiproc: a pool task's callable must not carry state \(no lambda captures
#include <multiproc/views/imap.hpp>
#include <vector>
int main() {
    multiproc::pool p(1);
    std::vector<int> xs{1, 2, 3};
    int k = 3;
#ifdef MULTIPROC_COMPILE_FAIL
    for (int y : xs | multiproc::views::imap(p, [&k](int x) { return x * k; })) (void)y;
#else
    for (int y : xs | multiproc::views::imap(p, [](int x) { return x * 3; })) (void)y;
    (void)k;
#endif
}
