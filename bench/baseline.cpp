// The raw-OS baseline: every figure of design.md §6 written directly on fork, pipes,
// socketpairs, futexes and a shared-memory ring, with no multiproc code at all. This is
// the "limit" multiproc is compared with. Usage: bench_baseline <figure> [variant] [scale]
// Prints one JSON object: {"value": v, "unit": "...", ...}.

#include "common.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using bench::clock_type;
using bench::seconds_since;

[[noreturn]] void die(const char* what) {
    std::perror(what);
    std::exit(2);
}

void write_full(int fd, const void* p, std::size_t n) {
    auto c = static_cast<const char*>(p);
    while (n) {
        ssize_t w = ::write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        c += w;
        n -= static_cast<std::size_t>(w);
    }
}

bool read_full(int fd, void* p, std::size_t n) {
    auto c = static_cast<char*>(p);
    while (n) {
        ssize_t r = ::read(fd, c, n);
        if (r == 0) return false;
        if (r < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

void make_pipe(int fds[2]) {
    if (::pipe2(fds, O_CLOEXEC) != 0) die("pipe2");
    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); // as large as an unprivileged process may
}

template <class F>
pid_t fork_child(F body) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        body();
        ::_exit(0);
    }
    return pid;
}

void reap(pid_t pid) {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}

// ---- futex ping-pong on a shared word --------------------------------------------------

