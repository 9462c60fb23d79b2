"""A streaming reverse proxy to an MCP server in any language (``serve --mcp-upstream``).

The shim guards the public MCP endpoint (``shim.protect``) and forwards each authorised request
to the real server. What it does to a request, and why:

- hop-by-hop headers (RFC 9110 §7.6.1: ``Connection`` and the fields it names, ``Keep-Alive``,
  ``TE``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) are per connection and are dropped;
- ``Authorization`` carries the user's IdP access token; it is dropped unless the operator
  asks for it (``forward_authorization``), since the MCP server may log or relay it;
- ``Cookie`` is dropped: the shim's consent and browser-binding cookies live on this origin
  and are none of the MCP server's business; MCP clients use ``Mcp-Session-Id`` instead,
  which passes through both ways like every other end-to-end header;
- ``Host`` becomes the upstream's (so its DNS-rebinding checks see its own name) and the
  original one travels in ``X-Forwarded-Host`` with ``X-Forwarded-Proto`` and ``-For``;
- ``Mcp-Session-Id`` is bound to the user it was handed to (MCP 2025-11-25 "Security Best
  Practices", Session Hijacking). The server behind the proxy does not know who calls, so it
  cannot do that itself: the client gets the server's session id sealed together with a digest
  of the caller's identity (the ``mcp`` SDK's session owner: client, issuer, subject), and a
  request reaches the server with the plain id only when it carries the credential of that
  same user. Any other session id is answered as an unknown session, 404 (MCP 2025-11-25
  "Transports", Session Management), without a request to the server;
- the legacy HTTP+SSE transport (MCP 2024-11-05) carries its session id in the query of the
  URL its stream's first event, ``endpoint``, names: the proxy maps that URL to the public path
  (a stream whose URL has no public one ends there, logged) and seals the id as above; a
  ``session_id`` / ``sessionId`` query parameter reaches the server opened, or not at all.

Responses stream chunk by chunk (Server-Sent Events arrive as they are written) and bytes are
passed on undecoded, so ``Content-Encoding`` stays true. When the client goes away the upstream
response is closed. An unreachable upstream is a 502, a slow connect a 504, never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import httpx
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from .legacy_sse import EndpointEventRewriter, EndpointOutsideProxy, map_session_parameters
from .logs import without_password
from .media_types import EVENT_STREAM, is_media_type
from .outbound import TRANSPORT_ERRORS, outbound_client
from .sealing import Sealer, SealError

__all__ = ["MCPReverseProxy"]

logger = logging.getLogger("mcp_oauth_shim.mcp_proxy")

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade"}
)
# Set by us (host, forwarding info) or recomputed by httpx (content-length) for the upstream.
_REPLACED_REQUEST_HEADERS = frozenset(
    {"host", "content-length", "cookie", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"}
)
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

SESSION_HEADER = "mcp-session-id"
_SESSION_PURPOSE = "mcp-proxy-session"
#: How long a sealed session id stays usable. The server ends idle sessions long before (the
#: SDK's default: 30 minutes); this only bounds the life of a sealed value that leaked.
SESSION_MAX_AGE = 30 * 24 * 3600
# The SDK's own answer for an unknown session (mcp.server.streamable_http_manager).
_SESSION_NOT_FOUND = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'


# Encoded dots, slashes, backslashes, "?" and "#", or a raw backslash, in the part after the mount.
_UNSAFE_SUFFIX = re.compile(r"%(2e|2f|5c|3f|23|00)|\\", re.IGNORECASE)


class MCPReverseProxy:
    """ASGI app forwarding ``mount_path`` (and below) to ``upstream_url`` (and below).

    ``http``: the client for upstream calls (default: no read timeout, since an SSE stream may
    stay quiet for minutes; connect/write/pool bounded). ``sealer`` seals the session ids
    handed to clients; pass the shim's (``shim.context.sealer``) so that every replica sharing
    its ``secret_keys`` opens them (default: a key of this process alone).
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        mount_path: str,
        forward_authorization: bool = False,
        http: httpx.AsyncClient | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        sealer: Sealer | None = None,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"MCP upstream must be an http(s) URL without query or fragment, got {upstream_url!r}")
        self.upstream_url = upstream_url.rstrip("/")
        self.mount_path = mount_path.rstrip("/")
        self.forward_authorization = forward_authorization
        self.max_body_bytes = max_body_bytes
        self.sealer = sealer or Sealer([secrets.token_bytes(32)])
        self._owns_http = http is None
        self._http = http or outbound_client(httpx.Timeout(connect=10.0, read=None, write=60.0, pool=10.0))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def target_url(self, raw_path: bytes, query_string: bytes) -> str | None:
        """The upstream URL for a request path, or None when the path would leave the MCP path.

        Built from the raw (still percent-encoded) path: decoding first would let
        ``/mcp/%2e%2e/admin`` or ``/mcp/x%3Fq=1`` reach other upstream paths or add a query.
        """
        path = raw_path.decode("latin-1")
        if path != self.mount_path and not path.startswith(self.mount_path + "/"):
            return None
        suffix = path[len(self.mount_path) :]
        if _UNSAFE_SUFFIX.search(suffix) or any(seg in (".", "..") for seg in suffix.split("/")):
            return None
        url = self.upstream_url + suffix
        return url + "?" + query_string.decode("latin-1") if query_string else url

    def request_headers(self, scope: Scope) -> list[tuple[str, str]]:
        """The client's headers as the upstream should see them (see the module docstring)."""
        raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        dropped = _hop_by_hop(value for name, value in raw if name == "connection") | _REPLACED_REQUEST_HEADERS
        if not self.forward_authorization:
            dropped.add("authorization")
        # A method override would let a request authorised as one method act as another.
        dropped |= {"x-http-method-override", "x-http-method", "x-method-override"}
        headers = [(name, value) for name, value in raw if name not in dropped]
        original_host = next((value for name, value in raw if name == "host"), None)
        if original_host:
            headers.append(("x-forwarded-host", original_host))
        headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", str(client[0])))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not proxied
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        owner = session_owner(scope)
        query = map_session_parameters(
            scope.get("query_string", b"").decode("latin-1"), lambda sealed: self.open_session_id(sealed, owner)
        )
        url = self.target_url(scope.get("raw_path") or scope["path"].encode(), (query or "").encode("latin-1"))
        if url is None:
            await _json(scope, receive, send, 400, "invalid_request", "This path is not served here.")
            return
        headers = self._unsealed_sessions(self.request_headers(scope), owner)
        if headers is None or query is None:
            await _send_session_not_found(send)
            return
        request = self._http.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException:
            logger.warning("MCP upstream timed out: %s", without_password(self.upstream_url))
            await _json(scope, receive, send, 504, "temporarily_unavailable", "The MCP server behind the shim did not answer in time.")
            return
        except TRANSPORT_ERRORS as exc:
            logger.warning("MCP upstream unreachable: %s (%s)", without_password(self.upstream_url), type(exc).__name__)
            await _json(scope, receive, send, 502, "temporarily_unavailable", "The MCP server behind the shim could not be reached.")
            return
        try:
            answer_headers = self._sealed_sessions(_response_headers(response), owner)
            rewriter = None
            if scope["method"] == "GET" and _is_plain_event_stream(response):
                rewriter = EndpointEventRewriter(lambda endpoint: self.public_endpoint(endpoint, url, owner))
                answer_headers = [(name, value) for name, value in answer_headers if name != b"content-length"]
            await send({"type": "http.response.start", "status": response.status_code, "headers": answer_headers})
            await self._stream(response, receive, send, rewriter)
        finally:
            await response.aclose()

    def public_endpoint(self, endpoint: str, stream_url: str, owner: str) -> str:
        """The URL a legacy ``endpoint`` event should name for the client: ``endpoint`` is
        resolved against ``stream_url`` (the upstream URL of the stream), mapped below the
        mount path, its session id sealed for ``owner``. Raises :class:`EndpointOutsideProxy`
        when it lies outside the upstream URL (no public URL reaches it) or does not parse."""
        try:
            target, upstream = urlsplit(urljoin(stream_url, endpoint)), urlsplit(self.upstream_url)
        except ValueError:  # e.g. an unclosed IPv6 bracket in an absolute URL
            raise EndpointOutsideProxy("(an unparsable URL)") from None
        inside = target.path == upstream.path or target.path.startswith(upstream.path.rstrip("/") + "/")
        if (target.scheme, target.netloc) != (upstream.scheme, upstream.netloc) or not inside:
            raise EndpointOutsideProxy(target.path)
        query = map_session_parameters(target.query, lambda session_id: self.seal_session_id(session_id, owner))
        path = (self.mount_path + target.path[len(upstream.path) :]) or "/"
        return f"{path}?{query}" if query else path

    def seal_session_id(self, session_id: str, owner: str) -> str:
        """The id the client gets for the server's ``session_id``, usable by ``owner`` only
        (a :func:`session_owner` digest): base64url and dots, visible ASCII as MCP requires."""
        return self.sealer.seal(_SESSION_PURPOSE, [session_id, owner])

    def open_session_id(self, sealed: str, owner: str) -> str | None:
        """The server's session id inside ``sealed``; ``None`` unless it was sealed here for
        ``owner`` within :data:`SESSION_MAX_AGE` (forged, another user's, or too old)."""
        try:
            value = self.sealer.unseal(_SESSION_PURPOSE, sealed, max_age=SESSION_MAX_AGE)
        except SealError:
            return None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
            return None
        return value[0] if hmac.compare_digest(value[1], owner) else None

    def _unsealed_sessions(self, headers: list[tuple[str, str]], owner: str) -> list[tuple[str, str]] | None:
        """``headers`` with each ``Mcp-Session-Id`` opened to the server's own id; ``None`` when
        one does not open for ``owner``."""
        opened = []
        for name, value in headers:
            if name == SESSION_HEADER:
                session_id = self.open_session_id(value, owner)
                if session_id is None:
                    return None
                value = session_id
            opened.append((name, value))
        return opened

    def _sealed_sessions(self, headers: list[tuple[bytes, bytes]], owner: str) -> list[tuple[bytes, bytes]]:
        """The server's answer headers with each ``Mcp-Session-Id`` sealed for ``owner``."""
        return [
            (name, self.seal_session_id(value.decode("latin-1"), owner).encode("ascii"))
            if name == SESSION_HEADER.encode()
            else (name, value)
            for name, value in headers
        ]

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The client's body; ``None`` when there is nothing more to do: the client went away,
        or its body is over ``max_body_bytes`` and was answered with 413."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _json(scope, receive, send, 413, "invalid_request", "The request body is too large.")
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _stream(
        self, response: httpx.Response, receive: Receive, send: Send, rewriter: EndpointEventRewriter | None
    ) -> None:
        """Copy the body as it arrives (through ``rewriter`` if given); stop as soon as the
        client disconnects."""

        async def pump() -> None:
            try:
                async for chunk in response.aiter_raw():
                    if rewriter is not None:
                        chunk = rewriter.feed(chunk)
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                tail = rewriter.flush() if rewriter is not None else b""
            except EndpointOutsideProxy as outside:
                logger.warning(
                    "The MCP server's legacy SSE endpoint event names %s, outside %s: no public URL reaches it; "
                    "stream ended. Point --mcp-upstream at a URL above both the SSE and the message path.",
                    outside.args[0],
                    without_password(self.upstream_url),
                )
                tail = b""
            await send({"type": "http.response.body", "body": tail, "more_body": False})

        async def client_gone() -> None:
            message: Message = {"type": ""}
            while message["type"] != "http.disconnect":
                message = await receive()

        pumping = asyncio.ensure_future(pump())
        watching = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, watching):
                task.cancel()
            await asyncio.gather(pumping, watching, return_exceptions=True)
        failure = None if pumping.cancelled() else pumping.exception()  # both tasks are done here
        if isinstance(failure, httpx.HTTPError):
            # Headers are already sent: all we can do is end the stream early.
            logger.warning("MCP upstream stream broke off (%s)", type(failure).__name__)
        elif failure is not None:
            raise failure


