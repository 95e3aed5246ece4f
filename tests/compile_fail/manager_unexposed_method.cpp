// expect: multiproc: this member function is not exposed by the proxy
// A manager's object proxy calls only the member functions listed in register_<T, ...>.
#include <multiproc/manager.hpp>

struct counter {
    long n = 0;
    long add(long d) { return n += d; }
    long sub(long d) { return n -= d; } // the type of add, which is exposed: still refused
    void reset() { n = 0; }
};

int main() {
    multiproc::manager m;
    auto c = m.register_<counter, &counter::add>();
#ifdef MULTIPROC_COMPILE_FAIL
    c.call<&counter::sub>(1);
#else
    c.call<&counter::add>(1);
#endif
}
