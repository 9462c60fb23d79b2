"""Small ASGI framing helpers the bridge's endpoints share: reading a bounded request body,
replaying it to the next app, and sending a complete JSON or plain-text answer."""

from __future__ import annotations

from typing import Any

import anyio
import pydantic_core
from starlette.types import Message, Receive, Send

__all__ = ["body_then_wait", "read_message", "replay", "send_json", "send_plain"]

SESSION_HEADER = b"mcp-session-id"


async def read_message(receive: Receive, send: Send, limit: int) -> tuple[Any, Receive] | None:
    """The request's JSON-RPC message (None when the body is not JSON) and a `receive` that
    gives the body again; None once a body over `limit` bytes was answered with 413."""
    chunks: list[bytes] = []
    size = 0
    trailing: Message | None = None  # what arrived after the body (a disconnect), replayed too
    while True:
        message = await receive()
        if message["type"] != "http.request":
            trailing = message
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await send_plain(send, 413, b"Request body too large")
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        # The SDK's own parser (its Streamable HTTP transport reads a body with it), so that
        # the fast path reads exactly the messages the SDK reads: UTF-8 only (RFC 8259 §8.1),
        # no lone surrogate escape, at most 200 levels of nesting; anything it refuses goes to
        # the SDK for its parse error. (About 3x faster than `json.loads` here, too.)
        parsed = pydantic_core.from_json(body) if body else None
    except ValueError:
        parsed = None
    return parsed, replay(body, trailing, receive)


def replay(body: bytes, trailing: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives `body` (and `trailing`) again, then the client's own messages."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if trailing is not None:
        pending.append(trailing)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def body_then_wait(body: bytes) -> Receive:
    """A `receive` for a request made in process: `body`, then nothing until its answer ends it
    (no client is there to disconnect)."""
    return replay(body, None, _wait_forever)


async def _wait_forever() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def send_json(send: Send, status: int, payload: bytes, session: str | None = None) -> None:
    """A complete `application/json` answer, with the `Mcp-Session-Id` header when given."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if session is not None:
        headers.append((SESSION_HEADER, session.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def send_plain(send: Send, status: int, text: bytes) -> None:
    """A complete `text/plain` answer."""
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