void futex_wait(std::atomic<std::uint32_t>* w, std::uint32_t v) {
    ::syscall(SYS_futex, w, FUTEX_WAIT, v, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>* w) { ::syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

template <class T>
T* shared_alloc(std::size_t n = 1) {
    void* p = ::mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return static_cast<T*>(p);
}

// Waits until *w != old: spin up to `spin`, then sleep on the futex.
std::uint32_t wait_change(std::atomic<std::uint32_t>* w, std::uint32_t old, std::chrono::microseconds spin) {
    auto end = clock_type::now() + spin;
    for (unsigned i = 0;; ++i) {
        std::uint32_t v = w->load(std::memory_order_acquire);
        if (v != old) return v;
        if ((i & 63) == 0 && clock_type::now() > end) break;
        __builtin_ia32_pause();
    }
    for (;;) {
        std::uint32_t v = w->load(std::memory_order_acquire);
        if (v != old) return v;
        futex_wait(w, old);
    }
}

// ---- figures -----------------------------------------------------------------------------

std::int64_t tiny(std::int64_t x) { return x * x; }

struct worker_pipes {
    pid_t pid;
    int task_w, result_r;
};

// Pre-forked workers that read [count][count x int64] chunks and answer with the squares.
std::vector<worker_pipes> start_chunk_workers(int n) {
    std::vector<worker_pipes> ws;
    for (int i = 0; i < n; ++i) {
        int t[2], r[2];
        make_pipe(t);
        make_pipe(r);
        pid_t pid = fork_child([&] {
            ::close(t[1]);
            ::close(r[0]);
            for (auto& w : ws) {
                ::close(w.task_w);
                ::close(w.result_r);
            }
            std::vector<std::int64_t> buf;
            std::uint64_t count;
            while (read_full(t[0], &count, sizeof count)) {
                buf.resize(count);
                read_full(t[0], buf.data(), count * sizeof(std::int64_t));
                for (auto& x : buf) x = tiny(x);
                write_full(r[1], &count, sizeof count);
                write_full(r[1], buf.data(), count * sizeof(std::int64_t));
            }
        });
        ::close(t[0]);
        ::close(r[1]);
        ws.push_back({pid, t[1], r[0]});
    }
    return ws;
}

void stop_workers(std::vector<worker_pipes>& ws) {
    for (auto& w : ws) ::close(w.task_w);
    for (auto& w : ws) {
        ::close(w.result_r);
        reap(w.pid);
    }
}

// pool.map of N tiny tasks with CPython's default chunking (about 4 chunks per worker):
// each chunk one write of a contiguous block, results one block back; a poll loop keeps
// every pipe moving in both directions.
void fig_map(long n) {
    int workers = bench::cpus();
    auto ws = start_chunk_workers(workers);
    std::vector<std::int64_t> in(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) in[static_cast<std::size_t>(i)] = i;
    auto t0 = clock_type::now();
    // The results go to a new array, made inside the clock as pool.map's vector and CPython's
    // list are (issue 20: before, it was made and zeroed before the clock started).
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    long chunk = (n + 4L * workers - 1) / (4L * workers);
    // Chunks go to workers round-robin; each worker answers in order.
    std::vector<std::vector<long>> assigned(static_cast<std::size_t>(workers));
    for (long start = 0, k = 0; start < n; start += chunk, ++k) assigned[static_cast<std::size_t>(k % workers)].push_back(start);
    // Non-blocking task pipes: the parent writes while it can and reads results as they come,
    // so neither side can block the other.
    for (auto& w : ws) ::fcntl(w.task_w, F_SETFL, O_NONBLOCK);
    struct progress {
        std::size_t next_chunk = 0, sent_bytes = 0, recv_chunk = 0;
        std::vector<char> msg; // the chunk being sent: [count][count x int64], one block
    };
    std::vector<progress> pr(static_cast<std::size_t>(workers));
    std::size_t done = 0, total = 0;
    for (auto& a : assigned) total += a.size();
    std::vector<pollfd> fds;
    while (done < total) {
        fds.clear();
        for (int i = 0; i < workers; ++i) {
            auto& p = pr[static_cast<std::size_t>(i)];
            auto& a = assigned[static_cast<std::size_t>(i)];
            if (p.next_chunk < a.size()) fds.push_back({ws[static_cast<std::size_t>(i)].task_w, POLLOUT, 0});
            if (p.recv_chunk < a.size()) fds.push_back({ws[static_cast<std::size_t>(i)].result_r, POLLIN, 0});
        }
        if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < workers; ++i) {
            auto& p = pr[static_cast<std::size_t>(i)];
            auto& a = assigned[static_cast<std::size_t>(i)];
            auto& w = ws[static_cast<std::size_t>(i)];
            while (p.next_chunk < a.size()) {
                if (p.sent_bytes == 0) { // encode the next chunk once
                    long start = a[p.next_chunk];
                    std::uint64_t cnt = static_cast<std::uint64_t>(std::min(chunk, n - start));
                    p.msg.resize(sizeof cnt + cnt * sizeof(std::int64_t));
                    std::memcpy(p.msg.data(), &cnt, sizeof cnt);
                    std::memcpy(p.msg.data() + sizeof cnt, &in[static_cast<std::size_t>(start)], cnt * sizeof(std::int64_t));
                }
                ssize_t wr = ::write(w.task_w, p.msg.data() + p.sent_bytes, p.msg.size() - p.sent_bytes);
                if (wr < 0) {
                    if (errno == EAGAIN) break;
                    die("write");
                }
                p.sent_bytes += static_cast<std::size_t>(wr);
                if (p.sent_bytes < p.msg.size()) break;
                p.sent_bytes = 0;
                ++p.next_chunk;
            }
            // A result chunk, once it starts arriving, arrives whole soon: read it blocking.
            pollfd probe{w.result_r, POLLIN, 0};
            while (p.recv_chunk < a.size() && ::poll(&probe, 1, 0) == 1) {
                std::uint64_t cnt;
                read_full(w.result_r, &cnt, sizeof cnt);
                long start = a[p.recv_chunk];
                read_full(w.result_r, &out[static_cast<std::size_t>(start)], cnt * sizeof(std::int64_t));
                ++p.recv_chunk;
                ++done;
            }
        }
    }
    double s = seconds_since(t0);
    stop_workers(ws);
    for (long i = 0; i < n; i += n / 7 + 1)
        if (out[static_cast<std::size_t>(i)] != tiny(i)) die("wrong result");
    bench::emit(static_cast<double>(n) / s, "tasks/s", true);
}

// imap_unordered with chunksize 1: one 8-byte task message and one 16-byte result message
// per task, many tasks in flight per worker, the parent batching its reads.
void fig_imap_unordered(long n) {
    int workers = bench::cpus();
    std::vector<worker_pipes> ws;
    for (int i = 0; i < workers; ++i) {
        int t[2], r[2];
        make_pipe(t);
        make_pipe(r);
        pid_t pid = fork_child([&] {
            ::close(t[1]);
            ::close(r[0]);
            for (auto& w : ws) {
                ::close(w.task_w);
                ::close(w.result_r);
            }
            std::int64_t in[512], out[1024];
            for (;;) {
                ssize_t got = ::read(t[0], in, sizeof in);
                if (got <= 0) break;
                while (got % 8) { // complete a split message
                    ssize_t more = ::read(t[0], reinterpret_cast<char*>(in) + got, static_cast<std::size_t>(8 - got % 8));
                    if (more <= 0) ::_exit(1);
                    got += more;
                }
                std::size_t k = static_cast<std::size_t>(got) / 8;
                for (std::size_t j = 0; j < k; ++j) {
                    out[2 * j] = in[j];
                    out[2 * j + 1] = tiny(in[j]);
                }
                write_full(r[1], out, k * 16);
            }
        });
        ::close(t[0]);
        ::close(r[1]);
        ws.push_back({pid, t[1], r[0]});
    }
    const long window = 256 * workers;
    auto t0 = clock_type::now();
    long sent = 0, received = 0;
    std::int64_t sum = 0;
    std::vector<pollfd> fds(static_cast<std::size_t>(workers));
    for (int i = 0; i < workers; ++i) fds[static_cast<std::size_t>(i)] = {ws[static_cast<std::size_t>(i)].result_r, POLLIN, 0};
    std::vector<std::int64_t> buf(4096);
    while (received < n) {
        // Fill the window: each worker gets its share of new tasks as one write of
        // consecutive 8-byte task messages.
        if (sent < n && sent - received < window) {
            long room = std::min(window - (sent - received), n - sent);
            for (int w = 0; w < workers && room > 0; ++w) {
                std::int64_t batch[256];
                long k = std::min<long>({room / (workers - w) + (room % (workers - w) ? 1 : 0), 256L, room});
                for (long j = 0; j < k; ++j) batch[j] = sent++;
                room -= k;
                write_full(ws[static_cast<std::size_t>(w)].task_w, batch, static_cast<std::size_t>(k) * 8);
            }
        }
        if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) die("poll");
        for (auto& f : fds) {
            if (!(f.revents & POLLIN)) continue;
            ssize_t got = ::read(f.fd, buf.data(), buf.size() * 8);
            if (got <= 0) die("worker died");
            while (got % 16) {
                ssize_t more = ::read(f.fd, reinterpret_cast<char*>(buf.data()) + got, static_cast<std::size_t>(16 - got % 16));
                if (more <= 0) die("worker died");
                got += more;
            }
            for (ssize_t j = 0; j < got / 16; ++j) sum += buf[static_cast<std::size_t>(2 * j + 1)];
            received += got / 16;
        }
    }
    double s = seconds_since(t0);
    for (auto& w : ws) ::close(w.task_w);
    for (auto& w : ws) {
        ::close(w.result_r);
        reap(w.pid);
    }
    std::int64_t expect = 0;
    for (long i = 0; i < n; ++i) expect += tiny(i);
    if (sum != expect) die("wrong sum");
    bench::emit(static_cast<double>(n) / s, "tasks/s", true);
}

