// Seed 003, "3. multiprocess communication": a writer puts four letters into a queue, a
// reader prints them in an endless loop; main joins the writer, waits until the queue is
// empty, then terminates the reader.
//
// empty() says the reader has *taken* every letter, not that it has printed the last one:
// terminating it at once could cut that line (CPython has the same race). So the reader
// also releases a semaphore per printed letter, and main takes all four before it
// terminates the reader.

#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/sync.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

// The seed calls these `write` and `read`, which would clash with write(2) and read(2).
void write_task(multiproc::queue<std::string> q) {
    std::cout << "write start..." << std::endl;
    for (const char* letter : {"A", "B", "C", "D"}) {
        q.put(letter);
        std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the seed sleeps 1 s
    }
    std::cout << "write end..." << std::endl;
}

void read_task(multiproc::queue<std::string> q, multiproc::semaphore printed) {
    std::cout << "read start..." << std::endl;
    while (true) { // must be an endless loop
        auto value = q.get();
        std::cout << "read value " << value << std::endl;
        printed.release();
    }
    std::cout << "read end..." << std::endl; // never reached, as in the seed
}

int main() {
    multiproc::queue<std::string> q;
    multiproc::semaphore printed(0);
    multiproc::process pw(write_task, q);
    multiproc::process pr(read_task, q, printed);

    pw.start();
    pr.start();

    pw.join();
    // pr.join() would wait forever: the reader loops.

    while (true) { // the parent checks whether the queue is empty
        if (q.empty()) {
            for (int i = 0; i < 4; ++i) printed.acquire();
            pr.terminate();
            break;
        }
        std::this_thread::yield();
    }
    pr.join();
    std::cout << "reader terminated, exit code " << *pr.exitcode() << std::endl;
}
