// page_buffer (issue 20): shared memory filled in place and sent through a connection or a
// queue of every transport without copying its bytes -- the receiver maps the same pages.
#include "ipc/combos.hpp"

#include <multiproc/multiproc.hpp>
#include <multiproc/shared_memory.hpp>

#include <cstring>
#include <limits>
#include <numeric>

#include <fcntl.h>
#include <sys/mman.h>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
/// Fills `b` with a pattern that depends on `seed` and each byte's place.
void fill(const page_buffer& b, std::uint8_t seed) {
    auto* p = reinterpret_cast<std::uint8_t*>(b.data());
    for (std::size_t i = 0; i < b.size(); ++i) p[i] = static_cast<std::uint8_t>(seed + i * 31 + (i >> 12));
}
/// Whether `b` holds fill(b, seed)'s pattern.
bool holds(const page_buffer& b, std::uint8_t seed) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(b.data());
    for (std::size_t i = 0; i < b.size(); ++i)
        if (p[i] != static_cast<std::uint8_t>(seed + i * 31 + (i >> 12))) return false;
    return true;
}
constexpr std::size_t big = (8u << 20) + 123; // 8 MiB and a bit: not a whole number of pages
} // namespace

TEST_CASE("page_buffer: zeroed memory of the size asked, movable, empty when 0", "[page_buffer]") {
    test::leak_check leaks;
    page_buffer b(10000);
    REQUIRE(b.size() == 10000);
    CHECK(!b.empty());
    CHECK(std::all_of(b.bytes().begin(), b.bytes().end(), [](std::byte x) { return x == std::byte{0}; }));
    fill(b, 7);
    page_buffer moved(std::move(b));
    CHECK(b.empty()); // NOLINT(bugprone-use-after-move): a moved-from buffer is empty
    CHECK(b.data() == nullptr);
    CHECK(holds(moved, 7));
    page_buffer none(0);
    CHECK(none.empty());
    CHECK(none.bytes().empty());
}

TEMPLATE_LIST_TEST_CASE("a page_buffer put in a queue of any transport arrives as the same pages",
                        "[page_buffer][queue]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    typename C::template queue<page_buffer> q;
    typename C::template queue<int> back;
    process child([&] {
        page_buffer b(big);
        fill(b, 3);
        q.put(b);
        // The receiver writes into the same pages: the child sees it.
        if (back.get(30s) != 1) std::_Exit(2);
        std::_Exit(b.data()[5] == std::byte{0xee} ? 0 : 3);
    });
    child.start();
    page_buffer got = q.get(30s);
    REQUIRE(got.size() == big);
    CHECK(holds(got, 3));
    got.data()[5] = std::byte{0xee};
    back.put(1);
    child.join();
    CHECK(child.exitcode() == 0);
    // An empty buffer crosses as one.
    q.put(page_buffer());
    CHECK(q.get(30s).empty());
}

TEMPLATE_LIST_TEST_CASE("a page_buffer sent through a connection of any transport arrives as the same pages",
                        "[page_buffer][connection]", test::transports) {
    using C = TestType;
    INFO(C::name());
    test::leak_check leaks;
    auto ends = multiproc::pipe<page_buffer, typename C::transport>(false);
    auto& r = ends.first;
    auto& w = ends.second;
    auto acks = multiproc::pipe<int>(false);
    process child([&] {
        for (std::uint8_t k = 0; k < 3; ++k) {
            page_buffer b(big - k);
            fill(b, k);
            w.send(b);
        }
        // (A pipe's or a ring's sender keeps the descriptors until they are taken: it stays
        // until the parent has them, as a queue's producer must.)
        std::_Exit(acks.first.recv() == 3 ? 0 : 2);
    });
    child.start();
    w.close();
    for (std::uint8_t k = 0; k < 3; ++k) {
        page_buffer got = r.recv();
        REQUIRE(got.size() == big - k);
        CHECK(holds(got, k));
    }
    acks.second.send(3);
    child.join();
    CHECK(child.exitcode() == 0);
}

TEST_CASE("a page_buffer crosses into a spawned child as an argument", "[page_buffer][spawn]") {
    test::leak_check leaks;
    page_buffer b(1 << 20);
    fill(b, 9);
    basic_process<start::spawn> p(
        [](page_buffer b) {
            if (b.size() != (1 << 20)) std::_Exit(2);
            auto* x = reinterpret_cast<std::uint8_t*>(b.data());
            x[0] = static_cast<std::uint8_t>(x[0] + 1); // seen by the parent: the same pages
        },
        b);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK(static_cast<std::uint8_t>(b.data()[0]) == static_cast<std::uint8_t>(9 + 1));
}

