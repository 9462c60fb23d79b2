"""Access-token profiles: per IdP preset, which genuinely signed JWTs are access tokens.

The verifier is configured the vulnerable way on purpose: its audience includes the upstream
client ID (what ``Upstream.entra`` does), so an ID token passes the signature, issuer, audience
and lifetime checks, and only the profile can tell it from an access token.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcp_oauth_shim.config import (
    AUTH0_ACCESS_TOKENS,
    ENTRA_ACCESS_TOKENS,
    KEYCLOAK_ACCESS_TOKENS,
    OIDC_ACCESS_TOKENS,
    OKTA_ACCESS_TOKENS,
    AccessTokenProfile,
    ConfigurationError,
    Upstream,
)
from mcp_oauth_shim.upstream import UpstreamClient
from mcp_oauth_shim.verify import BearerVerifier, InvalidToken

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
RESOURCE = "https://api.example.com/mcp"
CLIENT_ID = "shim-upstream-client"
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)

PROFILES: dict[str, AccessTokenProfile] = {
    "oidc": OIDC_ACCESS_TOKENS,
    "rfc9068": AccessTokenProfile.rfc9068(),
    "auth0": AUTH0_ACCESS_TOKENS,
    "keycloak": KEYCLOAK_ACCESS_TOKENS,
    "okta": OKTA_ACCESS_TOKENS,
    "entra": ENTRA_ACCESS_TOKENS,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _idp(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/openid-configuration":
        return httpx.Response(200, json={"issuer": ISSUER, "authorization_endpoint": ISSUER + "a",
                                         "token_endpoint": ISSUER + "t", "jwks_uri": ISSUER + "jwks"})
    return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})


def verifier(profile: AccessTokenProfile) -> BearerVerifier:
    upstream = UpstreamClient(
        Upstream.oidc(issuer=ISSUER, client_id=CLIENT_ID, client_secret="s"),
        http=httpx.AsyncClient(transport=httpx.MockTransport(_idp)),
    )
    return BearerVerifier(
        upstream, audience=[RESOURCE, CLIENT_ID], resource_metadata_url=RESOURCE, profile=profile,
        clock=lambda: float(NOW),
    )


def token(header_typ: str | None, claims: dict[str, Any]) -> str:
    payload = {"iss": ISSUER, "sub": "user-1", "iat": NOW, "exp": NOW + 600, **claims}
    header: dict[str, Any] = {"alg": "RS256", "kid": "k1"}
    if header_typ is not None:
        header["typ"] = header_typ
    return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, KEY)


# What each IdP's tokens look like (the access token as it issues it, the ID token likewise).
AUTH0_AT = {"aud": [RESOURCE, "https://tenant.auth0.com/userinfo"], "azp": CLIENT_ID, "scope": "openid files:read"}
KEYCLOAK_AT = {"aud": RESOURCE, "azp": CLIENT_ID, "typ": "Bearer", "scope": "openid profile"}
OKTA_AT = {"aud": RESOURCE, "cid": CLIENT_ID, "scp": ["openid", "files:read"], "uid": "00u1"}
ENTRA_USER_AT = {"aud": CLIENT_ID, "azp": "client-app", "scp": "access_as_user", "tid": "t", "ver": "2.0", "oid": "o1"}
ENTRA_APP_AT = {"aud": CLIENT_ID, "azp": "daemon-app", "roles": ["Notes.Read.All"], "tid": "t", "ver": "2.0",
                "oid": "user-1", "idtyp": "app"}
ID_TOKEN = {"aud": CLIENT_ID, "nonce": "n-0S6", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "name": "Demo"}
ID_TOKEN_CODE_FLOW = {"aud": CLIENT_ID, "name": "Demo"}  # no nonce asked for, no at_hash


CASES: list[tuple[str, str, str | None, dict[str, Any], str | None]] = [
    # (case, profile, typ header, claims, None = accepted / a word of the refusal)
    ("RFC 9068 access token", "oidc", "at+jwt", {"aud": RESOURCE, "client_id": "c", "scope": "a"}, None),
    ("typ with the media-type prefix", "oidc", "application/at+jwt", {"aud": RESOURCE, "scope": "a"}, None),
    ("typ in capitals", "oidc", "AT+JWT", {"aud": RESOURCE, "scope": "a"}, None),
    ("typ JWT", "oidc", "JWT", {"aud": RESOURCE, "scope": "a"}, None),
    ("no typ", "oidc", None, {"aud": RESOURCE, "scope": "a"}, None),
    ("another explicit type", "oidc", "logout+jwt", {"aud": RESOURCE, "scope": "a"}, "typ header"),
    ("a security event token", "oidc", "secevent+jwt", {"aud": RESOURCE, "scope": "a"}, "typ header"),
    ("ID token", "oidc", "JWT", ID_TOKEN, "ID token"),
    ("ID token from the code flow", "oidc", "JWT", ID_TOKEN_CODE_FLOW, "addressed to the client"),
    ("nonce on an access token for us", "oidc", "JWT", {"aud": RESOURCE, "scope": "a", "nonce": "n"}, "ID token"),
    ("c_hash", "oidc", "JWT", {"aud": RESOURCE, "scope": "a", "c_hash": "x"}, "ID token"),
    ("s_hash", "oidc", "JWT", {"aud": RESOURCE, "scope": "a", "s_hash": "x"}, "ID token"),
    ("client audience in a list, no scope", "oidc", "JWT", {"aud": [CLIENT_ID, "x"]}, "addressed to the client"),
    ("client audience with a scope", "oidc", "JWT", {"aud": CLIENT_ID, "scope": "a"}, None),
    ("RFC 9068 profile: at+jwt", "rfc9068", "at+jwt", {"aud": RESOURCE, "scope": "a"}, None),
    ("RFC 9068 profile: typ JWT", "rfc9068", "JWT", {"aud": RESOURCE, "scope": "a"}, "typ header"),
    ("RFC 9068 profile: no typ", "rfc9068", None, {"aud": RESOURCE, "scope": "a"}, "typ header"),
    ("Auth0 access token", "auth0", "JWT", AUTH0_AT, None),
    ("Auth0 RFC 9068 dialect", "auth0", "at+jwt", {"aud": RESOURCE, "client_id": CLIENT_ID, "scope": "a"}, None),
    ("Auth0 ID token", "auth0", "JWT", ID_TOKEN, "ID token"),
    ("Auth0 ID token from the code flow", "auth0", "JWT", ID_TOKEN_CODE_FLOW, "addressed to the client"),
    ("Keycloak access token", "keycloak", "JWT", KEYCLOAK_AT, None),
    ("Keycloak access token with a copied nonce", "keycloak", "JWT", {**KEYCLOAK_AT, "nonce": "n"}, None),
    ("Keycloak ID token", "keycloak", "JWT", {**KEYCLOAK_AT, "typ": "ID", "at_hash": "x", "nonce": "n"}, "typ claim"),
    ("Keycloak ID token without at_hash", "keycloak", "JWT", {**KEYCLOAK_AT, "typ": "ID"}, "typ claim"),
    ("Keycloak refresh token", "keycloak", "JWT", {**KEYCLOAK_AT, "typ": "Refresh"}, "typ claim"),
    ("Keycloak token without typ claim", "keycloak", "JWT", {"aud": RESOURCE, "scope": "a"}, "typ claim"),
    ("Keycloak typ claim of another type", "keycloak", "JWT", {**KEYCLOAK_AT, "typ": ["Bearer"]}, "typ claim"),
    ("Okta access token", "okta", None, OKTA_AT, None),
    ("Okta ID token", "okta", None, {**ID_TOKEN}, "ID token"),
    ("Entra delegated access token", "entra", "JWT", ENTRA_USER_AT, None),
    ("Entra application token", "entra", "JWT", ENTRA_APP_AT, None),
    ("Entra v1 token naming its client in appid", "entra", "JWT", {**ENTRA_USER_AT, "azp": None, "appid": "c"}, None),
    ("Entra ID token", "entra", "JWT", {**ID_TOKEN, "tid": "t", "ver": "2.0"}, "ID token"),
    ("Entra ID token from the code flow", "entra", "JWT", {**ID_TOKEN_CODE_FLOW, "tid": "t", "ver": "2.0"}, "names no client"),
    (
        "Entra ID token with the user's app roles",
        "entra", "JWT", {**ID_TOKEN_CODE_FLOW, "roles": ["Admin"], "tid": "t", "ver": "2.0"}, "names no client",
    ),
    (
        "Entra user token with roles but no scp",
        "entra", "JWT", {**ENTRA_APP_AT, "idtyp": "user"}, "addressed to the client",
    ),
]


@pytest.mark.parametrize(("case", "profile", "typ", "claims", "refusal"), CASES, ids=[c[0] for c in CASES])
async def test_the_profile_tells_access_tokens_from_other_jwts(
    case: str, profile: str, typ: str | None, claims: dict[str, Any], refusal: str | None
) -> None:
    check = verifier(PROFILES[profile])
    signed = token(typ, claims)
    if refusal is None:
        assert (await check.access_token(signed)).subject == "user-1"
    else:
        with pytest.raises(InvalidToken) as caught:
            await check.access_token(signed)
        assert refusal in caught.value.description


SCOPES: list[tuple[str, str, dict[str, Any], list[str], str]] = [
    # (case, profile, claims, scopes granted, client)
    ("Auth0 scope and RBAC permissions", "auth0", {**AUTH0_AT, "permissions": ["read:notes"]},
     ["openid", "files:read", "read:notes"], CLIENT_ID),
    ("Auth0 ignores scp", "auth0", {**AUTH0_AT, "scp": ["admin"]}, ["openid", "files:read"], CLIENT_ID),
    ("Keycloak scope", "keycloak", KEYCLOAK_AT, ["openid", "profile"], CLIENT_ID),
    ("Okta scp list, client in cid", "okta", OKTA_AT, ["openid", "files:read"], CLIENT_ID),
    ("Entra delegated scp", "entra", {**ENTRA_USER_AT, "scp": "access_as_user files.read"},
     ["access_as_user", "files.read"], "client-app"),
    ("Entra application roles", "entra", ENTRA_APP_AT, ["Notes.Read.All"], "daemon-app"),
    ("Entra user roles are not scopes", "entra", {**ENTRA_USER_AT, "roles": ["Admin"]}, ["access_as_user"], "client-app"),
    ("generic: scope, scp and permissions merged", "oidc",
     {"aud": RESOURCE, "scope": "a", "scp": ["b"], "permissions": ["c"], "azp": "x"}, ["a", "b", "c"], "x"),
    ("generic: roles are not scopes", "oidc", {"aud": RESOURCE, "scope": "a", "roles": ["admin"]}, ["a"], "unknown"),
]


@pytest.mark.parametrize(("case", "profile", "claims", "scopes", "client"), SCOPES, ids=[c[0] for c in SCOPES])
async def test_scopes_and_client_come_from_the_profiles_claims(
    case: str, profile: str, claims: dict[str, Any], scopes: list[str], client: str
) -> None:
    access = await verifier(PROFILES[profile]).access_token(token("JWT", claims))
    assert (access.scopes, access.client_id) == (scopes, client)


def test_every_preset_carries_its_profile() -> None:
    assert Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s").access_tokens is OIDC_ACCESS_TOKENS
    assert Upstream.auth0(domain="t.auth0.com", client_id="c", client_secret="s", audience="a").access_tokens is AUTH0_ACCESS_TOKENS
    assert Upstream.keycloak(base_url="https://k", realm="r", client_id="c", client_secret="s").access_tokens is KEYCLOAK_ACCESS_TOKENS
    assert Upstream.okta(domain="o.okta.com", client_id="c", client_secret="s").access_tokens is OKTA_ACCESS_TOKENS
    assert Upstream.entra(tenant_id="t", client_id="c", client_secret="s").access_tokens is ENTRA_ACCESS_TOKENS


def test_a_preset_profile_can_be_replaced_like_any_other_setting() -> None:
    strict = AccessTokenProfile.rfc9068()
    upstream = Upstream.auth0(domain="t.auth0.com", client_id="c", client_secret="s", audience="a", access_tokens=strict)
    assert upstream.access_tokens is strict
    assert upstream.replace(access_tokens=OIDC_ACCESS_TOKENS).access_tokens is OIDC_ACCESS_TOKENS


def test_the_verifier_takes_profile_and_client_id_from_its_upstream() -> None:
    upstream = UpstreamClient(Upstream.entra(tenant_id="t", client_id="api-app", client_secret="s"))
    check = BearerVerifier(upstream, audience="api-app", resource_metadata_url=RESOURCE)
    assert (check.profile, check.client_id) == (ENTRA_ACCESS_TOKENS, "api-app")


@pytest.mark.parametrize(
    "changes",
    [
        {"header_types": frozenset({"JWT"})},
        {"header_types": frozenset({"application/at+jwt"})},
        {"header_types": frozenset()},
        {"type_claim": "typ"},
        {"require_client_claim": True, "client_claims": ()},
    ],
)
def test_a_profile_that_cannot_work_is_refused_on_creation(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AccessTokenProfile(**changes)


def test_access_tokens_must_be_a_profile() -> None:
    with pytest.raises(ConfigurationError):
        Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s", access_tokens="rfc9068")  # type: ignore[arg-type]
