// multiproc::shared_memory: create and attach by name, owner and attacher roles, CPython's
// errors, and no segment left behind by any failure.
#include "support/support.hpp"

#include <multiproc/process.hpp>
#include <multiproc/shared_memory.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <regex>
#include <sstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

using namespace multiproc;
using detail::sys::call;

namespace {
bool in_dev_shm(const std::string& name) { return std::filesystem::exists("/dev/shm/" + name); }

/// A name no other test run uses.
std::string unique_name(const char* what) { return "mpt_" + std::to_string(::getpid()) + "_" + what; }
} // namespace

TEST_CASE("an owner creates a segment with a random name, mode 0600, its destructor unlinks it",
          "[shared][shared_memory]") {
    std::string name;
    {
        auto m = shared_memory::create(100);
        name = m.name();
        CHECK(std::regex_match(name, std::regex("psm_[0-9a-f]{8}")));
        CHECK(m.size() == 100);
        CHECK(m.buf().size() == 100);
        CHECK(m.is_owner());
        CHECK(in_dev_shm(name));
        struct stat st {};
        REQUIRE(::stat(("/dev/shm/" + name).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        std::ostringstream os;
        os << m;
        CHECK(os.str() == "SharedMemory('" + name + "', size=100)");
    }
    CHECK_FALSE(in_dev_shm(name));
}

TEST_CASE("a process attaches by name and sees the owner's bytes, attaching never unlinks",
          "[shared][shared_memory]") {
    auto owner = shared_memory(unique_name("attach"), true, 64);
    std::memcpy(owner.buf().data(), "hello", 6);
    process child([name = owner.name()] {
        auto m = shared_memory::attach(name);
        bool ok = m.size() == 64 && !m.is_owner() && std::memcmp(m.buf().data(), "hello", 6) == 0;
        std::memcpy(m.buf().data(), "world", 6);
        std::_Exit(ok ? 0 : 1); // the attacher is gone: the segment stays
    });
    child.start();
    child.join();
    CHECK(child.exitcode() == 0);
    CHECK(std::memcmp(owner.buf().data(), "world", 6) == 0);
    {
        shared_memory again(owner.name()); // Python's spelling: SharedMemory(name)
        CHECK_FALSE(again.is_owner());
    }
    CHECK(in_dev_shm(owner.name()));
}

TEST_CASE("a copy of the owner is an attacher, a child destroying an inherited owner does not unlink",
          "[shared][shared_memory]") {
    auto owner = shared_memory::create(16, unique_name("copy"));
    {
        shared_memory copy = owner;
        CHECK_FALSE(copy.is_owner());
        CHECK(copy.buf().data() != owner.buf().data()); // its own mapping
        copy.buf()[0] = std::byte{42};
        CHECK(owner.buf()[0] == std::byte{42});
    }
    CHECK(in_dev_shm(owner.name()));
    process child([&] {
        CHECK(!owner.is_owner());
        shared_memory gone = std::move(owner); // destroyed here, in the child
    });
    child.start();
    child.join();
    CHECK(in_dev_shm(owner.name()));
    CHECK(owner.is_owner());
}

TEST_CASE("close() unmaps, unlink() removes the name, once", "[shared][shared_memory]") {
    auto m = shared_memory::create(8, unique_name("unlink"));
    std::string name = m.name();
    m.close();
    m.close(); // harmless
    CHECK(m.buf().empty());
    CHECK(in_dev_shm(name));
    m.unlink();
    CHECK_FALSE(in_dev_shm(name));
    CHECK_THROWS_MATCHES(m.unlink(), os_error,
                         Catch::Matchers::Message("multiproc: cannot unlink shared memory '/" + name +
                                                  "': No such file or directory"));
}

// The owner's end checks that the name is still its segment (tests/shared/shared_heap.cpp)
// without opening what is there (a review: a FIFO made under the name would have hung it),
// and removes a name of NAME_MAX characters too (the check once gave up on it).
TEST_CASE("an owner's end removes the longest name, and leaves a FIFO made under its name unopened",
          "[shared][shared_memory]") {
    test::baseline before;
    std::string longest = unique_name("long_");
    longest.resize(255, 'x');
    {
        auto m = shared_memory::create(8, longest);
        CHECK(in_dev_shm(longest));
    }
    CHECK_FALSE(in_dev_shm(longest));
    const std::string name = unique_name("fifo");
    {
        auto m = shared_memory::create(8, name);
        REQUIRE(::shm_unlink(("/" + name).c_str()) == 0);
        REQUIRE(::mkfifo(("/dev/shm/" + name).c_str(), 0600) == 0);
    } // (must not open it: an open of a FIFO waits for a writer)
    CHECK(in_dev_shm(name));
    ::unlink(("/dev/shm/" + name).c_str());
    before.check();
}

TEST_CASE("shared_memory errors are CPython's: FileExistsError, FileNotFoundError, ValueError",
          "[shared][shared_memory][errors]") {
    auto m = shared_memory::create(8, unique_name("exists"));
    try {
        shared_memory again(m.name(), true, 8);
        FAIL("creating an existing name should throw");
    } catch (const os_error& e) {
        CHECK(e.code().value() == EEXIST);
        CHECK(std::string(e.what()) == "multiproc: cannot create shared memory '/" + m.name() + "': File exists");
    }
    try {
        auto none = shared_memory::attach(unique_name("missing"));
        FAIL("attaching to a missing name should throw");
    } catch (const os_error& e) {
        CHECK(e.code().value() == ENOENT);
        CHECK(std::string(e.what()) == "multiproc: cannot attach to shared memory '/" + unique_name("missing") +
                                           "': No such file or directory");
    }
    CHECK_THROWS_MATCHES(shared_memory::create(0), value_error,
                         Catch::Matchers::Message("multiproc: 'size' must be a positive number different from zero"));
    CHECK_THROWS_MATCHES(shared_memory(""), value_error,
                         Catch::Matchers::Message("multiproc: 'name' can only be None if create=True"));
    CHECK_THROWS_AS(shared_memory::attach("a/b"), os_error);
}

TEST_CASE("a name with a NUL byte is a value_error, never the segment named by its prefix",
          "[shared][shared_memory][errors]") {
    auto before = test::open_fds();
    auto prefix = shared_memory::create(32, unique_name("nul"));
    const std::string forged = prefix.name() + std::string("\0x", 2);
    const std::string said = "multiproc: shared memory name has an embedded NUL byte at position " +
                             std::to_string(prefix.name().size()) + " (after '" + prefix.name() + "')";
    CHECK_THROWS_MATCHES(shared_memory::attach(forged), value_error, Catch::Matchers::Message(said));
    CHECK_THROWS_MATCHES(shared_memory(forged), value_error, Catch::Matchers::Message(said));
    const std::string fresh = unique_name("nul_fresh");
    CHECK_THROWS_MATCHES(shared_memory::create(32, fresh + std::string("\0", 1)), value_error,
                         Catch::Matchers::Message("multiproc: shared memory name has an embedded NUL byte at position " +
                                                  std::to_string(fresh.size()) + " (after '" + fresh + "')"));
    CHECK_FALSE(in_dev_shm(fresh));
    prefix.unlink();
    prefix.close();
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
}

TEST_CASE("a negative or impossible size is a value_error, checked by value whatever its type",
          "[shared][shared_memory][errors]") {
    auto before = test::open_fds();
    const std::string name = unique_name("negative");
    const auto negative = Catch::Matchers::Message("multiproc: 'size' must be a positive integer, not -1");
    CHECK_THROWS_MATCHES(shared_memory::create(-1, name), value_error, negative);
    CHECK_THROWS_MATCHES(shared_memory(name, true, -1), value_error, negative);
    CHECK_THROWS_MATCHES(shared_memory(name, true, std::int8_t{-1}), value_error, negative);
    CHECK_THROWS_MATCHES(shared_memory::create(std::numeric_limits<long long>::min(), name), value_error,
                         Catch::Matchers::Message("multiproc: 'size' must be a positive integer, not " +
                                                  std::to_string(std::numeric_limits<long long>::min())));
    CHECK_THROWS_MATCHES(shared_memory::create(static_cast<std::size_t>(-1), name), value_error,
                         Catch::Matchers::Message("multiproc: 'size' " + std::to_string(static_cast<std::size_t>(-1)) +
                                                  " is larger than any shared memory segment can be"));
    CHECK_FALSE(in_dev_shm(name));
    auto owner = shared_memory::create(std::uint16_t{48}, name); // any integer type that fits
    CHECK(owner.size() == 48);
    // As CPython, a negative size is refused even when attaching, where the size is otherwise ignored.
    CHECK_THROWS_MATCHES(shared_memory(name, false, -1), value_error, negative);
    CHECK(shared_memory(name, false, 7).size() == 48);
    owner.unlink();
    owner.close();
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
}

TEST_CASE("a failure while creating leaves no segment and no descriptor behind", "[shared][shared_memory][faults]") {
    auto before = test::open_fds();
    std::string name = unique_name("faults");
    {
        test::inject fail(call::ftruncate, ENOSPC);
        CHECK_THROWS_MATCHES(shared_memory::create(4096, name), os_error,
                             Catch::Matchers::Message("multiproc: cannot size shared memory '/" + name +
                                                      "' to 4096 bytes: No space left on device"));
    }
    CHECK_FALSE(in_dev_shm(name));
    {
        test::inject fail(call::mmap, ENOMEM);
        CHECK_THROWS_AS(shared_memory::create(4096, name), os_error);
    }
    CHECK_FALSE(in_dev_shm(name));
    {
        test::inject fail(call::shm_open, EMFILE);
        CHECK_THROWS_AS(shared_memory::create(4096), os_error);
    }
    {
        test::inject fail(call::getrandom, ENOSYS);
        CHECK_THROWS_AS(shared_memory::create(4096), os_error);
    }
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
}

TEST_CASE("attaching to an empty segment or one that cannot be examined fails cleanly",
          "[shared][shared_memory][errors][faults]") {
    auto before = test::open_fds();
    std::string name = unique_name("empty");
    int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600); // size 0
    REQUIRE(fd >= 0);
    ::close(fd);
    CHECK_THROWS_MATCHES(shared_memory::attach(name), value_error,
                         Catch::Matchers::Message("multiproc: cannot mmap an empty file: shared memory '/" + name + "' has size 0"));
    ::shm_unlink(("/" + name).c_str());
    auto owner = shared_memory::create(64, unique_name("fstat"));
    {
        test::inject fail(call::fstat, EIO);
        CHECK_THROWS_MATCHES(shared_memory::attach(owner.name()), os_error,
                             Catch::Matchers::Message("multiproc: fstat of shared memory '/" + owner.name() +
                                                      "': Input/output error"));
    }
    owner.unlink();
    owner.close();
    CHECK(test::describe_fds(test::open_fds()) == test::describe_fds(before));
}
