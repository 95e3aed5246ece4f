// The smallest useful multiproc program, for the binary-size figure of bench_compile: a
// child process sends one value through a pipe and the parent prints it. Its C counterpart,
// fork_pipe.c, does the same with fork(2), pipe(2) and write(2).
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <cstdio>

namespace {

void send_answer(multiproc::connection<int> out) { out.send(42); }

} // namespace

int main() {
    auto [in, out] = multiproc::pipe<int>(false);
    multiproc::process child(send_answer, out);
    child.start();
    int value = in.recv();
    child.join();
    std::printf("%d\n", value);
    return child.exitcode() == 0 ? 0 : 1;
}