TEST_CASE("a page_buffer received is checked: unsealed or shorter memory is refused before it is mapped",
          "[page_buffer][hostile]") {
    test::leak_check leaks;
    auto received = [](int fd, std::uint64_t size) {
        crossing_writer w;
        w.put<std::uint64_t>(size);
        std::vector<crossing_reader::owned_fd> fds;
        fds.emplace_back(fd);
        crossing_reader r(w.bytes(), std::move(fds));
        return page_buffer::cross_in(r);
    };
    // A memfd that can still shrink: reads past its new end would fault.
    int loose = ::memfd_create("loose", MFD_CLOEXEC);
    REQUIRE(loose >= 0);
    REQUIRE(::ftruncate(loose, 4096) == 0);
    CHECK_THROWS_WITH(received(loose, 4096), Catch::Contains("not what its message says: the memfd's size is not sealed"));
    // Sealed, but smaller than the message says.
    int small = ::memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(small >= 0);
    REQUIRE(::ftruncate(small, 4096) == 0);
    REQUIRE(::fcntl(small, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    CHECK_THROWS_AS(received(small, 1 << 20), serialization_error);
    small = ::memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(small >= 0);
    REQUIRE(::ftruncate(small, 4096) == 0);
    REQUIRE(::fcntl(small, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    CHECK_THROWS_WITH(received(small, 1 << 20), Catch::Contains("smaller than the message says"));
    // Sealed against writing: a writable mapping would fail (EPERM), so it is refused as
    // the message it is, for either seal.
    for (int seal : {F_SEAL_WRITE, F_SEAL_FUTURE_WRITE}) {
        int ro = ::memfd_create("read-only", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        REQUIRE(ro >= 0);
        REQUIRE(::ftruncate(ro, 4096) == 0);
        REQUIRE(::fcntl(ro, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | seal) == 0);
        CHECK_THROWS_WITH(received(ro, 4096), Catch::Contains("sealed against writing"));
    }
    // Not a memfd at all.
    int file = ::open("/dev/zero", O_RDWR | O_CLOEXEC);
    REQUIRE(file >= 0);
    CHECK_THROWS_WITH(received(file, 4096), Catch::Contains("its descriptor is not a memfd"));
    // Sealed and large enough: accepted.
    int good = ::memfd_create("good", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(good >= 0);
    REQUIRE(::ftruncate(good, 8192) == 0);
    REQUIRE(::fcntl(good, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    CHECK(received(good, 8000).size() == 8000);
}

TEST_CASE("a connection over a kernel pipe still refuses other objects with descriptors", "[page_buffer][pipe]") {
    test::leak_check leaks;
    auto [x, y] = multiproc::pipe<connection<int>>(); // transport::pipe
    auto [u, v] = multiproc::pipe<int>();
    CHECK_THROWS_WITH(x.send(u), Catch::Contains("over a kernel pipe (transport::pipe) only page_buffers cross"));
    // In a container, next to page_buffers too: refused before any byte is written.
    auto [vx, vy] = multiproc::pipe<std::vector<connection<int>>>();
    CHECK_THROWS_AS(vx.send({u, v}), value_error);
    auto [tx, ty] = multiproc::pipe<std::tuple<page_buffer, connection<int>>>();
    CHECK_THROWS_WITH(tx.send({page_buffer(4096), u}), Catch::Contains("only page_buffers cross"));
    // Nothing was written.
    CHECK(!y.poll());
    CHECK(!vy.poll());
    CHECK(!ty.poll());
}

TEST_CASE("page_buffers in a vector or a tuple cross a kernel pipe as the same pages", "[page_buffer][pipe]") {
    test::leak_check leaks;
    // More buffers than one SCM_RIGHTS message takes (a socketpair's limit is 250): over a
    // pipe they go through the sender's resource sharer.
    constexpr std::size_t count = 300;
    auto [vr, vw] = multiproc::pipe<std::vector<page_buffer>, transport::pipe>(false);
    auto [tr, tw] = multiproc::pipe<std::tuple<int, page_buffer, std::string>, transport::pipe>(false);
    auto acks = multiproc::pipe<int>(false);
    process child([&] {
        std::vector<page_buffer> many;
        for (std::size_t k = 0; k < count; ++k) {
            many.emplace_back(4096 + k);
            fill(many.back(), static_cast<std::uint8_t>(k));
        }
        vw.send(many);
        vw.send({}); // an empty vector: no descriptor at all
        page_buffer one(big);
        fill(one, 42);
        tw.send({7, one, "seven"});
        tw.send({8, page_buffer(), "none"}); // (an empty buffer: no descriptor)
        // The sender stays until the parent has taken the descriptors, and sees its writes.
        if (acks.first.recv() != 1) std::_Exit(2);
        std::_Exit(many[count - 1].data()[0] == std::byte{0x5a} && one.data()[1] == std::byte{0xa5} ? 0 : 3);
    });
    child.start();
    vw.close();
    tw.close();
    std::vector<page_buffer> got = vr.recv();
    REQUIRE(got.size() == count);
    bool all = true;
    for (std::size_t k = 0; k < count; ++k) all = all && got[k].size() == 4096 + k && holds(got[k], static_cast<std::uint8_t>(k));
    CHECK(all);
    CHECK(vr.recv().empty());
    auto [n, one, text] = tr.recv();
    CHECK(n == 7);
    CHECK(text == "seven");
    REQUIRE(one.size() == big);
    CHECK(holds(one, 42));
    auto [m, none, word] = tr.recv();
    CHECK((m == 8 && none.empty() && word == "none"));
    got[count - 1].data()[0] = std::byte{0x5a};
    one.data()[1] = std::byte{0xa5};
    acks.second.send(1);
    child.join();
    CHECK(child.exitcode() == 0);
}

TEST_CASE("a page_buffer: a size no memfd can have is value_error", "[page_buffer]") {
    test::leak_check leaks;
    CHECK_THROWS_WITH(page_buffer(std::numeric_limits<std::size_t>::max()),
                      Catch::Contains("is larger than any memfd can be"));
    CHECK_THROWS_AS(page_buffer(static_cast<std::size_t>(std::numeric_limits<off_t>::max()) + 1), value_error);
}

