// Seed 002, "Contexts": fork and spawn side by side. A forked child is a copy of its
// parent, so it starts from whatever main has made of the global `number`; a spawned child
// is a fresh run of this program, so it starts from the global's initial value. Either way
// each child counts in its own copy, and main's value never changes.
//
// The seed passes `number` as an argument, which a child would copy under any method; here
// the children use the global itself, which is what the seed's text is about.

#include <multiproc/context.hpp>

#include <iostream>
#include <string>

int number = 0;

void func_4_proc(const std::string& method, int max_iter) {
    std::cout << method << " proc number init " << number << std::endl;
    for (int i = 0; i < max_iter; ++i) number += 1;
    std::cout << method << " proc number done " << number << std::endl;
}

// Python: ctx = multiprocessing.get_context(method). The policy is chosen at compile time.
template <class Context>
void run_two() {
    Context ctx;
    std::string method(Context::start_method());
    // Under spawn the child knows its target by type: a function is named with fn<&f>.
    auto proc_1 = ctx.process(multiproc::fn<&func_4_proc>, method, 100);
    auto proc_2 = ctx.process(multiproc::fn<&func_4_proc>, method, 100);
    proc_1.start();
    proc_2.start();
    proc_1.join();
    proc_2.join();
}

int main() {
    // The one line spawn needs: in a spawned child it runs the target instead of main.
    // (Python's `if __name__ == "__main__":` does the same job.)
    multiproc::freeze_support();

    number = 42; // main's own change: forked children see it, spawned ones do not
    run_two<multiproc::context<multiproc::start::fork>>();
    run_two<multiproc::context<multiproc::start::spawn>>();
    std::cout << "main done, number " << number << '\n';
}