// apply round trip: a request and a reply between two processes, n times; the variant
// says how they wait: "pipe" (blocking reads) or "spin" (spin briefly, then a futex).
void fig_apply(long n, const std::string& variant) {
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    if (variant == "pipe") {
        int a[2], b[2];
        make_pipe(a);
        make_pipe(b);
        pid_t pid = fork_child([&] {
            ::close(a[1]); // or the child would hold its own request pipe open: no EOF
            ::close(b[0]);
            std::int64_t x;
            while (read_full(a[0], &x, 8)) {
                x = tiny(x);
                write_full(b[1], &x, 8);
            }
        });
        ::close(a[0]);
        ::close(b[1]);
        for (long i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            std::int64_t x = i;
            write_full(a[1], &x, 8);
            read_full(b[0], &x, 8);
            lat.push_back(seconds_since(t0) * 1e6);
        }
        ::close(a[1]);
        ::close(b[0]);
        reap(pid);
    } else {
        struct box {
            std::atomic<std::uint32_t> req, rep;
            std::int64_t value;
        };
        auto* bx = shared_alloc<box>();
        pid_t pid = fork_child([&] {
            std::uint32_t seen = 0;
            for (;;) {
                seen = wait_change(&bx->req, seen, std::chrono::microseconds(200));
                if (bx->value < 0) break;
                bx->value = tiny(bx->value);
                bx->rep.fetch_add(1, std::memory_order_release);
                futex_wake(&bx->rep);
            }
        });
        std::uint32_t rep = 0;
        for (long i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            bx->value = i;
            bx->req.fetch_add(1, std::memory_order_release);
            futex_wake(&bx->req);
            rep = wait_change(&bx->rep, rep, std::chrono::microseconds(200));
            lat.push_back(seconds_since(t0) * 1e6);
        }
        bx->value = -1;
        bx->req.fetch_add(1, std::memory_order_release);
        futex_wake(&bx->req);
        reap(pid);
    }
    std::sort(lat.begin(), lat.end());
    double p99 = lat[static_cast<std::size_t>(static_cast<double>(lat.size() - 1) * 0.99)];
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", p99}});
}

// A thread pool's raw limit (issue 17 item 6): an 8 MiB std::vector<double> moved to a
// thread through a slot and back, with the same futex hand-off as fig_apply's.
void fig_threadpool(long n) {
    struct slot {
        std::atomic<std::uint32_t> req{0}, rep{0};
        std::vector<double> v;
        bool stop = false;
    } sl;
    std::thread worker([&] {
        std::uint32_t seen = 0;
        for (;;) {
            seen = wait_change(&sl.req, seen, std::chrono::microseconds(200));
            if (sl.stop) break;
            sl.v[0] += 1;
            sl.rep.fetch_add(1, std::memory_order_release);
            futex_wake(&sl.rep);
        }
    });
    std::vector<double> v(std::size_t{1} << 20, 0.0);
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(n));
    std::uint32_t rep = 0;
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        sl.v = std::move(v);
        sl.req.fetch_add(1, std::memory_order_release);
        futex_wake(&sl.req);
        rep = wait_change(&sl.rep, rep, std::chrono::microseconds(200));
        v = std::move(sl.v);
        lat.push_back(seconds_since(t0) * 1e6);
    }
    sl.stop = true;
    sl.req.fetch_add(1, std::memory_order_release);
    futex_wake(&sl.req);
    worker.join();
    if (v[0] != static_cast<double>(n)) die("threadpool: wrong result");
    std::sort(lat.begin(), lat.end());
    bench::emit(lat[lat.size() / 2], "us", false, {{"p99_us", lat[(lat.size() - 1) * 99 / 100]}});
}

