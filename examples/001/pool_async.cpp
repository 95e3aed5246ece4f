// Seed 001, "Multi-processing + Async": a pool of processes, each running asynchronous tasks
// (coroutines) -- the seed's multiprocessing_async.py puts asyncio tasks inside pool workers.
// Each worker gets a batch of downloads and runs them concurrently on a tiny event loop of
// its own (C++20 coroutines; the event loop and the task type are written out below, no
// library needed): the processes give parallelism, the coroutines overlap the waiting.

#include <multiproc/pool.hpp>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

namespace async {

using clock = std::chrono::steady_clock;

/// A single-threaded event loop with timers (Python: asyncio's loop, reduced to sleeping).
class loop {
public:
    /// Resumes `h` once `when` has come.
    void at(clock::time_point when, std::coroutine_handle<> h) { timers_.push({when, seq_++, h}); }
    /// Runs until no coroutine is waiting any more.
    void run() {
        while (!timers_.empty()) {
            timer t = timers_.top();
            timers_.pop();
            std::this_thread::sleep_until(t.when);
            t.h.resume();
        }
    }
    /// co_await l.sleep(d): suspends the coroutine for `d` (Python: await asyncio.sleep(d)).
    auto sleep(clock::duration d) {
        struct awaiter {
            loop& l;
            clock::time_point when;
            bool await_ready() const noexcept { return false; }
            void await_suspend(std::coroutine_handle<> h) { l.at(when, h); }
            void await_resume() const noexcept {}
        };
        return awaiter{*this, clock::now() + d};
    }

private:
    struct timer {
        clock::time_point when;
        unsigned long seq; // first come, first resumed among equal times
        std::coroutine_handle<> h;
        bool operator>(const timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
    };
    std::priority_queue<timer, std::vector<timer>, std::greater<>> timers_;
    unsigned long seq_ = 0;
};

/// A coroutine that produces a T (Python: a coroutine object). It starts when scheduled on
/// a loop, and its result is read once the loop has run it to the end.
template <class T>
class task {
public:
    struct promise_type {
        T value{};
        std::exception_ptr error;
        task get_return_object() { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_value(T v) { value = std::move(v); }
        void unhandled_exception() { error = std::current_exception(); }
    };
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task(const task&) = delete;
    ~task() {
        if (h_) h_.destroy();
    }
    /// Python: loop.create_task(coro).
    void schedule(loop& l) { l.at(clock::now(), h_); }
    /// The result, once done (Python: task.result()).
    T result() const {
        if (h_.promise().error) std::rethrow_exception(h_.promise().error);
        return h_.promise().value;
    }

private:
    explicit task(std::coroutine_handle<promise_type> h) : h_(h) {}
    std::coroutine_handle<promise_type> h_;
};

} // namespace async

// One download: it waits 100 ms (the network) without blocking the other coroutines.
async::task<std::string> fetch(async::loop& loop, std::string url) {
    std::cout << "  [" << ::getpid() << "] fetching " << url << std::endl;
    co_await loop.sleep(std::chrono::milliseconds(100));
    std::cout << "  [" << ::getpid() << "] fetched " << url << std::endl;
    co_return "<contents of " + url + ">";
}

// The pool task: a batch of downloads, run concurrently on an event loop in this worker
// (Python: asyncio.run(asyncio.gather(*coros)) inside the function given to the pool).
std::vector<std::string> fetch_batch(const std::vector<std::string>& urls) {
    async::loop loop;
    std::vector<async::task<std::string>> tasks;
    for (const auto& u : urls) tasks.push_back(fetch(loop, u));
    for (auto& t : tasks) t.schedule(loop);
    loop.run();
    std::vector<std::string> out;
    for (auto& t : tasks) out.push_back(t.result());
    return out;
}

int main() {
    std::vector<std::vector<std::string>> batches;
    for (int b = 0; b < 4; ++b) {
        std::vector<std::string> urls;
        for (int i = 0; i < 3; ++i) urls.push_back("https://example.org/" + std::to_string(b) + "/" + std::to_string(i));
        batches.push_back(urls);
    }
    std::cout << "4 batches of 3 downloads of 0.1 s each: 1.2 s one after another" << std::endl;
    auto start = std::chrono::steady_clock::now();
    multiproc::pool pool(2);
    auto results = pool.map(fetch_batch, batches, 1);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::size_t pages = 0;
    for (auto& r : results) pages += r.size();
    std::cout << "got " << pages << " pages, the first: " << results[0][0] << std::endl;
    char line[96];
    std::snprintf(line, sizeof line, "2 processes x 3 coroutines took %.2f s", took);
    std::cout << line << std::endl;
}
