// A descriptor that reaches a child under every start method, for tests and test programs
// (no Catch2 here). Under fork the child inherits it at the same number; under spawn and
// forkserver it crosses with the library's mechanism for objects holding descriptors
// (cross_out / cross_in, sent with SCM_RIGHTS): the small test-only type phase 2's queues,
// pipes and locks will follow.
#pragma once

#include <multiproc/detail/codec/crossing.hpp>

#include <cerrno>
#include <string>

#include <unistd.h>

namespace test {

struct fd_arg {
    int fd = -1;
    /// Under fork only: the other end of a pipe, inherited by the child, which closes it so
    /// that it can see EOF. It does not cross into spawn and forkserver children.
    int other_end = -1;

    void cross_out(multiproc::detail::crossing_writer& w) const { w.put_fd(fd); }
    static fd_arg cross_in(multiproc::detail::crossing_reader& r) { return fd_arg{r.take_fd().release(), -1}; }

    /// In a child: writes all of `s`.
    void write(const std::string& s) const { (void)multiproc::detail::sys::write_all(fd, s.data(), s.size()); }

    /// In a child: blocks until the other end is closed everywhere (the parent released a
    /// gate, or died); true on EOF, false if data arrived instead.
    bool wait_eof() const {
        if (other_end >= 0) ::close(other_end);
        char c;
        ssize_t n;
        do n = ::read(fd, &c, 1); while (n < 0 && errno == EINTR);
        return n == 0;
    }
};

} // namespace test
