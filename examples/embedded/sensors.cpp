// An embedded-style program (issue 16): built with -Os -fno-exceptions -fno-rtti -static,
// its policies fixed at compile time in one context — fork, readings as their bytes
// (serialize::bitwise) through shared memory (transport::shm). Two sensor processes each
// put readings on a bounded queue; the main process takes them with try_get, which reports
// an empty or full queue as a result instead of an exception, and gives a fatal error to
// the error handler set here, which must not return.
#include <multiproc/multiproc.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace mp = multiproc;
using namespace std::chrono_literals;

/// One reading: plain data, sent as its bytes.
struct reading {
    int sensor;
    int sequence;
    double value;
};

using board = mp::context<mp::start::fork, mp::serialize::bitwise, mp::transport::shm>;

namespace {

void fatal(const mp::error& e) noexcept {
    std::fprintf(stderr, "fatal: %s\n", e.what());
    std::_Exit(3); // a device would reset here
}

} // namespace

int main() {
    mp::set_error_handler(&fatal);
    board ctx;
    auto readings = ctx.queue<reading>(4); // bounded: a slow reader holds the sensors back

    constexpr int per_sensor = 5;
    auto sensor = [](mp::basic_queue<reading, mp::start::fork, mp::serialize::bitwise, mp::transport::shm> out,
                     int id) {
        for (int i = 0; i < per_sensor; ++i) out.put(reading{id, i, id * 100.0 + i * 0.5});
    };
    auto s1 = ctx.process(sensor, readings, 1);
    auto s2 = ctx.process(sensor, readings, 2);
    for (auto* s : {&s1, &s2})
        if (auto started = s->try_start(); !started) {
            std::printf("could not start a sensor: %s\n", started.error().what());
            return 1;
        }

    double total[3] = {};
    int next[3] = {};
    int got = 0;
    while (got < 2 * per_sensor) {
        auto r = readings.try_get(10s);
        if (!r) {
            std::printf("no reading: %s\n", r.error().what());
            return 1;
        }
        if (r->sequence != next[r->sensor]++) {
            std::printf("sensor %d: reading %d out of order\n", r->sensor, r->sequence);
            return 1;
        }
        total[r->sensor] += r->value;
        ++got;
    }
    s1.join();
    s2.join();
    std::printf("%d readings, in order per sensor\n", got);
    for (int id = 1; id <= 2; ++id) std::printf("sensor %d: total %.1f\n", id, total[id]);
    auto empty = readings.try_get_nowait();
    std::printf("then: %s\n", empty ? "a reading too many" : empty.error().what());
    std::printf("sensors exited with %d and %d\n", *s1.exitcode(), *s2.exitcode());
    return 0;
}
