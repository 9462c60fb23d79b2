"""The ``endpoint`` event of the legacy HTTP+SSE transport (MCP 2024-11-05), for the proxy.

A legacy client opens a Server-Sent Events stream with ``GET``; the server's first event,
``endpoint``, names the URL (relative to the stream's) the client then posts its messages to,
the session id in its query: ``session_id`` (Python SDK) or ``sessionId`` (TypeScript SDK).
A reverse proxy has to rewrite that one event: the URL names the server's own path, and the
session id has to be bound to the user as ``Mcp-Session-Id`` is. Everything after it passes
through untouched.

Parsing follows the HTML Living Standard, "Server-sent events", §9.2.6 "Interpreting an event
stream": lines end in CRLF, LF or CR; lines starting with ``:`` are comments; ``field: value``
loses one space after the colon; a blank line dispatches the event when a field set it (as
httpx2, the parser of the ``mcp`` SDK's clients, reads it; the standard asks for data).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus

__all__ = ["SESSION_QUERY_PARAMETERS", "EndpointEventRewriter", "EndpointOutsideProxy", "map_session_parameters"]

#: The query parameters that carry a legacy session id (Python SDK, TypeScript SDK).
SESSION_QUERY_PARAMETERS = frozenset({"session_id", "sessionId"})
#: How much of a stream's first event is held back. The SDKs' ``endpoint`` events are about
#: 100 bytes; a stream whose first event is not complete by then is passed on as it is (a
#: session id in it then stays the server's, which the proxy never opens).
MAX_FIRST_EVENT_BYTES = 16 * 1024

_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n)")


class EndpointOutsideProxy(Exception):
    """The ``endpoint`` event names a URL the proxy does not map to a public one."""


def map_session_parameters(query: str, transform: Callable[[str], str | None]) -> str | None:
    """``query`` with the value of each session parameter replaced by ``transform(value)``;
    ``None`` when ``transform`` gives ``None`` for one. Names are compared decoded (as servers
    read them, ``+`` a space), so ``%73ession_id`` is one too; every other byte stays as sent."""
    if not query:  # most proxied requests: skips the split and join (1.4 µs a request)
        return query
    pieces = []
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        if unquote_plus(name) in SESSION_QUERY_PARAMETERS:
            mapped = transform(unquote_plus(value))
            if mapped is None:
                return None
            piece = f"{name}={quote(mapped, safe='')}"
        pieces.append(piece)
    return "&".join(pieces)


@dataclass
class EndpointEventRewriter:
    """Feeds a stream's chunks through, replacing the data of its first event when that is
    ``endpoint`` with ``rewrite(data)``. ``rewrite`` raises :class:`EndpointOutsideProxy` for
    a URL it cannot map. Only the first event is held back (at most
    :data:`MAX_FIRST_EVENT_BYTES`): comments before it pass at once, and after it every chunk
    passes at once, unchanged. Each byte is parsed once, whatever the chunks."""

    rewrite: Callable[[str], str]
    _held: bytearray = field(default_factory=bytearray)
    _done: bool = False
    _parsed: int = 0  # where the next line starts
    _block_start: int = 0  # where the lines of the event being read start
    _block: list[bytes] = field(default_factory=list)

    def feed(self, chunk: bytes) -> bytes:
        """What to send on now for ``chunk`` (empty while the first event is incomplete)."""
        if self._done:
            return chunk
        may_end_a_line = b"\n" in chunk or b"\r" in chunk or self._held.endswith(b"\r")
        self._held += chunk
        if len(self._held) > MAX_FIRST_EVENT_BYTES:
            return self._release(None)
        if not may_end_a_line:  # no new line: no need to scan the unfinished one again
            return b""
        first = self._first_event()
        if first is not None:
            return self._release(first)
        # Comments and blank lines before the event (keep-alive pings) go on at once.
        passed = bytes(self._held[: self._block_start])
        del self._held[: self._block_start]
        self._parsed -= self._block_start
        self._block_start = 0
        return passed

    def flush(self) -> bytes:
        """What is still held when the stream ends (an unfinished event is never dispatched)."""
        return self._release(None) if not self._done else b""

    def _release(self, first: FirstEvent | None) -> bytes:
        self._done = True
        held, self._held = bytes(self._held), bytearray()
        if first is None or first.event_type != "endpoint":
            return held
        lines = [line for line in first.lines if _field(line)[0] != b"data"]
        lines += [b"data: " + line.encode() for line in self.rewrite(first.data).split("\n")]
        return held[: first.start] + b"\n".join(lines) + b"\n\n" + held[first.end :]

    def _first_event(self) -> FirstEvent | None:
        """The first event the held bytes dispatch, or ``None`` while it is not complete."""
        while (match := _LINE.match(self._held, self._parsed)) is not None:
            if match.group(2) == b"\r" and match.end() == len(self._held):
                return None  # a CR that may be the start of a CRLF
            self._parsed = match.end()
            if match.group(1):
                self._block.append(match.group(1))
                continue
            fields = [_field(line) for line in self._block if not line.startswith(b":")]
            if {name for name, _ in fields} & {b"event", b"data", b"id", b"retry"}:
                event_type = next((value for name, value in reversed(fields) if name == b"event"), b"") or b"message"
                data = b"\n".join(value for name, value in fields if name == b"data")
                try:
                    return FirstEvent(self._block, self._block_start, self._parsed, event_type.decode(), data.decode())
                except UnicodeDecodeError:
                    return FirstEvent(self._block, self._block_start, self._parsed, "", "")
            self._block, self._block_start = [], self._parsed
        return None


@dataclass(frozen=True)
class FirstEvent:
    """The first dispatched event of a stream: its lines (without line ends), where they
    start and where its blank line ends, its type and its data."""

    lines: list[bytes]
    start: int
    end: int
    event_type: str
    data: str


def _field(line: bytes) -> tuple[bytes, bytes]:
    name, _, value = line.partition(b":")
    return name, value[1:] if value.startswith(b" ") else value
