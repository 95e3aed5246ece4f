// Seed 002, "Locks, Queues and Pipes": "Locks are a must when using shared variables
// between processes that do write operations." Four processes each add 1, 10000 times, to
// four counters:
// - a global: each child adds to its own copy (fork copies memory), so main's stays 0;
// - a multiproc::value, read then written without a lock (Python: `v.value += 1`):
//   processes overwrite each other's increments, so some are lost;
// - a counter in shared memory guarded by a multiproc::lock: exactly 40000;
// - a multiproc::value updated with fetch_add, atomic, so no lock is needed: 40000.

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <iostream>
#include <mutex>
#include <vector>

int global_counter = 0;

// The shared objects come as arguments, as in Python; a copy refers to the same object.
void work(multiproc::value<int> unlocked, multiproc::lock lock, multiproc::raw_value<int> guarded,
          multiproc::value<int> atomic_counter, int n) {
    for (int i = 0; i < n; ++i) {
        ++global_counter;
        unlocked.store(unlocked.load() + 1); // two steps: another process may come in between
        {
            std::lock_guard with(lock); // Python: with lock:
            guarded.get_obj() += 1;
        }
        atomic_counter.fetch_add(1);
    }
}

int main() {
    constexpr int procs = 4, n = 10000;
    multiproc::value<int> unlocked(0), atomic_counter(0);
    multiproc::lock lock;
    multiproc::raw_value<int> guarded(0);

    std::vector<multiproc::process> ps;
    for (int i = 0; i < procs; ++i) ps.emplace_back(work, unlocked, lock, guarded, atomic_counter, n);
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();

    std::cout << "global counter in main: " << global_counter << '\n';
    std::cout << "value without a lock: " << unlocked.load() << " (of " << procs * n << ")\n";
    std::cout << "value guarded by a lock: " << guarded.load() << '\n';
    std::cout << "value with fetch_add: " << atomic_counter.load() << '\n';
}
