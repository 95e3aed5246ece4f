// expect: multiproc: the target cannot be called with these arguments
#include <multiproc/process.hpp>
#include <string>
void work(int, const std::string&) {}
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::process p(work, "no int", 3);
#else
    multiproc::process p(work, 3, "text");
#endif
}
