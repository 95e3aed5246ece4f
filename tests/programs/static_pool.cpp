// A pool made at namespace scope, as `pool = Pool(2)` at the top of a Python script: its
// workers fork during static initialisation, before the registrations of the tasks this
// program submits later (init_priority(101) puts it before every default-priority
// initializer, as a namespace-scope pool may land by chance). Prints the workers' pids, then
// whether the tasks' code was registered after the workers forked, then the results of a
// map, an apply_async and an imap, and "done"; exit code 0. A task that fails prints its
// message and exits 1. The pool ends with the program's statics, after main returns.
#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <cstdio>
#include <exception>
#include <ios>
#include <vector>

namespace {

using registry = multiproc::detail::code_registry<multiproc::detail::invoker_fn>;

struct count_now {
    std::size_t n = registry::instance().size();
};
[[gnu::init_priority(101)]] const count_now registered_before;
// The standard streams, which a fork flushes, exist from here on (a user's pool comes after
// the <iostream> the library includes, which makes them at default priority).
[[gnu::init_priority(101)]] const std::ios_base::Init streams;
[[gnu::init_priority(101)]] multiproc::basic_pool<multiproc::start::fork> early(2);

int square(int x) { return x * x; }

} // namespace

int main() {
    for (auto& c : multiproc::active_children()) std::printf("worker %d\n", static_cast<int>(*c.pid()));
    std::printf("registered after the fork: %s\n", registry::instance().size() > registered_before.n ? "yes" : "no");
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
