// Issue 17: C++20 coroutines that drive pool calls with co_await. Ten coroutines each sum
// the squares 1..n, one pool call per term, all at once on a pool of four workers: no
// thread waits for any result. A coroutine resumes in the pool's engine thread when the
// call it awaits completes, and goes on to submit its next call from there.
#include <multiproc/futures.hpp>
#include <multiproc/pool.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <future>
#include <iostream>
#include <vector>

namespace mp = multiproc;

int square(int x) { return x * x; }

// A coroutine that starts at once and that nobody awaits: it reports through `done`.
struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

struct tally {
    std::vector<int> sums;
    std::atomic<int> left;
    std::promise<void> all_done;
};

detached sum_of_squares(mp::pool& pool, int n, tally& t) {
    int total = 0;
    for (int i = 1; i <= n; ++i) {
        const int sq = co_await pool.submit(mp::fn<&square>, i); // suspends until the worker answers
        total += sq;
    }
    t.sums[static_cast<std::size_t>(n - 1)] = total;
    if (--t.left == 0) t.all_done.set_value();
}

int main() {
    mp::pool pool(4);
    tally t{std::vector<int>(10), 10, {}};
    for (int n = 1; n <= 10; ++n) sum_of_squares(pool, n, t); // each runs until its first co_await
    t.all_done.get_future().wait();
    for (int n = 1; n <= 10; ++n)
        std::cout << "1^2 + ... + " << n << "^2 = " << t.sums[static_cast<std::size_t>(n - 1)] << "\n";
}
