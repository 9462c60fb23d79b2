"""The IdP's token endpoint answering arbitrary bytes on the wire: status lines, header fields,
Content-Length and chunked framing that lie, conflict or break off.

A fake IdP on a loopback socket reads each request and writes the example's bytes, then closes;
the shim runs with its own connection pool (no ``http_client`` given), the code path production
uses for token exchanges. Property: a token answer or an RFC 6749 §5.2 JSON error, the IdP's
faults as 502/504 JSON with ``server_error`` or ``temporarily_unavailable``; never a 5xx other
than those and never the shim's secret in the answer or the logs.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.sealing import CODE, digest
from tests.peers.servers import bind_loopback
from tests.shim.kit import SECRET_KEY

from .properties import TOKEN_ERRORS, assert_json_error, assert_nothing_leaks, captured_logs
from .setups import CLIENT_REDIRECT, HTTP_PUBLIC_URL, pkce_pair
from .strategies import FORM, FUZZ

UPSTREAM_SECRET = "upstream-secret-that-must-stay-home"


class RawIdP:
    """Answers every request on a loopback socket with ``answer``, then closes the connection."""

    def __init__(self) -> None:
        self.sock = bind_loopback()
        self.sock.settimeout(0.2)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.answer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    _read_request(conn)
                    conn.sendall(self.answer)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


GOOD_BODY = json.dumps({"access_token": "at-from-idp", "token_type": "Bearer", "expires_in": 60}).encode()
ERROR_BODY = json.dumps({"error": "invalid_grant", "error_description": "used"}).encode()


# RFC 9112 §6.3: a response with these is invalid framing, and a client must not use it.
INVALID_FRAMING = frozenset({"negative", "text", "two", "bad-chunk", "huge", "gzip-chunked"})


@dataclass
class RawAnswer:
    wire: bytes
    framing: str


@st.composite
def raw_answers(draw: st.DrawFn, *, spoilable: tuple[str, ...] = ("status", "framing", "fields", "body")) -> RawAnswer:
    """An HTTP/1.1 answer with up to three of status line, framing, header fields and body spoiled."""
    spoil = draw(st.sets(st.sampled_from(spoilable), max_size=3))
    body = draw(st.sampled_from([GOOD_BODY, ERROR_BODY]))
    if "body" in spoil:
        body = draw(st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"{", b"[]", b"null", b"\xff\xfe{}", b'{"access_token": 1}'])))
    status = b"HTTP/1.1 200 OK" if body is GOOD_BODY else b"HTTP/1.1 400 Bad Request"
    if "status" in spoil:
        status = draw(
            st.one_of(
                st.sampled_from(
                    [
                        b"HTTP/1.0 200 OK",
                        b"HTTP/1.1 200",
                        b"HTTP/1.1 2000 OK",
                        b"HTTP/2 200",
                        b"HTTP/1.1 abc",
                        b"HTTP/1.1 -1 X",
                        b"garbage",
                        b"",
                        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
                        b"HTTP/1.1 204 No Content",
                        b"HTTP/1.1 304 Not Modified",
                        b"HTTP/1.1 503 Unavailable",
                        b"HTTP/1.1 200 OK\x00",
                    ]
                ),
                st.binary(max_size=40),
            )
        )
    framing = [b"Content-Length: %d" % len(body)]
    choice = "content-length"
    if "framing" in spoil:
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        choice = draw(
            st.sampled_from(
                ["short", "long", "negative", "text", "two", "chunked", "bad-chunk", "chunked-and-length", "none", "gzip-chunked", "huge", "trailers"]
            )
        )
        framing, body = {
            "short": ([b"Content-Length: %d" % max(len(body) - 3, 0)], body),
            "long": ([b"Content-Length: %d" % (len(body) + 50)], body),
            "negative": ([b"Content-Length: -1"], body),
            "text": ([b"Content-Length: ten"], body),
            "two": ([b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)], body),
            "chunked": ([b"Transfer-Encoding: chunked"], chunked),
            "bad-chunk": ([b"Transfer-Encoding: chunked"], b"zz\r\n" + body + b"\r\n0\r\n\r\n"),
            "chunked-and-length": ([b"Transfer-Encoding: chunked", b"Content-Length: 3"], chunked),
            "none": ([], body),
            "gzip-chunked": ([b"Transfer-Encoding: gzip, chunked"], chunked),
            "huge": ([b"Content-Length: 99999999999999999999"], body),
            "trailers": ([b"Transfer-Encoding: chunked"], chunked[:-2] + b"X-Trailer: 1\r\n\r\n"),
        }[choice]
    fields = [b"Content-Type: application/json", *framing]
    if "fields" in spoil:
        fields += draw(
            st.lists(
                st.one_of(
                    st.sampled_from([b"no-colon", b" folded: continuation", b"X: \x00", b"X-Long: " + b"a" * 70000, b"Connection: keep-alive", b"Content-Encoding: gzip", b": empty-name", b"Set-Cookie: \x80"]),
                    st.binary(max_size=30),
                ),
                max_size=3,
            )
        )
    return RawAnswer(status + b"\r\n" + b"\r\n".join(fields) + b"\r\n\r\n" + body, choice)


@dataclass
class Target:
    idp: RawIdP
    client: TestClient
    form: dict[str, str]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    idp = RawIdP()
    shim = OAuthShim(
        public_url=HTTP_PUBLIC_URL,
        upstream=Upstream.oidc(
            issuer=idp.url,
            authorization_endpoint=idp.url + "/authorize",
            token_endpoint=idp.url + "/token",
            client_id="shim-at-idp",
            client_secret=UPSTREAM_SECRET,
            timeout=2.0,
        ),
        secret_keys=[SECRET_KEY],
        client_metadata_documents=False,
    )
    with TestClient(shim.app, base_url=HTTP_PUBLIC_URL, raise_server_exceptions=False) as client:
        registered = client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]})
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce_pair()
        code = shim.context.sealer.seal(
            CODE, {"u": "upstream-code", "c": digest(client_id), "r": CLIENT_REDIRECT, "rg": 1, "cc": challenge, "sc": "openid"}
        )
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": CLIENT_REDIRECT, "client_id": client_id}
        yield Target(idp, client, form)
    idp.close()


@settings(FUZZ, max_examples=100)
@given(answer=raw_answers())
def test_token_exchange_survives_any_bytes_from_the_idp(target: Target, answer: RawAnswer) -> None:
    target.idp.answer = answer.wire
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = target.client.post("/oauth/token", data=target.form, headers={"content-type": FORM})
    event(f"status {response.status_code}")
    if response.status_code == 200:
        assert response.json()["access_token"] == "at-from-idp"
    else:
        assert_json_error(response, TOKEN_ERRORS)
    assert_nothing_leaks(response, logs, [UPSTREAM_SECRET, SECRET_KEY])


@settings(FUZZ, max_examples=100)
@given(answer=raw_answers(spoilable=("framing", "framing", "fields")))
def test_token_answer_with_invalid_framing_is_never_used(target: Target, answer: RawAnswer) -> None:
    """RFC 9112 §6.3: conflicting or malformed Content-Length leaves the message length unknown,
    and a transfer coding the shim does not decode (RFC 9112 §7: gzip under chunked) leaves the
    content unreadable; such an answer is an IdP fault (502), never a token."""
    target.idp.answer = answer.wire
    response = target.client.post("/oauth/token", data=target.form, headers={"content-type": FORM})
    event(f"{answer.framing}: status {response.status_code}")
    if answer.framing in INVALID_FRAMING:
        assert response.status_code == 502, (answer.wire[:300], response.status_code, response.text[:200])
