"""pytest fixtures for suites that run real peers. A conftest.py takes them with
`from tests.peers.fixtures import *` (hooks included).

- `peers_installed` (session): Node 22 + npm peers installed from the lock, once.
- `idp_jwks_file` (session): where the IdP keeps its signing key for the whole session.
- `peer_logs`: register a log tail under a name; printed in the report when the test fails.
- `server_socket`: a listening loopback socket, so the server URL is known before the IdP
  starts (the IdP must know the server's callback as an exact redirect URI).
- `start_idp`: start an IdP (`run_idp` arguments), stopped after the test.
- `serve_app`: serve an ASGI app under uvicorn (on `server_socket` by default), stopped after.
- `headless_browser`: a `$BROWSER` command for client processes (mcp-remote).
- `start_github_fake`: serve a fake GitHub (`FakeGitHub` arguments), stopped after the test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp

from . import node
from .browser_cli import BrowserCommand, install_browser_command
from .github_fake import FakeGitHub, run_github_fake
from .idp import IdP, run_idp
from .servers import RunningServer, bind_loopback, serve_asgi

__all__ = [
    "PeerLogs",
    "headless_browser",
    "idp_jwks_file",
    "peer_logs",
    "peers_installed",
    "pytest_runtest_makereport",
    "serve_app",
    "server_socket",
    "start_github_fake",
    "start_idp",
]

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether a test failed, so fixtures can print peer logs in their teardown."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


class PeerLogs:
    """Named log tails of the peers a test started."""

    def __init__(self) -> None:
        self._sources: list[tuple[str, Callable[[], str]]] = []

    def add(self, name: str, tail: Callable[[], str]) -> None:
        self._sources.append((name, tail))

    def dump(self) -> str:
        return "\n".join(f"----- {name} -----\n{tail()}" for name, tail in self._sources)


@pytest.fixture
def peer_logs(request: pytest.FixtureRequest) -> Iterator[PeerLogs]:
    logs = PeerLogs()
    yield logs
    if request.node.stash.get(_FAILED, False):
        # Teardown output lands in the failure report under "Captured stdout teardown".
        print(logs.dump())


@pytest.fixture(scope="session")
def peers_installed() -> None:
    node.ensure_installed()


@pytest.fixture(scope="session")
def idp_jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # idp.mjs creates the key on first start and reuses it on every later one.
    return tmp_path_factory.mktemp("idp-keys") / "jwks.json"


@pytest.fixture
def server_socket() -> Iterator[socket.socket]:
    sock = bind_loopback()
    yield sock
    sock.close()


@pytest.fixture
def start_idp(
    peers_installed: None, idp_jwks_file: Path, tmp_path: Path, peer_logs: PeerLogs
) -> Iterator[Callable[..., IdP]]:
    """`start_idp(redirect_uris=[...], resources=[...], sends_iss=..., token_endpoint_auth_method=...)`."""
    with ExitStack() as stack:
        count = 0

        def start(**kwargs: Any) -> IdP:
            nonlocal count
            count += 1
            log = tmp_path / f"idp-{count}.log"
            idp = stack.enter_context(run_idp(jwks_file=idp_jwks_file, log=log, **kwargs))
            peer_logs.add(f"IdP {idp.issuer} (stderr)", idp.log_tail)
            return idp

        yield start


@pytest.fixture
def serve_app(server_socket: socket.socket, peer_logs: PeerLogs) -> Iterator[Callable[..., RunningServer]]:
    """`serve_app(asgi_app, sock=None)`: the first call serves on `server_socket` by default."""
    with ExitStack() as stack:
        used_default = False

        def serve(app: ASGIApp, sock: socket.socket | None = None) -> RunningServer:
            nonlocal used_default
            if sock is None:
                if used_default:
                    raise RuntimeError("server_socket is already serving; pass a socket from bind_loopback()")
                sock, used_default = server_socket, True
            running = stack.enter_context(serve_asgi(app, sock))
            peer_logs.add(f"server under test {running.url} (requests)", lambda: str(running.requests))
            return running

        yield serve


@pytest.fixture
def headless_browser(tmp_path: Path, peer_logs: PeerLogs) -> Iterator[BrowserCommand]:
    browser = install_browser_command(tmp_path / "browser")
    peer_logs.add("headless browser", browser.log_tail)
    yield browser
    browser.stop_followers()


@pytest.fixture
def start_github_fake(peer_logs: PeerLogs) -> Iterator[Callable[..., FakeGitHub]]:
    """`start_github_fake(callback_url=..., expiring_tokens=..., user=GitHubUser(...))`: a
    running fake GitHub; its endpoints are `github.upstream_options()`."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> FakeGitHub:
            github, running = stack.enter_context(run_github_fake(FakeGitHub(**kwargs)))
            peer_logs.add(f"fake GitHub {running.url} (requests)", lambda: str(running.requests))
            return github

        yield start
