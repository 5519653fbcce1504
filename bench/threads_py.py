# bench/threads_py.py: Python's side of the threads benchmark (see bench/threads.lua).
#   roundtrip N     N sequential `await loop.run_in_executor(None, noop)` in one coroutine
#   cpu JOBS WORK   JOBS CPU-bound jobs: serial, ThreadPoolExecutor(2), ProcessPoolExecutor(2)
import asyncio, sys, time
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor

def noop():
    pass

def burn(n):
    x = 0
    for i in range(1, n + 1):
        x = (x + i * i) % 1000003
    return x

def main():
    what = sys.argv[1]
    if what == "roundtrip":
        n = int(sys.argv[2])
        async def run():
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(1))
            await loop.run_in_executor(None, noop)
            t0 = time.monotonic()
            for _ in range(n):
                await loop.run_in_executor(None, noop)
            print("RESULT bench=python_run_in_executor_noop n=%d secs=%.6f" % (n, time.monotonic() - t0))
        asyncio.run(run())
    elif what == "cpu":
        jobs, work = int(sys.argv[2]), int(sys.argv[3])
        t0 = time.monotonic()
        for _ in range(jobs):
            burn(work)
        print("RESULT bench=python_cpu_serial n=%d secs=%.6f" % (jobs, time.monotonic() - t0))
        for name, cls in (("ThreadPoolExecutor2", ThreadPoolExecutor), ("ProcessPoolExecutor2", ProcessPoolExecutor)):
            with cls(2) as pool:
                list(pool.map(burn, [1, 1]))
                t0 = time.monotonic()
                list(pool.map(burn, [work] * jobs))
                print("RESULT bench=python_cpu_%s n=%d secs=%.6f" % (name, jobs, time.monotonic() - t0))

if __name__ == "__main__":
    main()
