// Seed 002, "Locks, Queues and Pipes": "Queues are great for one way communication but for
// 2 way communication we use pipes." (prose only in the seed). Workers send results one
// way through a queue; a parent and a child then talk both ways through a duplex pipe.

#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

// One way: each worker squares its numbers and puts the results; nobody answers.
void square(multiproc::queue<std::pair<int, int>> results, std::vector<int> numbers) {
    for (int n : numbers) results.put({n, n * n});
}

// Two ways: the child answers each "ping N" with "pong N" until "bye".
void ponger(multiproc::connection<std::string> conn) {
    while (true) {
        auto msg = conn.recv();
        if (msg == "bye") break;
        conn.send("pong" + msg.substr(4));
    }
}

int main() {
    std::cout << "one-way talk, through a queue:" << std::endl;
    multiproc::queue<std::pair<int, int>> results;
    multiproc::process w1(square, results, std::vector<int>{1, 2, 3});
    multiproc::process w2(square, results, std::vector<int>{4, 5, 6});
    w1.start();
    w2.start();
    std::vector<std::pair<int, int>> squares;
    for (int i = 0; i < 6; ++i) squares.push_back(results.get());
    w1.join();
    w2.join();
    std::sort(squares.begin(), squares.end()); // the two workers' results interleave
    std::cout << "squares:";
    for (auto [n, sq] : squares) std::cout << ' ' << n << "->" << sq;
    std::cout << std::endl;

    std::cout << "two-way talk, through a pipe:" << std::endl;
    auto [parent_conn, child_conn] = multiproc::pipe<std::string>();
    multiproc::process child(ponger, child_conn);
    child.start();
    child_conn.close(); // the parent keeps only its own end, so that it sees the child leave
    for (int i = 1; i <= 3; ++i) {
        std::string ping = "ping " + std::to_string(i);
        std::cout << "parent -> child: " << ping << std::endl;
        parent_conn.send(ping);
        std::cout << "child -> parent: " << parent_conn.recv() << std::endl;
    }
    std::cout << "parent -> child: bye" << std::endl;
    parent_conn.send("bye");
    try {
        parent_conn.recv();
    } catch (const multiproc::eof_error&) {
        std::cout << "the child has closed its end: end of file" << std::endl;
    }
    child.join();
}
