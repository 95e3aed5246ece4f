"""CPython's multiprocessing doing the work of each figure of design.md section 6.

Usage: python3 bench.py <figure> [variant] [scale]; prints one JSON object per run, as the
C++ benchmark programs do, so that the driver can put the three side by side.
"""
import concurrent.futures as cf
import json
import multiprocessing as mp
from multiprocessing.connection import Client, Listener
from multiprocessing.pool import ThreadPool
import os
import sys
import time


def tiny(x):
    return x * x


def noop():
    pass


def burn(units):
    h = 1469598103934665603
    for i in range(units):
        for j in range(100):
            h = ((h ^ (i + j)) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def emit(value, unit, higher_is_better, **extra):
    out = {"value": value, "unit": unit, "higher_is_better": higher_is_better}
    out.update(extra)
    print(json.dumps(out), flush=True)


def cpus():
    return len(os.sched_getaffinity(0))


def fig_map(n):
    with mp.Pool(cpus()) as pool:
        pool.map(tiny, range(10))  # workers up
        t0 = time.perf_counter()
        out = pool.map(tiny, range(n))
        s = time.perf_counter() - t0
    assert out[n // 2] == tiny(n // 2)
    emit(n / s, "tasks/s", True)


def fig_map_observed(n):
    # What a progress bar over a pool does in Python: imap with map's chunksize, counting.
    with mp.Pool(cpus()) as pool:
        pool.map(tiny, range(10))
        chunksize, extra = divmod(n, 4 * cpus())
        chunksize += 1 if extra else 0
        t0 = time.perf_counter()
        out, done = [], 0
        for r in pool.imap(tiny, range(n), chunksize=chunksize):
            out.append(r)
            done += 1
        s = time.perf_counter() - t0
    assert done == n and out[n // 2] == tiny(n // 2)
    emit(n / s, "tasks/s", True)


def fig_imap_unordered(n, observed=False):
    with mp.Pool(cpus()) as pool:
        pool.map(tiny, range(10))
        t0 = time.perf_counter()
        if observed:  # a progress count, by hand: CPython's pool tells nobody
            total = done = 0
            for r in pool.imap_unordered(tiny, range(n), chunksize=1):
                total += r
                done += 1
            assert done == n
        else:
            total = sum(pool.imap_unordered(tiny, range(n), chunksize=1))
        s = time.perf_counter() - t0
    assert total == sum(tiny(i) for i in range(n))
    emit(n / s, "tasks/s", True)


def fig_apply(n):
    lat = []
    with mp.Pool(1) as pool:
        pool.apply(tiny, (1,))
        for i in range(n):
            t0 = time.perf_counter()
            pool.apply(tiny, (i,))
            lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    emit(lat[len(lat) // 2], "us", False, p99_us=lat[int((len(lat) - 1) * 0.99)])


def fig_submit(n):
    lat = []
    with cf.ProcessPoolExecutor(1) as ex:
        ex.submit(tiny, 1).result()
        for i in range(n):
            t0 = time.perf_counter()
            ex.submit(tiny, i).result()
            lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    emit(lat[len(lat) // 2], "us", False, p99_us=lat[int((len(lat) - 1) * 0.99)])


def touch_and_return(v):
    v[0] += 1
    return v


def fig_threadpool(n):
    # CPython's ThreadPool passes the list itself: no copy, as start::thread moves its vector.
    lat = []
    v = [0.0] * (1 << 20)
    with ThreadPool(1) as pool:
        v = pool.apply(touch_and_return, (v,))
        for _ in range(n):
            t0 = time.perf_counter()
            v = pool.apply(touch_and_return, (v,))
            lat.append((time.perf_counter() - t0) * 1e6)
    assert len(v) == 1 << 20 and v[0] == n + 1
    lat.sort()
    emit(lat[len(lat) // 2], "us", False, p99_us=lat[int((len(lat) - 1) * 0.99)])


def _consume(q, n, done):
    s = 0
    for _ in range(n):
        s += q.get()
    done.put(s)


def fig_queue(n):
    q, done = mp.Queue(), mp.Queue()
    c = mp.Process(target=_consume, args=(q, n, done))
    c.start()
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
    total = done.get()
    s = time.perf_counter() - t0
    c.join()
    assert total == n * (n - 1) // 2
    emit(n / s, "msg/s", True)


def _produce_range(q, lo, hi):
    for i in range(lo, hi):
        q.put(i)


def _consume_until_stop(q, done):
    s = 0
    while True:
        x = q.get()
        if x < 0:
            break
        s += x
    done.put(s)


def fig_queue_4x4(n):
    # CPython has no put_many/get_many: its producers and consumers put and get one by one.
    sides = 4
    q, done = mp.Queue(), mp.Queue()
    cs = [mp.Process(target=_consume_until_stop, args=(q, done)) for _ in range(sides)]
    for c in cs:
        c.start()
    t0 = time.perf_counter()
    bounds = [n // sides * k for k in range(sides)] + [n]
    ps = [mp.Process(target=_produce_range, args=(q, bounds[k], bounds[k + 1])) for k in range(sides)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    for _ in range(sides):
        q.put(-1)
    total = sum(done.get() for _ in range(sides))
    s = time.perf_counter() - t0
    for c in cs:
        c.join()
    assert total == n * (n - 1) // 2
    emit(n / s, "msg/s", True)


def _sum_conn(r, n, out):
    s = 0
    for _ in range(n):
        s += r.recv()
    out.send(s)


def fig_connection(n):
    r, w = mp.Pipe(duplex=False)
    sum_r, sum_w = mp.Pipe(duplex=False)
    c = mp.Process(target=_sum_conn, args=(r, n, sum_w))
    c.start()
    r.close()
    sum_w.close()
    t0 = time.perf_counter()
    for i in range(n):
        w.send(i)
    total = sum_r.recv()
    s = time.perf_counter() - t0
    c.join()
    assert total == n * (n - 1) // 2
    emit(n / s, "msg/s", True)


def _client_sum(address, n):
    c = Client(address)
    s = 0
    for _ in range(n):
        s += c.recv()
    c.send(s)
    c.close()


def fig_listener(n, tcp):
    l = Listener(("127.0.0.1", 0) if tcp else None)
    c = mp.Process(target=_client_sum, args=(l.address, n))
    c.start()
    w = l.accept()
    t0 = time.perf_counter()
    for i in range(n):
        w.send(i)
    total = w.recv()
    s = time.perf_counter() - t0
    c.join()
    l.close()
    assert total == n * (n - 1) // 2
    emit(n / s, "msg/s", True)


def fig_manager(n):
    with mp.Manager() as m:
        d = m.dict()
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            d[i % 100] = i
            lat.append((time.perf_counter() - t0) * 1e6)
        assert d[(n - 1) % 100] == n - 1
    lat.sort()
    emit(lat[len(lat) // 2], "us", False, p99_us=lat[(len(lat) - 1) * 99 // 100])


def _send(conn, n, ready, go, typed):
    data = b"y" * n  # made before the clock starts, as multiproc's and the baseline's senders have theirs
    ready.set()
    go.wait()
    if typed:
        conn.send(data)
    else:
        conn.send_bytes(data)
    conn.close()


def fig_transfer(mib, typed=False):
    n = mib << 20
    r, w = mp.Pipe(duplex=False)
    ready, go = mp.Event(), mp.Event()
    p = mp.Process(target=_send, args=(w, n, ready, go, typed))
    p.start()
    w.close()
    ready.wait()
    t0 = time.perf_counter()
    go.set()
    data = r.recv() if typed else r.recv_bytes()
    s = time.perf_counter() - t0
    p.join()
    assert len(data) == n
    emit(n / s / 1e9, "GB/s", True)


def _send_pages(w, n, ack):
    from multiprocessing import shared_memory
    m = shared_memory.SharedMemory(create=True, size=n)
    m.buf[:n] = b"y" * n
    w.send(m.name)
    ack.recv()
    m.close()
    m.unlink()


def fig_pages(mib):
    # CPython's zero-copy way: a SharedMemory filled by the sender, its name sent, the
    # receiver attaching to it and reading one byte of every page.
    from multiprocessing import shared_memory
    n = mib << 20
    r, w = mp.Pipe(duplex=False)
    ack_r, ack_w = mp.Pipe(duplex=False)
    p = mp.Process(target=_send_pages, args=(w, n, ack_r))
    p.start()
    w.close()
    name = r.recv()  # (the clock starts once the sender has filled its memory)
    t0 = time.perf_counter()
    m = shared_memory.SharedMemory(name=name)
    total = sum(m.buf[::4096])
    s = time.perf_counter() - t0
    m.close()
    # (3.11 registers an attached segment with the resource tracker as if it owned it.)
    from multiprocessing import resource_tracker
    resource_tracker.unregister(m._name, "shared_memory")
    ack_w.send(1)
    p.join()
    assert total == ord("y") * (n // 4096)
    emit(n / s / 1e9, "GB/s", True)


def fig_start(n, method):
    ctx = mp.get_context(method)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    emit(times[len(times) // 2], "ms", False)


def fig_speedup(scale):
    workers = cpus()
    per = scale * 1000 // 100  # CPython runs the same hash ~100x slower: a hundredth of the work
    t0 = time.perf_counter()
    burn(per * workers)
    seq = time.perf_counter() - t0
    with mp.Pool(workers) as pool:
        t0 = time.perf_counter()
        pool.map(burn, [per] * workers, chunksize=1)
        par = time.perf_counter() - t0
    emit(seq / par, "x", True, workers=workers)


def main():
    fig = sys.argv[1] if len(sys.argv) > 1 else ""
    variant = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else ""  # "-": none
    scale = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    pick = lambda d: scale if scale > 0 else d
    if fig == "map" and variant == "observed":
        fig_map_observed(pick(1_000_000))
    elif fig == "map":
        fig_map(pick(1_000_000))
    elif fig == "imap_unordered":
        fig_imap_unordered(pick(100_000), variant == "observed")
    elif fig == "apply":
        fig_apply(pick(5_000))
    elif fig == "submit":
        fig_submit(pick(5_000))
    elif fig == "threadpool":
        fig_threadpool(pick(2_000))
    elif fig == "queue" or fig == "queue_many":  # (CPython has no put_many: put one by one)
        fig_queue(pick(200_000))
    elif fig == "queue_4x4":
        fig_queue_4x4(pick(200_000))
    elif fig == "connection":
        fig_connection(pick(200_000))
    elif fig == "manager":
        fig_manager(pick(5_000))
    elif fig == "listener":
        fig_listener(pick(200_000), variant == "tcp")
    elif fig == "transfer":
        fig_transfer(pick(64))
    elif fig == "typed_transfer":
        fig_transfer(pick(64), True)
    elif fig == "pages":
        fig_pages(pick(64))
    elif fig == "start":
        fig_start(pick(30 if variant == "fork" else 10), variant or "fork")
    elif fig == "speedup":
        fig_speedup(pick(60_000))
    else:
        sys.exit("usage: bench.py map|imap_unordered|apply|submit|threadpool|queue|queue_many|queue_4x4|connection|listener|manager|transfer|typed_transfer|pages|start|speedup [variant] [scale]")


if __name__ == "__main__":
    main()
