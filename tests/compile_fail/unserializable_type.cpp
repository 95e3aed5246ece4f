// expect: multiproc: the message type T cannot be serialized by the serialization policy S
#include <multiproc/queue.hpp>
#include <memory>
int main() {
#ifdef MULTIPROC_COMPILE_FAIL
    multiproc::queue<std::unique_ptr<int>> q; // no encoding for an owning pointer
#else
    multiproc::queue<int> q;
#endif
    (void)q;
}
