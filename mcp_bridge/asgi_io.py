"""Small ASGI framing helpers the bridge's endpoints share: reading a bounded request body,
replaying it to the next app, and sending a complete JSON or plain-text answer."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

__all__ = ["read_body", "replay", "send_json", "send_plain"]

SESSION_HEADER = b"mcp-session-id"


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, Message | None]:
    """The whole request body (None when it passes `limit` bytes), and a message that arrived
    after it and must be replayed (a disconnect), if any."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


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
