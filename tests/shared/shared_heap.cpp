// Containers in shared memory (issue 19, Boost.Interprocess): a shared_vector changed in
// place by pool tasks of every start method and by a child through a queue, a map and a
// string, references that cross as a few bytes, an exhausted heap, and a heap whose owner
// is gone (nothing left in /dev/shm).
#include "support/support.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/shared_heap.hpp>
#include <multiproc/shared_memory.hpp>

#include <algorithm>
#include <array>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>

using namespace multiproc;

namespace {
using vec = shared_vector<std::int64_t>;

/// Doubles the elements [from, from + n) of the vector, in place; returns their new sum.
std::int64_t double_range(shared_object<vec> v, std::int64_t from, std::int64_t n) {
    std::int64_t s = 0;
    for (std::int64_t i = from; i < from + n; ++i) s += ((*v)[static_cast<std::size_t>(i)] *= 2);
    return s;
}

bool in_dev_shm(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }
} // namespace

TEMPLATE_TEST_CASE("shared_heap: pool tasks change a shared_vector in place, passed by reference", "[shared_heap]",
                   START_METHODS) {
    test::warm_up<TestType>();
    shared_heap heap(32 << 20);
    auto v = heap.make<vec>();
    constexpr std::int64_t n = 1 << 20; // 8 MiB of elements: a task's argument is a few bytes
    v->resize(n);
    std::iota(v->begin(), v->end(), std::int64_t{0});
    CHECK(serialize::binary::encoded_size(v) < 64);

    basic_pool<typename TestType::policies::start> p(2);
    std::vector<std::tuple<shared_object<vec>, std::int64_t, std::int64_t>> parts;
    for (std::int64_t from = 0; from < n; from += n / 8) parts.emplace_back(v, from, n / 8);
    const auto sums = p.starmap(fn<&double_range>, parts);
    const std::int64_t expected = n * (n - 1); // 2 * (0 + 1 + ... + n-1)
    CHECK(std::accumulate(sums.begin(), sums.end(), std::int64_t{0}) == expected);
    // The parent sees what the workers wrote: the same memory.
    CHECK(std::accumulate(v->begin(), v->end(), std::int64_t{0}) == expected);
    CHECK((*v)[12345] == 2 * 12345);
    p.close();
    p.join();
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("shared_heap: a map and a string through a queue to a child, which changes them", "[shared_heap]") {
    shared_heap heap(1 << 20);
    using map_t = shared_map<int, double>;
    auto m = heap.make<map_t>();
    auto s = heap.make<shared_string>("from the parent");
    (*m)[1] = 1.5;
    multiproc::queue<std::pair<shared_object<map_t>, shared_object<shared_string>>> q;
    multiproc::process child([](multiproc::queue<std::pair<shared_object<map_t>, shared_object<shared_string>>> q) {
        auto [m, s] = q.get();
        (*m)[2] = m->at(1) * 2;
        *s = "changed by the child";
    }, q);
    child.start();
    q.put({m, s});
    child.join();
    CHECK(child.exitcode() == 0);
    CHECK(m->size() == 2);
    CHECK(m->at(2) == 3.0);
    CHECK(std::string(s->c_str()) == "changed by the child");

    // Destroying an object frees its memory.
    auto before = heap.free_memory();
    auto big = heap.make<vec>();
    big->resize(10000);
    CHECK(heap.free_memory() < before);
    heap.destroy(big);
    CHECK(heap.free_memory() == before);
}

TEST_CASE("shared_heap: exhaustion is bad_alloc and leaves the heap usable, and a heap whose owner is gone is gone",
          "[shared_heap]") {
    std::string name;
    shared_object<vec> left;
    {
        shared_heap heap(64 << 10);
        name = heap.name();
        CHECK(in_dev_shm(name));
        CHECK(heap.is_owner());
        auto v = heap.make<vec>();
        // 1 MiB in a 64 KiB heap: Boost.Interprocess's bad_alloc; a vector past the
        // allocator's max_size: Boost.Container's length error (both std::exceptions).
        CHECK_THROWS_AS((heap.make<std::array<char, 1 << 20>>()), boost::interprocess::bad_alloc);
        CHECK_THROWS_WITH(v->resize(1 << 20), Catch::Matchers::Contains("max size"));
        v->push_back(7);
        CHECK(v->back() == 7);
        left = v;
        // Another attachment (an attacher) in a child made by fork sees the same.
        multiproc::process child([](std::string name, shared_object<vec> v) {
            auto h = shared_heap::attach(name);
            std::_Exit(!h.is_owner() && v->size() == 1 && (*v)[0] == 7 ? 0 : 2);
        }, name, v);
        CHECK(test::exit_of(child) == 0);
    }
    CHECK_FALSE(in_dev_shm(name));
    CHECK_THROWS_AS(shared_heap::attach(name), value_error);
    try {
        (void)left->size();
        FAIL("a reference into a destroyed heap was followed");
    } catch (const value_error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains(name));
    }
    CHECK_THROWS_AS(shared_object<vec>().get(), value_error);
    CHECK_THROWS_AS(shared_heap(100), value_error);
}
#endif

