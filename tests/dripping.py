"""A loopback answer that arrives one byte at a time: every read well within any per-read
timeout, the whole far beyond a deadline. The fault that only a deadline for the whole
exchange catches (the fault tests of the pool, identity lookups, the doctor and remote keys)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def dripping_json(body: bytes, *, every: float = 0.1) -> Handler:
    """A server handler answering one request with ``200`` and the JSON ``body``, framed by
    ``Content-Length``: the head at once, then the body one byte every ``every`` seconds."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up, as it should
        finally:
            writer.close()

    return answer
