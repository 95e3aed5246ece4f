// Not part of the API: the challenge-response of multiprocessing.connection (CPython 3.12),
// over any channel that sends and receives whole byte messages. The HMAC, the random
// challenge and the constant-time comparison are OpenSSL's libcrypto: a program that uses
// this header links it (CMake: multiproc::connection).
//
// The exchange, as CPython 3.12 has it. The side that delivers the challenge sends
// "#CHALLENGE#{sha256}" + 40 random bytes; the other answers "{sha256}" + HMAC(key, every
// byte after "#CHALLENGE#"), and is told "#WELCOME#" or "#FAILURE#". The MAC covers the
// "{digest}" prefix, so a peer cannot talk the other down to a weaker digest; a challenge
// or answer of 16 or 20 bytes, with no prefix, is CPython 3.11's legacy HMAC-MD5. Each
// side delivers a challenge and answers one: both prove that they hold the key.
#pragma once

#include <multiproc/config.hpp> // MULTIPROC_ABI_BEGIN

#include <multiproc/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace multiproc { MULTIPROC_ABI_BEGIN namespace detail::auth {

/// libcrypto set up during static initialisation, before the objects of a program that
/// includes this header (its headers come first), and told not to tear itself down at exit
/// (OPENSSL_INIT_NO_ATEXIT). A manager at namespace scope is destroyed at exit and
/// authenticates then, to shut its server down; libcrypto, first used after it was made,
/// registered its cleanup later, so the cleanup ran first and the HMAC crashed on freed
/// locks. (No effect when the program set libcrypto up before; it then owns the exit.)
#ifdef OPENSSL_INIT_NO_ATEXIT // (OpenSSL 1.1.1b and later)
inline const bool libcrypto_ready = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;
#endif

inline constexpr std::string_view challenge_tag = "#CHALLENGE#";
inline constexpr std::string_view welcome = "#WELCOME#";
inline constexpr std::string_view failure = "#FAILURE#";
/// Random bytes in a challenge (CPython 3.12's MESSAGE_LENGTH).
inline constexpr std::size_t challenge_bytes = 40;
/// No message of the exchange may be longer (CPython: recv_bytes(256)).
inline constexpr std::size_t max_message = 256;
/// The lengths of CPython 3.11's unprefixed messages: a challenge, an HMAC-MD5 answer.
inline constexpr std::size_t legacy_challenge = 20;
inline constexpr std::size_t legacy_answer = 16;
/// The digest a challenge names.
inline constexpr std::string_view default_digest = "sha256";

/// The digests a peer may name (CPython's _ALLOWED_DIGESTS), with libcrypto's.
inline const EVP_MD* digest_named(std::string_view name) noexcept {
    if (name == "md5") return EVP_md5();
    if (name == "sha256") return EVP_sha256();
    if (name == "sha384") return EVP_sha384();
    if (name == "sha3_256") return EVP_sha3_256();
    if (name == "sha3_384") return EVP_sha3_384();
    return nullptr;
}
inline constexpr std::size_t longest_digest_name = 8; // "sha3_256"

