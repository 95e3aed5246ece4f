// multiproc doing the work of each figure of design.md §6: the same work as bench.py does
// with CPython's multiprocessing and baseline.cpp does with raw system calls.
//
//   bench_multiproc <figure> [variant|-] [scale]    prints one JSON line (bench/common.hpp)
//
// Figures: map, imap_unordered, apply, queue, queue_many, queue_4x4 <pipe|socketpair|shm>, connection
// <pipe|socketpair|shm>, transfer <pipe|socketpair|shm>, speedup, compile. The start figure
// is bench_start's (bench/start.cpp): a program that does not link libcrypto.
#include "common.hpp"

#include <multiproc/multiproc.hpp>
#include <multiproc/shared_memory.hpp>
#if MULTIPROC_BENCH_CONNECTION
#include <multiproc/connection.hpp>
#include <multiproc/manager.hpp>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace {

using bench::clock_type;
using bench::seconds_since;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_multiproc: %s\n", what.c_str());
    std::exit(1);
}

std::int64_t tiny(std::int64_t x) { return x * x; }
std::uint64_t burn(long units) { return bench::burn(units); }

// pool.map of n tiny tasks with the default chunksize (about four chunks per worker);
// variant "observed": with a pool_progress observer counting every event (issue 17: the
// cost of the progress hook when used; the plain figure is its cost when unused).
void fig_map(long n, bool observed) {
    multiproc::pool pool(bench::cpus());
    multiproc::pool_progress progress;
    if (observed) pool.observe(std::ref(progress));
    (void)pool.map(tiny, std::vector<std::int64_t>(10)); // workers up
    std::vector<std::int64_t> xs(static_cast<std::size_t>(n));
    std::iota(xs.begin(), xs.end(), 0);
    auto t0 = clock_type::now();
    auto out = pool.map(tiny, xs);
    double s = seconds_since(t0);
    if (out[xs.size() / 2] != tiny(xs[xs.size() / 2])) die("map: wrong result");
    if (observed && progress.finished() != static_cast<std::uint64_t>(n) + 10) die("map: the observer missed tasks");
    bench::emit(static_cast<double>(n) / s, "tasks/s", true);
}

// imap_unordered with chunksize 1: one task per element, results as they come; variant
// "observed": with a pool_progress observer, told three times per task (queued, started,
// finished) -- the hook's cost at its most frequent.
void fig_imap_unordered(long n, bool observed) {
    multiproc::pool pool(bench::cpus());
    multiproc::pool_progress progress;
    if (observed) pool.observe(std::ref(progress));
    (void)pool.map(tiny, std::vector<std::int64_t>(10));
    std::vector<std::int64_t> xs(static_cast<std::size_t>(n));
    std::iota(xs.begin(), xs.end(), 0);
    auto t0 = clock_type::now();
    std::int64_t total = 0;
    for (std::int64_t r : pool.imap_unordered(tiny, xs, 1)) total += r;
    double s = seconds_since(t0);
    std::int64_t want = 0;
    for (auto x : xs) want += tiny(x);
    if (total != want) die("imap_unordered: wrong sum");
    if (observed && progress.finished() != static_cast<std::uint64_t>(n) + 10)
        die("imap_unordered: the observer missed tasks");
    bench::emit(static_cast<double>(n) / s, "tasks/s", true);
}

// apply round trip on a pool of one worker: median and 99th percentile.
void fig_apply(long n) {
    multiproc::pool pool(1);
    (void)pool.apply(tiny, 1);
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        if (pool.apply(tiny, std::int64_t{i}) != tiny(i)) die("apply: wrong result");
        lat.push_back(seconds_since(t0) * 1e6);
    }
    std::sort(lat.begin(), lat.end());
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", lat[(lat.size() - 1) * 99 / 100]}});
}

// submit round trip on a pool of one worker: submit(f, x).get(), median and 99th percentile.
void fig_submit(long n) {
    multiproc::pool pool(1);
    (void)pool.submit(tiny, 1).get();
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        if (pool.submit(tiny, std::int64_t{i}).get() != tiny(i)) die("submit: wrong result");
        lat.push_back(seconds_since(t0) * 1e6);
    }
    std::sort(lat.begin(), lat.end());
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", lat[(lat.size() - 1) * 99 / 100]}});
}

// Issue 17 item 6: a thread pool's apply round trip of an 8 MiB std::vector<double>, which
// start::thread moves to the worker thread and back instead of serializing it.
std::vector<double> touch_and_return(std::vector<double>& v) {
    v[0] += 1;
    return std::move(v);
}
void fig_threadpool(long n) {
    multiproc::basic_pool<multiproc::start::thread> pool(1);
    std::vector<double> v(std::size_t{1} << 20, 0.0);
    v = pool.apply(touch_and_return, std::move(v));
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        v = pool.apply(touch_and_return, std::move(v));
        lat.push_back(seconds_since(t0) * 1e6);
    }
    if (v.size() != std::size_t{1} << 20 || v[0] != static_cast<double>(n + 1)) die("threadpool: wrong result");
    std::sort(lat.begin(), lat.end());
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", lat[(lat.size() - 1) * 99 / 100]}});
}

