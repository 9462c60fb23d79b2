"""Fixtures for the client integration tests: the real IdP (oidc-provider, set up like Auth0)
in two profiles, and the shim in front of the mcp SDK's MCPServer.

The generic peer fixtures (`start_idp`, `serve_app`, `headless_browser`, `peer_logs`, ...)
live in tests/peers/fixtures.py; other suites take them with the same star import.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.peers.fixtures import *  # noqa: F403 - fixtures and the failure-report hook
from tests.peers.idp import IdP
from tests.peers.mcp_under_test import ShimServer, ShimSettings, build_shim_app
from tests.peers.servers import RunningServer


@dataclass(frozen=True)
class IdPProfile:
    """How the upstream IdP behaves, and how the shim is told to talk to it."""

    id: str
    sends_iss: bool  # RFC 9207 `iss` on the authorization response
    audience_param: str  # Auth0's `audience=` or RFC 8707 `resource=`
    token_endpoint_auth_method: str


IDP_PROFILES = (
    # Auth0 as it is: no `iss` on the redirect, `audience=`, client_secret_post.
    IdPProfile("auth0-like-no-iss", False, "audience", "client_secret_post"),
    # A spec-complete OIDC provider: RFC 9207 `iss`, RFC 8707 `resource=`, client_secret_basic.
    IdPProfile("rfc9207-iss", True, "resource", "client_secret_basic"),
)


@pytest.fixture(params=IDP_PROFILES, ids=lambda profile: profile.id)
def idp_profile(request: pytest.FixtureRequest) -> IdPProfile:
    return request.param


@pytest.fixture
def public_url(server_socket: socket.socket) -> str:
    host, port = server_socket.getsockname()[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def idp(start_idp: Callable[..., IdP], idp_profile: IdPProfile, public_url: str) -> IdP:
    """The IdP with the shim's one callback registered exactly, and the MCP endpoint as its API."""
    return start_idp(
        redirect_uris=[public_url + "/oauth/callback"],
        resources=[public_url + "/mcp"],
        sends_iss=idp_profile.sends_iss,
        token_endpoint_auth_method=idp_profile.token_endpoint_auth_method,
    )


@pytest.fixture
def shim_server(
    idp: IdP, idp_profile: IdPProfile, public_url: str, serve_app: Callable[..., RunningServer]
) -> ShimServer:
    app = build_shim_app(public_url, idp, ShimSettings(audience_param=idp_profile.audience_param))
    running = serve_app(app)
    return ShimServer(public_url=running.url, mcp_url=running.url + "/mcp", idp=idp, requests=running.requests)
