// What the tests that kill queue producers and consumers share (tests/ipc/kills.cpp, and
// tests/hostile/queues.cpp): tagged messages that span several chunks, a consumer loop that
// counts what it takes in shared memory and checks each message, and a fault hook that
// kills a process exactly before or after a chosen system call.
#pragma once

#include "ipc/combos.hpp"

#include <multiproc/queue.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>

#include <signal.h>
#include <unistd.h>

namespace test::kills {

using multiproc::detail::sys::call;

constexpr std::uint32_t pill = 0xffffffffU;

/// A message: the tag, plus a payload of varying length for serializers that can send one,
/// so that messages span several chunks and kills land mid-message.
template <class C>
using message = std::conditional_t<C::template can<std::pair<test::tagged, std::string>>,
                                   std::pair<test::tagged, std::string>, test::tagged>;

template <class C>
message<C> make(std::uint32_t producer, std::uint32_t seq) {
    if constexpr (std::is_same_v<message<C>, test::tagged>)
        return test::make_tagged(producer, seq);
    else
        return {test::make_tagged(producer, seq), std::string((seq * 7919U) % 12000U, 'p')};
}

template <class M>
const test::tagged& tag_of(const M& m) {
    if constexpr (std::is_same_v<M, test::tagged>)
        return m;
    else
        return m.first;
}

/// A pill of message type M.
template <class M>
M pill_message() {
    if constexpr (std::is_same_v<M, test::tagged>)
        return test::make_tagged(pill, 0);
    else
        return {test::make_tagged(pill, 0), std::string()};
}

/// Takes messages until a pill, counting each in `seen`; a bad message exits 2. Every
/// `signal_every` messages it writes a byte to `signal_fd` (if >= 0). With `batch` > 1 it
/// takes them with get_many(batch), and gives back the pills of others a run held.
template <class Q>
[[noreturn]] void consume(Q& q, const test::shared_array<std::uint32_t>& seen, std::uint32_t per_producer,
                          bool task_done = false, int signal_fd = -1, std::uint32_t signal_every = 500,
                          std::size_t batch = 1) {
    std::uint32_t k = 0, pills = 0;
    auto one = [&](const auto& m) {
        const test::tagged& t = tag_of(m);
        if constexpr (requires { q.task_done(); })
            if (task_done) q.task_done();
        if (t.producer == pill) {
            ++pills;
            return;
        }
        if (t.check != test::check_of(t.producer, t.seq) || t.seq >= per_producer) std::_Exit(2);
        seen[std::size_t{t.producer} * per_producer + t.seq].fetch_add(1);
        if (signal_fd >= 0 && ++k % signal_every == 0) test::write_str(signal_fd, "x");
    };
    for (;;) {
        if (batch > 1)
            for (const auto& m : q.get_many(batch)) one(m);
        else
            one(q.get());
        if (pills == 0) continue;
        for (; pills > 1; --pills) q.put(pill_message<typename Q::value_type>());
        std::_Exit(0);
    }
}

/// After a producer was killed: joins the queue (every message that arrived was marked
/// done, the victim's included), checks it is empty, stops the consumers with a pill each
/// and checks they ended well.
template <class Q, class Procs>
void drain_after_producer_kill(Q& q, Procs& consumers) {
    q.join();
    CHECK(q.qsize() == 0);
    for (std::size_t k = 0; k < consumers.size(); ++k) q.put(pill_message<typename Q::value_type>());
    for (auto& c : consumers) {
        c.join();
        CHECK(c.exitcode() == 0);
    }
    q.join();
}

/// How many messages are out of place after producer 0 was killed: the survivors'
/// (producers 1 on) must have arrived exactly once; the victim's once each up to where it
/// was killed, then not at all (its last message, or last write's, may be either).
inline std::size_t wrong_after_producer_kill(const test::shared_array<std::uint32_t>& seen, std::uint32_t producers,
                                             std::uint32_t n) {
    std::size_t wrong = 0, victim_got = 0;
    for (std::uint32_t p = 1; p < producers; ++p)
        for (std::uint32_t i = 0; i < n; ++i) wrong += seen[std::size_t{p} * n + i].load() != 1;
    while (victim_got < n && seen[victim_got].load() == 1) ++victim_got;
    for (std::size_t i = victim_got; i < n; ++i) wrong += seen[i].load() != 0;
    return wrong;
}

// ---- a hook that kills this process at a chosen system call -------------------------

namespace killer {
inline std::atomic<int> which{-1}, countdown{0}, after{0}, signal_fd{-1}, gate_fd{-1};
inline int hook(call c) {
    if (static_cast<int>(c) != which.load() || countdown.fetch_sub(1) != 1) return 0;
    if (signal_fd >= 0) { // tell the test where we are, then wait for its go
        char x = 'x';
        (void)!::write(signal_fd, &x, 1);
        while (::read(gate_fd, &x, 1) > 0) {
        }
        return 0;
    }
    if (!after) ::kill(::getpid(), SIGKILL);
    return multiproc::detail::sys::die_after_call;
}
/// In a child: dies just before (or just after) its nth call of `c`.
inline void arm(call c, int nth, bool after_call) {
    which = static_cast<int>(c);
    countdown = nth;
    after = after_call;
    multiproc::detail::sys::fault_hook = &hook;
}
/// In a child: at its nth call of `c`, writes a byte to `signal` and waits for `gate` to
/// close (EOF), then makes the call.
inline void pause_at(call c, int nth, int signal, int gate) {
    signal_fd = signal;
    gate_fd = gate;
    which = static_cast<int>(c);
    countdown = nth;
    multiproc::detail::sys::fault_hook = &hook;
}
} // namespace killer

/// The call a stream transport writes chunks with.
template <class C>
constexpr call write_call = std::is_same_v<typename C::transport, multiproc::transport::pipe> ? call::writev : call::sendmsg;

using stream_transports = std::tuple<test::combo<multiproc::transport::pipe, multiproc::serialize::binary>,
                                     test::combo<multiproc::transport::socketpair, multiproc::serialize::binary>>;

inline char wait_byte(int fd) {
    char c = 0;
    REQUIRE(::read(fd, &c, 1) == 1);
    return c;
}

} // namespace test::kills
