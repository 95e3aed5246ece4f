// Seed 000, "Queue: Producer-Consumer": consumers take tasks from a joinable queue until a
// poison pill (None in Python, an empty optional here), marking each task done; main waits
// for every task with tasks.join(), then reads the results.

#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <vector>

using task_queue = multiproc::joinable_queue<std::optional<std::string>>;

void consumer(task_queue tasks, multiproc::queue<std::string> results) {
    while (true) {
        auto task = tasks.get();
        if (!task) { // a poison pill
            tasks.task_done();
            break;
        }
        // ... to process the task
        tasks.task_done();
        results.put("result");
    }
}

void producer(task_queue tasks, int max_num_tasks) {
    // ... to produce_an_item
    tasks.put("task");
    for (int i = 0; i < max_num_tasks; ++i) tasks.put(std::nullopt);
}

int main() {
    const int max_num_tasks = multiproc::cpu_count() * 2;
    task_queue tasks(max_num_tasks);
    multiproc::queue<std::string> results(max_num_tasks);

    // start consumers
    std::vector<multiproc::process> consumers;
    for (int i = 0; i < max_num_tasks; ++i) consumers.emplace_back(consumer, tasks, results);
    for (auto& c : consumers) c.start();

    // start producer
    multiproc::process p(producer, tasks, max_num_tasks);
    p.start();
    std::cout << max_num_tasks << " consumers (cpu_count() * 2) and a producer started" << std::endl;

    // wait to finish
    tasks.join();
    std::cout << "tasks.join() returned: every task and poison pill is done" << std::endl;
    p.join();
    for (auto& c : consumers) c.join();

    // output results. The seed reads max_num_tasks results, but only one task was put, so
    // its loop would wait forever for the second; read the ones there are.
    while (!results.empty()) std::cout << results.get() << std::endl;
}
