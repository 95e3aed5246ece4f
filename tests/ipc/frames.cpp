// Forged and corrupt frames on every transport, for connections and queues: lengths that
// wrap past 2^64 or exceed any message, lengths beyond the caller's maxlength, truncated
// frames, garbage. Each is the documented error, naming the length, decided from the
// header before anything is allocated for it: the receiving side runs in a child whose
// address space may grow only a little (RLIMIT_AS), so that allocating what a header
// claims fails there. A connection that got a corrupt header is closed for reading; a
// queue skips what is not a chunk. (No start method is involved: the frames are the same
// under all three, and the children here only hold the memory limit.)
#include "ipc/combos.hpp"
#include "support/forge.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t wraps = ~std::uint64_t{0} - 7; // 2^64 - 8: length + header wraps
constexpr std::uint64_t impossible = std::uint64_t{1} << 62;
constexpr std::uint64_t one_gib = std::uint64_t{1} << 30;
constexpr std::size_t small_limit = 48 << 20; // what the receiving child may allocate

template <class C>
constexpr bool is_shm = std::is_same_v<typename C::transport, transport::shm>;

std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

/// Writes forged bytes into what the sending end `w` of a one-way pipe sends on.
template <class C>
struct injector {
    typename C::template connection<std::string>& w;

    /// A first frame (or chunk) claiming a message of `length` bytes, with `have` of them.
    void header(std::uint64_t length, std::size_t have = 0) {
        std::vector<std::byte> payload(have, std::byte{'p'});
        if constexpr (is_shm<C>) {
            auto ring = forge::sending_ring(w);
            const std::uint64_t seq = ring.shared().next_seq.fetch_add(1) + 1;
            // (A ring chunk says its own length and its message's total apart.)
            REQUIRE(ring.put_chunk(detail::chunk_data, seq, 0, payload, length));
        } else {
            // The header, then `have` bytes: in the padding of its first read, and after.
            auto h = forge::header_only(length);
            const std::size_t room = h.size() - sizeof(forge::frame_header);
            std::copy_n(payload.begin(), std::min(have, room), h.begin() + sizeof(forge::frame_header));
            if (have > room) h.insert(h.end(), payload.begin() + static_cast<std::ptrdiff_t>(room), payload.end());
            forge::write_fd(w.fileno(), h);
        }
    }
    /// Bytes that are not a frame at all.
    void garbage() {
        const auto junk = bytes_of(std::string(128, 'x'));
        if constexpr (is_shm<C>)
            REQUIRE(forge::sending_ring(w).put_raw(junk));
        else
            forge::write_fd(w.fileno(), junk);
    }
};

/// Whether `f()` throws an E whose what() contains `text`; says what it threw otherwise.
template <class E, class F>
bool throws_with(F&& f, const std::string& text) {
    try {
        f();
        std::fprintf(stderr, "no exception (expected one with \"%s\")\n", text.c_str());
    } catch (const E& e) {
        if (std::string(e.what()).find(text) != std::string::npos) return true;
        std::fprintf(stderr, "right type, wrong text: %s (expected \"%s\")\n", e.what(), text.c_str());
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wrong exception: %s\n", e.what());
    }
    return false;
}

} // namespace

