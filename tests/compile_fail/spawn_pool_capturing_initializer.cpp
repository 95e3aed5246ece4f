// expect: multiproc: under start::spawn and start::forkserver a pool's initializer must be stateless
#include <multiproc/pool.hpp>
void setup(int) {}
int main() {
    multiproc::freeze_support();
    int level = 3;
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::basic_pool<multiproc::start::spawn> p(1, [level](int) { (void)level; }, std::tuple<int>{1});
#else
    multiproc::basic_pool<multiproc::start::spawn> p(1, multiproc::fn<&setup>, std::tuple<int>{level});
#endif
}
