// Seed 001, "Create a pool of subprocesses using Pool and apply(), map(), imap() or
// imap_unordered()": a pool of four workers runs tasks of random length, first one with
// apply, then five each with map, imap and imap_unordered; the sum of the tasks' own times
// (the theoretical total) is compared with the time the five took together.

#include <multiproc/pool.hpp>
#include <multiproc/views/imap.hpp> // pool.imap returns its view

#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

// Dummy long task run in a worker. The seed sleeps up to 3 s; up to 0.3 s shows the same.
// Each line is flushed (std::endl), so lines of different workers never mix.
double long_time_task(const std::string& name) {
    std::cout << "Running task '" << name << "' (" << ::getpid() << ")..." << std::endl;
    auto start = std::chrono::steady_clock::now();
    std::random_device rd; // per call: forked workers must not share a generator's state
    std::this_thread::sleep_for(std::chrono::duration<double>(std::uniform_real_distribution<>(0, 0.3)(rd)));
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char line[64];
    std::snprintf(line, sizeof line, "%.2f", elapsed);
    std::cout << "Task '" << name << "' runs " << line << " seconds." << std::endl;
    return elapsed;
}

std::vector<std::string> task_names() { // Python: map(lambda x: f'Task-{x}', range(5))
    std::vector<std::string> names;
    for (int x = 0; x < 5; ++x) names.push_back("Task-" + std::to_string(x));
    return names;
}

int main() {
    std::cout << "Parent process " << ::getpid() << std::endl;
    multiproc::pool pool(4); // a pool of four worker processes
    {
        pool.apply(long_time_task, "Some Task"); // blocks until the task is done

        std::cout << "map:" << std::endl;
        auto times = pool.map(long_time_task, task_names()); // blocks; results in order
        std::cout << "map returned " << times.size() << " times" << std::endl;

        std::cout << "imap:" << std::endl;
        int n = 0;
        for (double t : pool.imap(long_time_task, task_names())) n += t >= 0; // lazy map, in order
        std::cout << "imap yielded " << n << " times" << std::endl;

        std::cout << "imap_unordered:" << std::endl;
        auto start = std::chrono::steady_clock::now();
        double total_running_time = 0;
        for (double t : pool.imap_unordered(long_time_task, task_names())) // lazy, as they finish
            total_running_time += t;
        pool.close(); // no more tasks may be added
        pool.join();
        double actual = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char line[128];
        std::snprintf(line, sizeof line, "Theoretical total running time: %.2f seconds.\nActual running time: %.2f seconds.",
                      total_running_time, actual);
        std::cout << line << std::endl;
    }
    std::cout << "All subprocesses done." << std::endl;
}
