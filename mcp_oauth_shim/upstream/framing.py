"""Where one HTTP/1.1 response ends (RFC 9112 §6), for the IdP pool in :mod:`.pool`.

The bytes are parsed by llhttp (the C parser of Node.js, through :mod:`httptools`, as uvicorn
does), fed as they arrive and never re-parsed: the cost is linear in what the peer sends.
llhttp already refuses malformed status lines and fields, obs-fold, bare LF, ``Content-Length``
together with ``Transfer-Encoding`` (RFC 9112 §6.1), repeated or non-numeric ``Content-Length``,
and malformed chunks. This module adds what a client must decide for itself:

- no body for 1xx, 204 and 304 responses and for responses to HEAD (RFC 9112 §6.3 rules 1-2);
  interim 1xx responses are skipped (RFC 9110 §15.2), 101 is refused (we never ask to upgrade);
- ``Transfer-Encoding`` must be exactly ``chunked``: any other coding was not asked for (the
  requests send no ``TE``) and cannot be decoded (RFC 9112 §6.1, §7);
- only HTTP/1.0 and HTTP/1.1, status codes 100-599 (RFC 9110 §15);
- bounds: the bytes that are not body (status lines, header fields, chunk sizes and their
  extensions, trailer fields) at most :data:`MAX_HEADER_BYTES`, checked after every read; at
  most :data:`MAX_HEADER_FIELDS` fields; a body of at most :data:`MAX_BODY_BYTES`;
- whether the connection may carry another request: only after an HTTP/1.1 response without
  ``Connection: close``, framed by ``Content-Length`` or chunked (or without a body), with
  nothing after it. Anything else closes the connection (RFC 9112 §9.3, §9.6).

tests/unit/test_upstream_framing.py compares the outcome with h11's parse of the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

# Not body: the status line and header section (interim responses included), chunk-size lines
# with their extensions, and the trailer section. An IdP's token answer has ~1 KiB of these.
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100
MAX_BODY_BYTES = 1024 * 1024


class HTTPError(Exception):
    """The peer could not be reached or answered something that is not HTTP/1.1."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes


class _Stop(Exception):
    """Raised from a callback to stop llhttp after the final response (never leaves here)."""


class ResponseReader:
    """One exchange's response, fed in pieces: :meth:`feed` returns it once it is complete.

    ``reusable`` tells, after that, whether the connection may carry the next request. Every
    refusal is an :class:`HTTPError`; the connection must then be closed.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_field_count",
        "_framing_by_eof",
        "_head_request",
        "_headers",
        "_in_header_section",
        "_interim",
        "_parser",
        "_status",
        "_version",
        "_wire_bytes",
        "response",
        "reusable",
    )

    def __init__(self, *, head_request: bool = False) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = head_request
        self._headers: dict[str, str] = {}
        self._field_count = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._wire_bytes = 0
        self._status = 0
        self._version = ""
        self._in_header_section = True
        self._interim = False
        self._framing_by_eof = False
        self.response: RawResponse | None = None
        self.reusable = False

    # -- input -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> RawResponse | None:
        """The response once ``data`` completes it, else None; :class:`HTTPError` if refused."""
        if not self._wire_bytes and data[:1] not in (b"H", b""):
            # llhttp skips empty lines before a status line; an answer starts with its own.
            raise HTTPError("not an HTTP/1.1 response")
        self._wire_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise HTTPError("the peer switched protocols") from None
        except httptools.HttpParserError as exc:
            if self.response is None:
                if isinstance(exc.__context__, HTTPError):  # refused by one of our callbacks
                    raise exc.__context__ from None
                raise HTTPError(f"malformed response: {exc}") from None
            # Bytes after the response (or data after "Connection: close"): the response
            # stands, the connection is out of step with the peer and is not reused.
            self.reusable = False
        if self._wire_bytes - self._body_size > MAX_HEADER_BYTES:
            raise HTTPError("response header section, chunk framing or trailers too large")
        return self.response

    def feed_eof(self) -> RawResponse:
        """The peer closed the connection: the response if that is where it ends (RFC 9112
        §6.3 rule 8, no framing), else :class:`HTTPError`."""
        if self.response is not None:
            return self.response
        if self._framing_by_eof and not self._in_header_section:
            self._finish()
            assert self.response is not None
            return self.response
        raise HTTPError("connection closed before the response was complete")

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.response is not None:
            raise _Stop  # a second message where none was asked for

    def on_header(self, name: bytes, value: bytes) -> None:
        self._field_count += 1
        if self._field_count > MAX_HEADER_FIELDS:
            raise HTTPError("too many response header fields")
        if self._in_header_section:  # trailer fields are counted, never merged (RFC 9110 §6.5)
            headers = self._headers
            key, text = name.decode("latin-1").lower(), value.decode("latin-1").strip()
            headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        self._version = version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise HTTPError("not an HTTP/1.1 response")
        if not 100 <= status <= 599:
            raise HTTPError(f"invalid status code {status}")
        if status < 200:
            if status == 101:
                raise HTTPError("the peer switched protocols")
            self._interim = True  # RFC 9110 §15.2: skipped, the final response follows
            self._headers = {}
            return
        self._status = status
        self._in_header_section = False
        headers = self._headers
        coding = headers.get("transfer-encoding")
        if coding is not None and coding.lower() != "chunked":  # several fields: "a, chunked"
            raise HTTPError("unsupported Transfer-Encoding")
        if self._head_request:  # llhttp would read a body: the response ends here
            self._finish()
            raise _Stop
        if coding is not None or status == 204 or status == 304:
            return  # chunked (llhttp reads the chunks), or no body
        length = headers.get("content-length")
        if length is None:
            self._framing_by_eof = True
        elif int(length) > MAX_BODY_BYTES:  # digits only, one field: llhttp checked
            raise HTTPError("response body too large")

    def on_body(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size > MAX_BODY_BYTES:
            raise HTTPError("response body too large")
        self._body.append(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._finish()

    # -- result ----------------------------------------------------------------------------

    def _finish(self) -> None:
        self.reusable = (
            self._version == "1.1"
            and not self._framing_by_eof
            and not self._head_request
            and self._parser.should_keep_alive()
        )
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.response = RawResponse(self._status, self._headers, body)
