// Managers and proxies (issue 19, part 2): the server started under each start method, its
// proxies used by children of that method, through a pool and a queue; named objects and
// connect(); a manager on TCP; a server that dies; shutdown; locks released by a holder that
// dies. Children report through their exit code.
#include "support/support.hpp"

#include <multiproc/manager.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace multiproc;
using namespace std::chrono_literals;

namespace {
using sdict = dict_proxy<std::string, int>;

template <class Ctx>
using manager_of = basic_manager<typename Ctx::policies::start>;
} // namespace

TEMPLATE_TEST_CASE("a manager's dict, list, value and queue, used here and by a child", "[manager]", START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m;
    auto d = m.template dict<std::string, int>();
    auto l = m.template list<std::string>();
    auto v = m.template value<double>(0.5);
    auto q = m.template queue<std::vector<int>>();

    d.set("one", 1);
    d.set("two", 2);
    d.set("one", 11); // replaced in place: insertion order kept
    CHECK(d.at("one") == 11);
    CHECK(d.get("three") == std::nullopt);
    CHECK_THROWS_AS(d.at("three"), index_error);
    CHECK(d.setdefault("three", 3) == 3);
    CHECK(d.setdefault("three", 33) == 3);
    CHECK(d.contains("two"));
    CHECK(d.size() == 3);
    CHECK(d.keys() == std::vector<std::string>{"one", "two", "three"});
    CHECK(d.values() == std::vector<int>{11, 2, 3});

    l.extend(std::vector<std::string>{"a", "b"});
    l.insert(0, "first");
    CHECK(l.to_vector() == std::vector<std::string>{"first", "a", "b"});
    CHECK(l.at(-1) == "b");
    CHECK_THROWS_AS(l.at(3), index_error);
    CHECK(v.get() == 0.5);

    // A child of the same method changes all four through proxies it was given.
    test::process_t<TestType> child(
        [](sdict d, list_proxy<std::string> l, value_proxy<double> v, queue_proxy<std::vector<int>> q) {
            d.set("child", 42);
            if (d.erase("two") != true || d.pop("one") != 11) std::_Exit(2);
            l.append("from the child");
            l.set(0, "changed");
            v.set(v.get() * 4);
            q.put({1, 2, 3});
            std::_Exit(0);
        },
        d, l, v, q);
    child.start();
    CHECK(q.get(10s) == std::vector<int>{1, 2, 3});
    child.join();
    CHECK(child.exitcode() == 0);
    CHECK(d.items() == std::vector<std::pair<std::string, int>>{{"three", 3}, {"child", 42}});
    CHECK(l.to_vector() == std::vector<std::string>{"changed", "a", "b", "from the child"});
    CHECK(l.pop() == "from the child");
    CHECK(l.pop(0) == "changed");
    CHECK(l.size() == 2);
    CHECK(v.get() == 2.0);
    CHECK_THROWS_AS(q.get(20ms), queue_empty);
    const std::chrono::duration<double> nan(std::numeric_limits<double>::quiet_NaN());
    CHECK_THROWS_WITH(q.get(nan), "multiproc: timeout is not a number"); // (before: an instant queue_empty)
    CHECK_THROWS_WITH(q.put({1}, nan), "multiproc: timeout is not a number");
    CHECK(q.empty());
    d.clear();
    CHECK(d.empty());
}

// From an outside trial: a manager's own key reached children made by fork (their copy of
// the table of keys) but not spawn or forkserver children, whose first call failed
// authentication. CPython sends a proxy's key with it into such a child.
TEMPLATE_TEST_CASE("a manager with a key of its own serves children of every start method", "[manager]",
                   START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m(std::nullopt, std::string("a key of its own"));
    auto d = m.template dict<std::string, int>();
    test::process_t<TestType> child([](sdict d) { d.set("child", 7); }, d);
    child.start();
    child.join();
    CHECK(child.exitcode() == 0);
    CHECK(d.get("child") == 7);
}

