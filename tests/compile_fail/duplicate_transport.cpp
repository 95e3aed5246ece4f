// expect: multiproc: at most one transport policy \(transport::pipe \| transport::socketpair \| transport::shm\)
#include <multiproc/policies/resolve.hpp>
#ifdef MULTIPROC_COMPILE_FAIL
using set = multiproc::policy_set<multiproc::transport::shm, multiproc::transport::pipe>;
#else
using set = multiproc::policy_set<multiproc::transport::shm>;
#endif
set::transport* p = nullptr;
int main() { return p != nullptr; }