// Runs of messages (issue 20): put_many of queue_run values, get_many(queue_run).
constexpr std::size_t queue_run = 256;

template <class Q>
void put_range(Q& q, std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> v(queue_run);
    for (std::int64_t i = from; i < to;) {
        const std::size_t m = static_cast<std::size_t>(std::min<std::int64_t>(queue_run, to - i));
        for (std::size_t k = 0; k < m; ++k) v[k] = i + static_cast<std::int64_t>(k);
        i += static_cast<std::int64_t>(q.put_many(std::span<const std::int64_t>(v.data(), m)));
    }
}

// n 8-byte messages from this process to a consumer process that sums them: one put and
// one get per message, or (`runs`, issue 20) put_many and get_many of queue_run at a time.
template <class Transport>
void fig_queue(long n, bool runs) {
    multiproc::basic_queue<std::int64_t, Transport> q;
    multiproc::basic_queue<std::int64_t, Transport> done;
    multiproc::process c([&] {
        std::int64_t sum = 0;
        if (runs)
            for (long got = 0; got < n;)
                for (std::int64_t x : q.get_many(queue_run)) {
                    sum += x;
                    ++got;
                }
        else
            for (long i = 0; i < n; ++i) sum += q.get();
        done.put(sum);
    });
    c.start();
    auto t0 = clock_type::now();
    if (runs)
        put_range(q, 0, n);
    else
        for (long i = 0; i < n; ++i) q.put(std::int64_t{i});
    std::int64_t total = done.get();
    double s = seconds_since(t0);
    c.join();
    if (total != static_cast<std::int64_t>(n) * (n - 1) / 2) die("queue: wrong sum");
    bench::emit(static_cast<double>(n) / s, "msg/s", true);
}

// n messages in all from 4 producers to 4 consumers, in runs; a consumer stops at a
// negative value (one per consumer, put after the producers are done; a run holding more
// than one gives the others back) and reports its sum.
template <class Transport>
void fig_queue_4x4(long n) {
    constexpr int sides = 4;
    multiproc::basic_queue<std::int64_t, Transport> q;
    multiproc::basic_queue<std::int64_t, Transport> done;
    std::vector<multiproc::process> ps, cs;
    for (int k = 0; k < sides; ++k)
        cs.emplace_back([&] {
            std::int64_t sum = 0;
            for (int stops = 0; stops == 0;) {
                for (std::int64_t x : q.get_many(queue_run)) {
                    if (x < 0)
                        ++stops;
                    else
                        sum += x;
                }
                for (; stops > 1; --stops) q.put(-1);
            }
            done.put(sum);
        });
    for (int k = 0; k < sides; ++k)
        ps.emplace_back([&, k] { put_range(q, n / sides * k, k == sides - 1 ? n : n / sides * (k + 1)); });
    for (auto& c : cs) c.start();
    auto t0 = clock_type::now();
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
    for (int k = 0; k < sides; ++k) q.put(-1);
    std::int64_t total = 0;
    for (int k = 0; k < sides; ++k) total += done.get();
    double s = seconds_since(t0);
    for (auto& c : cs) c.join();
    if (total != static_cast<std::int64_t>(n) * (n - 1) / 2) die("queue_4x4: wrong sum");
    bench::emit(static_cast<double>(n) / s, "msg/s", true);
}

// n 8-byte messages from this process to a child through a one-way pipe's connections;
// the child sums them and sends the sum back on a second pipe.
template <class Transport>
void fig_connection(long n) {
    auto [r, w] = multiproc::pipe<std::int64_t, Transport>(false);
    auto [sum_r, sum_w] = multiproc::pipe<std::int64_t, Transport>(false);
    multiproc::process c([&] {
        std::int64_t sum = 0;
        for (long i = 0; i < n; ++i) sum += r.recv();
        sum_w.send(sum);
    });
    c.start();
    r.close();
    sum_w.close();
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) w.send(std::int64_t{i});
    std::int64_t total = sum_r.recv();
    double s = seconds_since(t0);
    c.join();
    if (total != static_cast<std::int64_t>(n) * (n - 1) / 2) die("connection: wrong sum");
    bench::emit(static_cast<double>(n) / s, "msg/s", true);
}

