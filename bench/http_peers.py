# bench/http: the Python peers. "server PORT": an aiohttp hello-world server on uvloop.
# "client URL N C": N keep-alive GETs from C tasks with aiohttp's client; prints the seconds.
import asyncio, sys, time
import aiohttp
from aiohttp import web
import uvloop

async def hello(request):
    return web.Response(text="Hello, world!")

def server(port):
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())

async def client(url, n, c):
    left = [n]
    conn = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker():
            while left[0] > 0:
                left[0] -= 1
                async with s.get(url) as r:
                    assert r.status == 200 and len(await r.read()) > 0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        print("%.3f" % (time.perf_counter() - t0))

if sys.argv[1] == "server":
    server(int(sys.argv[2]))
else:
    uvloop.install()
    asyncio.run(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
