// A manager and a proxy at namespace scope, as `manager = Manager()` and `counts =
// manager.dict()` at the top of a Python script: both are destroyed at exit, after the
// main thread's thread_local objects (its connections to managers) and after libcrypto
// would have torn itself down, had it registered its cleanup at its first use, later than
// the manager. A child (fork) writes to the dict and to a list made in main. Prints the
// server's pid, then "1 1 0" (the dict's value, the list's size, the child's exit code);
// exit code 0, with the server ended by the manager's destructor. The log, at debug level
// from before the manager is made (so the server has it too), says whether that was the
// shutdown request, which needs libcrypto's HMAC at exit, or the terminate() fallback.
#include <multiproc/logging.hpp>
#include <multiproc/manager.hpp>
#include <multiproc/process.hpp>

#include <cstdio>
#include <string>

namespace {
const multiproc::logger log_setup = multiproc::log_to_stderr(multiproc::log_level::debug);
multiproc::manager m;
auto counts = m.dict<std::string, int>();
} // namespace

int main() {
    multiproc::freeze_support();
    auto l = m.list<int>();
    multiproc::process p([&] {
        counts.set("child", 1);
        l.append(5);
    });
    p.start();
    p.join();
    std::printf("server %d\n", static_cast<int>(*m.server()->pid()));
    std::printf("%d %zu %d\n", counts.get("child").value_or(-1), l.size(), p.exitcode().value_or(-1000));
    return 0;
}
