// The /dev/shm fixture of the test suite: `shm_snapshot save FILE` records the entries of
// /dev/shm before the tests, and `shm_snapshot compare FILE` fails, naming them, if any
// entry has appeared since that no running process maps or holds open: a segment the
// tests left behind. (Entries in use belong to processes still running, such as another
// test run on the same machine, and are only listed.)
#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <set>
#include <string>

namespace {
std::set<std::string> list_dir(const std::string& dir) {
    std::set<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (std::string n = e->d_name; n != "." && n != "..") out.insert(n);
        ::closedir(d);
    }
    return out;
}

// Whether any process maps /dev/shm/<name> or has it open.
bool in_use(const std::string& name) {
    std::string path = "/dev/shm/" + name;
    for (const auto& pid : list_dir("/proc")) {
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream maps("/proc/" + pid + "/maps");
        for (std::string line; std::getline(maps, line);)
            if (line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0) return true;
        for (const auto& fd : list_dir("/proc/" + pid + "/fd")) {
            char buf[512] = {};
            std::string link = "/proc/" + pid + "/fd/" + fd;
            ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
            if (n > 0 && std::string(buf, static_cast<std::size_t>(n)) == path) return true;
        }
    }
    return false;
}
} // namespace

int main(int argc, char** argv) {
    if (argc != 3 || (std::string(argv[1]) != "save" && std::string(argv[1]) != "compare")) {
        std::cerr << "usage: shm_snapshot save|compare FILE\n";
        return 2;
    }
    auto now = list_dir("/dev/shm");
    if (std::string(argv[1]) == "save") {
        std::ofstream out(argv[2]);
        for (const auto& n : now) out << n << '\n';
        return out ? 0 : 2;
    }
    std::ifstream in(argv[2]);
    if (!in) {
        std::cerr << "no snapshot at " << argv[2] << ": run the setup test first\n";
        return 2;
    }
    std::set<std::string> before;
    for (std::string line; std::getline(in, line);) before.insert(line);
    int leaked = 0;
    for (const auto& n : now) {
        if (before.count(n)) continue;
        if (in_use(n)) {
            std::cout << "in use by a running process, not counted: /dev/shm/" << n << '\n';
            continue;
        }
        std::cout << "left behind by the tests: /dev/shm/" << n << '\n';
        ++leaked;
    }
    std::cout << leaked << " new entries in /dev/shm\n";
    return leaked == 0 ? 0 : 1;
}
