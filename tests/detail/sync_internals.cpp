// What the sync objects stand on: holder ids and telling a dead process from a live one
// (zombies and reused pids included), and the arena the objects are carved from.
#include "support/support.hpp"

#include <multiproc/detail/sync/arena.hpp>
#include <multiproc/detail/sync/liveness.hpp>
#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;
using detail::sys::call;

TEST_CASE("/proc/<pid>/stat is parsed from the last parenthesis", "[detail][liveness]") {
    auto st = detail::parse_proc_stat("42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n");
    REQUIRE(st);
    CHECK(st->state == 'S');
    CHECK(st->start == 987654);
    CHECK_FALSE(detail::parse_proc_stat("42 (cut) S 1 2"));
    CHECK_FALSE(detail::parse_proc_stat("no parenthesis"));
    auto self = detail::read_proc_stat(0);
    REQUIRE(self);
    CHECK(self->state == 'R');
}

TEST_CASE("a holder id names this process, a child gets its own after fork", "[detail][liveness]") {
    auto me = detail::self_holder_id();
    CHECK(detail::holder_pid(me) == ::getpid());
    CHECK(detail::holder_start(me) != 0);
    CHECK(detail::self_holder_id() == me);
    CHECK_FALSE(detail::process_gone(me));
    process p([&] {
        auto child = detail::self_holder_id();
        bool ok = detail::holder_pid(child) == ::getpid() && child != me && !detail::process_gone(me);
        std::_Exit(ok ? 0 : 1);
    });
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("a process is gone once it is a zombie, reaped, or its pid names another process",
          "[detail][liveness]") {
    // A pid reused by a process that started at another time: this one, with a wrong start.
    auto me = detail::self_holder_id();
    CHECK(detail::process_gone(detail::make_holder_id(::getpid(), detail::holder_start(me) + 1)));
    CHECK_FALSE(detail::process_gone(detail::make_holder_id(::getpid(), 0))); // start unknown: pid only

    std::fflush(nullptr);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    REQUIRE(test::wait_exit(child)); // exited, not reaped: a zombie
    auto st = detail::read_proc_stat(child);
    REQUIRE(st);
    auto id = detail::make_holder_id(child, static_cast<std::uint32_t>(st->start));
    CHECK(st->state == 'Z');
    CHECK(detail::process_gone(id));
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    CHECK(detail::process_gone(id));
    {
        test::inject no_proc(call::open, EACCES, 10); // falls back on kill(pid, 0): ESRCH
        CHECK(detail::process_gone(id));
        CHECK_FALSE(detail::process_gone(me));
    }
    {
        test::inject unreadable(call::read, EIO, 10); // a /proc it cannot read: assumed alive
        CHECK_FALSE(detail::process_gone(me));
    }
}

TEST_CASE("many small objects share a few memfd chunks, all released with the objects", "[detail][arena]") {
    auto before = test::open_fds();
    {
        std::vector<lock> locks(1000);
        std::vector<value<int>> values;
        for (int i = 0; i < 200; ++i) values.emplace_back(i);
        auto during = test::open_fds();
        // 1000 locks + 200 values with their rlocks, 64 bytes each: 1400 slots, about 22 chunks.
        CHECK(during.size() - before.size() <= 30);
        CHECK(values[199].load() == 199);
        int got = 0;
        for (auto& l : locks) got += l.acquire(false);
        CHECK(got == 1000);
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
}

TEST_CASE("a failure to make shared memory for an object is an os_error, and leaks nothing", "[detail][arena][faults]") {
    auto before = test::open_fds();
    {
        test::inject fail(call::memfd_create, EMFILE);
        CHECK_THROWS_MATCHES(lock(), os_error,
                             Catch::Matchers::Message("multiproc: memfd_create for multiproc-sync: Too many open files"));
    }
    {
        test::inject fail(call::ftruncate, ENOSPC);
        CHECK_THROWS_AS(array<char>(1 << 20), os_error);
    }
    {
        test::inject fail(call::mmap, ENOMEM);
        CHECK_THROWS_AS(semaphore(3), os_error);
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
    lock works; // the arena recovers
    CHECK(works.acquire(false));
}

TEST_CASE("a semaphore's state counts the units of holders beyond its slots, and repairs its free count after a "
          "death between two stores",
          "[detail][semaphore]") {
    using detail::semaphore_state;
    auto s = detail::shared_ptr_in_arena<semaphore_state>::make(semaphore_state::extra_for(3), 3U,
                                                                semaphore_state::value_max);
    s->nslots = 1; // as if more processes held units at once than there are slots
    const auto me = detail::self_holder_id();
    const auto dead = detail::make_holder_id(::getpid(), detail::holder_start(me) + 1); // a pid reused since
    std::atomic<std::uint32_t> my_hint{UINT32_MAX}, dead_hint{UINT32_MAX};
    bool from_dead = false;
    auto take = [&](detail::holder_id who, std::atomic<std::uint32_t>& hint) {
        semaphore_state::guard g(*s);
        return s->take(who, hint, from_dead);
    };
    REQUIRE(take(dead, dead_hint)); // the one slot
    REQUIRE(take(me, my_hint));     // no slot left: untracked
    CHECK(s->slot(0).who.load() == dead);
    CHECK(s->untracked.load() == 1);
    CHECK(s->value() == 1);
    CHECK(s->recover_dead() == 1); // the dead holder's unit only
    CHECK(s->value() == 2);
    REQUIRE(take(me, my_hint)); // takes the freed slot, and the unit that came back
    CHECK(from_dead);
    CHECK(s->slot(0).who.load() == me);
    {
        semaphore_state::guard g(*s);
        REQUIRE(s->give(me, my_hint)); // its own tracked unit first
    }
    CHECK(s->slot(0).held.load() == 0);
    CHECK(s->untracked.load() == 1);
    // A holder killed after its commit (held) and before the derived count (units): the
    // count is recomputed from what is held by whoever takes the lock over.
    s->slot(0).held.store(1);
    s->repair();
    CHECK(s->value() == 1);
    {
        semaphore_state::guard g(*s);
        REQUIRE(s->give(me, my_hint));
        REQUIRE(s->give(me, my_hint));
        CHECK(s->untracked.load() == 0);
        CHECK(s->value() == 3);
    }
}

// From an outside trial: the depth was an unchecked 32-bit count, so after 2^32 acquires one
// release let the lock go (CPython's threading.RLock raises OverflowError there).
TEST_CASE("an rlock acquired once more than its depth can count is refused, and stays held", "[detail][rlock]") {
    auto s = detail::shared_ptr_in_arena<detail::pid_lock>::make(0);
    REQUIRE(detail::recursive_acquire(*s, std::nullopt));
    constexpr auto most = std::numeric_limits<std::uint32_t>::max();
    s->depth.store(most - 1); // (as if acquired that often)
    REQUIRE(detail::recursive_acquire(*s, std::nullopt));
    CHECK(s->depth.load() == most);
    CHECK_THROWS_MATCHES(detail::recursive_acquire(*s, std::nullopt), state_error,
                         Catch::Matchers::Message("Internal lock count overflowed: an rlock held 4294967295 times by "
                                                  "one thread cannot be acquired once more"));
    CHECK(s->depth.load() == most);
    detail::recursive_release(*s);
    CHECK(s->held_by_this_thread()); // one level less, still held
    s->depth.store(1);
    detail::recursive_release(*s);
    CHECK_FALSE(s->held_by_this_thread());
}
