// Seed 002, "Locks, Queues and Pipes", and where multiproc does better than CPython: a
// process that dies holding a lock. With multiprocessing.Lock, every other process would
// wait for it forever. Here the next acquirer takes the lock over and is told, through
// owner_died(), that whatever the lock guarded may be half-changed.

#include <multiproc/process.hpp>
#include <multiproc/sync.hpp>
#include <multiproc/value.hpp>

#include <csignal>
#include <iostream>
#include <mutex>

struct account {
    int balance;
    int updates;
};

void careless_update(multiproc::lock lock, multiproc::raw_value<account> acc, multiproc::event locked) {
    lock.acquire();
    acc->updates += 1; // half of the update done...
    locked.set();
    std::raise(SIGKILL); // ...and the process dies holding the lock (a crash, an OOM kill, ...)
}

int main() {
    multiproc::lock lock;
    multiproc::raw_value<account> acc(account{100, 0});
    multiproc::event locked;

    multiproc::process p(careless_update, lock, acc, locked);
    p.start();
    locked.wait();
    p.join();
    std::cout << "child exitcode " << *p.exitcode() << '\n';

    std::lock_guard with(lock); // does not hang: the lock is taken from the dead process
    std::cout << "main has the lock; previous owner died: " << std::boolalpha << lock.owner_died() << '\n';
    if (lock.owner_died()) {
        std::cout << "repairing: " << acc->updates << " update(s) started, balance " << acc->balance << '\n';
        acc->updates = 0;
    }
}
