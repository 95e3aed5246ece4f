// expect: type_cannot_be_serialized_by<std::.*basic_string<char>, multiproc::(v[0-9]+_[0-9]+::)?serialize::bitwise>
#include <multiproc/pipe.hpp>
#include <string>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    auto ends = multiproc::pipe<std::string, multiproc::serialize::bitwise>(); // not trivially copyable
#else
    auto ends = multiproc::pipe<int, multiproc::serialize::bitwise>();
#endif
    (void)ends;
}
