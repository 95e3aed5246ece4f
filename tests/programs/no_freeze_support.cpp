// A program that forgets multiproc::freeze_support(): starting a spawn or forkserver child
// must fail in the parent, before anything runs a second copy of main().
#include <multiproc/context.hpp>
#include <cstdio>
#include <string>

template <class Ctx>
int attempt() {
    auto p = Ctx{}.process([] { std::printf("child ran\n"); });
    try {
        p.start();
        p.join();
        std::printf("started\n");
        return 0;
    } catch (const multiproc::state_error& e) {
        std::printf("%s\n", e.what());
        return 3;
    }
}

int main(int argc, char** argv) {
    std::printf("main runs\n");
    std::fflush(stdout);
    std::string m = argc > 1 ? argv[1] : "spawn";
    return m == "spawn" ? attempt<multiproc::context<multiproc::start::spawn>>()
                        : attempt<multiproc::context<multiproc::start::forkserver>>();
}
