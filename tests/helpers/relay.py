"""A TCP relay on 127.0.0.1 in front of a real upstream, whose behaviour a test switches: the network failures
a hosted model's users meet (a dead host, a hung connection, a load balancer answering 500) in front of a real
OpenAI-compatible server, without touching that server.

Modes: ``forward`` (bytes both ways), ``hang`` (accepts, reads, never answers), ``refuse`` (closes at once),
``fail500`` (an HTTP 500 from "the load balancer", as an nginx in front of a dead backend sends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

FAIL_500 = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: 53\r\n"
            b"connection: close\r\n\r\n<html><body><h1>500 Internal Server Error</h1></body>")


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "forward"
        self.port = 0
        self._open: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="relay")
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def set_mode(self, mode: str) -> None:
        """Switch, and close every open connection: a client's pooled keep-alive connection must not keep
        reaching the upstream through the old mode."""
        async def switch() -> None:
            self.mode = mode
            for writer in list(self._open):
                writer.close()
        asyncio.run_coroutine_threadsafe(switch(), self.loop).result(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self._open.add(writer)
        try:
            if mode == "refuse":
                return
            if mode == "hang":
                while await reader.read(65536):
                    pass
                return
            if mode == "fail500":
                await reader.read(65536)
                writer.write(FAIL_500)
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