TEST_CASE("a manager's list counts, finds, removes and reverses on the server, a dict pops its last item, and a "
          "queue says when it is full",
          "[manager]") {
    basic_manager<> m;
    auto l = m.list<std::string>();
    l.extend(std::vector<std::string>{"a", "b", "a", "c", "a"});
    CHECK(l.count("a") == 3);
    CHECK(l.count("z") == 0);
    CHECK(l.contains("c"));
    CHECK_FALSE(l.contains("z"));
    CHECK(l.index("a") == 0);
    CHECK(l.index("a", 1) == 2);
    CHECK(l.index("a", -1) == 4);  // (from the end, as Python)
    CHECK(l.index("b", -99) == 1); // (a start before the beginning clamps to it)
    CHECK_THROWS_AS(l.index("b", 2), value_error);
    CHECK_THROWS_AS(l.index("a", 99), value_error);
    l.remove("a"); // the first one only
    CHECK(l.to_vector() == std::vector<std::string>{"b", "a", "c", "a"});
    CHECK_THROWS_AS(l.remove("z"), value_error);
    l.reverse();
    CHECK(l.to_vector() == std::vector<std::string>{"a", "c", "a", "b"});

    auto d = m.dict<std::string, int>();
    CHECK_THROWS_AS(d.popitem(), index_error); // (Python: KeyError)
    d.set("x", 1);
    d.set("y", 2);
    d.set("x", 3); // (replaced in place: "y" is still the last inserted)
    CHECK(d.popitem() == std::pair<std::string, int>{"y", 2});
    CHECK(d.popitem() == std::pair<std::string, int>{"x", 3});
    CHECK(d.empty());

    auto q = m.queue<int>(2);
    CHECK_FALSE(q.full());
    q.put(1);
    q.put(2);
    CHECK(q.full());
    CHECK(q.get() == 1);
    CHECK_FALSE(q.full());
    auto unbounded = m.queue<int>();
    for (int i = 0; i < 100; ++i) unbounded.put(i);
    CHECK_FALSE(unbounded.full());
}

TEMPLATE_TEST_CASE("a manager's lock makes increments by four processes exact, and a semaphore and an event work",
                   "[manager]", START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m;
    auto counter = m.template value<int>(0);
    auto lk = m.lock();
    std::vector<std::unique_ptr<test::process_t<TestType>>> ps;
    for (int i = 0; i < 4; ++i) {
        ps.push_back(std::make_unique<test::process_t<TestType>>(
            [](value_proxy<int> c, lock_proxy lk) {
                for (int k = 0; k < 100; ++k) {
                    std::lock_guard<lock_proxy> g(lk);
                    c.set(c.get() + 1); // two round trips: exact only under the lock
                }
                std::_Exit(0);
            },
            counter, lk));
        ps.back()->start();
    }
    for (auto& p : ps) {
        p->join();
        CHECK(p->exitcode() == 0);
    }
    CHECK(counter.get() == 400);

    auto sem = m.semaphore(2);
    CHECK(sem.acquire());
    CHECK(sem.acquire());
    CHECK_FALSE(sem.acquire(false));
    CHECK_FALSE(sem.acquire(true, 20ms));
    CHECK_THROWS_AS(sem.acquire(true, std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())),
                    value_error);
    CHECK(sem.get_value() == 0);
    sem.release();
    CHECK(sem.get_value() == 1);

    auto ev = m.event();
    CHECK_FALSE(ev.is_set());
    CHECK_FALSE(ev.wait(20ms));
    test::process_t<TestType> setter([](event_proxy e) { e.set(); }, ev);
    setter.start();
    CHECK(ev.wait(10s));
    setter.join();
    ev.clear();
    CHECK_FALSE(ev.is_set());

    auto rl = m.rlock();
    CHECK(rl.acquire());
    CHECK(rl.acquire()); // recursive
    rl.release();
    rl.release();
    CHECK_THROWS_AS(rl.release(), state_error);
    CHECK_THROWS_AS(lk.release(), state_error); // not held
}

