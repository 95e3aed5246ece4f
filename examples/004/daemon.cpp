// Seed 004 (PyMOTW), multiprocessing_daemon: the program does not wait for a daemon. At
// exit, multiproc terminates it (and joins the non-daemon), so the daemon's "Exiting"
// line never appears and no orphan is left running.

#include <multiproc/process.hpp>

#include <multiproc/sync.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

void daemon_task(multiproc::event& started) {
    auto p = multiproc::current_process();
    std::cout << "Starting: " << p.name() << ' ' << p.pid() << std::endl;
    started.set();
    // Never completes: the program ends first and terminates the daemon. So it costs
    // nothing to make it longer than PyMOTW's 2 s, which a busy machine might let pass.
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::cout << "Exiting : " << p.name() << ' ' << p.pid() << std::endl;
}

void non_daemon_task() {
    auto p = multiproc::current_process();
    std::cout << "Starting: " << p.name() << ' ' << p.pid() << std::endl;
    std::cout << "Exiting : " << p.name() << ' ' << p.pid() << std::endl;
}

int main() {
    multiproc::event daemon_started;
    // Name and daemon flag can also be set after construction, before start()
    // (Python: d.daemon = True).
    multiproc::process d(daemon_task, std::ref(daemon_started));
    d.name("daemon");
    d.daemon(true);
    multiproc::process n(non_daemon_task);
    n.name("non-daemon");
    n.daemon(false);

    d.start();
    n.start();
    // PyMOTW sleeps a second here so that the daemon prints before the program ends;
    // waiting for it to say so is certain.
    daemon_started.wait();
}