// 8-byte messages from one process to another: "pipe" and "socketpair" one write and one
// read per message; "shm" a single-producer single-consumer ring in shared memory.
void fig_queue(long n, const std::string& variant) {
    if (variant == "shm") {
        constexpr std::size_t cap = 1 << 16;
        struct ring {
            alignas(64) std::atomic<std::uint64_t> head;
            alignas(64) std::atomic<std::uint64_t> tail;
            alignas(64) std::atomic<std::uint32_t> data_seq, space_seq;
            std::int64_t slots[cap];
        };
        auto* r = shared_alloc<ring>();
        pid_t pid = fork_child([&] {
            std::int64_t sum = 0;
            std::uint64_t t = 0;
            for (long i = 0; i < n; ++i) {
                while (r->head.load(std::memory_order_acquire) == t) __builtin_ia32_pause();
                sum += r->slots[t % cap];
                r->tail.store(++t, std::memory_order_release);
            }
            ::_exit(sum == static_cast<std::int64_t>(n) * (n - 1) / 2 ? 0 : 1);
        });
        auto t0 = clock_type::now();
        std::uint64_t h = 0;
        for (long i = 0; i < n; ++i) {
            while (h - r->tail.load(std::memory_order_acquire) == cap) __builtin_ia32_pause();
            r->slots[h % cap] = i;
            r->head.store(++h, std::memory_order_release);
        }
        int st;
        ::waitpid(pid, &st, 0);
        double s = seconds_since(t0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("wrong sum");
        bench::emit(static_cast<double>(n) / s, "msg/s", true);
        return;
    }
    int fds[2];
    if (variant == "socketpair" || variant == "unix") {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) die("socketpair");
    } else if (variant == "tcp") {
        // A TCP connection over loopback: listen on a port the system picks, connect, accept.
        int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0 ||
            ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            die("tcp listen");
        fds[1] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[1] < 0 || ::connect(fds[1], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("tcp connect");
        fds[0] = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        if (fds[0] < 0) die("tcp accept");
        ::close(l);
    } else {
        make_pipe(fds);
    }
    pid_t pid = fork_child([&] {
        ::close(fds[1]);
        std::int64_t x, sum = 0;
        for (long i = 0; i < n; ++i) {
            if (!read_full(fds[0], &x, 8)) ::_exit(1);
            sum += x;
        }
        ::_exit(sum == static_cast<std::int64_t>(n) * (n - 1) / 2 ? 0 : 1);
    });
    ::close(fds[0]);
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) {
        std::int64_t x = i;
        write_full(fds[1], &x, 8);
    }
    int st;
    ::waitpid(pid, &st, 0);
    double s = seconds_since(t0);
    ::close(fds[1]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("wrong sum");
    bench::emit(static_cast<double>(n) / s, "msg/s", true);
}

// n 8-byte messages in all from 4 producer processes to 4 consumer processes. "pipe": one
// pipe, a write and a read of 8 bytes per message (atomic: at most PIPE_BUF); "socketpair":
// a datagram socket pair, one 8-byte datagram per message (a stream socket's reads could
// split a message between two readers); "shm": a bounded lock-free ring of 8-byte slots
// with a sequence word per slot, producers and consumers claiming slots with a
// compare-and-swap, spinning (then yielding: 8 processes share the cores) while it is
// full or empty. Consumers stop at a negative value, one each.
void fig_queue_4x4(long n, const std::string& variant) {
    constexpr int sides = 4;
    // Runs the figure over push(v) and pop() -> v.
    auto run = [&](auto push, auto pop) {
        int sums[2];
        make_pipe(sums); // consumers write their sums here
        std::vector<pid_t> ps, cs;
        for (int k = 0; k < sides; ++k)
            cs.push_back(fork_child([&] {
                std::int64_t sum = 0;
                for (std::int64_t v; (v = pop()) >= 0;) sum += v;
                write_full(sums[1], &sum, sizeof sum);
            }));
        auto t0 = clock_type::now();
        for (int k = 0; k < sides; ++k)
            ps.push_back(fork_child([&, k] {
                const std::int64_t hi = k == sides - 1 ? n : n / sides * (k + 1);
                for (std::int64_t i = n / sides * k; i < hi; ++i) push(i);
            }));
        for (pid_t p : ps) reap(p);
        for (int k = 0; k < sides; ++k) push(-1);
        std::int64_t total = 0, x;
        for (int k = 0; k < sides; ++k) {
            if (!read_full(sums[0], &x, sizeof x)) die("queue_4x4: a consumer died");
            total += x;
        }
        double s = seconds_since(t0);
        for (pid_t c : cs) reap(c);
        ::close(sums[0]);
        ::close(sums[1]);
        if (total != static_cast<std::int64_t>(n) * (n - 1) / 2) die("queue_4x4: wrong sum");
        bench::emit(static_cast<double>(n) / s, "msg/s", true);
    };
    if (variant == "shm") {
        constexpr std::uint64_t cap = 1 << 16;
        struct slot {
            std::atomic<std::uint64_t> seq;
            std::int64_t value;
        };
        struct ring {
            alignas(64) std::atomic<std::uint64_t> head; // next slot to fill
            alignas(64) std::atomic<std::uint64_t> tail; // next slot to take
            alignas(64) slot slots[cap];
        };
        auto* r = shared_alloc<ring>();
        for (std::uint64_t i = 0; i < cap; ++i) r->slots[i].seq.store(i, std::memory_order_relaxed);
        auto backoff = [](unsigned spins) {
            if (spins % 64 == 63)
                ::sched_yield();
            else
                __builtin_ia32_pause();
        };
        run(
            [r, backoff](std::int64_t v) {
                for (unsigned spins = 0;; backoff(++spins)) {
                    std::uint64_t h = r->head.load(std::memory_order_relaxed);
                    slot& sl = r->slots[h % cap];
                    if (sl.seq.load(std::memory_order_acquire) == h &&
                        r->head.compare_exchange_weak(h, h + 1, std::memory_order_relaxed)) {
                        sl.value = v;
                        sl.seq.store(h + 1, std::memory_order_release);
                        return;
                    }
                }
            },
            [r, backoff] {
                for (unsigned spins = 0;; backoff(++spins)) {
                    std::uint64_t t = r->tail.load(std::memory_order_relaxed);
                    slot& sl = r->slots[t % cap];
                    if (sl.seq.load(std::memory_order_acquire) == t + 1 &&
                        r->tail.compare_exchange_weak(t, t + 1, std::memory_order_relaxed)) {
                        const std::int64_t v = sl.value;
                        sl.seq.store(t + cap, std::memory_order_release);
                        return v;
                    }
                }
            });
        return;
    }
    int fds[2];
    if (variant == "socketpair") {
        if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) != 0) die("socketpair");
    } else {
        make_pipe(fds);
    }
    run([&](std::int64_t v) { write_full(fds[1], &v, 8); },
        [&] {
            std::int64_t v = -1;
            return read_full(fds[0], &v, 8) ? v : -1;
        });
    ::close(fds[0]);
    ::close(fds[1]);
}

