// Seed 000, "Terminate": one worker is terminated, another ends with exit(1); main logs
// both exit codes.

#include <multiproc/logging.hpp>
#include <multiproc/process.hpp>

#include <multiproc/sync.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

void worker(multiproc::logger logger, multiproc::event& running) {
    logger.debug("run");
    running.set();
    // The seed's time.sleep(5), kept: main terminates the worker during this sleep, so it
    // costs nothing, and a shorter one could end first on a busy machine.
    std::this_thread::sleep_for(std::chrono::seconds(5));
}

void worker_exit_error() { std::exit(1); } // Python: sys.exit(1)

int main() {
    auto logger = multiproc::log_to_stderr(multiproc::log_level::debug);
    multiproc::event running;

    multiproc::process p(multiproc::process_options{.name = "worker"}, worker, logger,
                         std::ref(running));
    // The seed gives this process target=worker, a slip: its name says what it should run.
    multiproc::process p_error(multiproc::process_options{.name = "worker_exit_error"},
                               worker_exit_error);

    p.start();
    p_error.start();

    // Terminate the worker once it has logged "run": terminating it at once, as the seed
    // does, might kill it before or after its first lines, which would make the output
    // depend on luck.
    running.wait();
    p.terminate();

    // Wait until the processes end.
    p.join();
    p_error.join();
    // The seed's comment says "0, 1"; a terminated process has exit code -SIGTERM.
    logger.debug("{}, {}", p.exitcode(), p_error.exitcode());
}
