"""The IdP's access tokens in the shapes other real IdPs mint, passed through the shim.

The real IdP (oidc-provider, tests/peers/idp.mjs) signs with another algorithm or rewrites its
RFC 9068 tokens into Keycloak's or Okta's shape (`--jwt-alg`, `--token-shape`); the shim is
configured as a user of that IdP configures it (`Upstream.oidc` with the access token profile
of the preset whose tokens look like that). The mcp SDK's OAuth client logs in through the shim
and calls a tool, which must see the IdP's user; a token of another shape than the configured
profile is refused with an RFC 6750 §3 challenge.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from mcp_oauth_shim import AccessTokenProfile
from mcp_oauth_shim.config import ENTRA_ACCESS_TOKENS, KEYCLOAK_ACCESS_TOKENS, OKTA_ACCESS_TOKENS
from tests.integration.test_clients import call_whoami, whoami
from tests.integration.test_idp_peer import CALLBACK as IDP_DIRECT_CALLBACK
from tests.integration.test_idp_peer import login as login_at_idp
from tests.integration.test_shim_with_real_idp import complete_login, shim_token
from tests.peers.browser import new_browser_client
from tests.peers.clients import sdk_oauth_client
from tests.peers.fixtures import PeerLogs
from tests.peers.idp import DEFAULT_CLIENT_ID as IDP_CLIENT_ID
from tests.peers.idp import IdP
from tests.peers.mcp_under_test import ShimServer, ShimSettings, expected_audience, serve_shim
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TokenShape:
    """How the IdP mints its access tokens, and how the shim is configured for them."""

    id: str
    jwt_alg: str  # idp.mjs --jwt-alg
    token_shape: str  # idp.mjs --token-shape
    settings: ShimSettings
    typ: str | None  # the access tokens' `typ` header
    shape_claims: frozenset[str]  # claims that mark the shape (where scopes and client are)
    # Scopes the tool must see granted (the login asks for the OpenID ones).
    granted: frozenset[str] = frozenset({"openid", "profile", "email"})
    jwks_names_alg: bool = True  # whether the IdP's JWKS names each key's `alg`
    resource_scopes: str | None = None  # idp.mjs --resource-scopes (None: its default)


# Keycloak and Okta ignore `resource`/`audience`: the audience is configured at the IdP (an
# "Audience" mapper naming the MCP URL; the default authorization server's "api://default"),
# and the shim only expects it, as `Upstream.keycloak(audience=...)` and `Upstream.okta` do.
RFC9068_ES256 = TokenShape(
    "rfc9068-es256",
    "ES256",
    "rfc9068",
    ShimSettings(access_tokens=AccessTokenProfile.rfc9068()),
    "at+jwt",
    frozenset({"scope", "client_id"}),
)
KEYCLOAK_PS256 = TokenShape(
    "keycloak-like-ps256",
    "PS256",
    "keycloak",
    ShimSettings(audience_param="none", expected_audience="resource", access_tokens=KEYCLOAK_ACCESS_TOKENS),
    "JWT",
    frozenset({"scope", "azp", "typ"}),
)
OKTA_RS256 = TokenShape(
    "okta-like",
    "RS256",
    "okta",
    ShimSettings(audience_param="none", expected_audience="api://default", access_tokens=OKTA_ACCESS_TOKENS),
    None,
    frozenset({"scp", "cid", "uid", "ver"}),
)
# Entra ID v2 names the API's client ID as the audience, and its JWKS names no `alg`; API scopes
# are asked for as `api://<client id>/<name>` and granted in `scp` by their short names (what
# `Upstream.entra` configures).
ENTRA_API_SCOPE = "tools.read"
ENTRA_RS256 = TokenShape(
    "entra-like",
    "RS256",
    "entra",
    ShimSettings(
        audience_param="none",
        expected_audience="client_id",
        access_tokens=ENTRA_ACCESS_TOKENS,
        default_scopes=("openid", "profile", ENTRA_API_SCOPE),
        scope_prefix=f"api://{IDP_CLIENT_ID}/",
    ),
    "JWT",
    frozenset({"scp", "azp", "ver", "tid", "oid"}),
    granted=frozenset({ENTRA_API_SCOPE}),
    jwks_names_alg=False,
    resource_scopes=f"openid profile email offline_access api://{IDP_CLIENT_ID}/{ENTRA_API_SCOPE}",
)
TOKEN_SHAPES = (RFC9068_ES256, KEYCLOAK_PS256, OKTA_RS256, ENTRA_RS256)


def jwt_parts(token: str) -> tuple[dict, dict]:
    """A JWT's header and claims, unverified: what the IdP put there."""
    header, payload = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in token.split(".")[:2])
    return header, payload