// One large transfer from a forked sender to this process, timed by the receiver from the
// sender's word that it is ready until `receive(in)` has the bytes in `in`. Both sides have
// their memory mapped before the clock starts: the sender's data (and what `prepare` maps),
// the receiver's buffer. `ours`/`theirs`: the receiver's and the sender's descriptors of
// the channel, each closed on the other side. Emits GB/s.
template <class Prepare, class Send, class Receive>
void timed_transfer(std::size_t n, int ours, int theirs, Prepare prepare, Send send, Receive receive) {
    std::vector<char> buf(n, 'y');
    int ready[2];
    make_pipe(ready);
    pid_t pid = fork_child([&] {
        ::close(ours);
        // As multiproc's sender: its data's pages mapped here before the clock starts.
        bench::map_pages(buf.data(), n);
        prepare();
        write_full(ready[1], "r", 1);
        send(buf);
    });
    ::close(theirs);
    ::close(ready[1]);
    std::vector<char> in(n);
    std::memset(in.data(), 0, n);
    char r;
    if (!read_full(ready[0], &r, 1)) die("sender not ready");
    ::close(ready[0]);
    auto t0 = clock_type::now();
    receive(in);
    double s = seconds_since(t0);
    if (in[n / 2] != 'y') die("short transfer");
    reap(pid);
    ::close(ours);
    bench::emit(static_cast<double>(n) / s / 1e9, "GB/s", true);
}

// One byte over a Unix socket, with descriptor `fd` attached if it is not -1.
void send_byte(int sock, int fd) {
    char c = 1;
    iovec iov{&c, 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        cmsghdr* h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(h), &fd, sizeof fd);
    }
    if (::sendmsg(sock, &m, 0) != 1) die("sendmsg");
}

