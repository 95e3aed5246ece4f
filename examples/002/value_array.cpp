// Seed 002, "Locks, Queues and Pipes", shared variables: Python's "Sharing state between
// processes" example. A child writes a Value and negates every element of an Array; main
// sees the changes, since both live in memory shared with the child.
//
//     num = Value('d', 0.0)
//     arr = Array('i', range(10))
//     p = Process(target=f, args=(num, arr))

#include <multiproc/process.hpp>
#include <multiproc/value.hpp>

#include <iostream>
#include <mutex>
#include <numeric>

void f(multiproc::value<double> n, multiproc::array<int> a) {
    n.store(3.1415927);
    std::lock_guard with(a.get_lock()); // indexing takes no lock of its own
    for (auto& x : a) x = -x;
}

int main() {
    multiproc::value<double> num(0.0);
    multiproc::array<int> arr(10);
    std::iota(arr.begin(), arr.end(), 0); // Array('i', range(10))

    multiproc::process p(f, num, arr);
    p.start();
    p.join();

    std::cout.precision(8);
    std::cout << num.load() << '\n';
    std::cout << '[';
    for (std::size_t i = 0; i < arr.size(); ++i) std::cout << (i ? ", " : "") << arr[i];
    std::cout << "]\n";
}