@pytest.fixture
def serve_for_shape(
    start_idp: Callable[..., IdP], serve_app: Callable[..., RunningServer], public_url: str
) -> Callable[[TokenShape, ShimSettings], ShimServer]:
    """`serve_for_shape(shape, settings)`: the IdP minting tokens in `shape`, and
    the shim configured with `settings` in front of it. The IdP also accepts the redirect URI
    of tests that log in there directly (`test_idp_peer.CALLBACK`)."""

    def serve(shape: TokenShape, settings: ShimSettings) -> ShimServer:
        idp = start_idp(
            redirect_uris=[public_url + "/oauth/callback", IDP_DIRECT_CALLBACK],
            resources=[public_url + "/mcp"],
            jwt_alg=shape.jwt_alg,
            token_shape=shape.token_shape,
            resource_scopes=shape.resource_scopes,
        )
        return serve_shim(public_url, idp, settings, serve_app)

    return serve


@pytest.mark.parametrize("shape", TOKEN_SHAPES, ids=lambda shape: shape.id)
def test_mcp_sdk_client_calls_a_tool_as_the_idp_user_with_the_idps_token_shape(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer], peer_logs: PeerLogs, shape: TokenShape
) -> None:
    server = serve_for_shape(shape, shape.settings)
    client = sdk_oauth_client(server.mcp_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))

    caller = whoami(call_whoami(server, client))
    audiences = caller["aud"] if isinstance(caller["aud"], list) else [caller["aud"]]
    audience = expected_audience(shape.settings.expected_audience or "resource", server.idp, server.mcp_url)
    assert (caller["subject"], caller["client_id"], caller["iss"], audience in audiences) == (
        server.idp.subject,
        server.idp.client_id,
        server.idp.issuer,
        True,
    )
    # The scopes the user granted, read from where this IdP puts them (`scope` or `scp`).
    assert shape.granted <= set(caller["scopes"]), caller["scopes"]
    assert client.user.logins == 1
    header, claims = jwt_parts(client.storage.tokens[-1].access_token)
    assert (header["alg"], header.get("typ"), shape.shape_claims <= claims.keys()) == (
        shape.jwt_alg,
        shape.typ,
        True,
    ), "the IdP did not mint the token shape under test"
    jwks = httpx.get(httpx.get(server.idp.discovery_url).json()["jwks_uri"]).json()["keys"]
    assert {"alg" in key for key in jwks} == {shape.jwks_names_alg}, "the IdP's JWKS is not the one under test"


@pytest.mark.parametrize("shape", TOKEN_SHAPES, ids=lambda shape: shape.id)
def test_mcp_sdk_client_refreshes_into_a_token_of_the_idps_shape(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer], peer_logs: PeerLogs, shape: TokenShape
) -> None:
    """The refresh grant through the shim (RFC 6749 §6), where the IdP decides the audience on
    its own, yields a token the profile accepts for the same user."""
    server = serve_for_shape(shape, shape.settings)
    client = sdk_oauth_client(server.mcp_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))

    caller = whoami(call_whoami(server, client, refresh_in_between=True))
    first, refreshed = client.storage.tokens
    assert (caller["subject"], refreshed.access_token != first.access_token, client.user.logins) == (
        server.idp.subject,
        True,
        1,
    ), (first.scope, refreshed.scope)


def test_the_token_response_names_the_api_scopes_as_the_shim_advertises_them(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer],
) -> None:
    """RFC 6749 §5.1 `scope` is in the authorization server's names: the shim advertises and
    the client asks for `tools.read`, which Entra ID grants as `api://<client id>/tools.read`."""
    server = serve_for_shape(ENTRA_RS256, ENTRA_RS256.settings)
    with new_browser_client() as http:
        _, _, tokens = complete_login(server, http)
    assert set(tokens["scope"].split()) == {"openid", "profile", ENTRA_API_SCOPE}


