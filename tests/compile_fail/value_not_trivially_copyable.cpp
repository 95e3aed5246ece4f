// expect: multiproc: value<T> and raw_value<T> need a trivially copyable T
// A std::string holds a pointer into one process's heap: it cannot live in shared memory.
#include <multiproc/value.hpp>

#include <string>

int main() {
    multiproc::value<int> fine(1);
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::value<std::string> v("no");
#endif
    return fine.load() - 1;
}
