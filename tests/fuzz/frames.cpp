// libFuzzer target for the framing layer of every transport: the bytes under connections
// (stream frames on a pipe or socket pair, chunks in a shared-memory ring) and queues
// (chunks on a pipe, chunks in a ring) are forged from the input, and the receiving side
// takes them as a real receiver would. No input may crash, hang, or allocate what a
// header claims (run.sh caps malloc and RSS); every failure is one of the documented
// errors, and a connection closed for reading stays closed. Built and run by run.sh.
//
// Input: byte 0 picks the layer (below), byte 1 the receive calls, then records:
//   op % 4 == 0  raw:     n (1 byte), then n bytes as they are
//   op % 4 == 1  header:  a stream frame header (magic choice, u64 length) or a chunk
//                         header (kind, seq step, index, u32 length, u64 total, whether
//                         its checksum checks), with no payload
//   op % 4 == 2  filler:  n (2 bytes) bytes of a pattern
//   op % 4 == 3  message: n (2 bytes): a well-formed message of n bytes (one frame, or
//                         the chunks of one message with the next sequence number)
#include "support/forge.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

namespace detail = multiproc::detail;
namespace transport = multiproc::transport;
using namespace std::chrono_literals;

/// Reads the input front to back; past its end, zeros.
struct input {
    const std::uint8_t* p;
    std::size_t n;
    template <class T>
    T get() {
        T v{};
        std::size_t k = std::min(sizeof v, n);
        std::memcpy(&v, p, k);
        p += k;
        n -= k;
        return v;
    }
    std::span<const std::byte> take(std::size_t k) {
        k = std::min(k, n);
        std::span<const std::byte> s(reinterpret_cast<const std::byte*>(p), k);
        p += k;
        n -= k;
        return s;
    }
};

std::vector<std::byte> pattern(std::size_t n) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 7 + 1);
    return v;
}

// ---- what a record becomes on each kind of layer ----------------------------------------

/// A stream connection: everything goes into one byte string, written to the stream.
struct stream_sink {
    std::vector<std::byte> out;
    void raw(std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); }
    void header(input& in) {
        forge::frame_header h;
        if (in.get<std::uint8_t>() & 1) h.magic = in.get<std::uint32_t>();
        h.length = in.get<std::uint64_t>();
        raw({reinterpret_cast<const std::byte*>(&h), sizeof h});
    }
    void message(std::size_t n) { raw(forge::frame(pattern(n))); }
};

/// Chunks: built with the channel's writer (a ring) or as a producer writes them (a stream).
template <class Put>
struct chunk_sink {
    Put put; // bool(const chunk_header&, span payload) or raw bytes
    std::size_t max_payload;
    std::uint64_t seq = 0;
    bool ok = true;

    void header(input& in) {
        const auto kind = in.get<std::uint8_t>();
        const std::uint32_t magic = kind % 4 == 0   ? detail::chunk_data
                                    : kind % 4 == 1 ? detail::chunk_nop
                                    : kind % 4 == 2 ? detail::chunk_pad
                                                    : in.get<std::uint32_t>();
        seq += static_cast<std::int8_t>(in.get<std::uint8_t>()); // may go back
        const auto index = in.get<std::uint8_t>();
        const auto length = in.get<std::uint32_t>();
        const auto total = in.get<std::uint64_t>();
        auto h = detail::make_chunk(magic, seq, index, length, total);
        if (kind & 4) h.check ^= 1;
        ok = ok && put.header(h);
    }
    void message(std::size_t n) {
        const auto bytes = pattern(n);
        ++seq;
        std::size_t off = 0;
        std::uint32_t index = 0;
        do {
            std::size_t len = std::min(n - off, max_payload);
            auto h = detail::make_chunk(detail::chunk_data, seq, index++, static_cast<std::uint32_t>(len), n);
            ok = ok && put.chunk(h, std::span<const std::byte>(bytes).subspan(off, len));
            off += len;
        } while (ok && off < n);
    }
    void raw(std::span<const std::byte> b) { ok = ok && put.raw(b); }
};

struct ring_put {
    forge::ring_access& ring;
    bool header(const detail::chunk_header& h) {
        return ring.put_raw({reinterpret_cast<const std::byte*>(&h), sizeof h});
    }
    bool chunk(const detail::chunk_header& h, std::span<const std::byte> payload) { return ring.put_header(h, payload); }
    bool raw(std::span<const std::byte> b) { return ring.put_raw(b); }
};

struct stream_put {
    std::vector<std::byte>& out;
    bool header(const detail::chunk_header& h) { return raw({reinterpret_cast<const std::byte*>(&h), sizeof h}); }
    bool chunk(const detail::chunk_header& h, std::span<const std::byte> payload) {
        return header(h) && raw(payload);
    }
    bool raw(std::span<const std::byte> b) {
        out.insert(out.end(), b.begin(), b.end());
        return true;
    }
};

/// Runs the records of `in` into `sink`, up to 1 MiB of output.
template <class Sink>
void run_records(input& in, Sink& sink) {
    while (in.n > 0) {
        const auto op = in.get<std::uint8_t>();
        switch (op % 4) {
            case 0: sink.raw(in.take(in.get<std::uint8_t>())); break;
            case 1: sink.header(in); break;
            case 2: sink.raw(pattern(in.get<std::uint16_t>())); break;
            default: sink.message(in.get<std::uint16_t>()); break;
        }
        if constexpr (requires { sink.ok; })
            if (!sink.ok) return;
    }
}