TEMPLATE_TEST_CASE("a manager's condition, barrier and namespace, shared with children", "[manager]", START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m;
    // Condition: the child waits for a value the parent sets and announces.
    auto cond = m.condition();
    auto flag = m.template value<int>(0);
    test::process_t<TestType> waiter(
        [](condition_proxy c, value_proxy<int> v) {
            std::unique_lock<condition_proxy> g(c);
            std::_Exit(c.wait_for([&] { return v.get() == 1; }, 30s) ? 0 : 2);
        },
        cond, flag);
    waiter.start();
    {
        std::unique_lock<condition_proxy> g(cond);
        flag.set(1);
        cond.notify_all();
    }
    waiter.join();
    CHECK(waiter.exitcode() == 0);
    CHECK_THROWS_AS(cond.notify(), state_error); // not held
    CHECK_THROWS_AS(cond.wait(1ms), state_error);

    // Barrier of three: the parent and two children; each gets a different arrival index.
    auto b = m.barrier(3);
    CHECK(b.parties() == 3);
    std::vector<std::unique_ptr<test::process_t<TestType>>> ps;
    for (int i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<test::process_t<TestType>>(
            [](barrier_proxy b) { std::_Exit(10 + static_cast<int>(b.wait(30s))); }, b));
        ps.back()->start();
    }
    std::vector<std::int64_t> idx = {b.wait(30s)};
    for (auto& p : ps) {
        p->join();
        REQUIRE(p->exitcode().has_value());
        idx.push_back(*p->exitcode() - 10);
    }
    std::sort(idx.begin(), idx.end());
    CHECK(idx == std::vector<std::int64_t>{0, 1, 2});
    auto lone = m.barrier(2);
    CHECK_THROWS_AS(lone.wait(20ms), broken_barrier_error); // no second party: broken
    CHECK(lone.broken());
    CHECK_THROWS_AS(lone.wait(20ms), broken_barrier_error);
    lone.reset();
    CHECK_FALSE(lone.broken());

    // Namespace: named fields of int or string.
    auto ns = m.template namespace_<int, std::string>();
    ns.set("count", 1);
    test::process_t<TestType> setter(
        [](namespace_proxy<int, std::string> ns) {
            ns.set("who", std::string("child"));
            ns.set("count", ns.get<int>("count") + 1);
        },
        ns);
    setter.start();
    setter.join();
    CHECK(setter.exitcode() == 0);
    CHECK(ns.template get<int>("count") == 2);
    CHECK(ns.template get<std::string>("who") == "child");
    CHECK(ns.names() == std::vector<std::string>{"count", "who"});
    CHECK_THROWS_AS(ns.template get<std::string>("count"), value_error);
    CHECK_THROWS_AS(ns.template get<int>("missing"), index_error);
    CHECK(ns.erase("who"));
    CHECK_FALSE(ns.contains("who"));
}

namespace {
/// A type of the program, held by the server: only its listed member functions are called.
struct account {
    std::string owner;
    std::int64_t balance = 0;
    std::vector<std::int64_t> history;
    account(std::string o, std::int64_t b) : owner(std::move(o)), balance(b) {}
    std::int64_t deposit(std::int64_t amount) {
        if (amount <= 0) throw std::invalid_argument("a deposit must be positive");
        history.push_back(amount);
        return balance += amount;
    }
    // The same type as deposit: telling two such members apart must be a constant expression
    // under GCC's UBSan too (it once was a comparison of member pointers, which is not).
    std::int64_t withdraw(std::int64_t amount) { return balance -= amount; }
    [[nodiscard]] std::int64_t get() const { return balance; }
    [[nodiscard]] std::vector<std::int64_t> deposits() const { return history; }
    void rename(const std::string& o) { owner = o; }
    [[nodiscard]] std::string who() const noexcept { return owner; }
};
using account_proxy = object_proxy<account, &account::deposit, &account::withdraw, &account::get, &account::deposits,
                                   &account::rename, &account::who>;
} // namespace

TEMPLATE_TEST_CASE("register_: a type of the program on the server, its listed member functions called from children",
                   "[manager][register]", START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m;
    account_proxy a = m.template register_<account, &account::deposit, &account::withdraw, &account::get,
                                           &account::deposits, &account::rename, &account::who>("acct", std::string("ada"),
                                                                                                 std::int64_t{10});
    CHECK(a.template call<&account::deposit>(5) == 15);
    std::vector<std::unique_ptr<test::process_t<TestType>>> ps;
    for (int i = 1; i <= 3; ++i) {
        ps.push_back(std::make_unique<test::process_t<TestType>>(
            [](account_proxy a, int amount) {
                for (int k = 0; k < 10; ++k) a.call<&account::deposit>(amount); // each call atomic on the server
            },
            a, i));
        ps.back()->start();
    }
    for (auto& p : ps) {
        p->join();
        CHECK(p->exitcode() == 0);
    }
    CHECK(a.template call<&account::get>() == 15 + 10 * (1 + 2 + 3));
    CHECK(a.template call<&account::deposits>().size() == 31);
    CHECK(a.template call<&account::withdraw>(5) == 70);
    a.template call<&account::rename>(std::string("grace"));
    CHECK(a.template call<&account::who>() == "grace");
    try {
        a.template call<&account::deposit>(-1);
        FAIL("the server's exception did not come back");
    } catch (const remote_error& e) {
        CHECK(e.message() == "a deposit must be positive");
#if MULTIPROC_RTTI
        CHECK(e.type_name() == "std::invalid_argument");
#endif
        CHECK(e.pid() == *m.server()->pid());
    }
    // Found again by name (its constructor's arguments are then not used).
    auto again = m.template register_<account, &account::get>("acct", std::string("x"), std::int64_t{0});
    CHECK(again.template call<&account::get>() == 70);
}