#if MULTIPROC_BENCH_CONNECTION
// Issue 19: as fig_connection, through a listener and a client: the child connects (a Unix
// socket in the abstract namespace, or TCP over loopback), receives n 8-byte messages and
// sends back their sum.
void fig_listener(long n, bool tcp) {
    multiproc::listener<std::int64_t> l(tcp ? std::optional<multiproc::address>(multiproc::address("127.0.0.1", 0))
                                            : std::nullopt);
    multiproc::process c([&] {
        auto r = multiproc::client<std::int64_t>(l.address());
        std::int64_t sum = 0;
        for (long i = 0; i < n; ++i) sum += r.recv();
        r.send(sum);
    });
    c.start();
    auto w = l.accept();
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) w.send(std::int64_t{i});
    std::int64_t total = w.recv();
    double s = seconds_since(t0);
    c.join();
    if (total != static_cast<std::int64_t>(n) * (n - 1) / 2) die("listener: wrong sum");
    bench::emit(static_cast<double>(n) / s, "msg/s", true);
}
#endif

#if MULTIPROC_BENCH_CONNECTION
// Issue 19: a manager dict's set, one round trip to the manager's server process each.
void fig_manager(long n) {
    multiproc::manager m;
    auto d = m.dict<std::int64_t, std::int64_t>();
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        d.set(i % 100, i);
        lat.push_back(seconds_since(t0) * 1e6);
    }
    if (d.size() != static_cast<std::size_t>(std::min<long>(n, 100)) || d.at((n - 1) % 100) != n - 1)
        die("manager: wrong contents");
    std::sort(lat.begin(), lat.end());
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", lat[(lat.size() - 1) * 99 / 100]}});
}
#endif

// One message of `mib` MiB from a child to this process (send_bytes / recv_bytes_into a
// buffer allocated beforehand; `typed`: send(vector) / recv() -> vector, serialized, the
// receiver's vector made by the decoder).
template <class Transport>
void fig_transfer(long mib, bool typed = false) {
    const std::size_t n = static_cast<std::size_t>(mib) << 20;
    auto [r, w] = multiproc::pipe<std::vector<std::byte>, Transport>(false);
    std::vector<std::byte> buf(n, std::byte{'y'});
    multiproc::event ready, go;
    multiproc::process p([&] {
        // The sender has its data before the clock starts, as the baseline's memcpy has its
        // source: the pages it inherited are mapped here first (one read of each; a child's
        // first pass over inherited memory runs at a third of memcpy's speed here).
        bench::map_pages(buf.data(), n);
        ready.set();
        go.wait();
        if (typed)
            w.send(buf);
        else
            w.send_bytes(buf);
        w.close();
    });
    p.start();
    w.close();
    // The destination is made and touched after the fork (so that writing it costs no
    // copy-on-write faults) and before the clock starts, as the baseline's memcpy target is.
    std::vector<std::byte> data(n);
    ready.wait();
    auto t0 = clock_type::now();
    go.set();
    std::size_t got = 0;
    if (typed) {
        data = r.recv();
        got = data.size();
    } else {
        got = r.recv_bytes_into(data);
    }
    double s = seconds_since(t0);
    p.join();
    if (got != n || data[n / 2] != std::byte{'y'}) die("transfer: wrong data");
    bench::emit(static_cast<double>(n) / s / 1e9, "GB/s", true);
}

// Issue 20: 64 MiB as pages, not bytes: a child fills a page_buffer (before the clock, as
// the transfer's sender has its data) and sends it; the clock runs until this process has
// received it and read one byte of every page (mapping them). The child stays until told
// (a pipe's or a ring's sender keeps the descriptor until it is taken).
template <class Transport>
void fig_pages(long mib) {
    const std::size_t n = static_cast<std::size_t>(mib) << 20;
    auto [r, w] = multiproc::pipe<multiproc::page_buffer, Transport>(false);
    auto [ack_r, ack_w] = multiproc::pipe<int>(false);
    multiproc::event filled, go;
    multiproc::process p([&] {
        multiproc::page_buffer b(n);
        std::memset(b.data(), 'y', n);
        filled.set();
        go.wait();
        w.send(b);
        (void)ack_r.recv();
    });
    p.start();
    w.close();
    filled.wait();
    auto t0 = clock_type::now();
    go.set();
    multiproc::page_buffer got = r.recv();
    unsigned sum = 0;
    for (std::size_t i = 0; i < got.size(); i += 4096) sum += static_cast<unsigned>(got.data()[i]);
    double s = seconds_since(t0);
    ack_w.send(1);
    p.join();
    if (got.size() != n || sum != 'y' * static_cast<unsigned>(n / 4096)) die("pages: wrong data");
    bench::emit(static_cast<double>(n) / s / 1e9, "GB/s", true);
}