/// Writes what fits into a non-blocking descriptor (the rest is dropped: a real writer
/// would wait, and nobody reads yet).
void write_what_fits(int fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        ssize_t w = ::write(fd, bytes.data(), bytes.size());
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        bytes = bytes.subspan(static_cast<std::size_t>(w));
    }
}

// ---- receivers ------------------------------------------------------------------------------

/// Receives from a connection until end of file, with the calls byte 1 chose, checking that
/// every failure is a documented one and that an end closed for reading stays closed.
template <class Conn>
void receive_all(Conn& r, std::uint8_t calls, bool stream) {
    std::optional<std::string> closed; // the error that closed the end for reading
    std::vector<std::byte> into(256);
    for (int i = 0; i < 64; ++i) {
        const int call = (calls >> (i % 4 * 2)) & 3;
        const std::size_t maxlength = std::size_t{1} << (calls % 13);
        try {
            switch (call) {
                case 0: (void)r.recv(); break;
                case 1: {
                    auto b = r.recv_bytes(maxlength);
                    if (b.size() > maxlength) std::abort(); // maxlength ignored
                    break;
                }
                case 2: {
                    std::size_t n = r.recv_bytes_into(into);
                    if (n > into.size()) std::abort();
                    break;
                }
                default:
                    if (!r.poll()) return; // nothing more will come: the writer is closed
                    continue;              // (a ring's poll sees the corrupt bytes as data)
            }
            if (closed) std::abort(); // received again after it was closed for reading
        } catch (const multiproc::eof_error&) {
            if (closed) std::abort();
            return;
        } catch (const multiproc::serialization_error& e) {
            std::string what = e.what();
            if (closed && what != *closed) std::abort();
            if (what.find("closed for reading") != std::string::npos || what.find("ring is corrupt") != std::string::npos)
                closed = what;
            else if (stream && what.find("cannot decode") == std::string::npos)
                std::abort(); // a stream end either decodes a payload or closes for reading
        } catch (const multiproc::os_error& e) {
            if (e.code().value() != EMSGSIZE || closed) std::abort();
        } catch (const multiproc::buffer_too_short&) {
            if (closed) std::abort();
        } catch (const multiproc::value_error&) {
            // A frame of another kind (descriptors of send_handle, an object crossing with
            // descriptors) where a message was expected: skipped whole, the end stays open.
            if (!stream || closed) std::abort();
        } catch (const multiproc::authentication_error&) {
            if (!stream || closed) std::abort(); // a frame of the authkey exchange: skipped whole
        }
    }
}

template <class Transport>
void fuzz_stream_connection(input& in, std::uint8_t calls) {
    auto [r, w] = multiproc::pipe<std::string, Transport>(false);
    stream_sink sink;
    run_records(in, sink);
    write_what_fits(w.fileno(), sink.out);
    w.close();
    receive_all(r, calls, true);
}

void fuzz_shm_connection(input& in, std::uint8_t calls) {
    auto [r, w] = multiproc::pipe<std::string, transport::shm>(false, 4096);
    {
        auto ring = forge::sending_ring(w);
        chunk_sink<ring_put> sink{{ring}, ring.ring().max_payload()};
        sink.seq = ring.shared().next_seq.load();
        run_records(in, sink);
        ring.shared().next_seq.store(sink.seq);
    }
    w.close();
    receive_all(r, calls, false);
}

/// Takes messages until the queue is empty; decode errors and ring corruption are the
/// only errors, and corruption does not go away.
template <class Queue>
void drain(Queue& q) {
    std::optional<std::string> corrupt;
    for (int i = 0; i < 64; ++i) {
        try {
            (void)q.get(0s);
            if (corrupt) std::abort();
        } catch (const multiproc::queue_empty&) {
            if (corrupt) std::abort();
            return;
        } catch (const multiproc::serialization_error& e) {
            std::string what = e.what();
            if (corrupt && what != *corrupt) std::abort();
            if (what.find(" is corrupt (") != std::string::npos) corrupt = what; // (not "corrupt message": a decoder's)
        }
    }
}

template <class Transport>
void fuzz_stream_queue(input& in) {
    multiproc::basic_queue<std::string, Transport> q(0, 64 << 10);
    std::vector<std::byte> out;
    chunk_sink<stream_put> sink{{out}, Transport::atomic_write - sizeof(detail::chunk_header)};
    run_records(in, sink);
    write_what_fits(forge::queue_write_fd(q), out);
    drain(q);
}

void fuzz_shm_queue(input& in) {
    multiproc::basic_queue<std::string, transport::shm> q(0, 4096);
    auto ring = forge::queue_ring(q);
    chunk_sink<ring_put> sink{{ring}, ring.ring().max_payload()};
    run_records(in, sink);
    drain(q);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    input in{data + 2, size - 2};
    switch (data[0] % 6) {
        case 0: fuzz_stream_connection<transport::pipe>(in, data[1]); break;
        case 1: fuzz_stream_connection<transport::socketpair>(in, data[1]); break;
        case 2: fuzz_shm_connection(in, data[1]); break;
        case 3: fuzz_stream_queue<transport::pipe>(in); break;
        case 4: fuzz_stream_queue<transport::socketpair>(in); break;
        default: fuzz_shm_queue(in); break;
    }
    return 0;
}
