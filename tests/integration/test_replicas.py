"""Several replicas of the shim (separate uvicorn processes, the same secret key) behind a
round-robin proxy, in front of the real IdP (oidc-provider): 100 concurrent logins whose steps
alternate between the replicas all succeed, while one replica is stopped and started again.

Each scripted login: register -> authorize -> consent -> the IdP's login (redirects, with a
cookie-keeping client) -> callback -> token -> refresh -> MCP initialize -> MCP tools/call.
The client names the replica each step should reach (``X-Replica``, its step number plus the
login's number), so consecutive steps of one login always land on different replicas.

What a load balancer is assumed to do (as nginx's ``proxy_next_upstream error`` and Envoy's
``connect-failure`` retries do): a request whose connection fails before any answer (refused,
or reset by a replica that is shutting down) is sent to the next replica. The replica is
stopped gracefully (SIGTERM: uvicorn stops accepting and finishes the requests it has read),
so such a request was never processed and resending it cannot spend a code twice; a code
spent twice would fail the login at the IdP (``invalid_grant``) and so this test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.peers.idp import IdP
from tests.peers.procs import tail
from tests.peers.servers import RunningServer, free_port

pytestmark = pytest.mark.integration

LOGINS = 100
REPLICAS = 2
# A replica is stopped once this many logins have completed (of LOGINS).
RESTART_AFTER = 25
# Logins that start only once that replica is down: however fast the others run, traffic
# meets the stopped replica mid-run (and the replica comes back while they go on).
STARTED_AFTER_THE_STOP = 20
ROOT = Path(__file__).resolve().parents[2]
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
# Bounded waits (not measurements): a busy machine gets plenty of room.
READY_WITHIN_S = 60.0
LOGIN_WITHIN_S = 120.0
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"content-encoding", b"te"}


# -- the replicas -------------------------------------------------------------------------------


@dataclass
class Replica:
    """One shim process on its own loopback port."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "tests.integration.replica_app:build",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, tail(self.log)
            try:
                if httpx.get(self.url + "/.well-known/oauth-authorization-server", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica on {self.port} did not start:\n{tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM: uvicorn stops accepting and finishes what it has read."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def replicas(idp: IdP, public_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REPLICA_PUBLIC_URL": public_url,
        "REPLICA_IDP_ISSUER": idp.issuer,
        "REPLICA_IDP_CLIENT_ID": idp.client_id,
        "REPLICA_IDP_CLIENT_SECRET": idp.client_secret,
        "REPLICA_SECRET_KEY": secrets.token_urlsafe(48),
    }
    started = [Replica(free_port(), env, tmp_path / f"replica-{n}.log") for n in range(REPLICAS)]
    try:
        for replica in started:
            replica.start()
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


@pytest.fixture
def idp(start_idp: Callable[..., IdP], public_url: str) -> IdP:
    return start_idp(
        redirect_uris=[public_url + "/oauth/callback"],
        resources=[public_url + "/mcp"],
        sends_iss=True,
        token_endpoint_auth_method="client_secret_basic",
    )


# -- the load balancer --------------------------------------------------------------------------


@dataclass
class RoundRobinProxy:
    """Sends each request to the replica its ``X-Replica`` names (else the next in turn), and
    to the next replica when the connection fails before any answer."""

    replicas: list[str]
    served: Counter[str] = field(default_factory=Counter)
    resent: int = 0
    turn: int = 0
    client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k not in (b"x-replica", b"accept-encoding")]
        hint = dict(scope["headers"]).get(b"x-replica")
        first = int(hint) if hint is not None else self._next()
        target = scope["raw_path"].decode("latin-1") + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "")
        assert self.client is not None
        for attempt in range(len(self.replicas)):
            base = self.replicas[(first + attempt) % len(self.replicas)]
            try:
                answer = await self.client.request(scope["method"], base + target, headers=headers, content=body)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, AttributeError):
                # AttributeError: a connection the stopping replica closed at once, before
                # httpcore read its details (anyio's socket is gone then; nothing was sent yet).
                self.resent += 1
                continue
            self.served[base] += 1
            out = [(k, v) for k, v in answer.headers.raw if k.lower() not in HOP_BY_HOP]
            out.append((b"content-length", str(len(answer.content)).encode()))
            await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
            await send({"type": "http.response.body", "body": answer.content})
            return
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    def _next(self) -> int:
        self.turn += 1
        return self.turn

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # A new connection per request: nothing is sent on a connection a stopping
                # replica is closing.
                self.client = httpx.AsyncClient(
                    limits=httpx.Limits(max_keepalive_connections=0), timeout=60.0, follow_redirects=False
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


# -- the scripted logins ------------------------------------------------------------------------


class LoginFailed(AssertionError):
    pass


@dataclass
class Login:
    number: int
    public_url: str
    http: httpx.AsyncClient
    step: int = 0

    def _replica(self) -> dict[str, str]:
        self.step += 1
        return {"X-Replica": str(self.number + self.step)}

    async def shim(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **self._replica()}  # type: ignore[dict-item]
        return await self.http.request(method, self.public_url + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
        if response.status_code != status:
            raise LoginFailed(f"{step}: {response.status_code} {response.text[:300]}")
        return response

    async def run(self) -> str:
        registered = self.expect(
            await self.shim("POST", "/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": f"login {self.number}"}),
            201, "register",
        ).json()
        client_id = registered["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code", "client_id": client_id, "redirect_uri": CLIENT_REDIRECT, "state": f"s{self.number}",
            "code_challenge": challenge, "code_challenge_method": "S256", "resource": self.public_url + "/mcp",
        }
        page = self.expect(await self.shim("GET", "/oauth/authorize", params=params), 200, "authorize")
        form = consent_fields(page.text)
        consent = self.expect(
            await self.shim("POST", "/oauth/consent", data={**form, "decision": "approve"}, headers={"Origin": self.public_url}),
            303, "consent",
        )
        callback = await self.idp_login(consent.headers["location"])
        relay = self.expect(await self.shim("GET", callback.removeprefix(self.public_url)), 302, "callback")
        code = parse_qs(urlsplit(relay.headers["location"]).query)["code"][0]
        token_form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier, "client_id": client_id, "resource": self.public_url + "/mcp",
        }
        tokens = self.expect(await self.shim("POST", "/oauth/token", data=token_form), 200, "token").json()
        refreshed = self.expect(
            await self.shim("POST", "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}),
            200, "refresh",
        ).json()
        bearer = {"Authorization": f"Bearer {refreshed['access_token']}", "Accept": "application/json, text/event-stream"}
        initialize = {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "replicas", "version": "1"}},
        }
        self.expect(await self.shim("POST", "/mcp", json=initialize, headers=bearer), 200, "MCP initialize")
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": f"login {self.number}"}}}
        answer = self.expect(
            await self.shim("POST", "/mcp", json=call, headers={**bearer, "MCP-Protocol-Version": "2025-06-18"}), 200, "MCP tools/call"
        ).json()
        return str(answer["result"]["content"][0]["text"])

    async def idp_login(self, url: str) -> str:
        """Follow the IdP's redirects (its scripted sign-in) to the shim's callback."""
        for _ in range(20):
            if url.startswith(self.public_url + "/oauth/callback"):
                return url
            response = await self.http.get(url)
            if not response.is_redirect:
                raise LoginFailed(f"IdP login: {response.status_code} {response.text[:300]}")
            url = urljoin(url, response.headers["location"])
        raise LoginFailed("IdP login: too many redirects")


