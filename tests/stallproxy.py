"""A TCP proxy for tests that holds back one direction of a link while a file exists, and
never passes a close from the client on (a lost FIN): the broker still hears the worker,
the worker stops hearing the broker and reconnects. Usage: stallproxy.py PORT FILE; prints
the port it listens on."""

from __future__ import annotations

import asyncio
import os
import sys


async def pipe(reader, writer, held: str | None) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            for _ in range(6000):   # at most 5 minutes held
                if held is None or not os.path.exists(held):
                    break
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        if held is not None:   # towards the client only: its close never reaches the server
            writer.close()


async def main(port: int, held: str) -> None:
    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, up_writer, None), pipe(up_reader, writer, held))
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
