// The job of the flagship example, shared with examples/cluster: hash files by SHA-256
// (OpenSSL's libcrypto), show progress, and summarize the duplicates found. Only the
// driving code differs between the two programs: a pool of processes here, the ranks of an
// MPI job there.
#pragma once

#include <multiproc/pool.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace dupes {

using digest = std::array<unsigned char, 32>;

/// SHA-256 through libcrypto's EVP interface: update() with the bytes, then finish().
class sha256 {
public:
    sha256() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), algorithm(), nullptr) != 1)
            throw std::runtime_error("libcrypto: cannot start a SHA-256 digest");
    }
    void update(const void* data, std::size_t n) {
        if (EVP_DigestUpdate(ctx_.get(), data, n) != 1) throw std::runtime_error("libcrypto: SHA-256 update failed");
    }
    digest finish() {
        digest d{};
        unsigned int n = 0;
        if (EVP_DigestFinal_ex(ctx_.get(), d.data(), &n) != 1 || n != d.size())
            throw std::runtime_error("libcrypto: SHA-256 final failed");
        return d;
    }

private:
    // Fetched once: OpenSSL 3 looks an algorithm up by name each time EVP_sha256() is
    // used to start a digest, which would cost more than hashing a small file.
    static const EVP_MD* algorithm() {
        static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, "SHA256", nullptr),
                                                                         &EVP_MD_free);
        return md.get();
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

/// What a worker sends back for one file: trivially copyable, so it travels as its bytes.
struct file_digest {
    std::uint32_t index;
    bool readable;
    digest sha;
};

/// The task: hash one file. Plain function, arguments by value: a pool task carries no state.
inline file_digest hash_file(std::pair<std::uint32_t, std::string> task) {
    file_digest r{task.first, false, {}};
    int fd = ::open(task.second.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return r;
    sha256 h;
    static thread_local std::vector<char> buf(1 << 16);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) h.update(buf.data(), static_cast<std::size_t>(n));
    ::close(fd);
    r.readable = n == 0;
    r.sha = h.finish();
    return r;
}

struct file {
    std::string path;
    std::uint64_t size;
};

/// Regular files under `root`, in path order, up to `budget` bytes in all.
inline std::vector<file> pick_files(const std::string& root, std::uint64_t budget) {
    std::vector<file> all;
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
         it != end; it.increment(ec)) {
        if (ec) break;
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) all.push_back({it->path().string(), it->file_size(ec)});
    }
    std::sort(all.begin(), all.end(), [](const file& a, const file& b) { return a.path < b.path; });
    std::vector<file> out;
    std::uint64_t total = 0;
    for (auto& f : all) {
        if (total >= budget) break;
        total += f.size;
        out.push_back(std::move(f));
    }
    return out;
}

inline double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

/// "\r  hashed 1234 of 5678 files (12.3 of 45.6 MiB)" on stderr, if it is a terminal, at
/// most ten times a second; with the pool's counts, ", 2 being hashed" after it.
class progress {
public:
    progress(const char* what, std::size_t files, std::uint64_t bytes, const multiproc::pool_progress* pool = nullptr)
        : what_(what), files_(files), bytes_(bytes), on_(::isatty(2) != 0), pool_(pool) {}
    void add(std::uint64_t bytes) {
        ++done_;
        done_bytes_ += bytes;
        auto now = std::chrono::steady_clock::now();
        if (on_ && now - last_ > std::chrono::milliseconds(100)) {
            last_ = now;
            std::fprintf(stderr, "\r  %s: hashed %zu of %zu files (%.1f of %.1f MiB)", what_, done_, files_,
                         mib(done_bytes_), mib(bytes_));
            if (pool_) { // (a file handed to a new worker after its first one died is counted once more)
                const std::uint64_t started = pool_->started(), ended = pool_->done();
                std::fprintf(stderr, ", %llu being hashed\033[K",
                             static_cast<unsigned long long>(started > ended ? started - ended : 0));
            }
        }
    }
    ~progress() {
        if (on_) std::fprintf(stderr, "\r\033[K");
    }

private:
    const char* what_;
    std::size_t files_, done_ = 0;
    std::uint64_t bytes_, done_bytes_ = 0;
    bool on_;
    const multiproc::pool_progress* pool_;
    std::chrono::steady_clock::time_point last_{};
};

