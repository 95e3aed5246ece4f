// Not part of the API: descriptors carried by a message on a Unix-domain socket
// (SCM_RIGHTS), for the crossing of objects into spawned children (crossing.hpp) and for
// send_handle/recv_handle on connections (stream_link.hpp).
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/detail/os/sys.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include <sys/socket.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail {

/// The most descriptors one message carries here (the kernel's SCM_MAX_FD is 253).
inline constexpr std::size_t max_fds_per_message = 250;

/// Room for the control data of a message carrying up to max_fds_per_message descriptors.
struct rights_buffer {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
};

/// Attaches `fds` (at most max_fds_per_message) to `msg` as SCM_RIGHTS, in `room`; nothing
/// if there are none.
inline void attach_rights(msghdr& msg, rights_buffer& room, std::span<const int> fds) noexcept {
    if (fds.empty()) return;
    msg.msg_control = room.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
}

/// Makes `msg` ready to receive descriptors into `room`.
inline void expect_rights(msghdr& msg, rights_buffer& room) noexcept {
    msg.msg_control = room.bytes;
    msg.msg_controllen = sizeof room.bytes;
}

/// Appends the descriptors a received `msg` carried to `fds`, which owns them (one that
/// cannot be stored is closed).
inline void take_rights(msghdr& msg, std::vector<sys::unique_fd>& fds) noexcept {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < k; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            MULTIPROC_TRY {
                fds.emplace_back(fd);
            } MULTIPROC_CATCH_ALL {
                sys::close(fd);
            }
        }
    }
}

} MULTIPROC_ABI_END } // namespace multiproc::detail
