// Seed 002, "Contexts": a forked child is a copy of its parent, global variables
// included. Each child increments its own copy of `number`; main's stays 0.
// The seed passes `number` as an argument, which a child would copy in any case; here
// the children change the global itself, which is what the seed's text is about. (The
// seed also discusses spawn, which starts a fresh program: see contexts.cpp.)

#include <multiproc/context.hpp>

#include <iostream>

int number = 0;

void func_4_proc(int max_iter) {
    std::cout << "proc number init " << number << std::endl;
    for (int i = 0; i < max_iter; ++i) number += 1;
    std::cout << "proc number done " << number << std::endl;
}

int main() {
    // Python: multiprocessing.get_context('fork'). The policy is chosen at compile time.
    multiproc::context<multiproc::start::fork> ctx;

    auto proc_1 = ctx.process(func_4_proc, 100);
    proc_1.start();

    auto proc_2 = ctx.process(func_4_proc, 100);
    proc_2.start();

    proc_1.join();
    proc_2.join();
    std::cout << "main done, number " << number << '\n';
}