#if MULTIPROC_TEST_ONCE
TEST_CASE("proxies cross through a pool's tasks and a queue", "[manager]") {
    manager m;
    auto d = m.dict<int, std::string>();
    pool p(2);
    std::vector<std::pair<dict_proxy<int, std::string>, int>> args;
    for (int i = 0; i < 20; ++i) args.emplace_back(d, i);
    auto r = p.map([](std::pair<dict_proxy<int, std::string>, int> a) {
        a.first.set(a.second, "task " + std::to_string(a.second));
        return a.second;
    }, args);
    CHECK(r.size() == 20);
    CHECK(d.size() == 20);
    CHECK(d.at(7) == "task 7");

    multiproc::queue<dict_proxy<int, std::string>> q;
    multiproc::process c([](multiproc::queue<dict_proxy<int, std::string>> q) {
        auto d = q.get();
        d.set(100, "through a queue");
    }, q);
    c.start();
    q.put(d);
    c.join();
    CHECK(c.exitcode() == 0);
    CHECK(d.at(100) == "through a queue");
}

TEST_CASE("a manager's server and its owner log CPython's lines, from serving to the server's exit", "[manager][logging]") {
    test::pipe_pair out;
    auto log = get_logger();
    log.set_handler(test::log_to_fd, &out.w);
    log.set_level(log_level::debug);
    std::string name;
    {
        manager m; // (start::fork: the server is a copy of this process, the handler included)
        name = m.server()->name();
    }
    log.set_handler(nullptr);
    log.set_level(log_level::notset);
    out.close_w();
    const std::string text = test::read_all(out.r);
    INFO(text);
    // In this order (the owner's line comes before the server can read what it sends).
    std::size_t at = 0;
    for (const std::string& line : {"[INFO/" + name + "] child process calling self.run()\n",
                                    "[INFO/" + name + "] manager serving at '",
                                    std::string("[INFO/MainProcess] sending shutdown message to manager\n"),
                                    "[DEBUG/" + name + "] manager received shutdown message\n",
                                    "[INFO/" + name + "] process shutting down\n",
                                    "[INFO/" + name + "] process exiting with exitcode 0\n"}) {
        const std::size_t found = text.find(line, at);
        CHECK(found != std::string::npos);
        if (found != std::string::npos) at = found + line.size();
    }
}

