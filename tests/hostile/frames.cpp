// Hostile conditions for framing: a forger writes random frames, forged headers (lengths
// that wrap, exceed any message, exceed maxlength, or stop short) and garbage into
// connections and queues of every transport, and the receivers must neither crash, nor
// hang, nor allocate what the headers claim (they run in a child whose address space may
// grow by 48 MiB), nor fail in any undocumented way; and a stream queue must deliver every
// real message exactly once and in order, whatever garbage is written between them.
#include "ipc/combos.hpp"
#include "ipc/kill_helpers.hpp"
#include "support/forge.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <poll.h>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t limit = 48 << 20;
constexpr int rounds = 12;

template <class C>
constexpr bool is_shm = std::is_same_v<typename C::transport, transport::shm>;

/// A length a forger would pick: around the edges that break arithmetic or allocation.
std::uint64_t hostile_length(std::mt19937_64& rng) {
    switch (rng() % 6) {
        case 0: return ~std::uint64_t{0} - rng() % 64;            // wraps past 2^64 with a header added
        case 1: return (std::uint64_t{1} << 47) + rng() % 4096;   // just past any message
        case 2: return std::uint64_t{1} << (30 + rng() % 17);     // huge, but possible
        case 3: return rng();                                     // anything
        case 4: return 1000 + rng() % 100000;                     // plausible, beyond maxlength
        default: return rng() % 200;                              // small
    }
}

std::vector<std::byte> random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::vector<std::byte> v(n);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    return v;
}

/// A stream of forged and real frames for a stream connection, at most `cap` bytes.
std::vector<std::byte> forged_stream(std::mt19937_64& rng, std::size_t cap) {
    std::vector<std::byte> out;
    while (out.size() < cap) {
        std::vector<std::byte> piece;
        switch (rng() % 4) {
            case 0: piece = forge::frame(random_bytes(rng, rng() % 3000)); break;
            case 1: piece = forge::header_only(hostile_length(rng)); break;
            case 2: piece = random_bytes(rng, 1 + rng() % 300); break;
            default: {
                auto h = forge::header_only(hostile_length(rng), static_cast<std::uint32_t>(rng()));
                piece = h; // a header whose magic is wrong too
            }
        }
        if (out.size() + piece.size() > cap) break;
        out.insert(out.end(), piece.begin(), piece.end());
    }
    return out;
}

/// Forged and real chunks into a connection's or queue's ring, while it has room.
void forge_ring(std::mt19937_64& rng, forge::ring_access& ring, std::uint64_t seq) {
    for (bool room = true; room;) {
        const auto payload = random_bytes(rng, rng() % std::min<std::size_t>(ring.ring().max_payload(), 2000));
        switch (rng() % 4) {
            case 0: room = ring.put_chunk(detail::chunk_data, ++seq, 0, payload, payload.size()); break;
            case 1: room = ring.put_chunk(detail::chunk_data, ++seq, 0, payload, hostile_length(rng)); break;
            case 2: {
                auto h = detail::make_chunk(detail::chunk_data, ++seq, 0, static_cast<std::uint32_t>(rng()),
                                            hostile_length(rng));
                room = ring.put_header(h, payload);
                break;
            }
            default: room = ring.put_raw(random_bytes(rng, 8 + rng() % 200)); break;
        }
    }
}

/// Receives until end of file with random calls; 0 if every failure was a documented one
/// and an end closed for reading stayed closed, else a code saying what went wrong.
template <class Conn>
int receive_all(Conn& r, std::mt19937_64& rng) {
    std::optional<std::string> closed;
    std::vector<std::byte> into(512);
    for (int i = 0; i < 10000; ++i) {
        const std::size_t maxlength = std::size_t{1} << (rng() % 20);
        try {
            switch (rng() % 4) {
                case 0: (void)r.recv(); break;
                case 1:
                    if (r.recv_bytes(maxlength).size() > maxlength) return 1;
                    break;
                case 2: (void)r.recv_bytes_into(into); break;
                default: (void)r.poll(); continue;
            }
            if (closed) return 2;
        } catch (const eof_error&) {
            return closed ? 3 : 0;
        } catch (const serialization_error& e) {
            std::string what = e.what();
            if (what.rfind("multiproc: ", 0) != 0) return 4;
            if (closed && what != *closed) return 5;
            if (what.find("closed for reading") != std::string::npos || what.find("ring is corrupt") != std::string::npos) {
                if (closed) return 0; // it stayed closed: done
                closed = what;
            }
        } catch (const os_error& e) {
            if (e.code().value() != EMSGSIZE || closed) return 6;
        } catch (const buffer_too_short&) {
            if (closed) return 7;
        } catch (const value_error&) { // a frame of descriptors where a message was expected: skipped
            if (closed) return 9;
        } catch (const authentication_error&) { // a frame of the authkey exchange: skipped
            if (closed) return 10;
        }
    }
    return 8; // never reached the end
}

} // namespace

