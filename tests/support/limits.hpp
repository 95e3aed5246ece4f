// For tests of resource limits: what /dev/shm holds, and a descriptor table filled under a
// lowered limit.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace test {

/// The names in /dev/shm, to check that a test leaves no segment behind.
inline std::set<std::string> shm_entries() {
    std::set<std::string> out;
    if (DIR* d = ::opendir("/dev/shm")) {
        while (dirent* e = ::readdir(d))
            if (std::string n = e->d_name; n != "." && n != "..") out.insert(n);
        ::closedir(d);
    }
    return out;
}

/// In a forked child: lowers the descriptor limit to `limit` (the old one in `old`) and
/// takes every descriptor under it; returns them, or nothing if the limit could not be set.
/// On return errno is EMFILE if the table was filled as it should be.
inline std::vector<int> fill_descriptor_table(rlim_t limit, rlimit& old) {
    ::getrlimit(RLIMIT_NOFILE, &old);
    rlimit low = old;
    low.rlim_cur = limit;
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) return {};
    std::vector<int> hog;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) hog.push_back(fd);
    return hog;
}

} // namespace test