namespace {
using string_ref = shared_object<shared_string>;
/// A child that keeps its heaps mapped, as a pool worker does: for each reference that comes,
/// sends back the text it finds there ("gone: <what>" if value_error).
void reader(multiproc::queue<string_ref> in, multiproc::queue<std::string> out) {
    for (;;) {
        auto ref = in.get();
        if (ref.heap_name().empty()) return; // (a default reference: the end)
        try {
            out.put(std::string(ref->c_str()));
        } catch (const value_error& e) {
            out.put(std::string("gone: ") + e.what());
        }
    }
}
} // namespace

// From an outside trial: a process kept every heap it had attached, by name, for its life,
// so after the owner made a new heap under the same name, an object of the new heap was read
// in the old one's mapping (the text at that offset of the removed heap, or any bytes).
TEST_CASE("shared_heap: a new heap under an old heap's name is the new one in a process that had the old one",
          "[shared_heap]") {
    const std::string name = "mp_test_heap_again_" + std::to_string(::getpid());
    multiproc::queue<string_ref> in;
    multiproc::queue<std::string> out;
    multiproc::process child([](multiproc::queue<string_ref> i, multiproc::queue<std::string> o) { reader(i, o); }, in, out);
    child.start();
    string_ref first;
    {
        shared_heap heap(1 << 16, name);
        first = heap.make<shared_string>("first heap");
        in.put(first);
        CHECK(out.get() == "first heap");
    }
    shared_heap again(1 << 16, name);
    auto second = again.make<shared_string>("SECOND heap");
    CHECK(second.heap_name() == first.heap_name());
    in.put(second); // the same name and, here, the same offset: only the heap's id differs
    CHECK(out.get() == "SECOND heap");
    // The child still maps the first heap: its object is still there for it.
    in.put(first);
    CHECK(out.get() == "first heap");
    // Here the first heap went with its owner: its object is gone, not read in the second.
    CHECK_THROWS_WITH(first.get(), Catch::Matchers::Contains("is gone: that name is another heap's now"));
    CHECK_THROWS_WITH(again.destroy(first), Catch::Matchers::Contains("in another heap that had the name"));
    in.put(string_ref());
    child.join();
    CHECK(child.exitcode() == 0);
}

// From an outside trial: attaching to a segment no shared_heap made waited 300 s in
// Boost.Interprocess (for its creator to finish it), then failed with "library_error".
TEST_CASE("shared_heap: attaching to a segment that is not a heap is a value_error at once", "[shared_heap]") {
    test::baseline before; // (no descriptor left open)
    const std::string name = "mp_test_not_a_heap_" + std::to_string(::getpid());
    for (const long size : {0L, 100L, 1L << 16}) {
        INFO(size << " bytes of zeros");
        int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, size) == 0);
        ::close(fd);
        CHECK_THROWS_WITH(shared_heap::attach(name),
                          "multiproc: '" + name + "' is not a shared heap (a shared memory segment of " +
                              std::to_string(size) + " bytes that no shared_heap made whole)");
        ::shm_unlink(("/" + name).c_str());
    }
    CHECK_THROWS_WITH(shared_heap::attach(name), Catch::Matchers::Contains("cannot be attached"));
    before.check();
}

