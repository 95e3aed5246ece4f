// shareable_list (issue 19, Python: multiprocessing.shared_memory.ShareableList): every kind
// of element, replacing one by another kind, the room of a slot, attaching by name from
// children of every start method and from CPython itself (the layout is CPython's), bad
// segments, and no segment left behind.
#include "support/support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/shared_memory.hpp>
#include <multiproc/subprocess.hpp>

#include <string>
#include <vector>

using namespace multiproc;
using item = shareable_list::item;

namespace {
std::vector<std::byte> bytes(std::string_view s) {
    std::vector<std::byte> b(s.size());
    std::memcpy(b.data(), s.data(), s.size());
    return b;
}
bool in_dev_shm(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }
bool have_python() { return subprocess::call({"sh", "-c", "command -v python3 >/dev/null"}) == 0; }
} // namespace

#if MULTIPROC_TEST_ONCE
TEST_CASE("shareable_list: every kind of element, replaced, with Python's format and room", "[shareable_list]") {
    std::string name;
    {
        shareable_list l({item(std::int64_t{-7}), item(2.5), item(true), item(std::monostate{}), item(std::string("howdy")),
                          item(bytes("8 bytes!")), item(std::string("é"))});
        name = l.name();
        CHECK(in_dev_shm(name));
        REQUIRE(l.size() == 7);
        CHECK(l.format() == "qdxxxxxxx?xxxxxx?x8s16s8s"); // strings: length rounded up past a multiple of 8
        CHECK(l[0] == item(std::int64_t{-7}));
        CHECK(l[1] == item(2.5));
        CHECK(l[2] == item(true));
        CHECK(l[3] == item(std::monostate{}));
        CHECK(l[4] == item(std::string("howdy")));
        CHECK(l[5] == item(bytes("8 bytes!")));
        CHECK(l[-1] == item(std::string("é")));
        CHECK_THROWS_AS(l[7], index_error);
        CHECK_THROWS_AS(l.at(-8), index_error);

        // Another kind in a slot: an int where the bool was, a string where the int was.
        l.set(2, item(std::int64_t{42}));
        l.set(0, item(std::string("eight ch")));
        CHECK(l[2] == item(std::int64_t{42}));
        CHECK(l[0] == item(std::string("eight ch")));
        CHECK(l.format().substr(0, 2) == "8s");
        l.set(4, item(std::string("8 chars!"))); // its slot is 8 bytes: "howdy" rounded up
        CHECK(l[4] == item(std::string("8 chars!")));
        CHECK_THROWS_AS(l.set(4, item(std::string("nine char"))), value_error);
        CHECK(l[4] == item(std::string("8 chars!"))); // unchanged
        l.set(3, item(std::string("")));
        CHECK(l[3] == item(std::string("")));
        CHECK(l.count(item(std::int64_t{42})) == 1);
        CHECK(l.index(item(2.5)) == 1);
        CHECK_THROWS_AS((void)l.index(item(3.5)), value_error);

        auto again = shareable_list::attach(name); // a second attachment sees the same
        CHECK(again.to_vector() == l.to_vector());
        again.set(1, item(-0.25));
        CHECK(l[1] == item(-0.25));
    }
    CHECK_FALSE(in_dev_shm(name)); // the creator removed it
    CHECK_THROWS_AS(shareable_list::attach(name), os_error);
    shared_memory junk = shared_memory::create(64);
    std::memset(junk.buf().data(), 0xff, junk.size());
    CHECK_THROWS_AS(shareable_list::attach(junk.name()), value_error);
}

