// Seed 001, "Communication between Processes", Pipe: a child sends [42, None, 'Hello'] and
// closes its end; the parent receives it. The list becomes a tuple with an empty optional
// for None.

#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>

using message = std::tuple<int, std::optional<int>, std::string>;

/// Process to write data to pipe through the given connection.
void write_process(multiproc::connection<message> conn) {
    std::cout << "Child process writing to the pipe..." << std::endl;
    conn.send({42, std::nullopt, "Hello"});
    conn.close();
}

// Python's repr of the list: [42, None, 'Hello'].
std::string repr(const message& m) {
    std::ostringstream s;
    s << '[' << std::get<0>(m) << ", ";
    if (std::get<1>(m))
        s << *std::get<1>(m);
    else
        s << "None";
    s << ", '" << std::get<2>(m) << "']";
    return s.str();
}

int main() {
    auto [parent_conn, child_conn] = multiproc::pipe<message>();

    multiproc::process p(write_process, child_conn);
    p.start();

    std::cout << "Parent process reading from pipe... " << repr(parent_conn.recv()) << std::endl;

    p.join();
}
