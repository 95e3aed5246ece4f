// expect: multiproc: at most one policy of each kind; two of the policies given share a policy_kind
#include <multiproc/policies/resolve.hpp>
struct my_kind {};
struct a { using policy_kind = my_kind; };
struct b { using policy_kind = my_kind; };
#ifdef MULTIPROC_COMPILE_FAIL
using set = multiproc::policy_set<a, multiproc::daemon::yes, b>;
#else
using set = multiproc::policy_set<a, multiproc::daemon::yes>;
#endif
set::daemon* p = nullptr;
int main() { return p != nullptr; }
