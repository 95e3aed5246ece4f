// expect: type_cannot_be_serialized_by<color, multiproc::(v[0-9]+_[0-9]+::)?serialize::binary>
#include <multiproc/queue.hpp>
#ifdef MULTIPROC_COMPILE_FAIL
enum color { red, green }; // no fixed underlying type: a received value could be out of range
#else
enum color : int { red, green };
#endif
int main() {
    multiproc::joinable_queue<color> q;
    (void)q;
}
