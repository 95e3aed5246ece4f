// At normal exit the main process joins its non-daemonic children (Python:
// util._exit_function), even when their process objects were destroyed unjoined.
#include "start_method.hpp"
#include <chrono>
#include <cstdio>
#include <thread>

namespace {
// Constructed before the multiproc runtime, so destroyed after its exit function ran.
struct last_words {
    ~last_words() { std::printf("main ends\n"); }
} g_last;
} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    return with_start_method(argc, argv, []<class Ctx>() {
        multiproc::log_to_stderr(multiproc::log_level::info);
        for (int i = 0; i < 3; ++i) {
            auto p = Ctx{}.process(
                [](int n) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // a child meant to be slow
                    std::printf("child %d done\n", n);
                },
                i);
            p.start();
        } // each process object is destroyed here, its child still running
        std::printf("main returns\n");
        std::fflush(stdout);
        return 0;
    });
}
