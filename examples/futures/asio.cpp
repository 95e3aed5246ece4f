// Issue 17: pool results in a Boost.Asio event loop. Each result's sentinel() is a
// descriptor that polls readable once the call is complete; Asio waits on it (a dup: Asio
// closes what it is given) with posix::stream_descriptor::async_wait, so the handlers run
// in the io_context's own thread, as any other I/O would, and nothing blocks on a result.
#include <multiproc/pool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace mp = multiproc;
namespace asio = boost::asio;

long collatz_steps(long n) {
    long steps = 0;
    for (; n != 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}

int main() {
    mp::pool pool(2);
    asio::io_context io;
    const std::vector<long> starts{27, 97, 871, 6171, 77031};
    long longest = 0;
    int answered = 0;
    for (long n : starts) {
        auto r = pool.submit(mp::fn<&collatz_steps>, n);
        auto sd = std::make_shared<asio::posix::stream_descriptor>(io, ::dup(r.sentinel()));
        sd->async_wait(asio::posix::stream_descriptor::wait_read, [sd, r, n, &longest, &answered](auto ec) {
            if (ec) return;
            const long steps = r.get(); // complete: get() returns at once
            longest = std::max(longest, steps);
            ++answered;
        });
    }
    io.run(); // returns once every handler has run
    std::cout << answered << " answers through Asio; the longest Collatz sequence of " << starts.size()
              << " starts takes " << longest << " steps\n";
}
