// Issue 19: a TCP job server. The server listens on a loopback port with an authkey;
// three worker processes connect to it with client(), as workers on other machines would
// (they get only the address and the key), ask for jobs and send results back. The server
// serves all of them at once with wait(). A fourth process, with a wrong key, is turned
// away before the server decodes anything it sends.
#include <multiproc/connection.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace mp = multiproc;

struct want_job {}; // worker -> server: give me a number
struct result {     // worker -> server: what it found
    int n;
    int steps;
};
struct job { // server -> worker: a number to work on; 0: no more work
    int n;
};
using message = std::variant<want_job, result, job>;

int collatz_steps(std::uint64_t n) {
    int steps = 0;
    for (; n != 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}

void worker(std::string at, std::string key) {
    auto server = mp::client<message>(mp::address::parse(at), key);
    server.send(want_job{});
    for (;;) {
        const int n = std::get<job>(server.recv()).n;
        if (n == 0) return;
        server.send(result{n, collatz_steps(static_cast<std::uint64_t>(n))});
    }
}

int main() {
    const std::string key = "the job server's secret";
    mp::listener<message> jobs(mp::address("127.0.0.1", 0), 8, key);

    std::vector<mp::process> workers;
    for (int i = 0; i < 3; ++i) workers.emplace_back(worker, jobs.address().to_string(), key);
    for (auto& w : workers) w.start();
    mp::process intruder(
        [](std::string at) {
            try {
                (void)mp::client<message>(mp::address::parse(at), std::string("a guess"));
            } catch (const mp::authentication_error&) {
                std::_Exit(3); // refused, as it should be
            }
        },
        jobs.address().to_string());
    intruder.start();

    // Four clients come, in any order: three are accepted, the intruder fails here too.
    std::vector<mp::connection<message>> conns;
    for (int attempt = 0; attempt < 4; ++attempt) {
        try {
            conns.push_back(jobs.accept());
        } catch (const mp::authentication_error& e) {
            std::cout << "server: " << e.what() << std::endl;
        }
    }
    intruder.join();
    std::cout << "intruder: exit code " << *intruder.exitcode() << " (3: its key was rejected)" << std::endl;

    // Serve: every message gets the next number, or 0 once there are none left.
    const int last = 3000;
    int next = 1;
    std::map<int, int> steps;
    while (!conns.empty()) {
        for (auto& c : mp::wait(conns)) {
            const message m = c.recv();
            if (const auto* r = std::get_if<result>(&m)) steps[r->n] = r->steps;
            if (next <= last) {
                c.send(job{next++});
            } else {
                c.send(job{0});
                c.close();
            }
        }
        std::erase_if(conns, [](const auto& c) { return c.closed(); });
    }
    for (auto& w : workers) w.join();

    const auto longest = std::max_element(steps.begin(), steps.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; });
    std::cout << steps.size() << " results from " << workers.size() << " workers over TCP; below " << last + 1
              << ", " << longest->first << " takes the most Collatz steps: " << longest->second << std::endl;
}
