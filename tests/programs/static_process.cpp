// Process objects at namespace scope, one per fresh start method; main starts the one its
// argument names (spawn or forkserver) and returns its exit code. A fresh copy of the
// program (the spawn child, the forkserver) makes both objects again during its static
// initialisation, numbered as in the parent (Process-1, Process-2): unstarted objects of
// that copy, as Python makes a module's Process objects again on import. The target
// prints what the copy of the started one answers there: its name, then "not alive" (a
// spawn child made it) or "can only test a child process" (a forkserver child inherits the
// server's), then "no pid"; not what the current process answers, whose name and number
// it shares.
#include <multiproc/process.hpp>
#include <multiproc/spawn.hpp>

#include <cstdio>
#include <string>

namespace {

void report();

multiproc::basic_process<multiproc::start::spawn> by_spawn([] { report(); });
multiproc::basic_process<multiproc::start::forkserver> by_forkserver([] { report(); });

// What the copy of the object the parent started answers in the child.
template <class P>
void report_on(P& p) {
    std::string alive;
    try {
        alive = p.is_alive() ? "alive" : "not alive";
    } catch (const multiproc::state_error& e) { // made by another process: the forkserver
        alive = e.what();
    }
    std::printf("%s %s, %s\n", p.name().c_str(), alive.c_str(), p.pid() ? "pid" : "no pid");
}


void report() {
    const std::string me = multiproc::current_process().name();
    if (me == by_spawn.name()) report_on(by_spawn);
    else if (me == by_forkserver.name()) report_on(by_forkserver);
    else std::printf("the child is %s, neither object\n", me.c_str());
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    const std::string m = argc > 1 ? argv[1] : "spawn";
    if (m == "spawn") {
        by_spawn.start();
        by_spawn.join();
        return *by_spawn.exitcode();
    }
    by_forkserver.start();
    by_forkserver.join();
    return *by_forkserver.exitcode();
}
