// Forking while other threads use the library (issue 14 item 2): a child forked while
// another thread of its parent is inside one of the library's first-use initialisations
// must not wait forever for that thread, which it does not have. Each case runs
// tests/programs/fork_during_init.cpp (a fresh process, so that nothing is initialised yet),
// which stops a thread inside the initialisation with a fault hook and forks meanwhile.
// Only start::fork applies: spawn and forkserver children are fresh programs, and the
// forkserver forks from a single thread.
#include "support/support.hpp"

#include <string>

TEST_CASE("a child forked while another thread makes the first holder id, arena or pipe of the process does not hang",
          "[process][fork][threads]") {
    for (const std::string what : {"holder_id", "arena", "pipe_size"}) {
        INFO(what);
        auto r = test::run_program("fork_during_init", {what});
        CHECK(r.err == "");
        CHECK(r.code == 0);
    }
}
