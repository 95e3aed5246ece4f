// A pool made at namespace scope, as `pool = Pool(2)` at the top of a Python script: its
// workers fork during static initialisation, and GCC runs the initializers of variable
// template instances (the registrations of the task code this program submits later) after
// those of the translation unit's own variables. Prints the workers' pids, then how many
// invokers were registered before the pool was made (0) and whether any were after, then
// the results of a map, an apply_async and an imap, and "done"; exit code 0. A task that
// fails prints its message and exits 1. The pool ends with the program's statics, after
// main returns.
#define TEST_SANITIZER_FORK_INSTALL // (ASan's locks held across the engine thread's forks)
#include "support/sanitizer_fork.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <cstdio>
#include <exception>
#include <vector>

namespace {

using registry = multiproc::detail::code_registry<multiproc::detail::invoker_fn>;

// How many invokers were registered when the pool was made (ordered: the same translation
// unit, no template).
const std::size_t registered_before = registry::instance().size();
multiproc::basic_pool<multiproc::start::fork> early(2);

int square(int x) { return x * x; }

} // namespace

int main() {
    for (auto& c : multiproc::active_children()) std::printf("worker %d\n", static_cast<int>(*c.pid()));
    // None: every task below runs code its workers' tables lack.
    std::printf("invokers registered before the pool was made: %zu, after: %s\n", registered_before,
                registry::instance().size() > registered_before ? "some" : "none");
    try {
        for (int v : early.map(square, std::vector<int>{1, 2, 3, 4})) std::printf("%d ", v);
        std::printf("\n%d\n", early.apply_async([](int a, int b) { return a * b; }, 6, 7).get());
        for (int v : early.imap(square, std::vector<int>{5, 6})) std::printf("%d ", v);
        std::printf("\ndone\n");
    } catch (const std::exception& e) {
        std::printf("\nfailed: %s\n", e.what());
        return 1;
    }
    return 0;
}