// From an outside trial: "x" and "/x" name one segment (glibc's shm_open drops leading
// slashes), but were two heaps here: two mappings, and destroy() through one refused an
// object made through the other.
TEST_CASE("shared_heap: a name with and without its leading slash is one heap", "[shared_heap]") {
    test::baseline before;
    const std::string name = "mp_test_heap_slash_" + std::to_string(::getpid());
    {
        shared_heap heap(1 << 16, "/" + name);
        CHECK(heap.name() == name);
        CHECK(in_dev_shm(name));
        auto made = heap.make<shared_string>("made under /x");
        auto other = shared_heap::attach(name);
        CHECK(other.name() == name);
        auto through = other.make<shared_string>("made through x");
        CHECK(made.heap_name() == through.heap_name());
        auto slashes = shared_heap::attach("//" + name);
        CHECK(*made.get() == "made under /x");
        heap.destroy(through);
        slashes.destroy(made);
        CHECK_THROWS_WITH(shared_heap::attach("/"), Catch::Matchers::Contains("is not a shared heap's name"));
        CHECK_THROWS_AS(shared_heap(1 << 16, "//"), value_error);
    }
    CHECK(!in_dev_shm(name));
    before.check();
}

namespace {
/// Waits (at most 30 s) for the process `pidfd` refers to, which need not be a child.
bool ended(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 30'000) == 1;
}

/// A forked owner of segments, killed with SIGKILL: `make()`, in the child, makes its
/// segments and returns the pid of its segment reaper (0 if there is none to report); the
/// child reports it and holds on until kill(). The parent's side.
class killed_owner {
public:
    template <class Make>
    explicit killed_owner(Make make) {
        owner_ = ::fork();
        REQUIRE(owner_ >= 0);
        if (owner_ == 0) {
            report_.close_r();
            hold_.close_w();
            try {
                test::write_str(report_.w, std::to_string(make()) + "\n");
                char c;
                (void)!::read(hold_.r, &c, 1); // (until killed)
            } catch (const std::exception& e) {
                test::write_str(report_.w, std::string("0 ") + e.what() + "\n");
            }
            ::_exit(1);
        }
        report_.close_w();
        hold_.close_r();
        line_ = test::read_line(report_.r);
    }
    killed_owner(const killed_owner&) = delete;
    killed_owner& operator=(const killed_owner&) = delete;
    ~killed_owner() { // (a case that stopped before kill(): no child left behind)
        if (owner_ > 0 && !killed_) {
            (void)::kill(owner_, SIGKILL);
            (void)::waitpid(owner_, nullptr, 0);
        }
    }

    /// What the child reported: its reaper's pid, or "0 <why not>".
    [[nodiscard]] const std::string& report() const { return line_; }
    [[nodiscard]] pid_t reaper() const { return static_cast<pid_t>(std::stol(line_)); }