TEST_CASE("named objects, connect(), a manager on TCP, and the wrong key", "[manager]") {
    basic_manager<start::spawn> m(address("127.0.0.1", 0), std::string("manager key"));
    CHECK(m.address().port() != 0);
    auto jobs = m.queue<int>(0, "jobs");
    auto results = m.dict<int, int>("results");
    for (int i = 1; i <= 5; ++i) jobs.put(i);

    // A spawned child that knows only the address and the key, as a program on another
    // machine would: it connects and finds the objects by name.
    basic_process<start::spawn> worker(
        [](std::string at) {
            auto mm = manager::connect(address::parse(at), std::string("manager key"));
            auto jobs = mm.queue<int>(0, "jobs");
            auto results = mm.dict<int, int>("results");
            for (int i = 0; i < 5; ++i) {
                int n = jobs.get(10s);
                results.set(n, n * n);
            }
            std::_Exit(0);
        },
        m.address().to_string());
    worker.start();
    worker.join();
    CHECK(worker.exitcode() == 0);
    CHECK(results.items() == std::vector<std::pair<int, int>>{{1, 1}, {2, 4}, {3, 9}, {4, 16}, {5, 25}});

    // The same name with another type is refused; so is another key.
    try {
        (void)m.list<int>("results");
        FAIL("a dict was handed out as a list");
    } catch (const value_error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("results"));
    }
    CHECK_THROWS_AS(manager::connect(m.address(), std::string("another key")), authentication_error);
    // Where nothing listens: the connection's os_error and its errno, as CPython's
    // ConnectionRefusedError and FileNotFoundError (it was eof_error, "has gone").
    const std::pair<address, int> nowhere[] = {
        {address("/nonexistent-multiproc-test-dir/manager"), ENOENT},
        {address::abstract("multiproc-test-nobody-" + std::to_string(::getpid())), ECONNREFUSED}};
    for (const auto& [at, errnum] : nowhere) {
        try {
            (void)manager::connect(at, std::string("manager key"));
            FAIL("connected where nothing listens");
        } catch (const os_error& e) {
            CHECK(e.code().value() == errnum);
            CHECK_THAT(e.what(), Catch::Matchers::Contains("cannot connect"));
        }
    }
    auto again = manager::connect(m.address(), std::string("manager key"));
    CHECK(again.dict<int, int>("results").size() == 5);
    CHECK(again.server() == nullptr);
}

TEST_CASE("a manager whose server dies makes calls fail with eof_error, and shutdown ends the server",
          "[manager][errors]") {
    pid_t server_pid = 0;
    {
        manager m;
        auto d = m.dict<int, int>();
        d.set(1, 1);
        server_pid = *m.server()->pid();
        ::kill(server_pid, SIGKILL);
        try {
            d.set(2, 2);
            FAIL("a call to a dead manager returned");
        } catch (const eof_error& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains("manager"));
        }
        CHECK_THROWS_AS(d.size(), eof_error); // every later call too, without hanging
    } // the destructor joins the dead server
    CHECK(::kill(server_pid, 0) == -1);

    sdict left;
    {
        manager m;
        left = m.dict<std::string, int>();
        left.set("x", 1);
        server_pid = *m.server()->pid();
        m.shutdown();
        CHECK(::kill(server_pid, 0) == -1); // joined: gone
        REQUIRE(m.server() != nullptr);      // (kept, ended: Python's _process.exitcode)
        CHECK(m.server()->exitcode() == 0);
        CHECK_FALSE(m.server()->is_alive());
        m.shutdown(); // idempotent
    }
    CHECK_THROWS_AS(left.set("x", 2), eof_error);
    CHECK_THROWS_AS(sdict().size(), value_error); // a proxy made by default refers to nothing
}

TEST_CASE("a client that connects and never speaks holds up no other, and a shut-down manager leaves no descriptor",
          "[manager]") {
    test::baseline base;
    {
        manager m;
        auto silent = client<int>(m.address()); // no authkey: it never answers the challenge
        auto d = m.dict<int, int>();
        d.set(1, 1); // a connection of its own, served in another thread of the server
        CHECK(d.at(1) == 1);
    }
    base.check();
}

TEST_CASE("shared_memory_manager: segments and shareable lists that outlive their maker until shutdown",
          "[manager][shared_memory]") {
    std::string seg, list;
    {
        shared_memory_manager smm;
        {
            auto m = smm.shared_memory(4096);
            seg = m.name();
            CHECK(m.size() == 4096);
            CHECK_FALSE(m.is_owner()); // the server owns it
            m.buf()[0] = std::byte{42};
            auto l = smm.shareable_list({shareable_list::item(std::int64_t{5}), shareable_list::item(std::string("x"))});
            list = l.name();
        } // closed here: the segments stay, the server holds them
        CHECK(::access(("/dev/shm/" + seg).c_str(), F_OK) == 0);
        // A child made by fork attaches to both by name.
        multiproc::process child([](std::string seg, std::string list) {
            auto m = shared_memory::attach(seg);
            auto l = shareable_list::attach(list);
            std::_Exit(m.buf()[0] == std::byte{42} && l[0] == shareable_list::item(std::int64_t{5}) ? 0 : 2);
        }, seg, list);
        CHECK(test::exit_of(child) == 0);
    } // shutdown: the server removes them
    CHECK(::access(("/dev/shm/" + seg).c_str(), F_OK) != 0);
    CHECK(::access(("/dev/shm/" + list).c_str(), F_OK) != 0);
}

