"""A misbehaving identity provider on a loopback port, for fault injection over real sockets.

It serves discovery, JWKS, a token endpoint (codes and refresh tokens), revocation and RFC 7662
introspection, runs in the test's event loop, and counts every request per endpoint and every
code and refresh token it receives (to show that the shim never sends one twice). Each endpoint
can be given a :data:`Fault`; the whole IdP can be made unreachable (connection refused) or
unanswering at connect (a listening socket whose accept queue is full, so the SYN is dropped).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "shim-client"
CLIENT_SECRET = "shim-secret-" + "x" * 20

# One key pair per test session: key generation is slow on a busy machine.
_KEYS: list[RSAKey] = []


def signing_key(kid: str) -> RSAKey:
    for key in _KEYS:
        if key.kid == kid:
            return key
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"}, private=True)
    _KEYS.append(key)
    return key


Writer = asyncio.StreamWriter
Reader = asyncio.StreamReader
# A fault answers (or does not answer) one request in place of the endpoint.
Fault = Callable[[Reader, Writer], Awaitable[None]]


def _response(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def answer(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> Fault:
    async def fault(reader: Reader, writer: Writer) -> None:
        writer.write(_response(status, body, content_type, **headers))
        await writer.drain()

    return fault


async def no_answer(reader: Reader, writer: Writer) -> None:
    """Reads the request and never answers (until the client gives up and closes)."""
    await reader.read()


async def trickled_body(reader: Reader, writer: Writer) -> None:
    """A 200 whose JSON body arrives one byte every 0.2 s: complete only after ~13 s."""
    body = json.dumps({"padding": "x" * 50}).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    for byte in body:
        await asyncio.sleep(0.2)
        if writer.is_closing() or reader.at_eof():
            return
        writer.write(bytes([byte]))
        await writer.drain()


FAULTS: dict[str, Fault] = {
    "read timeout": no_answer,
    "body trickled past the deadline": trickled_body,
    "500": answer(500, b'{"error":"server_error"}'),
    "502 with an HTML page": answer(502, b"<html><body>Bad gateway</body></html>", "text/html"),
    "503 with Retry-After": answer(503, b'{"error":"temporarily_unavailable"}', Retry_After="7"),
    "429 with Retry-After": answer(429, b"<html>Too many requests</html>", "text/html", Retry_After="7"),
    "HTML instead of JSON": answer(200, b"<!doctype html><title>Sign in</title>", "text/html"),
}


class FaultyIdP:
    """The IdP; ``start()`` it inside the test's event loop, ``close()`` it at the end."""

    def __init__(self, audience: str) -> None:
        self.audience = audience
        self.faults: dict[str, Fault] = {}
        self.requests: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.refresh_tokens: Counter[str] = Counter()
        self.revoked: list[str] = []
        self.active: dict[str, dict[str, Any]] = {}
        self.keys = [signing_key("idp-key-1")]
        self.discovery_changes: dict[str, Any] = {}
        self.gone: set[str] = set()  # paths that answer 404 (an endpoint the IdP moved away)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._blocker: list[socket.socket] = []
        self._open: set[Writer] = set()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse_connections(self) -> None:
        """Stop listening and hang up: connections are refused until :meth:`recover`."""
        assert self._server is not None
        for writer in list(self._open):
            writer.close()
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def drop_connections(self) -> None:
        """Listen without accepting, with a full accept queue: a connect never completes."""
        await self.refuse_connections()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(0)
        filler = socket.socket()
        filler.connect(("127.0.0.1", self.port))
        self._blocker = [listener, filler]

    async def recover(self) -> None:
        """Healthy again: listening, no faults."""
        self.faults.clear()
        for sock in self._blocker:
            sock.close()
        self._blocker = []
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        for writer in list(self._open):
            writer.close()
        for sock in self._blocker:
            sock.close()
        if self._server is not None:
            self._server.close()

    def move(self, endpoint: str) -> None:
        """The IdP moves ``endpoint`` (``token`` or ``jwks``): discovery names the new URL,
        the old one answers 404."""
        key = {"token": "token_endpoint", "jwks": "jwks_uri"}[endpoint]
        self.discovery_changes[key] = f"{self.issuer}/{endpoint}-moved"
        self.gone.add(f"/{endpoint}")

    # -- tokens -----------------------------------------------------------------------------

    def sign(self, kid: str | None = None, **claims: Any) -> str:
        key = signing_key(kid) if kid else self.keys[0]
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": self.audience,
            "client_id": CLIENT_ID,
            "scope": "openid",
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(8),
            **claims,
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, payload, key)

    # -- HTTP -------------------------------------------------------------------------------

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        self._open.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                path = target.split("?")[0]
                name = "gone" if path in self.gone else self._endpoint(method, path)
                self.requests[name] += 1
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if name == "token":
                    if form.get("grant_type") == "authorization_code":
                        self.codes[form.get("code", "")] += 1
                    else:
                        self.refresh_tokens[form.get("refresh_token", "")] += 1
                fault = self.faults.get(name)
                if fault is not None:
                    await fault(reader, writer)
                    if writer.is_closing():
                        return
                    continue
                writer.write(self._healthy(name, form))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    @staticmethod
    def _endpoint(method: str, path: str) -> str:
        return {
            ("GET", "/.well-known/openid-configuration"): "discovery",
            ("GET", "/jwks"): "jwks",
            ("GET", "/jwks-moved"): "jwks",
            ("POST", "/token"): "token",
            ("POST", "/token-moved"): "token",
            ("POST", "/revoke"): "revoke",
            ("POST", "/introspect"): "introspect",
        }.get((method, path), "unknown")

    def _healthy(self, name: str, form: dict[str, str]) -> bytes:
        if name == "discovery":
            doc = {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "revocation_endpoint": self.issuer + "/revoke",
                "introspection_endpoint": self.issuer + "/introspect",
                "jwks_uri": self.issuer + "/jwks",
                **self.discovery_changes,
            }
            return _response(200, json.dumps(doc).encode())
        if name == "jwks":
            keys = [key.as_dict(private=False) for key in self.keys]
            return _response(200, json.dumps({"keys": keys}).encode())
        if name == "token":
            tokens = {
                "access_token": self.sign(),
                "token_type": "Bearer",
                "expires_in": 600,
                "refresh_token": "idp-refresh-" + secrets.token_urlsafe(16),
                "scope": "openid",
            }
            return _response(200, json.dumps(tokens).encode())
        if name == "revoke":
            self.revoked.append(form.get("token", ""))
            return _response(200, b"")
        if name == "introspect":
            return _response(200, json.dumps(self.active.get(form.get("token", ""), {"active": False})).encode())
        return _response(404, b'{"error":"not_found"}')
