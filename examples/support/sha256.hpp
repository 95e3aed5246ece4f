/// @file support/sha256.hpp
/// SHA-256 (FIPS 180-4), small and dependency-free, for the flagship example. The initial
/// hash and round constants are derived at compile time, exactly, from the primes they are
/// defined by (integer square and cube roots), rather than copied as 72 magic numbers.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace example::sha256 {

using u32 = std::uint32_t;
using u128 = unsigned __int128;

// floor(x^(1/k)) for k = 2 or 3, by binary search: exact, so the constants below are too.
constexpr std::uint64_t iroot(u128 x, int k) {
    std::uint64_t lo = 0, hi = std::uint64_t{1} << 43;
    while (lo < hi) {
        std::uint64_t mid = lo + (hi - lo + 1) / 2;
        u128 p = mid;
        for (int i = 1; i < k; ++i) p *= mid;
        if (p <= x) lo = mid; else hi = mid - 1;
    }
    return lo;
} // namespace example::sha256
constexpr std::array<u32, 64> first_primes() {
    std::array<u32, 64> p{};
    int n = 0;
    for (u32 c = 2; n < 64; ++c) {
        bool prime = true;
        for (u32 d = 2; d * d <= c; ++d) if (c % d == 0) { prime = false; break; }
        if (prime) p[static_cast<std::size_t>(n++)] = c;
    }
    return p;
} // namespace example::sha256
// The first 32 bits of the fractional parts of the square roots (initial hash) and cube
// roots (round constants) of the first primes, as FIPS 180-4 defines them.
constexpr std::array<u32, 8> initial = [] {
    std::array<u32, 8> h{};
    auto p = first_primes();
    for (int i = 0; i < 8; ++i) h[static_cast<std::size_t>(i)] = static_cast<u32>(iroot(static_cast<u128>(p[static_cast<std::size_t>(i)]) << 64, 2));
    return h;
}();
constexpr std::array<u32, 64> rounds = [] {
    std::array<u32, 64> k{};
    auto p = first_primes();
    for (int i = 0; i < 64; ++i) k[static_cast<std::size_t>(i)] = static_cast<u32>(iroot(static_cast<u128>(p[static_cast<std::size_t>(i)]) << 96, 3));
    return k;
}();

constexpr u32 rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

/// Feed bytes with update(), then finish() gives the 32-byte digest.
class hasher {
public:
    void update(const void* data, std::size_t n) {
        auto p = static_cast<const unsigned char*>(data);
        total_ += n;
        if (fill_) {
            std::size_t take = std::min(n, sizeof block_ - fill_);
            std::memcpy(block_ + fill_, p, take);
            fill_ += take; p += take; n -= take;
            if (fill_ < sizeof block_) return;
            compress(block_);
            fill_ = 0;
        }
        for (; n >= 64; p += 64, n -= 64) compress(p);
        std::memcpy(block_, p, n);
        fill_ = n;
    }
    std::array<unsigned char, 32> finish() {
        std::uint64_t bits = total_ * 8;
        unsigned char pad[72] = {0x80};
        std::size_t padlen = (fill_ < 56 ? 56 : 120) - fill_;
        for (int i = 0; i < 8; ++i) pad[padlen + static_cast<std::size_t>(i)] = static_cast<unsigned char>(bits >> (56 - 8 * i));
        update(pad, padlen + 8);
        std::array<unsigned char, 32> out{};
        for (int i = 0; i < 8; ++i)
            for (int b = 0; b < 4; ++b) out[static_cast<std::size_t>(4 * i + b)] = static_cast<unsigned char>(h_[static_cast<std::size_t>(i)] >> (24 - 8 * b));
        return out;
    }
private:
    void compress(const unsigned char* c) {
        u32 w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = u32(c[4 * i]) << 24 | u32(c[4 * i + 1]) << 16 | u32(c[4 * i + 2]) << 8 | u32(c[4 * i + 3]);
        for (int i = 16; i < 64; ++i) {
            u32 s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            u32 s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        u32 a = h_[0], b = h_[1], cc = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
        for (int i = 0; i < 64; ++i) {
            u32 t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + rounds[static_cast<std::size_t>(i)] + w[i];
            u32 t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
            h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
        }
        h_[0] += a; h_[1] += b; h_[2] += cc; h_[3] += d; h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
    }
    std::array<u32, 8> h_ = initial;
    unsigned char block_[64];
    std::size_t fill_ = 0;
    std::uint64_t total_ = 0;
};
} // namespace example::sha256
