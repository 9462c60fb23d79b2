"""Fixtures for the client integration tests: the real IdP (oidc-provider) in three setups,
and the shim in front of the mcp SDK's MCPServer.

The setups (tests.peers.idp.CLIENT_SETUPS): set up like Auth0, spec-complete with RFC 9207 `iss`
(the shim passes the IdP's access tokens through), and set up like Google (opaque access tokens:
the shim issues its own).

The generic peer fixtures (`start_idp`, `serve_app`, `headless_browser`, `peer_logs`, ...)
live in tests/peers/fixtures.py; other suites take them with the same star import. The IdP
profiles live in tests/peers/idp.py (IdPProfile and IDP_PROFILES are re-exported here).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from tests.peers.fixtures import *  # noqa: F403 - fixtures and the failure-report hook
from tests.peers.idp import CLIENT_SETUPS, IDP_PROFILES, IdP, IdPProfile  # noqa: F401 - re-exported
from tests.peers.mcp_under_test import ShimServer, ShimSettings, serve_shim
from tests.peers.servers import RunningServer


@pytest.fixture(params=CLIENT_SETUPS, ids=lambda profile: profile.id)
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
        google_like=idp_profile.google_like,
    )


@pytest.fixture
def shim_server(
    idp: IdP, idp_profile: IdPProfile, public_url: str, serve_app: Callable[..., RunningServer]
) -> ShimServer:
    return serve_shim(public_url, idp, ShimSettings.for_profile(idp_profile), serve_app)
