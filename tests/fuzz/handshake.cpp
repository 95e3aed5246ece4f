// libFuzzer target for the authentication exchange of <multiproc/connection.hpp>
// (detail/net/auth.hpp): the peer's messages are the input, so every parse of a challenge,
// an answer and a verdict sees hostile bytes. No input may crash, hang or leak; each ends
// in success or authentication_error (eof_error when the script runs out), and:
//   - deliver (this side challenges) never succeeds: its challenge is 40 fresh random
//     bytes, which no scripted answer can have been computed for;
//   - answer (this side is challenged) succeeds only if the peer's last word was
//     "#WELCOME#" after a well-formed challenge, and then what it sent is the HMAC the
//     challenge asked for.
// Input: byte 0 picks the side; then messages, each a length byte and that many bytes (a
// length of 255 stands for a message of 300 bytes, past the exchange's 256-byte limit).
// Built with the other targets by run.sh (links libcrypto).
#include <multiproc/detail/net/auth.hpp>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

namespace {

namespace auth = multiproc::detail::auth;

struct scripted {
    std::deque<std::string> in;
    std::vector<std::string> out;
    void send(std::string_view m) { out.emplace_back(m); }
    std::string recv() {
        if (in.empty()) multiproc::detail::raise(multiproc::eof_error("script ended"));
        std::string m = std::move(in.front());
        in.pop_front();
        if (m.size() > auth::max_message) auth::fail("a message of " + std::to_string(m.size()) + " bytes");
        return m;
    }
};

constexpr std::string_view key = "fuzz key";

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    scripted ch;
    for (std::size_t i = 1; i < size;) {
        std::size_t n = data[i++];
        if (n == 255) {
            ch.in.emplace_back(300, 'x');
            continue;
        }
        n = std::min(n, size - i);
        ch.in.emplace_back(reinterpret_cast<const char*>(data + i), n);
        i += n;
    }
    const std::deque<std::string> script = ch.in;
    const bool deliver = (data[0] & 1) != 0;
    bool ok = false;
    try {
        if (deliver)
            auth::deliver(ch, key, (data[0] & 2) ? "sha3_384" : "sha256");
        else
            auth::answer(ch, key);
        ok = true;
    } catch (const multiproc::authentication_error&) {
    } catch (const multiproc::eof_error&) {
    }
    if (ok && deliver) std::abort(); // an answer to a random challenge was guessed
    if (ok) {
        // answer: challenge, then verdict, were the first two messages.
        if (script.size() < 2 || script[1] != auth::welcome || ch.out.size() != 1) std::abort();
        const std::string_view challenge = std::string_view(script[0]).substr(auth::challenge_tag.size());
        if (!auth::wrong_answer(key, challenge, ch.out[0]).empty()) std::abort();
    }
    return 0;
}
