"""Synchronization micro-benchmarks for asyncio / uvloop (the peers of bench/micro.lua's
`queue` and `lock`), in the peers' micro protocol.

usage: python3 py_sync.py {asyncio|uvloop} BENCH N

BENCH:
  queue  a producer task puts N integers into asyncio.Queue(maxsize=100) while a consumer task
         gets them; both started with create_task and awaited with gather
  lock   100 tasks share one asyncio.Lock; each takes it N/100 times and, while holding it,
         yields once (asyncio.sleep(0)), so every acquisition waits in line and is handed over:
         N hand-offs in total

Prints one line: RESULT bench=.. n=.. secs=.. cpu=..
secs: wall time (perf_counter) around the benchmark only; cpu: process CPU time over the same.
"""
import asyncio
import sys
import time

MAXSIZE = 100
LOCK_TASKS = 100


def new_loop(which):
    if which == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def b_queue(n):
    q = asyncio.Queue(MAXSIZE)

    async def producer():
        put = q.put
        for i in range(n):
            await put(i)

    async def consumer():
        get = q.get
        for _ in range(n):
            await get()

    t0 = time.perf_counter()
    await asyncio.gather(asyncio.create_task(producer()), asyncio.create_task(consumer()))
    return time.perf_counter() - t0


async def b_lock(n):
    lock = asyncio.Lock()
    rounds = n // LOCK_TASKS

    async def worker():
        sleep = asyncio.sleep
        for _ in range(rounds):
            async with lock:
                await sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(LOCK_TASKS)])
    return time.perf_counter() - t0


BENCHES = {"queue": b_queue, "lock": b_lock}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("asyncio", "uvloop") or sys.argv[2] not in BENCHES:
        sys.stderr.write(__doc__)
        sys.exit(2)
    which, bench, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    loop = new_loop(which)
    asyncio.set_event_loop(loop)
    c0 = time.process_time()
    secs = loop.run_until_complete(BENCHES[bench](n))
    cpu = time.process_time() - c0
    loop.close()
    print(f"RESULT bench={bench} n={n} secs={secs:.6f} cpu={cpu:.6f}")


if __name__ == "__main__":
    main()