@pytest.mark.parametrize("scope", [ENTRA_API_SCOPE, f"openid {ENTRA_API_SCOPE}"])
def test_a_refresh_narrowed_to_granted_api_scopes_succeeds_with_a_scope_prefix(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer], scope: str
) -> None:
    """RFC 6749 §6: a refresh may name any scope of the original grant, by the names the
    client was granted; the shim prefixes them for the IdP once."""
    server = serve_for_shape(ENTRA_RS256, ENTRA_RS256.settings)
    with new_browser_client() as http:
        login, _, tokens = complete_login(server, http)
        refreshed = shim_token(
            http, login, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": scope}
        )
    assert (refreshed.status_code, refreshed.json().get("error")) == (200, None), refreshed.text
    assert_accepted(call_mcp(server, refreshed.json()["access_token"]))


@pytest.mark.parametrize(
    ("minted", "configured", "reason"),
    [
        # oidc-provider's own RFC 9068 tokens where Keycloak's are expected: no `typ: Bearer` claim.
        (RFC9068_ES256, KEYCLOAK_PS256, "its typ claim says otherwise"),
        # Okta's tokens (no `typ` header) where RFC 9068's `typ: at+jwt` is required.
        (OKTA_RS256, RFC9068_ES256, "its typ header names another kind of token"),
    ],
    ids=["rfc9068-token-at-keycloak-profile", "okta-token-at-rfc9068-profile"],
)
def test_a_token_of_another_shape_than_the_profile_is_refused_with_invalid_token(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer],
    minted: TokenShape,
    configured: TokenShape,
    reason: str,
) -> None:
    """RFC 6750 §3.1: a token the profile does not take for an access token is `invalid_token`
    (401 with a Bearer challenge), not a server error."""
    # Configured for the IdP's audience, with the other shape's profile.
    settings = dataclasses.replace(minted.settings, access_tokens=configured.settings.access_tokens)
    server = serve_for_shape(minted, settings)
    with new_browser_client() as http:
        _, _, tokens = complete_login(server, http)
    assert_refused_as_invalid_token(call_mcp(server, tokens["access_token"]), reason)


def test_an_opaque_token_of_an_idp_without_the_audience_configured_is_refused_with_a_hint(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer],
) -> None:
    """Keycloak without its "Audience" mapper, Auth0 without `audience`: the IdP mints a token
    good for its userinfo only (here opaque). The Keycloak profile refuses it without asking
    the IdP, with `invalid_token` and what to change, not a 500 or a bare refusal."""
    server = serve_for_shape(RFC9068_ES256, KEYCLOAK_PS256.settings)
    with new_browser_client() as http:
        _, _, tokens = complete_login(server, http)
    assert tokens["access_token"].count(".") != 2, "the IdP minted a JWT: the audience was configured after all"
    assert_refused_as_invalid_token(call_mcp(server, tokens["access_token"]), "set the audience")


def test_the_idps_id_token_is_refused_at_the_entra_profile(
    serve_for_shape: Callable[[TokenShape, ShimSettings], ShimServer],
) -> None:
    """Entra ID gives ID tokens and access tokens the same `aud` (the client ID) and `typ: JWT`:
    the profile must still refuse the ID token (OpenID Connect Core §2), with `invalid_token`:
    it names no client in `azp`, as every Entra ID v2 access token does."""
    server = serve_for_shape(ENTRA_RS256, ENTRA_RS256.settings)
    id_token = login_at_idp(server.idp, scope="openid profile email offline_access")["id_token"]
    assert jwt_parts(id_token)[1]["aud"] == server.idp.client_id, "the ID token is not addressed like an access token"
    assert_refused_as_invalid_token(call_mcp(server, id_token), "names no client it was issued to")


def call_mcp(server: ShimServer, token: str) -> httpx.Response:
    """MCP `initialize` at the MCP endpoint with `token` as the bearer token (RFC 6750 §2.1)."""
    return httpx.post(
        server.mcp_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
        },
    )


def assert_accepted(answer: httpx.Response) -> None:
    assert answer.status_code == 200, (answer.status_code, answer.headers.get("www-authenticate"), answer.text[:300])


def assert_refused_as_invalid_token(answer: httpx.Response, reason: str) -> None:
    """RFC 6750 §3.1: 401 with a Bearer challenge naming `invalid_token`, and `reason` in its
    `error_description`."""
    challenge = answer.headers.get("www-authenticate", "")
    assert (
        answer.status_code,
        challenge.startswith("Bearer "),
        'error="invalid_token"' in challenge,
        reason in challenge,
    ) == (401, True, True, True), (answer.status_code, challenge, answer.text[:300])
