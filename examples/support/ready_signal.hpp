/// @file support/ready_signal.hpp
/// A one-shot signal from a child process to its parent: "I have got this far".
///
/// Some examples print a line in a child that is then terminated, or ended together with
/// its parent. Whether that line appears at all would depend on how fast the child starts;
/// the seed tutorials paper over it with a sleep in the parent, which is no way to order
/// things. These examples wait for the child instead. It is a plain POSIX pipe: not part
/// of multiproc, and to be replaced by multiproc::event once that exists.
#pragma once

#include <cerrno>
#include <system_error>

#include <unistd.h>

namespace example {

class ready_signal {
public:
    ready_signal() {
        if (::pipe(fds_) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    }
    ready_signal(const ready_signal&) = delete;
    ready_signal& operator=(const ready_signal&) = delete;
    ~ready_signal() {
        close_fd(fds_[0]);
        close_fd(fds_[1]);
    }

    /// In the child: says that it is ready.
    void set() {
        char c = 1;
        while (::write(fds_[1], &c, 1) < 0 && errno == EINTR) {
        }
    }

    /// In the parent, once the children that may set() it have been started: waits until
    /// one of them has, or until all of them have ended without doing so.
    void wait() {
        close_fd(fds_[1]); // else our own end would keep the pipe open forever
        char c;
        while (::read(fds_[0], &c, 1) < 0 && errno == EINTR) {
        }
    }

private:
    static void close_fd(int& fd) {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    int fds_[2] = {-1, -1};
};

} // namespace example
