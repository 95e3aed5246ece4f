// Seed 001, "Communication between Processes", Queue: two producers put URLs, one consumer
// gets them in an endless loop, and main stops it with terminate().
//
// The seed sleeps 3 s "to make sure the consumer has finished consuming the values". Here
// the queue is a joinable_queue: the consumer marks each URL done after printing it, and
// main waits for that with join(), which says exactly when it has finished.

#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

using url_queue = multiproc::joinable_queue<std::string>;

/// Producer process to write data to the given message queue.
void producer_process(url_queue q, std::vector<std::string> urls) {
    std::cout << "Producer process starts writing..." << std::endl;
    std::mt19937 rng(std::random_device{}());
    for (const auto& url : urls) {
        q.put(url);
        std::cout << "[Producer Process] Put " << url << " to the queue" << std::endl;
        // The seed's time.sleep(random.random()), shortened.
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    }
}

/// Consumer process to get data from the given message queue.
void consumer_process(url_queue q) {
    std::cout << "Consumer process starts reading..." << std::endl;
    while (true) {
        auto url = q.get();
        std::cout << "[Consumer Process] Get " << url << " from the queue" << std::endl;
        q.task_done();
    }
}

int main() {
    url_queue q;
    multiproc::process producer1(producer_process, q, std::vector<std::string>{"url1", "url2", "url3"});
    multiproc::process producer2(producer_process, q, std::vector<std::string>{"url4", "url5"});
    multiproc::process consumer(consumer_process, q);

    producer1.start();
    producer2.start();
    consumer.start();

    producer1.join();
    producer2.join();

    // Since there is an infinite loop in consumer_process, we need to manually force it to
    // stop, once it has consumed every value.
    q.join();
    consumer.terminate();
    consumer.join();
    std::cout << "consumer terminated, exit code " << *consumer.exitcode() << std::endl;
}