def consent_fields(html: str) -> dict[str, str]:
    return {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


@dataclass
class Restart:
    """Stops replica 0 once ``after`` logins are done and starts it again, in a thread."""

    replica: Replica
    after: int
    #: Whether traffic has met the stopped replica: it stays down until then (or until every
    #: login is done), so the restart is seen mid-run however the logins are scheduled.
    met: Callable[[], bool] = lambda: True
    done_at_stop: int | None = None
    done_at_start: int | None = None


async def run_logins(public_url: str, restart: Restart) -> tuple[list[str], list[str]]:
    done = 0
    trigger = asyncio.Event()
    stopped = asyncio.Event()
    results: list[str] = []
    failures: list[str] = []

    async def one(number: int) -> None:
        nonlocal done
        if number >= LOGINS - STARTED_AFTER_THE_STOP:
            await stopped.wait()
        # Idle connections are dropped after 1 s, well before the servers' own keep-alive
        # timeout (5 s in uvicorn and Node.js): a request sent on a connection the server is
        # closing at that moment fails without an answer, a client bug no load balancer covers.
        limits = httpx.Limits(keepalive_expiry=1.0)
        async with httpx.AsyncClient(cookies=CookieJar(), timeout=LOGIN_WITHIN_S, follow_redirects=False, limits=limits) as http:
            try:
                results.append(await Login(number, public_url, http).run())
            except (LoginFailed, httpx.HTTPError, KeyError, ValueError) as exc:
                failures.append(f"login {number}: {type(exc).__name__}: {exc}")
        done += 1
        if done >= restart.after:
            trigger.set()

    async def restarter() -> None:
        await trigger.wait()
        restart.done_at_stop = done
        await asyncio.to_thread(restart.replica.stop)
        stopped.set()
        await asyncio.sleep(0.5)  # requests meanwhile reach the other replica
        down_until = asyncio.get_running_loop().time() + READY_WITHIN_S
        while not restart.met() and done < LOGINS and asyncio.get_running_loop().time() < down_until:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(restart.replica.start)
        await asyncio.to_thread(restart.replica.wait_ready)
        restart.done_at_start = done

    restarting = asyncio.ensure_future(restarter())
    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(LOGINS))), LOGIN_WITHIN_S)
    await asyncio.wait_for(restarting, READY_WITHIN_S)
    return results, failures


def test_concurrent_logins_alternating_between_replicas_survive_a_replica_restart(
    replicas: list[Replica], public_url: str, serve_app: Callable[..., RunningServer]
) -> None:
    proxy = RoundRobinProxy([replica.url for replica in replicas])
    serve_app(proxy)
    restart = Restart(replicas[0], RESTART_AFTER, met=lambda: proxy.resent > 0)
    results, failures = asyncio.run(run_logins(public_url, restart))
    assert failures == [], "\n".join(failures[:10])
    assert sorted(results) == sorted(f"login {n}" for n in range(LOGINS))
    # The restart happened while logins were running, and traffic met the stopped replica.
    assert restart.done_at_stop is not None and restart.done_at_stop < LOGINS
    assert proxy.resent > 0
    assert all(proxy.served[replica.url] > 0 for replica in replicas)

