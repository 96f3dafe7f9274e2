#!/usr/bin/env python3
"""A TCP relay that delays every chunk by a fixed time in each direction: a registry on
127.0.0.1 made to look like one across a network, for A/B runs of round-trip costs (the kernel
here has no netem). Order within a connection is kept; chunks are not coalesced.

    bench/lib/latency-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT ONE_WAY_MS
"""

import asyncio
import socket
import sys


async def pipe(reader, writer, delay):
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    while True:
        data = await reader.read(65536)
        await queue.put((loop.time() + delay, data or None))
        if not data:
            break
    await sender


async def main():
    port, upstream, ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, uport = upstream.rsplit(":", 1)
    delay = ms / 1000

    async def handle(r, w):
        try:
            ur, uw = await asyncio.open_connection(host, int(uport))
        except OSError:
            w.close()
            return
        # No Nagle on either leg: the delay added is the only one.
        for s in (w, uw):
            s.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(r, uw, delay), pipe(ur, w, delay), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
