// Hostile conditions for queues: producers and consumers killed with SIGKILL at random
// moments, again and again, for a bounded time, over every transport. Each killed process
// is replaced at once. Invariants (docs/design/queues.md §6): no message arrives twice or
// corrupt; a killed producer's messages that arrived are the ones it had put (and perhaps
// the one it was putting), every message whose put returned arrives, except at most one
// per consumer killed (the one it was taking); and the consumers never stall: while
// producers keep the queue busy, they take messages at least every second.
#include "ipc/kill_helpers.hpp"

#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <fcntl.h>
#include <poll.h>

using namespace multiproc;
using namespace std::chrono_literals;
using namespace test::kills;

namespace {

constexpr std::uint32_t producer_slots = 2, consumer_slots = 2;
constexpr std::uint32_t incarnations = 96;   // producer processes at most, over a run
constexpr std::uint32_t per_producer = 20000; // messages each puts, if not killed first
constexpr auto run_for = 1500ms;             // per transport: the hostile test set must stay short
/// The stall bound the issue names. Ticks come every `tick_every` messages (a few ms of
/// work at worst here), so a second without one is a consumer stuck, not a slow machine.
constexpr auto stall_bound = 1s;
constexpr std::uint32_t tick_every = 50;

} // namespace

TEMPLATE_LIST_TEST_CASE("producers and consumers killed at random: nothing lost beyond the documented window, no "
                        "duplicate, no corruption, no stall",
                        "[queue][kill]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    test::shared_array<std::uint32_t> seen(std::size_t{incarnations} * per_producer);
    test::shared_array<std::uint32_t> put_done(incarnations); // puts that returned, per producer
    test::shared_array<std::uint32_t> stop(1);
    std::uint32_t consumer_kills = 0, producer_kills = 0, stalls = 0;
    std::vector<bool> killed(incarnations, false);
    std::uint32_t next_id = 0;
    {
        typename C::template queue<message<C>> q;
        test::pipe_pair ticks; // consumers write a byte every tick_every messages
        REQUIRE(::fcntl(ticks.r, F_SETFL, O_NONBLOCK) == 0);
        auto start_producer = [&] {
            const std::uint32_t id = next_id++;
            auto p = std::make_unique<process>([&, id] {
                for (std::uint32_t i = 0; i < per_producer && stop[0].load() == 0; ++i) {
                    q.put(make<C>(id, i));
                    put_done[id].store(i + 1);
                }
            });
            p->start();
            return std::make_pair(id, std::move(p));
        };
        auto start_consumer = [&] {
            auto c = std::make_unique<process>([&] { consume(q, seen, per_producer, false, ticks.w, tick_every); });
            c->start();
            return c;
        };
        std::vector<std::pair<std::uint32_t, std::unique_ptr<process>>> producers;
        std::vector<std::unique_ptr<process>> consumers;
        for (std::uint32_t k = 0; k < producer_slots; ++k) producers.push_back(start_producer());
        for (std::uint32_t k = 0; k < consumer_slots; ++k) consumers.push_back(start_consumer());

        std::mt19937 rng(Catch::rngSeed());
        const auto end = std::chrono::steady_clock::now() + run_for;
        auto last_tick = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() < end && next_id + producer_slots < incarnations) {
            // Let consumers take a few ticks' worth of messages (replacing producers that
            // finished), then kill one process at random.
            for (int want = 1 + static_cast<int>(rng() % 3); want > 0;) {
                std::vector<pollfd> fds{{ticks.r, POLLIN, 0}};
                for (auto& [id, p] : producers) fds.push_back({p->sentinel(), POLLIN, 0});
                const auto left = last_tick + stall_bound - std::chrono::steady_clock::now();
                const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count());
                if (ms <= 0 || ::poll(fds.data(), fds.size(), ms) == 0) {
                    ++stalls; // no consumer progress for stall_bound
                    last_tick = std::chrono::steady_clock::now();
                    break;
                }
                char buf[64];
                if ((fds[0].revents & POLLIN) && ::read(ticks.r, buf, sizeof buf) > 0) {
                    last_tick = std::chrono::steady_clock::now();
                    --want;
                }
                for (std::size_t k = 0; k < producers.size(); ++k)
                    if (fds[k + 1].revents) { // finished all its messages
                        producers[k].second->join();
                        CHECK(producers[k].second->exitcode() == 0);
                        producers[k] = start_producer();
                    }
            }
            const auto victim = rng() % (producer_slots + consumer_slots);
            if (victim < producer_slots) {
                auto& [id, p] = producers[victim];
                p->kill();
                p->join();
                if (p->exitcode() == -SIGKILL) { // (it may have finished just before)
                    killed[id] = true;
                    ++producer_kills;
                }
                producers[victim] = start_producer();
            } else {
                auto& c = consumers[victim - producer_slots];
                c->kill();
                c->join();
                CHECK(c->exitcode() == -SIGKILL); // (0 or 2 would mean a pill or a bad message)
                ++consumer_kills;
                c = start_consumer();
            }
        }
        // Producers stop at their next put; then a pill per consumer, behind every message.
        stop[0].store(1);
        for (auto& [id, p] : producers) {
            p->join();
            CHECK(p->exitcode() == 0);
        }
        for (std::size_t k = 0; k < consumers.size(); ++k) q.put(make<C>(pill, 0));
        for (auto& c : consumers) {
            c->join();
            CHECK(c->exitcode() == 0); // 2: a corrupt message
        }
        CHECK_THROWS_AS(q.get_nowait(), queue_empty);
    }
    CHECK(stalls == 0);
    CHECK(producer_kills + consumer_kills > 0);
    std::size_t duplicated = 0, lost = 0, beyond = 0;
    for (std::uint32_t id = 0; id < next_id; ++id) {
        const std::uint32_t done = put_done[id].load();
        for (std::uint32_t i = 0; i < per_producer; ++i) {
            const std::uint32_t n = seen[std::size_t{id} * per_producer + i].load();
            duplicated += n > 1;
            if (i < done) lost += n == 0;
            // Past what its puts returned: only the one a killed producer was putting (its
            // put may have been done when it died, before it counted it).
            else if (n != 0 && !(killed[id] && i == done)) ++beyond;
        }
    }
    INFO(producer_kills << " producers and " << consumer_kills << " consumers killed");
    CHECK(duplicated == 0);
    CHECK(beyond == 0);
    CHECK(lost <= consumer_kills);
}
