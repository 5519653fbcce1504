"""TLS echo servers for bench/tls/run: asyncio or uvloop, Protocol or streams, with ssl.

usage: python3 py_tls_echo.py {proto|streams} {asyncio|uvloop} CERTFILE KEYFILE PORT
"""
import asyncio
import ssl
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_stream(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    mode, which, cert, key, port = sys.argv[1:6]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    if mode == "proto":
        server = await loop.create_server(Echo, "127.0.0.1", int(port), ssl=ctx, backlog=1024)
    else:
        server = await asyncio.start_server(echo_stream, "127.0.0.1", int(port), ssl=ctx,
                                            backlog=1024)
    await server.serve_forever()


if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.install()
asyncio.run(main())