TEMPLATE_LIST_TEST_CASE("random forged frames on a connection: no crash, no hang, no allocation on a header's word",
                        "[frames][pipe]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    for (int round = 0; round < rounds; ++round) {
        const auto seed = Catch::rngSeed() * 1000003ULL + static_cast<unsigned>(round);
        INFO("round " << round << ", seed " << seed);
        std::mt19937_64 rng(seed);
        auto [r, w] = C::template pipe<std::string>(false, 1 << 20);
        if constexpr (is_shm<C>) {
            auto ring = forge::sending_ring(w);
            forge_ring(rng, ring, ring.shared().next_seq.load());
        } else {
            // What fits in the stream now (its descriptor does not block): nobody reads until
            // the forger is done.
            const auto bytes = forged_stream(rng, 256 << 10);
            std::span<const std::byte> left(bytes);
            while (!left.empty()) {
                ssize_t n = ::write(w.fileno(), left.data(), left.size());
                if (n <= 0) break;
                left = left.subspan(static_cast<std::size_t>(n));
            }
        }
        w.close();
        const int code = forge::in_bounded_child([&] { return receive_all(r, rng); }, limit);
        CHECK(code == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("garbage and impossible chunks written between a producer's messages: every message arrives "
                        "once, in order",
                        "[frames][queue]", test::kills::stream_transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    constexpr std::uint32_t n = 20000;
    typename C::template queue<test::kills::message<C>> q;
    const int fd = forge::queue_write_fd(q);
    test::gate stop;
    process producer([&] {
        for (std::uint32_t i = 0; i < n; ++i) q.put(test::kills::make<C>(0, i));
    });
    process forger([&, fd] {
        stop.p.close_w(); // (this child's copy: the gate opens when the test releases it)
        std::mt19937_64 rng(Catch::rngSeed());
        const auto payload = random_bytes(rng, 64);
        // Until told to stop: garbage, and chunk headers whose checksums check but whose
        // lengths no chunk of this queue can have, each in one write (at most PIPE_BUF
        // bytes: whole or not at all). It waits for room or the stop, never for room alone:
        // once the test stops reading, the stream may stay full.
        for (std::uint64_t k = 0;; ++k) {
            std::vector<std::byte> piece;
            if (k % 2 == 0)
                piece = random_bytes(rng, 1 + rng() % 4000);
            else if (k % 4 == 1)
                piece = forge::chunk_bytes(detail::chunk_data, rng(), 0, payload, 1 << 20, 1 << 20); // too long
            else
                piece = forge::chunk_bytes(detail::chunk_data, rng(), 0, payload, hostile_length(rng) | (1ULL << 48),
                                           static_cast<std::uint32_t>(payload.size())); // past any message
            for (;;) {
                pollfd p[2] = {{stop.p.r, POLLIN, 0}, {fd, POLLOUT, 0}};
                if (::poll(p, 2, -1) < 0 || p[0].revents != 0) std::_Exit(0);
                ssize_t w = ::write(fd, piece.data(), piece.size());
                if (w == static_cast<ssize_t>(piece.size())) break;
                if (w >= 0 || errno != EAGAIN) std::_Exit(1); // (a write cut short, or failed)
            }
        }
    });
    producer.start();
    forger.start();
    stop.p.close_r();
    std::uint32_t expect = 0, wrong = 0;
    for (; expect < n; ++expect) {
        auto m = q.get(30s); // (a hang guard only)
        const test::tagged& t = test::kills::tag_of(m);
        if (t.producer != 0 || t.seq != expect || t.check != test::check_of(t.producer, t.seq)) ++wrong;
    }
    CHECK(wrong == 0);
    stop.release();
    producer.join();
    forger.join();
    CHECK(producer.exitcode() == 0);
    CHECK(forger.exitcode() == 0);
    CHECK_THROWS_AS(q.get_nowait(), queue_empty); // what the forger wrote last is skipped too
}