// Receives what send_byte sent: the descriptor attached, or -1.
int recv_byte(int sock) {
    char c;
    iovec iov{&c, 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    if (::recvmsg(sock, &m, 0) != 1) die("recvmsg");
    cmsghdr* h = CMSG_FIRSTHDR(&m);
    if (!h || h->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    std::memcpy(&fd, CMSG_DATA(h), sizeof fd);
    return fd;
}

// All `n` bytes of the file `fd` from its start into `p` (pread), or from `p` (pwrite).
void pread_full(int fd, char* p, std::size_t n) {
    for (std::size_t at = 0; at < n;) {
        const ssize_t k = ::pread(fd, p + at, n - at, static_cast<off_t>(at));
        if (k <= 0) die("pread");
        at += static_cast<std::size_t>(k);
    }
}
void pwrite_full(int fd, const char* p, std::size_t n) {
    for (std::size_t at = 0; at < n;) {
        const ssize_t k = ::pwrite(fd, p + at, n - at, static_cast<off_t>(at));
        if (k <= 0) die("pwrite");
        at += static_cast<std::size_t>(k);
    }
}

// The stream a large transfer goes over: a stream socket pair with 4 MiB buffers (as
// multiproc's socketpair transport), or a pipe.
void open_stream(int fds[2], bool socket) {
    if (!socket) return make_pipe(fds);
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) die("socketpair");
    int sz = 4 << 20;
    ::setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

// 64 MiB from one process to another ("pipe", "socketpair"), or memcpy within one ("shm"'s
// limit). Not figures of the table, but the raw floors of sending a large message of bytes
// through shared memory instead of a pipe or socket pair, delivered into the receiver's
// buffer as the stream is (README, Performance, why a large message over a pipe does not go
// through shm): "memfd", a fresh memfd per message, written by the sender and handed over
// with SCM_RIGHTS, read by the receiver with pread (no page tables on either side);
// "memfd-kept", a region both ends mapped and faulted in before the clock (as one kept from
// an earlier message would be), the sender copying in and the receiver out after a one-byte
// notice.
void fig_transfer(long mib, const std::string& variant) {
    std::size_t n = static_cast<std::size_t>(mib) << 20;
    if (variant == "shm" || variant == "memcpy") {
        std::vector<char> a(n, 'x'), b(n);
        std::memcpy(b.data(), a.data(), n); // touch the pages first
        auto t0 = clock_type::now();
        std::memcpy(b.data(), a.data(), n);
        double s = seconds_since(t0);
        if (b[n / 2] != 'x') die("memcpy");
        bench::emit(static_cast<double>(n) / s / 1e9, "GB/s", true);
        return;
    }
    int fds[2];
    if (variant == "memfd" || variant == "memfd-kept") {
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) die("socketpair");
    } else {
        open_stream(fds, variant == "socketpair");
    }
    if (variant == "memfd") {
        timed_transfer(
            n, fds[0], fds[1], [] {},
            [&](const std::vector<char>& buf) {
                int fd = ::memfd_create("baseline-message", MFD_CLOEXEC);
                if (fd < 0) die("memfd_create");
                write_full(fd, buf.data(), n);
                send_byte(fds[1], fd);
            },
            [&](std::vector<char>& in) {
                int fd = recv_byte(fds[0]);
                if (fd < 0) die("no memfd");
                pread_full(fd, in.data(), n);
                ::close(fd);
            });
    } else if (variant == "memfd-kept") {
        int fd = ::memfd_create("baseline-kept", MFD_CLOEXEC);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(n)) != 0) die("memfd");
        void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) die("mmap");
        ::close(fd);
        char* region = static_cast<char*>(p);
        std::memset(region, 0, n); // its pages exist, and are mapped here
        timed_transfer(
            n, fds[0], fds[1], [&] { bench::map_pages(region, n); }, // (and in the sender)
            [&](const std::vector<char>& buf) {
                std::memcpy(region, buf.data(), n);
                send_byte(fds[1], -1);
            },
            [&](std::vector<char>& in) {
                (void)recv_byte(fds[0]);
                std::memcpy(in.data(), region, n);
            });
        ::munmap(region, n);
    } else {
        timed_transfer(
            n, fds[0], fds[1], [] {}, [&](const std::vector<char>& buf) { write_full(fds[1], buf.data(), n); },
            [&](std::vector<char>& in) {
                if (!read_full(fds[0], in.data(), n)) die("short transfer");
            });
    }
}

