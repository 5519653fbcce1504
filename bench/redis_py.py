# redis-py asyncio's side of the Redis benchmark (bench/redis): the same work as bench/redis.lua.
# Usage: python3 bench/redis_py.py PORT tasks TASKS N | PORT pipeline SIZE N
import asyncio
import sys
import time

import redis.asyncio as redis

port, mode, width, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


async def tasks(r, cmd):
    per = n // width

    async def one(t):
        base = t * per
        if cmd == "SET":
            for i in range(base, base + per):
                await r.set(f"key:{i}", "xxx")
        else:
            for i in range(base, base + per):
                await r.get(f"key:{i}")

    await asyncio.gather(*(one(t) for t in range(width)))
    return per * width


async def pipelines(r, cmd):
    done = 0
    while done + width <= n:
        async with r.pipeline(transaction=False) as p:
            for i in range(done, done + width):
                if cmd == "SET":
                    p.set(f"key:{i}", "xxx")
                else:
                    p.get(f"key:{i}")
            await p.execute()
        done += width
    return done


async def main():
    r = redis.Redis(host="127.0.0.1", port=port, max_connections=width if mode == "tasks" else 10)
    run = tasks if mode == "tasks" else pipelines
    rates = []
    for cmd in ("SET", "GET"):
        t0 = time.perf_counter()
        ops = await run(r, cmd)
        rates.append(f"{cmd} {ops / (time.perf_counter() - t0):.0f}")
    print(f"redis-py {mode}{width} {' '.join(rates)}")
    await r.close()


asyncio.run(main())
