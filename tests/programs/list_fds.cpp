// Prints the descriptors open in this process, e.g. "0 1 2\n", leaving out the one it
// uses to read /proc/self/fd: the subprocess tests check what a child inherits.
#include <dirent.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main() {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return 1;
    std::vector<int> fds;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int fd = std::atoi(e->d_name);
        if (fd != ::dirfd(d)) fds.push_back(fd);
    }
    ::closedir(d);
    std::sort(fds.begin(), fds.end());
    for (std::size_t i = 0; i < fds.size(); ++i) std::printf("%s%d", i ? " " : "", fds[i]);
    std::printf("\n");
}