// The same CPU-bound work sequentially and as one task per CPU on a pool.
void fig_speedup(long scale) {
    const int workers = bench::cpus();
    const long per = scale * 1000;
    multiproc::pool pool(workers);
    auto t0 = clock_type::now();
    volatile std::uint64_t sink = burn(per * workers);
    double seq = seconds_since(t0);
    t0 = clock_type::now();
    auto out = pool.map(burn, std::vector<long>(static_cast<std::size_t>(workers), per), 1);
    double par = seconds_since(t0);
    sink = out[0];
    (void)sink;
    bench::emit(seq / par, "x", true, {{"workers", static_cast<double>(workers)}});
}

// The compile time of the flagship example, as the build compiles it (-O2).
void fig_compile(long n) {
    std::vector<double> t;
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        auto r = multiproc::subprocess::run(
            {MULTIPROC_BENCH_CXX, "-std=c++20", "-O2", "-fsyntax-only", "-I" MULTIPROC_BENCH_INCLUDE,
             "-I" MULTIPROC_BENCH_EXAMPLES, MULTIPROC_BENCH_FLAGSHIP},
            {.capture_output = true});
        if (r.returncode != 0) die("compile: " + r.err.substr(0, 500));
        t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    bench::emit(t[t.size() / 2], "s", false);
}

} // namespace

int main(int argc, char** argv) {
    multiproc::freeze_support();
    std::string fig = argc > 1 ? argv[1] : "";
    std::string variant = argc > 2 && std::string(argv[2]) != "-" ? argv[2] : ""; // "-": none
    long scale = argc > 3 ? std::atol(argv[3]) : 0;
    auto pick = [&](long dflt) { return scale > 0 ? scale : dflt; };
    namespace tr = multiproc::transport;
    if (fig == "map") fig_map(pick(1'000'000), variant == "observed");
    else if (fig == "threadpool") fig_threadpool(pick(2'000));
    else if (fig == "imap_unordered") fig_imap_unordered(pick(200'000), variant == "observed");
    else if (fig == "apply") fig_apply(pick(20'000));
    else if (fig == "submit") fig_submit(pick(20'000));
    else if (fig == "queue" && variant == "socketpair") fig_queue<tr::socketpair>(pick(2'000'000), false);
    else if (fig == "queue" && variant == "shm") fig_queue<tr::shm>(pick(2'000'000), false);
    else if (fig == "queue") fig_queue<tr::pipe>(pick(2'000'000), false);
    else if (fig == "queue_many" && variant == "socketpair") fig_queue<tr::socketpair>(pick(20'000'000), true);
    else if (fig == "queue_many" && variant == "shm") fig_queue<tr::shm>(pick(40'000'000), true);
    else if (fig == "queue_many") fig_queue<tr::pipe>(pick(20'000'000), true);
    else if (fig == "queue_4x4" && variant == "socketpair") fig_queue_4x4<tr::socketpair>(pick(10'000'000));
    else if (fig == "queue_4x4" && variant == "shm") fig_queue_4x4<tr::shm>(pick(20'000'000));
    else if (fig == "queue_4x4") fig_queue_4x4<tr::pipe>(pick(10'000'000));
    else if (fig == "connection" && variant == "socketpair") fig_connection<tr::socketpair>(pick(2'000'000));
    else if (fig == "connection" && variant == "shm") fig_connection<tr::shm>(pick(2'000'000));
    else if (fig == "connection") fig_connection<tr::pipe>(pick(2'000'000));
#if MULTIPROC_BENCH_CONNECTION
    else if (fig == "listener") fig_listener(pick(2'000'000), variant == "tcp");
    else if (fig == "manager") fig_manager(pick(20'000));
#endif
    else if (fig == "typed_transfer" && variant == "socketpair") fig_transfer<tr::socketpair>(pick(64), true);
    else if (fig == "typed_transfer" && variant == "shm") fig_transfer<tr::shm>(pick(64), true);
    else if (fig == "typed_transfer") fig_transfer<tr::pipe>(pick(64), true);
    else if (fig == "transfer" && variant == "socketpair") fig_transfer<tr::socketpair>(pick(64));
    else if (fig == "transfer" && variant == "shm") fig_transfer<tr::shm>(pick(64));
    else if (fig == "transfer") fig_transfer<tr::pipe>(pick(64));
    else if (fig == "pages" && variant == "socketpair") fig_pages<tr::socketpair>(pick(64));
    else if (fig == "pages" && variant == "shm") fig_pages<tr::shm>(pick(64));
    else if (fig == "pages") fig_pages<tr::pipe>(pick(64));
    else if (fig == "speedup") fig_speedup(pick(60'000));
    else if (fig == "compile") fig_compile(pick(3));
    else {
        std::fprintf(stderr, "usage: %s map|imap_unordered|apply|queue|queue_many|queue_4x4|connection|transfer|typed_transfer|pages|speedup|compile [variant] [scale] (start: bench_start)\n",
                     argv[0]);
        return 2;
    }
}
