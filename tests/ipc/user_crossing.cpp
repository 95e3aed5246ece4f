// Types of the user's own that cross into a child (<multiproc/crossing.hpp>): a descriptor
// plus data, as an argument on its own, in a std::vector and in a std::tuple, under every
// start method; and a cross_in that reads more than its cross_out wrote is start()'s
// multiproc error under spawn and forkserver (under fork the hooks never run).
#include "support/support.hpp"

#include <multiproc/crossing.hpp>
#include <multiproc/process.hpp>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <unistd.h>

// Outside namespace multiproc, as a user's code would be.
namespace user {

// The write end of a pipe (not owned: the parent closes its own, the child's copy closes
// when the child exits), with a label and a repeat count.
struct pipe_writer {
    int fd = -1;
    std::string label;
    int times = 0;

    void cross_out(multiproc::crossing_writer& w) const {
        w.put_fd(fd);
        w.put_string(label);
        w.put(times);
    }
    static pipe_writer cross_in(multiproc::crossing_reader& r) {
        pipe_writer p;
        p.fd = r.take_fd().release();
        p.label = r.get_string();
        p.times = r.get<int>();
        return p;
    }

    /// Writes the label `times` times, then `tail`; throws if the descriptor is unusable
    /// (so the child's exit code says so).
    void send(std::string_view tail) const {
        std::string s;
        for (int i = 0; i < times; ++i) s += label;
        s += tail;
        std::size_t done = 0;
        while (done < s.size()) {
            ssize_t n = ::write(fd, s.data() + done, s.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("user::pipe_writer: write failed");
            done += static_cast<std::size_t>(n);
        }
    }
};

// cross_in reads one int more than cross_out wrote.
struct greedy_bytes {
    int x = 0;
    void cross_out(multiproc::crossing_writer& w) const { w.put(x); }
    static greedy_bytes cross_in(multiproc::crossing_reader& r) {
        greedy_bytes g;
        g.x = r.get<int>() + r.get<int>();
        return g;
    }
};

// cross_in takes two descriptors where cross_out put one.
struct greedy_fds {
    int fd = -1;
    void cross_out(multiproc::crossing_writer& w) const { w.put_fd(fd); }
    static greedy_fds cross_in(multiproc::crossing_reader& r) {
        greedy_fds g;
        g.fd = r.take_fd().release();
        (void)r.take_fd();
        return g;
    }
};

} // namespace user

namespace {

/// What start() raised: a multiproc::error's text, or a note that it raised something else
/// or nothing.
template <class P>
std::string start_error(P& p) {
    try {
        p.start();
    } catch (const multiproc::error& e) {
        return e.what();
    } catch (...) {
        return "(an exception that is not a multiproc::error)";
    }
    p.join();
    return "(no exception)";
}

} // namespace

static_assert(multiproc::crosses_itself<user::pipe_writer>);
static_assert(!multiproc::crosses_itself<std::string>);

TEMPLATE_TEST_CASE("a type of the user's own crosses into a child: its descriptor works there and its data arrives",
                   "[crossing][user]", START_METHODS) {
    test::report_pipe out;
    test::process_t<TestType> p([](user::pipe_writer w, int n) { w.send(":" + std::to_string(n)); },
                                user::pipe_writer{out.w, "ab", 3}, 7);
    CHECK(test::exit_of(p) == 0);
    CHECK(out.collect() == "ababab:7");
}

TEMPLATE_TEST_CASE("user crossing types inside a std::vector and a std::tuple argument cross element by element",
                   "[crossing][user]", START_METHODS) {
    test::report_pipe a, b, c;
    using tuple_arg = std::tuple<std::string, user::pipe_writer, int>;
    test::process_t<TestType> p(
        [](std::vector<user::pipe_writer> ws, tuple_arg t) {
            for (const auto& w : ws) w.send("!");
            std::get<1>(t).send(std::get<0>(t) + std::to_string(std::get<2>(t)));
        },
        std::vector<user::pipe_writer>{{a.w, "x", 1}, {b.w, "yz", 2}}, tuple_arg{"t", {c.w, "w", 2}, 42});
    CHECK(test::exit_of(p) == 0);
    CHECK(a.collect() == "x!");
    CHECK(b.collect() == "yzyz!");
    CHECK(c.collect() == "wwt42");
}

TEMPLATE_TEST_CASE("a cross_in that reads more than its cross_out wrote fails start() with a multiproc error",
                   "[crossing][user]", START_METHODS) {
    using S = typename TestType::policies::start;
    test::process_t<TestType> bytes([](user::greedy_bytes g) {
        if (g.x != 5) throw std::runtime_error("greedy_bytes arrived changed");
    }, user::greedy_bytes{5});
    test::report_pipe out;
    test::process_t<TestType> fds([](user::greedy_fds) {}, user::greedy_fds{out.w});
    if constexpr (S::inherits_memory) {
        // Under fork the objects are copied with the process: the hooks never run.
        CHECK(test::exit_of(bytes) == 0);
        CHECK(test::exit_of(fds) == 0);
    } else {
        const std::string e1 = start_error(bytes);
        CHECK_THAT(e1, Catch::Contains("multiproc: process " + bytes.name() + " could not start") &&
                           Catch::Contains("does a cross_in read more than its cross_out wrote?"));
        const std::string e2 = start_error(fds);
        CHECK_THAT(e2, Catch::Contains("multiproc: process " + fds.name() + " could not start") &&
                           Catch::Contains("more descriptors were taken in the child than were sent"));
    }
}
