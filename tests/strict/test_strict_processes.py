"""Two ``mcp-oauth-shim serve`` processes (uvicorn) with the same secret keys and the same
redis-server, as two replicas behind a load balancer: a code redeemed at one is refused at the
other, and the IdP (the development IdP under uvicorn, its token calls counted) sees one
exchange."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_oauth_shim.dev_idp import DevIdP
from tests.peers.procs import PeerStartError, stop, tail
from tests.peers.redis_server import RedisServer
from tests.peers.servers import bind_loopback, free_port, serve_asgi

from .shim_replicas import CountingApp, pkce_pair

pytestmark = [pytest.mark.redis, pytest.mark.integration]

CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_START_TIMEOUT_S = 30.0


@contextmanager
def shim_process(port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """``mcp-oauth-shim serve`` on 127.0.0.1:``port``, until the block ends; its URL."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_oauth_shim", "serve", "--port", str(port), "--log-level", "warning"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise PeerStartError(f"the shim exited with {process.returncode}; log tail:\n{tail(log)}")
            try:
                if httpx.get(url + "/.well-known/oauth-authorization-server", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise PeerStartError(f"the shim did not answer within {_START_TIMEOUT_S}s; log tail:\n{tail(log)}")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def login(shim: httpx.Client, idp_url: str) -> tuple[str, str, str]:
    """Register, authorize, approve, sign in at the IdP, come back: client_id, code, verifier."""
    client_id = shim.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    verifier, challenge = pkce_pair()
    page = shim.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert page.status_code == 200, page.text
    form = {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}
    consent = shim.post("/oauth/consent", data={**form, "decision": "approve"})
    assert consent.status_code == 303, consent.text
    at_idp = httpx.get(consent.headers["location"], follow_redirects=False)
    assert at_idp.status_code in (302, 303), at_idp.text
    callback = urlsplit(at_idp.headers["location"])
    relay = shim.get(callback.path + "?" + callback.query)
    assert relay.status_code == 302, relay.text
    code = parse_qs(urlsplit(relay.headers["location"]).query)["code"][0]
    return client_id, code, verifier


def test_a_code_redeemed_at_one_process_is_refused_at_the_other(redis_server: RedisServer, tmp_path: Path) -> None:
    sock = bind_loopback()
    idp_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    first_port, second_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{first_port}"  # the load balancer's address: the first replica's
    dev = DevIdP(issuer=idp_url, redirect_uris=[public_url + "/oauth/callback"], auto_approve=True)
    idp = CountingApp(dev.app)
    env = {
        "MCP_OAUTH_SHIM_PUBLIC_URL": public_url,
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": idp_url,
        "MCP_OAUTH_SHIM_CLIENT_ID": dev.client_id,
        "MCP_OAUTH_SHIM_CLIENT_SECRET": dev.client_secret,
        "MCP_OAUTH_SHIM_SECRET_KEYS": "p" * 48,
        "MCP_OAUTH_SHIM_REDIS_URL": redis_server.url,
    }
    with ExitStack() as stack:
        stack.enter_context(serve_asgi(idp, sock))
        first = stack.enter_context(shim_process(first_port, env, tmp_path / "first.log"))
        second = stack.enter_context(shim_process(second_port, env, tmp_path / "second.log"))
        first_client = stack.enter_context(httpx.Client(base_url=first, timeout=10))
        second_client = stack.enter_context(httpx.Client(base_url=second, timeout=10))
        client_id, code, verifier = login(first_client, idp_url)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        }
        redeemed = first_client.post("/oauth/token", data=form)
        replayed = second_client.post("/oauth/token", data=form)

    assert redeemed.status_code == 200, redeemed.text
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")
    assert idp.requests["/oauth/token"] == 1
