// expect: multiproc: pool.imap and pool.imap_unordered return a range-v3 view: #include <multiproc/views/imap.hpp> to use them
// pool.hpp alone does not read range-v3 (issue 16): imap needs the view's header, and says so.
#include <multiproc/pool.hpp>
#ifndef MULTIPROC_COMPILE_FAIL
#include <multiproc/views/imap.hpp> // the control: with the header, the same call compiles
#endif

#include <vector>

int twice(int x) { return 2 * x; }

int main() {
    multiproc::pool p(1);
    std::vector<int> xs{1, 2, 3};
    int sum = 0;
    for (int y : p.imap(twice, xs)) sum += y;
    return sum == 12 ? 0 : 1;
}
