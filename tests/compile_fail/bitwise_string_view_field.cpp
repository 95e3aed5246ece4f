// expect: make it an aggregate of data, adapt it with Hana, or use cereal.*field_cannot_be_serialized<entry, multiproc::(v[0-9]+_[0-9]+::)?serialize::bitwise, 1, std::.*basic_string_view<char.*>
#include <multiproc/pipe.hpp>
#include <array>
#include <string_view>
struct entry {
    int n;
#ifdef MULTIPROC_COMPILE_FAIL
    std::string_view name; // points into the sender's memory
#else
    std::array<char, 16> name;
#endif
};
struct message { // the field at fault is named where it is, inside a nested aggregate
    double x;
    entry entries[2];
};
int main() {
    auto ends = multiproc::pipe<message, multiproc::serialize::bitwise>();
    (void)ends;
}
