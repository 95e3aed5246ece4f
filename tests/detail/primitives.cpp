// The shared-memory primitives under queues, locks and values: a region shared with
// children, futex wake-ups between processes, a mutex that survives its owner's death.
#include "support/support.hpp"

#include <multiproc/detail/transport/chunk.hpp>
#include <multiproc/detail/os/futex.hpp>
#include <multiproc/detail/transport/ring/ring.hpp>
#include <multiproc/detail/sync/robust_mutex.hpp>
#include <multiproc/detail/os/shared_region.hpp>
#include <multiproc/detail/transport/stream/stream_channel.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>
#include <filesystem>
#include <thread>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
struct shared_state {
    std::atomic<int> value;
    detail::notifier changed;
    detail::robust_mutex mu;
    int guarded;
};
} // namespace

TEST_CASE("a shared region is zeroed, shared with children, and leaves nothing in /dev/shm",
          "[detail][shared_region]") {
    auto before = std::distance(std::filesystem::directory_iterator("/dev/shm"), std::filesystem::directory_iterator{});
    auto fds = test::open_fds();
    {
        auto r = detail::shared_region::create(100, "test-region");
        CHECK(r.size() >= 100);
        CHECK(r.size() % 4096 == 0);
        auto* s = r.construct<shared_state>();
        CHECK(s->value.load() == 0);
        process p([&] { s->value.store(42); });
        p.start();
        p.join();
        CHECK(s->value.load() == 42);
        // Another process can map it from the descriptor alone.
        auto again = detail::shared_region::attach(::dup(r.fd()));
        CHECK(again.as<shared_state>()->value.load() == 42);
        auto nofd = detail::shared_region::create(10, "no-fd", false);
        CHECK(nofd.fd() == -1);
    }
    auto after = std::distance(std::filesystem::directory_iterator("/dev/shm"), std::filesystem::directory_iterator{});
    CHECK(after == before);
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(fds));
}

TEST_CASE("a notifier wakes a waiter in another process, waits time out", "[detail][futex]") {
    auto r = detail::shared_region::create(sizeof(shared_state));
    auto* s = r.construct<shared_state>();
    process waiter([&] {
        bool ok = s->changed.wait_until([&] { return s->value.load() == 7; }, std::nullopt);
        std::_Exit(ok ? 0 : 1);
    });
    waiter.start();
    // Not yet: a bounded wait here times out and reports false.
    CHECK_FALSE(s->changed.wait_until([&] { return s->value.load() == 1; }, detail::steady::now() + 20ms));
    s->value.store(7);
    s->changed.notify_all();
    waiter.join();
    CHECK(waiter.exitcode() == 0);
}

TEST_CASE("a notifier survives many wake-ups back and forth (ping-pong)", "[detail][futex]") {
    auto r = detail::shared_region::create(sizeof(shared_state));
    auto* s = r.construct<shared_state>();
    constexpr int rounds = 2000;
    process pong([&] {
        for (int i = 0; i < rounds; ++i) {
            s->changed.wait_until([&] { return s->value.load() == 2 * i + 1; }, std::nullopt);
            s->value.store(2 * i + 2);
            s->changed.notify_all();
        }
    });
    pong.start();
    for (int i = 0; i < rounds; ++i) {
        s->value.store(2 * i + 1);
        s->changed.notify_all();
        REQUIRE(s->changed.wait_until([&] { return s->value.load() == 2 * i + 2; }, detail::steady::now() + 30s));
    }
    pong.join();
    CHECK(pong.exitcode() == 0);
}

TEST_CASE("a robust mutex held by a process killed with SIGKILL goes to the next locker, who is told",
          "[detail][robust_mutex]") {
    auto r = detail::shared_region::create(sizeof(shared_state));
    auto* s = r.construct<shared_state>();
    s->mu.init();
    process holder([&] {
        s->mu.lock();
        s->guarded = 1;
        s->value.store(1);
        s->changed.notify_all();
        for (;;) ::pause();
    });
    holder.start();
    REQUIRE(s->changed.wait_until([&] { return s->value.load() == 1; }, detail::steady::now() + 30s));
    CHECK(s->mu.try_lock() == detail::lock_status::timed_out);
    CHECK(s->mu.lock(detail::steady::now() + 10ms) == detail::lock_status::timed_out);
    holder.kill();
    holder.join();
    CHECK(s->mu.lock(detail::steady::now() + 30s) == detail::lock_status::owner_died);
    CHECK(s->guarded == 1);
    s->mu.unlock();
    CHECK(s->mu.lock() == detail::lock_status::acquired); // consistent again
    s->mu.unlock();
}