TEMPLATE_LIST_TEST_CASE("a frame header claiming more than any message is a serialization_error naming the length, "
                        "and the end stays closed for reading",
                        "[frames][pipe]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    for (std::uint64_t length : {wraps, impossible}) {
        INFO("length " << length);
        auto [r, w] = C::template pipe<std::string>(false);
        injector<C>{w}.header(length, 40);
        const int code = forge::in_bounded_child(
            [&] {
                const std::string named = std::to_string(length);
                if (!throws_with<serialization_error>([&] { (void)r.recv(); }, named)) return 1;
                // Later reads fail the same way instead of reading from inside the frame.
                if (!throws_with<serialization_error>([&] { (void)r.recv_bytes(); }, named)) return 2;
                if constexpr (!is_shm<C>)
                    if (!throws_with<serialization_error>([&] { (void)r.poll(); }, "closed for reading")) return 3;
                return 0;
            },
            small_limit);
        CHECK(code == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("a header claiming a huge message costs nothing until its bytes come, and cut short it is an "
                        "end of file during message",
                        "[frames][pipe]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    for (bool typed : {false, true}) {
        auto [r, w] = C::template pipe<std::string>(false);
        injector<C>{w}.header(one_gib, 100);
        w.close();
        const int code = forge::in_bounded_child(
            [&] {
                auto receive = [&] {
                    if (typed)
                        (void)r.recv();
                    else
                        (void)r.recv_bytes();
                };
                if (!throws_with<eof_error>(receive, "got end of file during message")) return 1;
                if (!throws_with<eof_error>(receive, "end of file")) return 2;
                return 0;
            },
            small_limit);
        CHECK(code == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("recv_bytes(maxlength) refuses a longer message from its header alone, naming its length",
                        "[frames][pipe][maxlength]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    {
        // Only the header is there: the refusal cannot wait for the message.
        auto [r, w] = C::template pipe<std::string>(false);
        injector<C>{w}.header(one_gib);
        w.close();
        const int code = forge::in_bounded_child(
            [&] {
                try {
                    (void)r.recv_bytes(1024);
                    return 1;
                } catch (const os_error& e) {
                    if (e.code().value() != EMSGSIZE) return 2;
                    if (std::string(e.what()).find("bad message length: 1073741824 bytes, more than maxlength 1024") ==
                        std::string::npos)
                        return 3;
                }
                return 0;
            },
            small_limit);
        CHECK(code == 0);
    }
    {
        // A real message of 256 MiB, sent while the receiver refuses it: none of it is kept,
        // and the connection goes on with the next message.
        using conn = typename C::template connection<std::string>;
        auto [r, w] = C::template pipe<std::string>(false);
        process sender(
            [](conn w) {
                std::vector<std::byte> big(256 << 20, std::byte{'b'});
                w.send_bytes(big);
                w.send("after");
            },
            w);
        sender.start();
        w.close();
        const int code = forge::in_bounded_child(
            [&] {
                if (!throws_with<os_error>([&] { (void)r.recv_bytes(1024); }, "268435456 bytes, more than maxlength"))
                    return 1;
                return r.recv() == "after" ? 0 : 2;
            },
            small_limit);
        CHECK(code == 0);
        r.close(); // (had the receiver failed, the sender would wait for room forever)
        sender.join();
        if (code == 0) CHECK(sender.exitcode() == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("garbage instead of a frame is a serialization_error, and the end stays closed for reading",
                        "[frames][pipe]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto [r, w] = C::template pipe<std::string>(false);
    injector<C>{w}.garbage();
    w.send("a real message after the garbage");
    const std::string why = is_shm<C> ? "the shared-memory ring is corrupt (bytes that are not a chunk header)"
                                      : "closed for reading: it received bytes that are not a frame";
    CHECK(throws_with<serialization_error>([&] { (void)r.recv(); }, why));
    CHECK(throws_with<serialization_error>([&] { (void)r.recv(); }, why));
}

TEMPLATE_LIST_TEST_CASE("a truncated frame is an end of file during message", "[frames][pipe]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto [r, w] = C::template pipe<std::string>(false);
    injector<C>{w}.header(1000, 10);
    w.close();
    CHECK(throws_with<eof_error>([&] { (void)r.recv(); }, "got end of file during message"));
}

// ---- queues ---------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("a queue skips bytes that are not chunks, and chunks longer than it carries",
                        "[frames][queue]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<std::string> q(0, 64 << 10);
    const auto junk = bytes_of(std::string(100, 'x'));
    const auto payload = bytes_of(std::string(100, 'f'));
    if constexpr (is_shm<C>) {
        // In a ring, nothing may be skipped: a chunk longer than a ring's chunks is an error
        // naming the length, every time.
        auto ring = forge::queue_ring(q);
        REQUIRE(ring.put_header(detail::make_chunk(detail::chunk_data, 1, 0, 1 << 20, 1 << 20), payload));
        const std::string named = "claiming 1048576 bytes of a message of 1048576";
        CHECK(throws_with<serialization_error>([&] { (void)q.get(1s); }, named));
        CHECK(throws_with<serialization_error>([&] { (void)q.get(1s); }, named));
    } else {
        const int fd = forge::queue_write_fd(q);
        forge::write_fd(fd, junk);
        // A chunk whose checksum checks but whose length no chunk of this queue can have
        // (more than its staging holds): skipped, not waited for.
        forge::write_fd(fd, forge::chunk_bytes(detail::chunk_data, 1, 0, payload, 1 << 20, 1 << 20));
        q.put("after");
        CHECK(q.get(5s) == "after");
        CHECK(q.qsize() == 0);
    }
}

TEMPLATE_LIST_TEST_CASE("a forged chunk claiming a huge message costs nothing until its bytes come",
                        "[frames][queue]", test::transports) {
    using C = TestType;
    INFO(C::name());
    for (std::uint64_t total : {one_gib, wraps}) {
        INFO("total " << total);
        test::leak_check leaks;
        typename C::template queue<std::string> q;
        const auto payload = bytes_of(std::string(100, 'h'));
        if constexpr (is_shm<C>)
            REQUIRE(forge::queue_ring(q).put_chunk(detail::chunk_data, 1, 0, payload, total));
        else
            forge::write_fd(forge::queue_write_fd(q),
                            forge::chunk_bytes(detail::chunk_data, 1, 0, payload, total, 100));
        const int code = forge::in_bounded_child(
            [&] {
                if (is_shm<C> && total == wraps) // (a ring cannot skip it: an error naming it)
                    return throws_with<serialization_error>([&] { (void)q.get(1s); }, std::to_string(total)) ? 0 : 1;
                // Nobody is writing the rest: the part is dropped, and the queue is empty.
                if (!throws_with<queue_empty>([&] { (void)q.get(0s); }, "queue is empty")) return 2;
                // A total past any message makes it bytes from outside, skipped. Otherwise the
                // forged chunk took sequence number 1, so the producers' first message (number 1
                // too) reads as stale and is dropped: a forger can do that much
                // (docs/design/queues.md, "Limits"). The queue goes on either way.
                q.put("first");
                q.put("next");
                return q.get(5s) == (total == wraps ? "first" : "next") ? 0 : 3;
            },
            small_limit);
        CHECK(code == 0);
    }
}

// ---- decoding and attaching -----------------------------------------------------------

TEST_CASE("decoding reserves no more memory ahead of the elements than the frame's bytes", "[frames][binary]") {
    // A count of 60000 optional 1000-byte arrays: 60000 flag bytes follow, as get_count
    // demands, but the 11th is corrupt. Reserving room for the count up front would take
    // 60 MB before the first element is decoded.
    using T = std::vector<std::optional<std::array<char, 1000>>>;
    const std::uint64_t n = 60000;
    std::vector<std::byte> frame(8 + n, std::byte{0});
    std::memcpy(frame.data(), &n, 8);
    frame[8 + 10] = std::byte{2};
    const int code = forge::in_bounded_child(
        [&] {
            detail::span_reader r(frame);
            return throws_with<serialization_error>([&] { (void)serialize::binary::decode<T>(r); },
                                                    "byte is 2, not 0 or 1")
                       ? 0
                       : 1;
        },
        small_limit);
    CHECK(code == 0);
}

TEST_CASE("a ring whose header claims more capacity than its memory holds is refused when attached",
          "[frames][shm]") {
    test::leak_check leaks;
    auto [r, w] = multiproc::pipe<int, transport::shm>(false, 4096);
    auto ring = forge::sending_ring(w);
    ring.shared().capacity = std::uint64_t{1} << 31;
    auto crossing = forge::crossing_of(w);
    std::vector<detail::sys::unique_fd> fds;
    for (int fd : crossing.fds()) fds.emplace_back(::dup(fd));
    detail::crossing_reader in(crossing.bytes(), std::move(fds));
    CHECK(throws_with<serialization_error>([&] { (void)basic_connection<int, transport::shm>::cross_in(in); },
                                           "claims a capacity of 2147483648 bytes"));
}