// A run of `count` messages of `mib` MiB from a forked sender to this process over one
// channel, each into the receiver's buffer (README, Performance: why a large message over a
// pipe or socket pair does not go through shared memory). Unlike fig_transfer, the clock
// runs over the whole run and nothing is mapped or faulted in before it: what a message
// costs once a connection has carried some, and what the first costs. Variants: "pipe" and
// "socketpair", the stream; "memfd-pread", two memfds the sender keeps (handed over with the
// first two messages), written with pwrite and read with pread, each given back with a byte
// on the socket before it is written again; "memfd-mapped", the same two memfds mapped by
// both ends and copied with memcpy. Emits the median GB/s of messages 2..count, with the
// first message's time and the whole run's in milliseconds.
void fig_transfer_run(long mib, long count, const std::string& variant) {
    const std::size_t n = static_cast<std::size_t>(mib) << 20;
    const bool kept = variant == "memfd-pread" || variant == "memfd-mapped", mapped = variant == "memfd-mapped";
    int fds[2];
    open_stream(fds, kept || variant == "socketpair");
    std::vector<char> buf(n, 'y');
    int go[2];
    make_pipe(go);
    pid_t pid = fork_child([&] {
        ::close(fds[0]);
        ::close(go[1]);
        bench::map_pages(buf.data(), n);
        char c;
        if (!read_full(go[0], &c, 1)) die("no go");
        int region[2] = {-1, -1};
        char* map[2] = {nullptr, nullptr};
        for (long i = 0; i < count; ++i) {
            if (!kept) {
                write_full(fds[1], buf.data(), n);
                continue;
            }
            const int k = static_cast<int>(i % 2);
            if (i >= 2 && !read_full(fds[1], &c, 1)) die("no give-back"); // (message i-2's region)
            if (region[k] < 0) {
                region[k] = ::memfd_create("baseline-run", MFD_CLOEXEC);
                if (region[k] < 0 || ::ftruncate(region[k], static_cast<off_t>(n)) != 0) die("memfd");
                if (mapped) {
                    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, region[k], 0);
                    if (p == MAP_FAILED) die("mmap");
                    map[k] = static_cast<char*>(p);
                }
            }
            if (mapped) {
                std::memcpy(map[k], buf.data(), n);
            } else {
                pwrite_full(region[k], buf.data(), n);
            }
            send_byte(fds[1], i < 2 ? region[k] : -1);
        }
    });
    ::close(fds[1]);
    ::close(go[0]);
    std::vector<char> in(n);
    int region[2] = {-1, -1};
    char* map[2] = {nullptr, nullptr};
    std::vector<double> ms;
    const auto t0 = clock_type::now();
    auto last = t0;
    write_full(go[1], "g", 1);
    for (long i = 0; i < count; ++i) {
        const int k = static_cast<int>(i % 2);
        if (!kept) {
            if (!read_full(fds[0], in.data(), n)) die("short transfer");
        } else {
            const int fd = recv_byte(fds[0]);
            if (i < 2) region[k] = fd;
            if (mapped && !map[k]) {
                void* p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, region[k], 0);
                if (p == MAP_FAILED) die("mmap");
                map[k] = static_cast<char*>(p);
            }
            if (mapped) {
                std::memcpy(in.data(), map[k], n);
            } else {
                pread_full(region[k], in.data(), n);
            }
            if (i + 2 < count) send_byte(fds[0], -1); // (given back: the sender writes it again)
        }
        if (in[n / 2] != 'y') die("wrong data");
        const auto now = clock_type::now();
        ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
        last = now;
    }
    const double total = std::chrono::duration<double, std::milli>(last - t0).count();
    reap(pid);
    ::close(fds[0]);
    ::close(go[1]);
    std::vector<double> rest(ms.begin() + 1, ms.end());
    std::sort(rest.begin(), rest.end());
    const double median = rest.empty() ? ms[0] : rest[rest.size() / 2];
    bench::emit(static_cast<double>(n) / (median / 1e3) / 1e9, "GB/s", true, {{"first_ms", ms[0]}, {"total_ms", total}});
}

// Process start + join: "fork" (fork, _exit, waitpid), "spawn" (posix_spawn of this very
// executable, which exits at once), "forkserver" (a request over a socket to a server
// process that forks the child, reaps it and answers).
void fig_start(long n, const std::string& variant, const char* self) {
    std::vector<double> t;
    if (variant == "forkserver") {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
        pid_t server = fork_child([&] {
            ::close(sv[0]);
            char c;
            while (::read(sv[1], &c, 1) == 1) {
                pid_t child = ::fork();
                if (child == 0) ::_exit(0);
                int st;
                ::waitpid(child, &st, 0);
                int code = WEXITSTATUS(st);
                write_full(sv[1], &code, sizeof code);
            }
        });
        ::close(sv[1]);
        for (long i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            char c = 1;
            write_full(sv[0], &c, 1);
            int code;
            read_full(sv[0], &code, sizeof code);
            t.push_back(seconds_since(t0) * 1e3);
        }
        ::close(sv[0]);
        reap(server);
    } else {
        for (long i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            pid_t pid;
            if (variant == "spawn") {
                char arg0[] = "bench_baseline", arg1[] = "noop";
                char* argv[] = {arg0, arg1, nullptr};
                if (::posix_spawn(&pid, self, nullptr, nullptr, argv, environ) != 0) die("posix_spawn");
            } else {
                pid = fork_child([] {});
            }
            reap(pid);
            t.push_back(seconds_since(t0) * 1e3);
        }
    }
    std::sort(t.begin(), t.end());
    bench::emit(t[t.size() / 2], "ms", false);
}