TEST_CASE("a streaming ring goes back to its start as soon as the reader has freed room there",
          "[detail][ring]") {
    // A reader one chunk behind the writer never leaves the ring empty; the writer must still
    // wrap early, so that a large ring keeps to its first pages (no fresh page per chunk).
    constexpr std::size_t cap = std::size_t{1} << 22; // 4 MiB
    std::vector<std::byte> mem(detail::ring::bytes_for(cap) + 64);
    void* at = mem.data() + (64 - reinterpret_cast<std::uintptr_t>(mem.data()) % 64) % 64;
    auto r = detail::ring::create(at, cap);
    const auto len = static_cast<std::uint32_t>(r.max_payload()); // the largest chunk: 64 KiB with its header
    std::uint64_t read_pos = 0, furthest = 0;
    std::vector<std::byte> payload(len, std::byte{7});
    for (std::uint64_t seq = 1; seq <= 200; ++seq) {
        auto h = detail::make_chunk(detail::chunk_data, seq, 0, len, len);
        REQUIRE(r.try_put(h, [&](std::span<std::byte> dst) { std::memcpy(dst.data(), payload.data(), len); }));
        furthest = std::max(furthest, (r.shared().tail.load() - 1) & (cap - 1));
        if (seq >= 2) { // consume the chunk before the one just written
            auto it = r.try_peek(read_pos);
            REQUIRE(it);
            CHECK(it->h.seq == seq - 1);
            CHECK(it->payload[len - 1] == std::byte{7});
            read_pos = it->next;
            r.release(read_pos);
        }
    }
    // 200 chunks of 64 KiB went through (12.5 MiB, three times the ring), yet the writer never
    // went further than a few chunks past rewind_after into it.
    CHECK(furthest < detail::ring::rewind_after + 4 * (len + 64));
}

TEST_CASE("staging moved to its front is never written over while the journal still names it",
          "[detail][staging]") {
    // A consumer killed at any moment must leave the bytes its last commit names intact: each
    // copy goes to a place that does not overlap the committed bytes, and is committed before
    // they are written over. Checked at every commit, for a move that overlaps with room to
    // go round (two copies), one that does not overlap (one copy), and one that overlaps with
    // too little room (nothing moved, and whether the message arrived is told later).
    using channel = detail::stream_channel<transport::pipe>;
    auto ch = channel::open(64 * 1024);
    const std::size_t size = ch.shared_bytes();
    std::vector<std::byte> staging(size);
    ch.bind(staging.data(), true);
    constexpr std::uint64_t messages = 8;
    std::vector<std::byte> unread; // whole messages, seq 1..8, about half of staging
    for (std::uint64_t seq = 1; seq <= messages; ++seq) {
        const auto len = static_cast<std::uint32_t>(std::min<std::size_t>(4000, ch.max_payload()));
        auto h = detail::make_chunk(detail::chunk_data, seq, 0, len, len);
        const auto* hb = reinterpret_cast<const std::byte*>(&h);
        unread.insert(unread.end(), hb, hb + sizeof h);
        unread.insert(unread.end(), len, std::byte{static_cast<unsigned char>(seq)});
    }
    const std::size_t n = unread.size();
    REQUIRE(size >= 2 * n + 200); // room to go round from 200
    REQUIRE(size < 3 * n);        // and too little from size - 2n + 1000, which is below n
    struct scenario {
        std::size_t pos;
        bool moves;
    };
    for (auto [pos, moves] : {scenario{200, true}, scenario{n + 8, true}, scenario{size - 2 * n + 1000, false}}) {
        INFO("unread bytes at " << pos << " of " << size << ", " << n << " of them");
        std::fill(staging.begin(), staging.end(), std::byte{0xee});
        std::memcpy(staging.data() + pos, unread.data(), n);
        detail::reader_state committed{pos, pos + n, {}, 0, 0, 0};
        auto holds_unread = [&](const detail::reader_state& s) {
            return s.end - s.pos == n && std::memcmp(staging.data() + s.pos, unread.data(), n) == 0;
        };
        int commits = 0;
        bool intact = true;
        auto commit = [&](auto f) {
            intact = intact && holds_unread(committed); // what the journal named until now
            f(committed);
            intact = intact && holds_unread(committed); // and what it names from now on
            ++commits;
        };
        auto arrived = ch.holds_final_of(messages, committed, commit);
        CHECK(intact);
        CHECK(arrived == (moves ? std::optional<bool>(true) : std::nullopt)); // unmoved: told later
        CHECK(holds_unread(committed));
        CHECK((committed.pos == 0) == moves);
        CHECK(commits == (moves ? (n > pos ? 2 : 1) : 0));
    }
}

namespace {
// Counts the per_thread objects alive; a program-owned thread_local whose destructor uses
// per_thread after the thread's own object is gone (thread_locals are destroyed in the
// reverse order of their construction, so `late_user`, made first, goes last).
std::atomic<int> probes_made{0};
std::atomic<int> probes_freed{0};
struct probe {
    int uses = 0;
    probe() { probes_made.fetch_add(1); }
    probe(const probe&) = delete;
    probe& operator=(const probe&) = delete;
    ~probe() { probes_freed.fetch_add(1); }
};
struct probe_tag {};
struct late_user {
    bool armed = false;
    ~late_user() {
        if (armed) ++detail::per_thread<probe, probe_tag>().uses;
    }
};
} // namespace

TEST_CASE("per_thread: a use after the thread's own object is gone gets another, freed when the thread ends",
          "[detail][per_thread]") {
    probes_made = 0;
    probes_freed = 0;
    constexpr int threads = 20;
    for (int i = 0; i < threads; ++i) {
        std::thread([] {
            thread_local late_user user; // constructed before the thread's own probe
            user.armed = true;
            probe& own = detail::per_thread<probe, probe_tag>();
            ++own.uses;
            CHECK(&detail::per_thread<probe, probe_tag>() == &own); // kept from one use to the next
        }).join();
    }
    // Each thread: its own probe, destroyed with its thread_locals, and the late one that
    // late_user's destructor got afterwards, freed with the thread's pthread keys.
    CHECK(probes_made.load() == 2 * threads);
    CHECK(probes_freed.load() == 2 * threads);
}