    /// Kills the owner with SIGKILL, reaps it, and waits for its reaper to end.
    void kill() {
        const int pidfd = detail::sys::pidfd_open(reaper());
        REQUIRE(pidfd >= 0);
        REQUIRE(::kill(owner_, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(owner_, &status, 0) == owner_);
        killed_ = true;
        CHECK(WIFSIGNALED(status));
        CHECK(ended(pidfd));
        ::close(pidfd);
    }

private:
    test::pipe_pair report_, hold_;
    pid_t owner_ = -1;
    bool killed_ = false;
    std::string line_;
};
} // namespace

// Design §5.5: no segment outlives the processes using it, even after SIGKILL. A process's
// segment reaper removes the names it made when it ends without removing them.
TEST_CASE("named segments go with their owner killed by SIGKILL, and a newer one of a name stays",
          "[shared_heap][shared_memory][reaper]") {
    test::baseline before;
    {
        const std::string tag = std::to_string(::getpid());
        const std::string memory = "mp_test_reap_memory_" + tag, heap = "mp_test_reap_heap_" + tag,
                          taken = "mp_test_reap_taken_" + tag, gone = "mp_test_reap_gone_" + tag;
        std::optional<shared_memory> m, t;
        std::optional<shared_heap> h;
        killed_owner owner([&] {
            m.emplace(memory, true, 4096);
            h.emplace(1 << 16, heap);
            t.emplace(taken, true, 4096);
            // Made and removed, again and again: not the reaper's to remove, and more lines
            // than its first mapping holds (it drops those of names made and removed).
            for (int k = 0; k < 1500; ++k) shared_memory g(gone, true, 4096);
            return detail::segment_reaper::pid();
        });
        INFO(owner.report());
        REQUIRE(owner.reaper() > 0);
        CHECK(in_dev_shm(memory));
        CHECK(in_dev_shm(heap));
        CHECK(!in_dev_shm(gone));
        // Someone else removes one of the owner's names and makes a segment of their own there.
        REQUIRE(::shm_unlink(("/" + taken).c_str()) == 0);
        const int newer = ::shm_open(("/" + taken).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
        REQUIRE(newer >= 0);
        ::close(newer);
        owner.kill();
        CHECK(!in_dev_shm(memory));
        CHECK(!in_dev_shm(heap));
        CHECK(in_dev_shm(taken)); // (the newer segment: another inode)
        ::shm_unlink(("/" + taken).c_str());
    }
    before.check();
}

// From an outside trial: the segment made when the owner found its reaper killed (by
// someone else) was left to no reaper; a new one takes it, as CPython's resource tracker is
// started again by the next name it is told of.
TEST_CASE("a segment made after the reaper was killed goes to a new reaper", "[shared_memory][reaper]") {
    test::baseline before;
    {
        const std::string tag = std::to_string(::getpid());
        const std::string first = "mp_test_rekill_first_" + tag, second = "mp_test_rekill_second_" + tag;
        std::optional<shared_memory> a, b;
        killed_owner owner([&] {
            a.emplace(first, true, 4096);
            const pid_t killed = detail::segment_reaper::pid();
            siginfo_t info{};
            if (killed <= 0 || ::kill(killed, SIGKILL) != 0 ||
                ::waitid(P_PID, static_cast<id_t>(killed), &info, WEXITED | WNOWAIT) != 0)
                throw std::runtime_error("no reaper to kill");
            b.emplace(second, true, 4096); // (the write to the killed one fails: EPIPE)
            const pid_t next = detail::segment_reaper::pid();
            return next == killed ? 0 : next;
        });
        INFO(owner.report());
        REQUIRE(owner.reaper() > 0); // a new reaper runs
        owner.kill();
        CHECK(!in_dev_shm(second)); // the new reaper's
        CHECK(in_dev_shm(first));   // (the killed reaper's: lost with it)
        ::shm_unlink(("/" + first).c_str());
    }
    before.check();
}

// From an outside trial: the owner's destructor unlinked the name whatever it named by then
// (CPython's SharedMemory unlinks only when asked), as the reaper, after a kill, does not.
TEST_CASE("an owner's orderly end removes its name only if it still names its segment",
          "[shared_heap][shared_memory]") {
    test::baseline before;
    const std::string tag = std::to_string(::getpid());
    const std::string memory = "mp_test_newer_memory_" + tag, heap = "mp_test_newer_heap_" + tag;
    // Someone removes the name and makes a segment of their own under it.
    const auto make_newer = [](const std::string& name) {
        REQUIRE(::shm_unlink(("/" + name).c_str()) == 0);
        const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
        REQUIRE(fd >= 0);
        ::close(fd);
    };
    {
        shared_memory m(memory, true, 4096);
        shared_heap h(1 << 16, heap);
        make_newer(memory);
        make_newer(heap);
    }
    CHECK(in_dev_shm(memory)); // (the newer segments: another inode)
    CHECK(in_dev_shm(heap));
    ::shm_unlink(("/" + memory).c_str());
    ::shm_unlink(("/" + heap).c_str());
    { // (its own it still removes)
        shared_memory m(memory, true, 4096);
        shared_heap h(1 << 16, heap);
    }
    CHECK(!in_dev_shm(memory));
    CHECK(!in_dev_shm(heap));
    before.check();
}

TEST_CASE("a process's segment reaper runs while it owns a named segment, and ends with the last",
          "[shared_heap][shared_memory][reaper]") {
    test::baseline before;
    CHECK(detail::segment_reaper::pid() == 0);
    int pidfd = -1;
    {
        auto first = shared_memory::create(4096);
        const pid_t reaper = detail::segment_reaper::pid();
        REQUIRE(reaper > 0);
        const auto children = test::children_of();
        CHECK(std::find(children.begin(), children.end(), reaper) != children.end()); // (ps: multiproc-reap)
        pidfd = detail::sys::pidfd_open(reaper);
        REQUIRE(pidfd >= 0);
        {
            shared_heap second(1 << 16);
            CHECK(detail::segment_reaper::pid() == reaper); // (one for the process)
        }
        pollfd p{pidfd, POLLIN, 0};
        CHECK(::poll(&p, 1, 0) == 0); // still running: `first` is left
        auto moved = std::move(first);
        first = shared_memory::create(4096); // (the moved-from object's assignment)
        moved.unlink();
        CHECK(::poll(&p, 1, 0) == 0);
    }
    CHECK(detail::segment_reaper::pid() == 0);
    CHECK(ended(pidfd)); // nothing left to remove: it has ended, and was waited for (before.check)
    ::close(pidfd);
    before.check();
}