// CPU-bound speedup: the same work sequentially and split over every usable CPU.
void fig_speedup(long scale) {
    int workers = bench::cpus();
    long per = scale * 1000;
    auto t0 = clock_type::now();
    volatile std::uint64_t sink = bench::burn(per * workers);
    double seq = seconds_since(t0);
    t0 = clock_type::now();
    std::vector<pid_t> ps;
    for (int i = 0; i < workers; ++i) ps.push_back(fork_child([&] { sink = bench::burn(per); }));
    for (auto p : ps) reap(p);
    double par = seconds_since(t0);
    (void)sink;
    bench::emit(seq / par, "x", true, {{"workers", workers}});
}

// The compile-time limit: a translation unit of the flagship's own headers (the standard
// library, POSIX, OpenSSL's EVP interface) without multiproc, compiled as the flagship is.
void fig_compile(long n) {
    char path[] = "/tmp/multiproc-bench-XXXXXX.cpp";
    int fd = ::mkstemps(path, 4);
    if (fd < 0) die("mkstemps");
    const char* tu =
        "#include <openssl/evp.h>\n#include <algorithm>\n#include <array>\n#include <chrono>\n"
        "#include <cstdint>\n#include <cstdio>\n#include <cstdlib>\n#include <filesystem>\n#include <map>\n"
        "#include <memory>\n#include <stdexcept>\n#include <string>\n#include <system_error>\n#include <utility>\n"
        "#include <vector>\n#include <fcntl.h>\n#include <unistd.h>\n"
        "int main() {}\n";
    write_full(fd, tu, std::strlen(tu));
    ::close(fd);
    std::string inc = std::string("-I") + MULTIPROC_BENCH_EXAMPLES;
    char cxx[] = MULTIPROC_BENCH_CXX, std20[] = "-std=c++20", o2[] = "-O2", syn[] = "-fsyntax-only";
    char* argv[] = {cxx, std20, o2, syn, inc.data(), path, nullptr};
    std::vector<double> t;
    for (long i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        pid_t pid;
        if (::posix_spawnp(&pid, cxx, nullptr, nullptr, argv, environ) != 0) die("posix_spawnp");
        int st;
        ::waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("compile");
        t.push_back(seconds_since(t0));
    }
    ::unlink(path);
    std::sort(t.begin(), t.end());
    bench::emit(t[t.size() / 2], "s", false);
}

} // namespace

int main(int argc, char** argv) {
    std::string fig = argc > 1 ? argv[1] : "";
    std::string variant = argc > 2 && std::string(argv[2]) != "-" ? argv[2] : ""; // "-": none
    long scale = argc > 3 ? std::atol(argv[3]) : 0;
    if (fig == "noop") return 0;
    auto pick = [&](long dflt) { return scale > 0 ? scale : dflt; };
    if (fig == "map") fig_map(pick(1'000'000));
    else if (fig == "imap_unordered") fig_imap_unordered(pick(200'000));
    else if (fig == "apply") fig_apply(pick(20'000), variant.empty() ? "spin" : variant);
    else if (fig == "submit") fig_apply(pick(20'000), "spin"); // the same raw limit: a request and a reply
    else if (fig == "threadpool") fig_threadpool(pick(2'000));
    else if (fig == "queue") fig_queue(pick(2'000'000), variant);
    else if (fig == "queue_many") fig_queue(pick(2'000'000), variant); // the same raw limit
    else if (fig == "queue_4x4") fig_queue_4x4(pick(2'000'000), variant);
    else if (fig == "connection") fig_queue(pick(2'000'000), variant); // the same raw limit
    else if (fig == "listener") fig_queue(pick(2'000'000), variant); // a Unix stream socket, or TCP over loopback
    else if (fig == "manager") fig_apply(pick(20'000), "pipe"); // a blocking request and reply: one manager call
    else if (fig == "transfer") fig_transfer(pick(64), variant);
    else if (fig == "transfer_run") fig_transfer_run(64, pick(16), variant);
    else if (fig == "typed_transfer") fig_transfer(pick(64), variant); // the same raw limit
    else if (fig == "pages") fig_transfer(pick(64), variant);          // the same raw limit (shm: memcpy)
    else if (fig == "start") fig_start(pick(200), variant, "/proc/self/exe");
    else if (fig == "speedup") fig_speedup(pick(60'000));
    else if (fig == "compile") fig_compile(pick(3));
    else {
        std::fprintf(stderr, "usage: %s map|imap_unordered|apply|queue|queue_many|queue_4x4|connection|transfer|transfer_run|typed_transfer|pages|start|speedup|compile [variant] [scale]\n", argv[0]);
        return 2;
    }
}