TEST_CASE("a condition's notify wakes a process that was waiting, not one that waits after", "[manager]") {
    manager m;
    auto cond = m.condition();
    auto waiting = m.event();
    multiproc::process a([](condition_proxy c, event_proxy waiting) {
        std::unique_lock<condition_proxy> g(c);
        waiting.set();
        std::_Exit(c.wait(std::chrono::seconds(30)) ? 0 : 2);
    }, cond, waiting);
    a.start();
    REQUIRE(waiting.wait(std::chrono::seconds(30)));
    cond.acquire(); // a holds the lock until its wait releases it: it is waiting now
    cond.notify(1);
    cond.release();
    cond.acquire();
    CHECK_FALSE(cond.wait(std::chrono::milliseconds(50))); // the notification was a's, not this wait's
    cond.release();
    a.join();
    CHECK(a.exitcode() == 0);
}

TEST_CASE("a barrier aborted and reset at once fails the party that was waiting", "[manager]") {
    manager m;
    auto b = m.barrier(2);
    multiproc::process waiter([](barrier_proxy b) {
        try {
            (void)b.wait(std::chrono::seconds(30));
        } catch (const broken_barrier_error&) {
            std::_Exit(0);
        }
        std::_Exit(2);
    }, b);
    waiter.start();
    while (b.n_waiting() == 0) {
    } // (each check a round trip to the server)
    b.abort();
    b.reset(); // before the waiter runs again: it must still learn that its wait was broken
    waiter.join();
    CHECK(waiter.exitcode() == 0);
    CHECK_FALSE(b.broken());
}

TEST_CASE("the server outlives a client that sends garbage, and a huge timeout is no limit", "[manager][hostile]") {
    manager m;
    auto q = m.queue<int>();
    {
        auto bad = client<std::string>(m.address(), current_process().authkey());
        bad.send("not a request"); // the server's thread for it fails to decode and ends
        CHECK_THROWS_AS(bad.recv(), eof_error);
    }
    multiproc::process putter([](queue_proxy<int> q) { q.put(5); }, q);
    putter.start();
    CHECK(q.get(std::chrono::duration<double>(1e300)) == 5); // waits: not an instant queue_empty
    putter.join();
    q.put(6);
    CHECK(q.get() == 6);
}

TEST_CASE("a lock held by a process that dies is released", "[manager]") {
    manager m;
    auto lk = m.lock();
    multiproc::process holder([](lock_proxy lk) {
        lk.acquire();
        ::kill(::getpid(), SIGKILL);
    }, lk);
    holder.start();
    holder.join();
    CHECK(holder.exitcode() == -SIGKILL);
    CHECK(lk.acquire(true, 10s));
    lk.release();
}

namespace {
/// Registered on the server (from an outside trial): its member functions use other objects
/// of the same manager through their proxies, wait for another client, and throw what is
/// not a std::exception.
struct recorder {
    std::int64_t record(sdict d, std::int64_t v) {
        d.set("seen", static_cast<int>(v)); // (a connection of its own to this same server)
        return v;
    }
    std::int64_t take(queue_proxy<int> q) { return q.get(30s); }
    std::int64_t odd() { throw 42; }
};
/// Registered on the server: its constructor uses another object of the same manager.
struct announced {
    explicit announced(sdict d) : seen(d.size()) { d.set("made", 1); }
    std::int64_t count() { return static_cast<std::int64_t>(seen); }
    std::size_t seen;
};
} // namespace

TEST_CASE("a registered type's constructor and member functions may use the manager's other objects, wait, and "
          "throw anything",
          "[manager][register]") {
    manager m;
    auto d = m.dict<std::string, int>();
    auto q = m.queue<int>();
    auto r = m.register_<recorder, &recorder::record, &recorder::take, &recorder::odd>();
    // It ran under the server's one lock, which the dict's call waited for: the whole
    // server hung for good.
    CHECK(r.call<&recorder::record>(d, 7) == 7);
    CHECK(d.get("seen") == 7);
    // One that waits for another client holds up no other object.
    std::thread taker([&] { CHECK(r.call<&recorder::take>(q) == 5); });
    q.put(5);
    taker.join();
    // Something not a std::exception comes back raised (it ended the connection, taken for
    // a dead server, and released what the client held).
    try {
        (void)r.call<&recorder::odd>();
        FAIL("the server's exception did not come back");
    } catch (const remote_error& e) {
        CHECK_THAT(e.message(), Catch::Matchers::Contains("not a std::exception"));
    }
    CHECK(d.size() == 1);
    // Its constructor may do the same: it ran under the server's lock, and hung the server.
    auto made = m.register_<announced, &announced::count>({}, d);
    CHECK(made.call<&announced::count>() == 1);
    CHECK(d.get("made") == 1);
}

