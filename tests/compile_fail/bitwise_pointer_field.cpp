// expect: make it an aggregate of data, adapt it with Hana, or use cereal.*field_cannot_be_serialized<reading, multiproc::(v[0-9]+_[0-9]+::)?serialize::bitwise, 1, const char ?\*>
#include <multiproc/pipe.hpp>
#ifdef MULTIPROC_COMPILE_FAIL
struct reading {
    int id;
    const char* label; // the sender's address: meaningless in a spawned child
    double value;
};
#else
struct reading {
    int id;
    char label[16]; // the characters themselves
    double value;
};
#endif
int main() {
    auto ends = multiproc::pipe<reading, multiproc::serialize::bitwise>();
    (void)ends;
}