// From an outside trial: a string of 9,999,992 bytes or more was stored, with its format
// ("10000000s") cut to the 8 bytes the layout gives it, and could not be read back (CPython
// refuses it when the list is made: its `len(fmt) <= 8` assertion).
TEST_CASE("shareable_list: a string too long for its slot's format is refused when the list is made",
          "[shareable_list]") {
    test::baseline before;
    const std::string name = "mpt_sl_long_" + std::to_string(::getpid());
    {
        shareable_list longest({item(std::string(9'999'991, 'b'))}, name);
        CHECK(longest.format() == "9999992s");
        CHECK(std::get<std::string>(longest[0]).size() == 9'999'991);
    }
    CHECK_FALSE(in_dev_shm(name));
    CHECK(shareable_list::max_string == 9'999'991);
    for (const std::size_t n : {std::size_t{9'999'992}, std::size_t{10'000'000}})
        for (const item& v : {item(std::string(n, 'b')), item(std::vector<std::byte>(n))})
            CHECK_THROWS_MATCHES(shareable_list({item(std::int64_t{1}), v}, name), value_error,
                             Catch::Matchers::Message("multiproc: shareable_list: a str or bytes item of " +
                                                      std::to_string(n) +
                                                      " bytes is too long: at most 9999991 fit, as its slot's "
                                                      "format (\"<size>s\") must fit in 8 bytes"));
    CHECK_FALSE(in_dev_shm(name));
    before.check();
}

TEST_CASE("shareable_list: CPython attaches to a list made here, and this attaches to one CPython made",
          "[shareable_list][python]") {
    if (!have_python()) {
        WARN("python3 not found: the interoperation with CPython is not checked");
        return;
    }
    shareable_list l({item(std::int64_t{1}), item(2.5), item(std::string("from C++")), item(bytes("raw")), item(false),
                      item(std::monostate{})});
    // Python reads it, checks every element, and replaces two (without letting its resource
    // tracker remove the segment at its exit).
    const std::string script = R"(
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
assert list(sl) == [1, 2.5, "from C++", b"raw", False, None], list(sl)
assert sl.format == "qd16s8sxxxxxxx?xxxxxx?x", sl.format
sl[0] = 1234567890123
sl[2] = "python"
print("ok")
)";
    auto r = subprocess::run({"python3", "-c", script, l.name()}, {.capture_output = true});
    INFO(r.err);
    REQUIRE(r.returncode == 0);
    CHECK(r.out == "ok\n");
    CHECK(l[0] == item(std::int64_t{1234567890123}));
    CHECK(l[2] == item(std::string("python")));

    // The other way: Python makes one and leaves it; this attaches, checks, removes it.
    auto made = subprocess::run({"python3", "-c", R"(
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList([7, -1.5, True, None, "text", b"\x00\x01"])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(sl.shm.name)
)"},
                                {.capture_output = true});
    INFO(made.err);
    REQUIRE(made.returncode == 0);
    const std::string name = made.out.substr(0, made.out.find('\n'));
    {
        auto p = shareable_list::attach(name);
        CHECK(p.to_vector() == std::vector<item>{item(std::int64_t{7}), item(-1.5), item(true), item(std::monostate{}),
                                                 item(std::string("text")), item(bytes(std::string("\0\1", 2)))});
    }
    shared_memory::attach(name).unlink();
    CHECK_FALSE(in_dev_shm(name));
}
#endif

TEMPLATE_TEST_CASE("shareable_list: a child of every start method attaches by name or gets it as an argument",
                   "[shareable_list]", START_METHODS) {
    test::warm_up<TestType>();
    shareable_list l({item(std::int64_t{0}), item(std::string("parent"))});
    test::process_t<TestType> by_name(
        [](std::string name) {
            auto l = shareable_list::attach(name);
            l.set(0, item(std::get<std::int64_t>(l[0]) + 1));
            std::_Exit(l[1] == item(std::string("parent")) ? 0 : 2);
        },
        l.name());
    CHECK(test::exit_of(by_name) == 0);
    test::process_t<TestType> by_argument(
        [](shareable_list l) {
            l.set(0, item(std::get<std::int64_t>(l[0]) + 1));
            l.set(1, item(std::string("child")));
        },
        l);
    CHECK(test::exit_of(by_argument) == 0);
    CHECK(l[0] == item(std::int64_t{2}));
    CHECK(l[1] == item(std::string("child")));
}
