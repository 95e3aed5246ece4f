// `using namespace multiproc::subprocess;` as a program writes it, at namespace and at
// function scope: every documented name works unqualified except `popen` and `pipe`, which
// C++ cannot tell from POSIX ::popen and ::pipe after a using-directive; those are spelled
// as docs/API.md says (through `namespace sp = multiproc::subprocess;`, or using-declarations
// in a function or in the program's own namespace), and the POSIX functions stay usable.
// This file passes by compiling and running: the directive brings no name of the library's
// internals (a program's own `detail` namespace stays unambiguous).
#include "support/support.hpp"

#include <multiproc/subprocess.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>

// A program's own namespace called detail, as many programs have.
namespace detail {
int answer() { return 42; }
} // namespace detail

using namespace multiproc::subprocess;
namespace sp = multiproc::subprocess; // the documented idiom, for popen and pipe
using namespace std::chrono_literals;

namespace {

// Reads everything from `fd` and closes it.
std::string drain_and_close(int fd) {
    std::string s;
    char buf[256];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return s;
}

} // namespace

TEST_CASE("a using-directive at namespace scope: every name but popen and pipe works unqualified",
          "[subprocess][using]") {
    test::baseline before;
    CHECK(detail::answer() == 42); // the directive brought no `detail` of the library's

    completed_process r = run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {.capture_output = true});
    CHECK(r.returncode == 3);
    CHECK(r.out == "out\n");
    CHECK(call({"true"}, {.out = devnull, .err = to_stdout, .timeout = duration(5s)}) == 0);
    CHECK(check_call({"true"}, options{.in = inherit}) == 0);
    CHECK(check_output({"sh", "-c", "echo $X"}, {.env = environment{{"X", "seen"}}}) == "seen\n");
    CHECK_THROWS_AS(check_call({"false"}), called_process_error);

    int fds[2];
    REQUIRE(::pipe(fds) == 0); // POSIX pipe, qualified
    CHECK(call({"sh", "-c", "echo to-fd"}, {.out = fd(fds[1])}) == 0);
    ::close(fds[1]);
    CHECK(drain_and_close(fds[0]) == "to-fd\n");

    sp::popen p({"cat"}, {.in = sp::pipe, .out = sp::pipe});
    captured_output got = p.communicate("through cat");
    CHECK(got.out == "through cat");
    CHECK(p.returncode() == 0);

    FILE* posix = ::popen("echo posix", "r"); // POSIX popen, qualified
    REQUIRE(posix != nullptr);
    char line[32] = {};
    CHECK(std::fgets(line, sizeof line, posix) != nullptr);
    CHECK(::pclose(posix) == 0);
    CHECK(std::string(line) == "posix\n");
    before.check();
}

TEST_CASE("a using-directive and using-declarations in a function: popen and pipe unqualified too",
          "[subprocess][using]") {
    test::baseline before;
    using namespace multiproc::subprocess;
    using multiproc::subprocess::pipe, multiproc::subprocess::popen; // these hide POSIX's here

    popen p({"cat"}, {.in = pipe, .out = pipe, .err = devnull});
    auto [out, err] = p.communicate("unqualified");
    CHECK(out == "unqualified");
    CHECK(err.empty());
    CHECK(run({"true"}, {.out = pipe}).returncode == 0);

    int fds[2];
    REQUIRE(::pipe(fds) == 0); // POSIX pipe is still there, qualified
    ::close(fds[1]);
    CHECK(drain_and_close(fds[0]).empty());
    before.check();
}

namespace app {
// In a program's own namespace, using-declarations hide POSIX's popen and pipe for all of it.
using multiproc::subprocess::pipe;
using multiproc::subprocess::popen;

std::string through_cat(const std::string& text) {
    popen p({"cat"}, {.in = pipe, .out = pipe});
    return p.communicate(text).out;
}
} // namespace app

TEST_CASE("using-declarations in a program's namespace: popen and pipe unqualified there", "[subprocess][using]") {
    test::baseline before;
    CHECK(app::through_cat("in app") == "in app");
    before.check();
}
