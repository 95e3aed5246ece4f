// Not part of the API: the byte sinks and sources serializers write to and read from.
#pragma once

#include <multiproc/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace multiproc::detail {

/// Appends to a vector (after whatever it already holds, such as room for a frame header).
class vector_writer {
public:
    explicit vector_writer(std::vector<std::byte>& out) noexcept : out_(out) {}
    void write(const void* p, std::size_t n) {
        if (n == 0) return;
        std::size_t at = out_.size();
        out_.resize(at + n);
        std::memcpy(out_.data() + at, p, n);
    }

private:
    std::vector<std::byte>& out_;
};

/// Writes into a fixed span; the caller sized it with `size_counter` first.
class span_writer {
public:
    explicit span_writer(std::span<std::byte> out) noexcept : p_(out.data()), left_(out.size()) {}
    void write(const void* p, std::size_t n) {
        if (n > left_) throw serialization_error("multiproc: a serializer wrote more bytes than it announced");
        if (n) std::memcpy(p_, p, n);
        p_ += n;
        left_ -= n;
    }
    [[nodiscard]] std::size_t left() const noexcept { return left_; }

private:
    std::byte* p_;
    std::size_t left_;
};

/// Counts what would be written, so that a message can be encoded in place.
class size_counter {
public:
    void write(const void*, std::size_t n) noexcept { n_ += n; }
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

private:
    std::size_t n_ = 0;
};

/// Reads from one frame's bytes and never past them.
class span_reader {
public:
    explicit span_reader(std::span<const std::byte> in) noexcept : p_(in.data()), left_(in.size()) {}
    void read(void* dst, std::size_t n) {
        if (n > left_)
            throw serialization_error("multiproc: truncated message: " + std::to_string(n) + " more bytes needed, " +
                                      std::to_string(left_) + " left in the frame");
        if (n) std::memcpy(dst, p_, n);
        p_ += n;
        left_ -= n;
    }
    [[nodiscard]] std::size_t remaining() const noexcept { return left_; }

private:
    const std::byte* p_;
    std::size_t left_;
};

/// Where a message is encoded before it is sent, when it cannot be encoded in place: one
/// buffer per thread, kept between messages.
inline std::vector<std::byte>& scratch() {
    thread_local std::vector<std::byte> buf;
    return buf;
}

/// Bytes received and not yet handed out: a window [begin, end) of a buffer that grows
/// without zero-filling (a vector would clear every byte it adds).
class recv_window {
public:
    [[nodiscard]] const std::byte* data() const noexcept { return buf_.get() + begin_; }
    [[nodiscard]] std::size_t size() const noexcept { return end_ - begin_; }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    /// Room for at least `n` more bytes after the window; moves the window to the front
    /// first. Returns where to write; call `commit` with what was written.
    std::span<std::byte> prepare(std::size_t n) {
        if (begin_ != 0) {
            std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (cap_ - end_ < n) {
            std::size_t cap = std::max(cap_ * 2, end_ + n);
            auto next = std::make_unique_for_overwrite<std::byte[]>(cap);
            if (end_) std::memcpy(next.get(), buf_.get(), end_);
            buf_ = std::move(next);
            cap_ = cap;
        }
        return {buf_.get() + end_, cap_ - end_};
    }
    void commit(std::size_t n) noexcept { end_ += n; }

private:
    std::unique_ptr<std::byte[]> buf_;
    std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

} // namespace multiproc::detail