struct findings {
    std::size_t sets = 0, copies = 0, unreadable = 0;
    std::uint64_t wasted = 0;
    digest all{}; // SHA-256 over the digests of all files, in path order
};

inline findings summarize(const std::vector<file>& files, const std::vector<file_digest>& ds) {
    findings f;
    std::map<digest, std::vector<std::uint32_t>> by_content;
    sha256 whole;
    for (const auto& d : ds) {
        if (!d.readable) {
            ++f.unreadable;
            continue;
        }
        by_content[d.sha].push_back(d.index);
        whole.update(d.sha.data(), d.sha.size());
    }
    for (const auto& [sha, idx] : by_content) {
        if (idx.size() < 2) continue;
        ++f.sets;
        f.copies += idx.size() - 1;
        f.wasted += files[idx.front()].size * (idx.size() - 1);
    }
    f.all = whole.finish();
    return f;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}


/// What a run hashes: the files, and their size in all.
struct job {
    std::vector<file> files;
    std::uint64_t bytes = 0;
};

/// The job of `<program> [<directory> [<budget in MiB>]]` (default: /usr and
/// `default_budget_mib`): the files picked, announced on stdout, and read once (warm_cache).
inline job prepare(int argc, char** argv, std::uint64_t default_budget_mib);

/// Reads every file once, so that neither run pays for the disk.
inline void warm_cache(const std::vector<file>& files) {
    std::vector<char> buf(1 << 16);
    for (const auto& f : files) {
        int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        while (::read(fd, buf.data(), buf.size()) > 0) {
        }
        ::close(fd);
    }
}

/// Prints what both runs found, or that they disagree; returns the exit status.
inline int report(const std::vector<file>& files, const std::vector<file_digest>& seq,
                  const std::vector<file_digest>& par) {
    const findings a = summarize(files, seq), b = summarize(files, par);
    if (a.all != b.all || a.sets != b.sets || a.copies != b.copies) {
        std::printf("the two runs disagree!\n");
        return 1;
    }
    char hex[65];
    for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", a.all[static_cast<std::size_t>(i)]);
    std::printf("both runs agree: %zu sets of identical files, %zu redundant copies (%.1f MiB)", a.sets, a.copies,
                mib(a.wasted));
    if (a.unreadable) std::printf(", %zu unreadable", a.unreadable);
    std::printf("\nSHA-256 of all the digests, in path order: %s\n", hex);
    return 0;
}

inline job prepare(int argc, char** argv, std::uint64_t default_budget_mib) {
    const std::string root = argc > 1 ? argv[1] : "/usr";
    const std::uint64_t budget_mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : default_budget_mib;
    job j;
    j.files = pick_files(root, budget_mib << 20);
    for (const auto& f : j.files) j.bytes += f.size;
    std::printf("finding duplicate files among %zu files (%.1f MiB) under %s, by SHA-256\n", j.files.size(),
                mib(j.bytes), root.c_str());
    std::fflush(stdout);
    warm_cache(j.files);
    return j;
}

/// The sequential run, in this process.
inline std::vector<file_digest> hash_here(const std::vector<file>& files, std::uint64_t bytes) {
    std::vector<file_digest> seq(files.size());
    progress bar("sequential", files.size(), bytes);
    for (std::uint32_t i = 0; i < files.size(); ++i) {
        seq[i] = hash_file({i, files[i].path});
        bar.add(files[i].size);
    }
    return seq;
}

/// The tasks of a pool: (index, path), the biggest files first, so that no worker is left
/// with a big one at the end.
inline std::vector<std::pair<std::uint32_t, std::string>> biggest_first(const std::vector<file>& files) {
    std::vector<std::pair<std::uint32_t, std::string>> tasks;
    for (std::uint32_t i = 0; i < files.size(); ++i) tasks.emplace_back(i, files[i].path);
    std::stable_sort(tasks.begin(), tasks.end(),
                     [&](const auto& a, const auto& b) { return files[a.first].size > files[b.first].size; });
    return tasks;
}

} // namespace dupes
