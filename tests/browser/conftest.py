"""Fixtures for the browser tests: Debian's Chromium under Playwright, the real IdP with HTML
sign-in pages, the shim in front of the mcp SDK's MCPServer, and the client's loopback
redirect listener."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.peers.fixtures import *  # noqa: F403 - fixtures and the failure-report hook
from tests.peers.idp import IDP_PROFILES, IdP
from tests.peers.mcp_under_test import ShimServer, ShimSettings, build_shim_app
from tests.peers.servers import RunningServer

from .chromium import CHROMIUM, CHROMIUM_ARGS, skip_reason
from .redirect_receiver import RedirectReceiver, receive_redirect

# Auth0 as it is (no RFC 9207 `iss` from the IdP, `audience=`): the profile most users have.
PROFILE = IDP_PROFILES[0]
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    # Module scope, not session: the sync API owns an event loop on this thread while it runs,
    # and other suites call anyio.run on the same thread.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    # Playwright gives each launch a fresh, temporary --user-data-dir.
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
    yield browser
    browser.close()


@pytest.fixture
def open_page(chromium: Browser) -> Iterator[Callable[..., Page]]:
    """`open_page(width=..., height=...)`: a page in a fresh context (no cookies: a first visit)."""
    contexts: list[BrowserContext] = []

    def open_(width: int = DESKTOP["width"], height: int = DESKTOP["height"]) -> Page:
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()


@pytest.fixture
def public_url(server_socket: socket.socket) -> str:
    host, port = server_socket.getsockname()[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def idp(start_idp: Callable[..., IdP], public_url: str) -> IdP:
    """The IdP with real HTML sign-in and approval pages."""
    return start_idp(
        redirect_uris=[public_url + "/oauth/callback"],
        resources=[public_url + "/mcp"],
        sends_iss=PROFILE.sends_iss,
        token_endpoint_auth_method=PROFILE.token_endpoint_auth_method,
        login_form=True,
    )


@pytest.fixture
def shim_server(idp: IdP, public_url: str, serve_app: Callable[..., RunningServer]) -> ShimServer:
    app = build_shim_app(public_url, idp, ShimSettings(audience_param=PROFILE.audience_param))
    running = serve_app(app)
    return ShimServer(public_url=running.url, mcp_url=running.url + "/mcp", idp=idp, requests=running.requests)


@pytest.fixture
def receiver() -> Iterator[RedirectReceiver]:
    with receive_redirect() as listening:
        yield listening


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages are photographed (kept with pytest's temporary directories)."""
    return tmp_path_factory.mktemp("screenshots")

