// Seed 000, "Daemon": a daemon and a non-daemon process that log through the multiproc
// logger, which main hands to them as an argument (Python: args=(logger,)).

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <chrono>
#include <thread>

// The seed calls these `daemon` and `non_daemon`; `daemon` would clash with daemon(3)
// from <unistd.h>.
void daemon_task(multiproc::logger logger) {
    logger.debug("start");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    logger.debug("end");
}

void non_daemon_task(multiproc::logger logger) { logger.debug("run"); }

int main() {
    // Lines go to stderr as [LEVEL/process name] message, from every process.
    auto logger = multiproc::log_to_stderr(multiproc::log_level::debug);

    multiproc::process d(multiproc::process_options{.name = "daemon", .daemon = true}, daemon_task, logger);
    // The seed forgets args=(logger,) here, so Python fails in the child with a TypeError;
    // in C++ a target called with the wrong arguments does not compile.
    multiproc::process p(multiproc::process_options{.name = "non_daemon"}, non_daemon_task, logger);

    d.start();
    p.start();

    // Wait until the processes end.
    d.join();
    p.join();
}
