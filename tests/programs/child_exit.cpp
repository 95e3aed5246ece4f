// A child runs the atexit handlers it registered itself, never its parent's atexit handlers
// or static destructors, whether its target returns, throws, or calls std::exit(n)
// (Python 3.12, gh-83856).
#include "start_method.hpp"
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace {
struct announces_destruction {
    ~announces_destruction() { std::printf("static-destructor in %d\n", static_cast<int>(::getpid())); }
} g_static;
void at_exit() { std::printf("atexit in %d\n", static_cast<int>(::getpid())); }
// Registered by each child's target: names the process it runs in.
void child_at_exit() { std::printf("child atexit in %s\n", multiproc::current_process().name().c_str()); }
} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        std::atexit(at_exit);
        std::printf("main %d\n", static_cast<int>(::getpid()));
        Ctx ctx;
        auto returns = ctx.process([] {
            std::atexit(child_at_exit);
            std::printf("child returns\n");
        });
        auto throws = ctx.process([] {
            std::atexit(child_at_exit);
            throw std::runtime_error("boom");
        });
        auto exits = ctx.process([] {
            std::atexit(child_at_exit);
            std::printf("child exits\n");
            std::exit(3);
        });
        for (auto* p : {&returns, &throws, &exits}) {
            p->start();
            p->join();
            std::printf("exitcode %d\n", *p->exitcode());
        }
        return 0;
    });
}
