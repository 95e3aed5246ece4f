// System-call failures injected under queues and pipes (through detail::sys): interrupted
// calls are retried, "try again" makes the loops wait and retry, real errors are os_error
// naming the call, and nothing leaks or stays locked afterwards.
#include "ipc/combos.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

using namespace multiproc;
using namespace std::chrono_literals;
using detail::sys::call;

namespace {
using pipe_queue = basic_queue<std::string, transport::pipe>;
using socket_queue = basic_queue<std::string, transport::socketpair>;
using shm_queue = basic_queue<std::string, transport::shm>;

/// Runs `op` while the next `times` calls of `c` fail with `err`, and checks that they all
/// happened (so the loop under `op` met each failure and went on).
template <class F>
void through_faults(call c, int err, int times, F&& op) {
    test::inject fault(c, err, times);
    op();
    CHECK(fault.left() == 0);
}
} // namespace

TEST_CASE("interrupted reads, writes and polls are retried and the operation completes", "[ipc][faults][eintr]") {
    test::leak_check leaks;
    pipe_queue pq;
    socket_queue sq;
    through_faults(call::writev, EINTR, 3, [&] { pq.put("through the pipe"); });
    through_faults(call::sendmsg, EINTR, 3, [&] { sq.put("through the socket"); });
    through_faults(call::read, EINTR, 3, [&] { CHECK(pq.get() == "through the pipe"); });
    through_faults(call::read, EINTR, 2, [&] { CHECK(sq.get() == "through the socket"); });
    {
        test::inject eintr(call::poll, EINTR, 2);
        auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(pq.get(30ms), queue_empty);
        CHECK(eintr.left() == 0);
        CHECK(std::chrono::steady_clock::now() - t0 >= 30ms); // the timeout still holds
    }
    {
        shm_queue mq;
        test::inject eintr(call::futex, EINTR, 2);
        CHECK_THROWS_AS(mq.get(30ms), queue_empty);
        mq.put("ring");
        CHECK(mq.get() == "ring");
    }
    auto ends = pipe<std::string>(); // not a structured binding: lambdas capture it
    through_faults(call::writev, EINTR, 2, [&] { ends.second.send("over a connection"); });
    through_faults(call::read, EINTR, 2, [&] { CHECK(ends.first.recv() == "over a connection"); });
}

TEST_CASE("a read or write that would block makes the loop wait for the descriptor and try again",
          "[ipc][faults][eagain]") {
    test::leak_check leaks;
    pipe_queue pq;
    socket_queue sq;
    through_faults(call::writev, EAGAIN, 2, [&] { pq.put("once the pipe has room"); });
    through_faults(call::sendmsg, EAGAIN, 2, [&] { sq.put("once the socket has room"); });
    through_faults(call::read, EAGAIN, 2, [&] { CHECK(pq.get(10s) == "once the pipe has room"); });
    through_faults(call::read, EAGAIN, 1, [&] { CHECK(sq.get(10s) == "once the socket has room"); });
    auto ends = pipe<std::string, transport::socketpair>();
    through_faults(call::sendmsg, EAGAIN, 2, [&] { ends.second.send("connection"); });
    // (A socket connection reads a frame's head with recvmsg, which keeps descriptors that
    // come with it: send_handle, objects that cross with descriptors.)
    through_faults(call::recvmsg, EAGAIN, 2, [&] { CHECK(ends.first.recv() == "connection"); });
}

TEST_CASE("a failed read or write is an os_error naming it, and the queue stays usable", "[ipc][faults][errors]") {
    test::leak_check leaks;
    pipe_queue q;
    q.put("kept");
    {
        test::inject eio(call::read, EIO);
        CHECK_THROWS_WITH(q.get(), "multiproc: read from a queue's stream: Input/output error");
    }
    CHECK(q.qsize() == 1);
    CHECK(q.get(10s) == "kept"); // the reader lock was released, the message is still there
    {
        test::inject eio(call::writev, EIO);
        CHECK_THROWS_WITH(q.put("lost"), "multiproc: write to a queue's stream: Input/output error");
    }
    CHECK(q.qsize() == 0);
    q.put("next"); // the writer lock was released and no message is left in flight
    CHECK(q.get(10s) == "next");
    CHECK(q.empty());

    auto [a, b] = pipe<int>();
    {
        test::inject eio(call::read, EIO);
        b.send(1);
        CHECK_THROWS_WITH(a.recv(), "multiproc: read from a connection: Input/output error");
    }
    CHECK(a.recv() == 1);
}

TEST_CASE("failing to make a queue or pipe is an os_error that leaks nothing", "[ipc][faults][errors]") {
    test::leak_check leaks;
    {
        test::inject fail(call::pipe2, EMFILE);
        CHECK_THROWS_WITH(pipe_queue(), "multiproc: pipe2: Too many open files");
    }
    {
        test::inject fail(call::memfd_create, EMFILE);
        CHECK_THROWS_WITH(pipe_queue(), "multiproc: memfd_create for multiproc-queue: Too many open files");
    }
    {
        test::inject fail(call::mmap, ENOMEM);
        CHECK_THROWS_WITH(shm_queue(), "multiproc: mmap of multiproc-queue: Cannot allocate memory");
    }
    {
        test::inject fail(call::socketpair, ENFILE, 2);
        CHECK_THROWS_AS(socket_queue(), os_error);
        CHECK_THROWS_AS((pipe<int, transport::socketpair>()), os_error);
    }
    {
        test::inject fail(call::pipe2, EMFILE, 2);
        CHECK_THROWS_AS((pipe<int>()), os_error);
        CHECK_THROWS_AS((pipe<int, transport::shm>()), os_error); // its liveness pipe
    }
    {
        test::inject fail(call::memfd_create, EMFILE);
        CHECK_THROWS_AS((pipe<int, transport::shm>()), os_error);
    }
}

TEST_CASE("a pipe the kernel will not enlarge still makes a working queue", "[ipc][faults]") {
    test::leak_check leaks;
    // Over /proc/sys/fs/pipe-user-pages-soft, F_SETPIPE_SZ fails with EPERM: every size
    // tried from pipe-max-size down fails here, and the queue keeps the pipe as it is.
    int tries = 0;
    for (std::size_t n = detail::pipe_max_size(); n > 4096; n /= 2) ++tries;
    test::inject fail(call::fcntl, EPERM, tries);
    basic_queue<int> q;
    CHECK(fail.left() == 0);
    process p([&] {
        for (int i = 0; i < 20000; ++i) q.put(i);
    });
    p.start();
    long sum = 0;
    for (int i = 0; i < 20000; ++i) sum += q.get();
    p.join();
    CHECK(sum == 20000L * 19999 / 2);
}