TEST_CASE("a manager at a path starts again there after shutdown, and an old proxy finds nothing in the new one",
          "[manager]") {
    const std::string path = "/tmp/mp_test_manager_" + std::to_string(::getpid());
    sdict old;
    {
        manager m(address(path), std::string("restart key"));
        old = m.dict<std::string, int>();
        old.set("first", 1);
        m.shutdown();
        CHECK(::access(path.c_str(), F_OK) != 0); // (it stayed, and the next bind failed EADDRINUSE)
    }
    for (int round = 0; round < 2; ++round) {
        manager m(address(path), std::string("restart key"));
        auto d = m.dict<std::string, int>();
        d.set("second", 2);
        // The old proxy's object number is nothing here (it was the new dict's).
        CHECK_THROWS_WITH(old.size(), Catch::Matchers::Contains("no object"));
        CHECK(d.size() == 1);
        m.shutdown();
    }
    CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("a manager's queue refuses a negative timeout and its lock a timeout without blocking, as Python's",
          "[manager][errors]") {
    manager m;
    auto q = m.queue<int>();
    CHECK_THROWS_WITH(q.get(-1s), Catch::Matchers::Contains("'timeout' must be a non-negative number"));
    CHECK_THROWS_AS(q.put(1, -1s), value_error);
    CHECK(q.qsize() == 0);
    auto lk = m.lock();
    CHECK_THROWS_WITH(lk.acquire(false, 1s), Catch::Matchers::Contains("can't specify a timeout for a non-blocking call"));
    CHECK_THROWS_AS(lk.acquire(true, -2s), value_error);
    CHECK(lk.acquire(false, -1s)); // (Python's -1: no limit)
    lk.release();
    CHECK(lk.acquire(true, -1s));
    lk.release();
}

TEMPLATE_TEST_CASE("a manager's queue is joinable: join returns once a child has marked every item done",
                   "[manager][queue]", START_METHODS) {
    test::warm_up<TestType>();
    manager_of<TestType> m;
    auto q = m.template queue<int>();
    auto seen = m.template list<int>();
    test::process_t<TestType> worker(
        [](queue_proxy<int> tasks, list_proxy<int> done) {
            for (;;) {
                const int v = tasks.get();
                if (v < 0) {
                    tasks.task_done();
                    return;
                }
                done.append(v); // before task_done: join cannot return without it
                tasks.task_done();
            }
        },
        q, seen);
    worker.start();
    for (int i = 0; i < 20; ++i) q.put(i);
    q.put(-1);
    q.join();
    CHECK(seen.size() == 20); // every item's work was done before its task_done
    std::vector<int> want(20);
    for (int i = 0; i < 20; ++i) want[static_cast<std::size_t>(i)] = i;
    CHECK(seen.to_vector() == want);
    worker.join();
    CHECK(worker.exitcode() == 0);
    q.join(); // nothing unfinished: at once
    CHECK_THROWS_WITH(q.task_done(), Catch::Matchers::Contains("task_done() called too many times"));
    CHECK_THROWS_AS(q.task_done(), value_error);
    q.put(5); // an item taken but not done keeps join waiting; a thread marks it
    CHECK(q.get() == 5);
    std::atomic<bool> marking{false};
    std::thread marker([q, &marking] {
        marking = true;
        q.task_done();
    });
    q.join();
    CHECK(marking.load()); // (join had to wait for the marker's task_done)
    marker.join();
}

TEST_CASE("a manager's dict, list and array made with contents, an array's fixed length, a bounded semaphore, a "
          "barrier's own timeout",
          "[manager]") {
    manager m;
    auto d = m.dict<std::string, int>({{"a", 1}, {"b", 2}, {"a", 3}}); // (as dict(pairs): a keeps its place)
    CHECK(d.items() == std::vector<std::pair<std::string, int>>{{"a", 3}, {"b", 2}});
    const std::map<int, std::string> from{{2, "two"}, {1, "one"}};
    auto d2 = m.dict<int, std::string>(from);
    CHECK(d2.size() == 2);
    CHECK(d2.at(1) == "one");
    auto l = m.list<int>({3, 1, 2});
    CHECK(l.to_vector() == std::vector<int>{3, 1, 2});
    l.append(4);
    CHECK(l.size() == 4);
    const std::vector<std::string> words{"x", "y"};
    CHECK(m.list<std::string>(words).to_vector() == words);
    CHECK(m.list<std::string>("named").empty()); // (a string still names a list)

    auto a = m.array<double>(3); // Python: Array('d', 3): zeros
    CHECK(a.size() == 3);
    CHECK(a.to_vector() == std::vector<double>{0, 0, 0});
    a.set(0, 1.5);
    a.set(-1, 2.5);
    CHECK(a.at(0) == 1.5);
    CHECK(a.at(2) == 2.5);
    CHECK_THROWS_AS(a.at(3), index_error);
    CHECK_THROWS_AS(a.set(-4, 0), index_error);
    auto b = m.array<int>({7, 8});
    CHECK(b.to_vector() == std::vector<int>{7, 8});

    auto bs = m.bounded_semaphore(2); // Python: BoundedSemaphore(2)
    CHECK(bs.acquire());
    bs.release();
    CHECK_THROWS_WITH(bs.release(), Catch::Matchers::Contains("Semaphore released too many times"));
    CHECK(bs.get_value() == 2);
    auto plain = m.semaphore(2); // (a Semaphore has no bound, as Python's)
    plain.release();
    CHECK(plain.get_value() == 3);
    CHECK_THROWS_AS(m.bounded_semaphore(-1), value_error);

    auto bar = m.barrier(2, 50ms); // wait() alone: gives up after the barrier's own timeout
    CHECK_THROWS_AS(bar.wait(), broken_barrier_error);
    CHECK(bar.broken());
    auto patient = m.barrier(2, 0s); // a timeout given is used instead of the barrier's own
    std::thread other([patient] { CHECK(patient.wait(30s) >= 0); });
    CHECK(patient.wait(30s) >= 0); // (with its own 0 s, the first to come would break it)
    other.join();
    CHECK_FALSE(patient.broken());
    auto hasty = m.barrier(2, -1s); // negative: 0, as Python's
    CHECK_THROWS_AS(hasty.wait(), broken_barrier_error);
    CHECK_THROWS_AS(m.barrier(2, std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())), value_error);
}

