// At normal exit the main process joins its non-daemonic children (Python:
// util._exit_function), even when their process objects were destroyed unjoined.
#include <multiproc/process.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {
// Constructed before the multiproc runtime, so destroyed after its exit function ran.
struct last_words {
    ~last_words() { std::printf("main ends\n"); }
} g_last;
} // namespace

int main() {
    multiproc::log_to_stderr(multiproc::log_level::info);
    for (int i = 0; i < 3; ++i) {
        multiproc::process p([i] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100)); // a child meant to be slow
            std::printf("child %d done\n", i);
        });
        p.start();
    } // each process object is destroyed here, its child still running
    std::printf("main returns\n");
    std::fflush(stdout);
}
