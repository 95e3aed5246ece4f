// expect: multiproc: at most one serialization policy \(serialize::bitwise \| serialize::binary
#include <multiproc/policies/resolve.hpp>
#ifdef MULTIPROC_COMPILE_FAIL
using set = multiproc::policy_set<multiproc::serialize::binary, multiproc::order::ordered, multiproc::serialize::bitwise>;
#else
using set = multiproc::policy_set<multiproc::serialize::binary, multiproc::order::ordered>;
#endif
set::serialize* p = nullptr;
int main() { return p != nullptr; }