def session_owner(scope: Scope) -> str:
    """A digest of who the request is authenticated as: the ``mcp`` SDK's session owner
    (client, issuer, subject of the verified token ``shim.protect`` put in ``scope["user"]``);
    the empty string for a request without one."""
    access = getattr(scope.get("user"), "access_token", None)
    if access is None:
        return ""
    issuer = (access.claims or {}).get("iss")
    identity = [access.client_id, None if issuer is None else str(issuer), access.subject]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


async def _send_session_not_found(send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_SESSION_NOT_FOUND)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": _SESSION_NOT_FOUND})


def _is_plain_event_stream(response: httpx.Response) -> bool:
    """A Server-Sent Events body the proxy can read: not content-encoded."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return (
        response.status_code == 200
        and is_media_type(response.headers.get("content-type"), EVENT_STREAM)
        and encoding == "identity"
    )


def _hop_by_hop(connection_headers: Iterable[str]) -> set[str]:
    """HOP_BY_HOP and the fields the `Connection` headers name (RFC 9110 §7.6.1)."""
    dropped = set(HOP_BY_HOP)
    for value in connection_headers:
        dropped.update(token.strip().lower() for token in value.split(","))
    return dropped


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    dropped = _hop_by_hop(response.headers.get_list("connection"))
    return [(name.lower(), value) for name, value in response.headers.raw if name.decode("latin-1").lower() not in dropped]


async def _json(scope: Scope, receive: Receive, send: Send, status: int, error: str, description: str) -> None:
    response = JSONResponse({"error": error, "error_description": description}, status_code=status)
    await response(scope, receive, send)
