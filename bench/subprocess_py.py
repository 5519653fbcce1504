"""Subprocess benchmark, asyncio/uvloop side of bench/subprocess.lua (same work, same output).
Usage: python3 bench/subprocess_py.py asyncio|uvloop spawn N K | pipe M"""
import asyncio, sys, time

PIPE = asyncio.subprocess.PIPE


async def spawn(n, k):
    left = [n]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            p = await asyncio.create_subprocess_exec("true")
            assert await p.wait() == 0

    await asyncio.gather(*(worker() for _ in range(k)))


async def pipe(mib):
    chunk = b"x" * (1 << 20)
    p = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)

    async def feed():
        for _ in range(mib):
            p.stdin.write(chunk)
            await p.stdin.drain()
        p.stdin.close()

    f = asyncio.ensure_future(feed())
    got = 0
    while True:
        d = await p.stdout.read(1 << 18)
        if not d:
            break
        got += len(d)
    await f
    await p.wait()
    assert got == mib << 20


def main():
    impl, mode = sys.argv[1], sys.argv[2]
    if impl == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    t0 = time.monotonic()
    if mode == "spawn":
        n, k = int(sys.argv[3]), int(sys.argv[4])
        asyncio.run(spawn(n, k))
        print(f"{impl} spawn {n} in-flight={k}: {n / (time.monotonic() - t0):.0f} spawns/s")
    else:
        mib = int(sys.argv[3])
        asyncio.run(pipe(mib))
        print(f"{impl} pipe {mib} MiB through cat: {mib / (time.monotonic() - t0):.0f} MiB/s")


main()
