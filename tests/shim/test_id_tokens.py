"""An ID token is never an access token, at the protected endpoint (``shim.protect``).

The shims here are configured the way that made ID tokens pass before: the upstream audience
is the upstream client ID (what ``Upstream.entra`` sets), which is also every ID token's
``aud``. The ID tokens are genuine: minted by the development IdP in a real code flow, or
signed with the published key of an Entra-shaped IdP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim import OAuthShim, Upstream

from .counting_idp import SHIM_URL, CountingIdP
from .idp_direct import idp_tokens
from .kit import Kit, make_kit

ENTRA_TENANT = "tenant-1"
ENTRA_API = "11111111-2222-3333-4444-555555555555"


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    access = scope["user"].access_token
    await JSONResponse({"client_id": access.client_id, "scopes": access.scopes})(scope, receive, send)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token_challenge(response: httpx.Response, shim: OAuthShim) -> None:
    """RFC 6750 §3 / RFC 9728 §5.1: 401, error invalid_token, the resource metadata pointer."""
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{shim.resource_metadata_url}"' in challenge
    assert response.json()["error"] == "invalid_token"


# -- the development IdP: a real code flow ---------------------------------------------------------


@pytest.fixture
def client_audience_kit() -> Kit:
    return make_kit(upstream_overrides={"audience": "mcp-oauth-shim-dev"})


def test_a_real_id_token_is_refused_at_the_protected_endpoint(client_audience_kit: Kit) -> None:
    kit = client_audience_kit
    assert kit.shim.upstream.audience == kit.idp.client_id
    tokens = idp_tokens(kit)
    protected = TestClient(kit.shim.protect(whoami), base_url=SHIM_URL)
    assert_invalid_token_challenge(protected.get("/mcp", headers=bearer(tokens["id_token"])), kit.shim)


def test_a_real_id_token_without_nonce_is_refused_too(client_audience_kit: Kit) -> None:
    kit = client_audience_kit
    tokens = idp_tokens(kit, nonce=None)
    protected = TestClient(kit.shim.protect(whoami), base_url=SHIM_URL)
    assert_invalid_token_challenge(protected.get("/mcp", headers=bearer(tokens["id_token"])), kit.shim)


def test_the_access_token_of_the_same_exchange_is_accepted(client_audience_kit: Kit) -> None:
    kit = client_audience_kit
    tokens = idp_tokens(kit)
    protected = TestClient(kit.shim.protect(whoami), base_url=SHIM_URL)
    response = protected.get("/mcp", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"client_id": kit.idp.client_id, "scopes": ["openid", "profile", "offline_access"]}


def test_the_sdk_token_verifier_refuses_a_real_id_token_too(client_audience_kit: Kit) -> None:
    import anyio

    kit = client_audience_kit
    tokens = idp_tokens(kit)
    assert anyio.run(kit.shim.verifier.verify_token, tokens["id_token"]) is None


# -- an Entra-shaped IdP -----------------------------------------------------------------------------


def entra() -> tuple[CountingIdP, Upstream]:
    upstream = Upstream.entra(tenant_id=ENTRA_TENANT, client_id=ENTRA_API, client_secret="s")
    assert upstream.issuer == f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
    return CountingIdP(upstream.issuer, introspection=False), upstream


def entra_claims(**claims: Any) -> dict[str, Any]:
    return {"aud": ENTRA_API, "sub": "pairwise-sub", "oid": "user-oid", "tid": ENTRA_TENANT, "ver": "2.0", **claims}


DELEGATED = entra_claims(azp="client-app", scp="access_as_user Notes.Read")
APPLICATION = entra_claims(azp="daemon-app", sub="sp-oid", oid="sp-oid", idtyp="app", roles=["Notes.Read.All"])
ID_TOKEN = entra_claims(nonce="n-0S6", name="Demo")
ID_TOKEN_WITH_ROLES = entra_claims(name="Demo", roles=["Notes.Read.All"])


@pytest.mark.parametrize(
    ("claims", "scopes", "client"),
    [
        pytest.param(DELEGATED, ["access_as_user", "Notes.Read"], "client-app", id="delegated scp"),
        pytest.param(APPLICATION, ["Notes.Read.All"], "daemon-app", id="application roles"),
        pytest.param({**DELEGATED, "roles": ["Admin"]}, ["access_as_user", "Notes.Read"], "client-app",
                     id="a user's roles beside scp are not scopes"),
    ],
)
def test_entra_access_tokens_are_accepted_with_their_scopes(claims: dict[str, Any], scopes: list[str], client: str) -> None:
    idp, upstream = entra()
    shim = idp.shim(upstream)
    response = TestClient(shim.protect(whoami), base_url=SHIM_URL).get("/mcp", headers=bearer(idp.sign(claims)))
    assert response.status_code == 200
    assert response.json() == {"client_id": client, "scopes": scopes}


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(ID_TOKEN, id="ID token"),
        pytest.param(entra_claims(name="Demo"), id="ID token without nonce"),
        pytest.param(ID_TOKEN_WITH_ROLES, id="ID token with the user's app roles"),
        pytest.param(entra_claims(azp="client-app", at_hash="x", scp="access_as_user"), id="at_hash"),
        pytest.param(entra_claims(azp="client-app", idtyp="user", roles=["Admin"]), id="user token without scp"),
    ],
)
def test_entra_id_tokens_are_refused_with_invalid_token(claims: dict[str, Any]) -> None:
    idp, upstream = entra()
    shim = idp.shim(upstream)
    response = TestClient(shim.protect(whoami), base_url=SHIM_URL).get("/mcp", headers=bearer(idp.sign(claims)))
    assert_invalid_token_challenge(response, shim)


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        pytest.param(entra_claims(azp="client-app", scp="Notes.Read"), 200, id="delegated scope granted"),
        pytest.param(entra_claims(azp="daemon-app", idtyp="app", roles=["Notes.Read"]), 200, id="app permission granted"),
        pytest.param(entra_claims(azp="client-app", scp="access_as_user"), 403, id="delegated scope missing"),
        pytest.param(entra_claims(azp="daemon-app", idtyp="app", roles=["Other"]), 403, id="app permission missing"),
        pytest.param(entra_claims(azp="client-app", scp="access_as_user", roles=["Notes.Read"]), 403,
                     id="user role is no scope"),
    ],
)
def test_entra_required_scopes_are_checked_in_scp_and_roles(claims: dict[str, Any], status: int) -> None:
    idp, upstream = entra()
    shim = idp.shim(upstream, required_scopes=["Notes.Read"])
    response = TestClient(shim.protect(whoami), base_url=SHIM_URL).get("/mcp", headers=bearer(idp.sign(claims)))
    assert response.status_code == status
    if status == 403:
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="Notes.Read"' in response.headers["www-authenticate"]
