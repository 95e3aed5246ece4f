// Issue 19: a shared dict updated by a pool (Python: Manager().dict() and Manager().Lock()
// passed to Pool tasks). Each task counts the words of one line into the manager's dict; the
// manager's lock makes each read-and-write of a count whole.
#include <multiproc/manager.hpp>
#include <multiproc/pool.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace mp = multiproc;

using counts = mp::dict_proxy<std::string, int>;

int count_words(std::tuple<std::string, counts, mp::lock_proxy> job) {
    auto& [line, words, lock] = job;
    std::istringstream in(line);
    int n = 0;
    for (std::string w; in >> w; ++n) {
        std::lock_guard<mp::lock_proxy> hold(lock);
        words.set(w, words.get(w).value_or(0) + 1);
    }
    return n;
}

int main() {
    const std::vector<std::string> lines = {
        "the quick brown fox", "jumps over the lazy dog", "the dog sleeps", "the fox runs over the hill",
        "a quick dog and a lazy fox",
    };
    mp::manager manager;
    counts words = manager.dict<std::string, int>();
    mp::lock_proxy lock = manager.lock();

    std::vector<std::tuple<std::string, counts, mp::lock_proxy>> jobs;
    for (const auto& l : lines) jobs.emplace_back(l, words, lock);
    mp::pool pool(2);
    const std::vector<int> per_line = pool.map(count_words, jobs);

    int total = 0;
    for (int n : per_line) total += n;
    auto items = words.items();
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    std::cout << total << " words, " << items.size() << " different; the most frequent:" << std::endl;
    for (std::size_t i = 0; i < 4; ++i) std::cout << "  " << items[i].first << ": " << items[i].second << std::endl;
}