TEST_CASE("a thread waiting on a manager's queue does not hold up another thread's calls", "[manager]") {
    manager m;
    auto q = m.queue<int>();
    auto d = m.dict<int, int>();
    std::thread waiter([&] { CHECK(q.get(30s) == 7); });
    for (int i = 0; i < 50; ++i) d.set(i, i); // through this thread's own connection
    CHECK(d.size() == 50);
    q.put(7);
    waiter.join();
}
// Python: `manager = Manager()` and `d = manager.dict()` at a script's top. Both are
// destroyed at exit, after the main thread's thread_local objects (its connections, the
// encoder's buffers) and after libcrypto's cleanup, which it registered at its first use,
// later than the manager: the manager's shutdown crashed in the HMAC, then, that mended,
// used the freed buffers (ASan: heap-use-after-free).
TEST_CASE("a manager and a proxy at namespace scope work, and shut the server down at exit", "[manager]") {
    auto r = test::run_program("static_manager");
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    REQUIRE(r.out.rfind("server ", 0) == 0);
    const auto eol = r.out.find('\n');
    const pid_t server = std::stoi(r.out.substr(7, eol - 7));
    CHECK(r.out.substr(eol + 1) == "1 1 0\n");
    CHECK(test::wait_exit(server)); // ended by the manager's destructor, not left behind
    // ... by its shutdown request, authenticated at exit, not by terminate(): the server logs it.
    CHECK(r.err.find("sending shutdown message to manager") != std::string::npos);
    CHECK(r.err.find("manager received shutdown message") != std::string::npos);
}

#endif
