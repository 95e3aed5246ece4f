// expect: multiproc: array<T> and raw_array<T> need a trivially copyable T
#include <multiproc/value.hpp>

#include <vector>

int main() {
    multiproc::array<int> fine(1);
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::array<std::vector<int>> a(2);
#endif
    return fine[0];
}
