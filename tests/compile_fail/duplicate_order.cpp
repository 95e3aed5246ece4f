// expect: multiproc: at most one ordering policy \(order::ordered \| order::unordered\)
#include <multiproc/policies/resolve.hpp>
#ifdef MULTIPROC_COMPILE_FAIL
using set = multiproc::policy_set<multiproc::order::unordered, multiproc::order::unordered>;
#else
using set = multiproc::policy_set<multiproc::order::unordered>;
#endif
set::order* p = nullptr;
int main() { return p != nullptr; }