inline std::string_view text(std::span<const std::byte> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A message shown in an error: printable ASCII as it is, other bytes as \xNN, at most 64.
inline std::string shown(std::string_view m) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "b'";
    for (std::size_t i = 0; i < m.size() && i < 64; ++i) {
        const auto c = static_cast<unsigned char>(m[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    out += m.size() > 64 ? "'... (" + std::to_string(m.size()) + " bytes)" : "'";
    return out;
}

/// A message's digest name and the bytes after it; an empty name for the legacy form;
/// `ok` false if the message has neither form.
struct named {
    bool ok = false;
    std::string_view digest;
    std::string_view payload;
};
inline named digest_and_payload(std::string_view m) noexcept {
    if (m.size() == legacy_challenge || m.size() == legacy_answer) return {true, {}, m};
    if (!m.empty() && m.front() == '{') {
        const auto close = m.find('}', 1);
        if (close != std::string_view::npos && close <= longest_digest_name + 1) {
            const std::string_view name = m.substr(1, close - 1);
            if (digest_named(name)) return {true, name, m.substr(close + 1)};
        }
    }
    return {};
}
inline std::string not_a_digest(std::string_view m) {
    return "unsupported message length, missing digest prefix, or unsupported digest: " + shown(m);
}

/// HMAC of `data` under `key` with the digest named `name` (one of digest_named's) into
/// `out`; false if libcrypto cannot (a digest disabled, as MD5 in FIPS mode).
inline bool hmac(std::string_view key, std::string_view data, std::string_view name, std::string& out) {
    const EVP_MD* md = digest_named(name);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!md || !HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size(), mac, &n))
        return false;
    out.assign(reinterpret_cast<const char*>(mac), n);
    return true;
}

/// A new challenge: "{digest}" and random bytes from libcrypto (without "#CHALLENGE#").
inline std::string make_challenge(std::string_view digest = default_digest) {
    std::array<unsigned char, challenge_bytes> r{};
    if (RAND_bytes(r.data(), static_cast<int>(r.size())) != 1)
        raise(error("multiproc: libcrypto's RAND_bytes could not make a challenge"));
    std::string m = "{" + std::string(digest) + "}";
    m.append(reinterpret_cast<const char*>(r.data()), r.size());
    return m;
}

/// The answer to `challenge` (the bytes after "#CHALLENGE#") under `key`: "{digest}" and the
/// HMAC of the whole challenge, or for a legacy challenge the bare HMAC-MD5. Empty, with
/// `why` set, for a challenge of neither form.
inline std::string make_answer(std::string_view key, std::string_view challenge, std::string& why) {
    const named n = digest_and_payload(challenge);
    std::string mac;
    if (!n.ok) {
        why = not_a_digest(challenge);
    } else if (!hmac(key, challenge, n.digest.empty() ? std::string_view("md5") : n.digest, mac)) {
        why = "libcrypto cannot compute HMAC-" + std::string(n.digest.empty() ? "md5" : n.digest);
    } else if (!n.digest.empty()) {
        return "{" + std::string(n.digest) + "}" + mac;
    }
    return mac;
}

/// What is wrong with `answer` to `challenge` under `key`, or empty if it is right. The
/// answer may name another digest than the challenge did (the MAC covers the challenge's
/// own prefix, so this is no downgrade).
inline std::string wrong_answer(std::string_view key, std::string_view challenge, std::string_view answer) {
    const named n = digest_and_payload(answer);
    if (!n.ok) return not_a_digest(answer);
    const std::string_view digest = n.digest.empty() ? std::string_view("md5") : n.digest;
    std::string expected;
    if (!hmac(key, challenge, digest, expected)) return "digest " + std::string(digest) + " unsupported";
    if (expected.size() != n.payload.size())
        return "expected " + std::string(digest) + " of length " + std::to_string(expected.size()) + ", got " +
               std::to_string(n.payload.size());
    if (CRYPTO_memcmp(expected.data(), n.payload.data(), expected.size()) != 0)
        return "digest received was wrong (the peer does not hold this authkey)";
    return {};
}

[[noreturn]] inline void fail(const std::string& why) {
    raise(authentication_error("multiproc: authentication failed: " + why));
}

/// One side of the exchange over `ch`, which has `send(std::string_view)` and
/// `std::string recv()` (a whole message of at most max_message bytes, or
/// authentication_error). Sends a challenge and checks the answer (Python:
/// deliver_challenge); on a wrong answer tells the peer "#FAILURE#" and raises.
template <class Channel>
void deliver(Channel& ch, std::string_view key, std::string_view digest = default_digest) {
    const std::string challenge = make_challenge(digest);
    ch.send(std::string(challenge_tag) + challenge);
    const std::string answer = ch.recv();
    if (std::string why = wrong_answer(key, challenge, answer); !why.empty()) {
        ch.send(failure);
        fail(why);
    }
    ch.send(welcome);
}

/// The other side (Python: answer_challenge): answers the peer's challenge, and raises
/// authentication_error unless the peer then says "#WELCOME#".
template <class Channel>
void answer(Channel& ch, std::string_view key) {
    const std::string m = ch.recv();
    if (m.substr(0, challenge_tag.size()) != challenge_tag) fail("protocol error, expected a challenge, got " + shown(m));
    const std::string_view challenge = std::string_view(m).substr(challenge_tag.size());
    if (challenge.size() < legacy_challenge)
        fail("challenge too short: " + std::to_string(challenge.size()) + " bytes");
    std::string why;
    const std::string reply = make_answer(key, challenge, why);
    if (!why.empty()) fail(why);
    ch.send(reply);
    if (ch.recv() != welcome) fail("digest sent was rejected (the peer holds another authkey)");
}

} MULTIPROC_ABI_END } // namespace multiproc::detail::auth
