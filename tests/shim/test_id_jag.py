"""ID-JAG grants (MCP enterprise-managed authorization §4.3, §5.1) checked by IdJagVerifier.

The IdP is the loopback stand-in of tests/peers/id_jag_issuer.py: real keys, real discovery
and JWKS over HTTP, real RFC 8693 token exchange shapes. Fault injection (IdP down, counting
fetches) uses a wrapping fetcher.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mcp_oauth_shim.errors import InvalidGrantError, InvalidScopeError
from mcp_oauth_shim.id_jag import ID_JAG_TOKEN_TYPE, EnterpriseIdP, IdJagGrant, IdJagVerifier
from mcp_oauth_shim.remote_keys import JsonFetchError, httpx_json_fetcher
from mcp_oauth_shim.rfc7523 import MemoryReplayGuard
from mcp_oauth_shim.upstream import UpstreamError
from tests.peers.id_jag_issuer import ID_JAG_TYP, TOKEN_EXCHANGE, IdJagIssuer, running_id_jag_issuer

pytestmark = pytest.mark.anyio

AS_ISSUER = "https://auth.example.com"
RESOURCE = "https://api.example.com/mcp"
CLIENT = "agent-1"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdJagIssuer]:
    with running_id_jag_issuer(clients={CLIENT: "idp-secret-of-agent-1"}, policy={CLIENT: ("read", "write")}) as issuer:
        yield issuer


class CountingFetcher:
    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch
        self.urls: list[str] = []
        self.down = False

    async def __call__(self, url: str) -> Any:
        self.urls.append(url)
        if self.down:
            raise JsonFetchError(f"{url} could not be fetched (ConnectError)")
        return await self.fetch(url)


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient() as client:
        yield client


def verifier(idp: IdJagIssuer, fetch: Any, **idp_options: Any) -> IdJagVerifier:
    return IdJagVerifier(
        issuer=AS_ISSUER,
        resource=RESOURCE,
        idps=[EnterpriseIdP(issuer=idp.issuer, **idp_options)],
        replay_guard=MemoryReplayGuard(),
        fetch=fetch,
    )


def good(idp: IdJagIssuer, **overrides: Any) -> dict[str, Any]:
    claims = idp.id_jag_claims(subject="U019488227", client_id=CLIENT, audience=AS_ISSUER, resource=RESOURCE, scope="read write")
    for name, value in overrides.items():
        if value is ...:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


async def test_id_jag_from_a_token_exchange_is_accepted(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    # §4: the client exchanges its ID token at the IdP for an ID-JAG...
    response = await http.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "requested_token_type": ID_JAG_TOKEN_TYPE,
            "audience": AS_ISSUER,
            "resource": RESOURCE,
            "scope": "read",
            "subject_token": idp.id_token("U019488227", CLIENT),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "client_id": CLIENT,
            "client_secret": "idp-secret-of-agent-1",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["issued_token_type"] == ID_JAG_TOKEN_TYPE
    # ...and §5: presents it to us; discovery and JWKS come from the IdP over HTTP.
    grant = await verifier(idp, httpx_json_fetcher(http)).verify(response.json()["access_token"], client_id=CLIENT)
    assert isinstance(grant, IdJagGrant)
    assert (grant.issuer, grant.subject, grant.client_id, grant.resource, grant.scopes) == (
        idp.issuer, "U019488227", CLIENT, RESOURCE, ("read",)
    )


async def test_configured_jwks_uri_is_used_without_discovery(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    fetch = CountingFetcher(httpx_json_fetcher(http))
    await verifier(idp, fetch, jwks_uri=f"{idp.issuer}/jwks").verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
    assert fetch.urls == [f"{idp.issuer}/jwks"]


async def test_static_jwks_needs_no_fetch(idp: IdJagIssuer) -> None:
    grant = await verifier(idp, None, jwks=idp.jwks()).verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
    assert grant.subject == "U019488227"


def _args(idp: IdJagIssuer) -> dict[str, Any]:
    return {"subject": "U019488227", "client_id": CLIENT, "audience": AS_ISSUER, "resource": RESOURCE, "scope": "read write"}


BAD: list[Any] = [
    pytest.param({"typ": "JWT"}, {}, "typ", id="typ-jwt"),
    pytest.param({"typ": ...}, {}, "typ", id="typ-missing"),
    pytest.param({}, {"iss": "https://untrusted.example"}, "untrusted_issuer", id="iss-untrusted"),
    pytest.param({}, {"aud": "https://evil.example"}, "audience", id="aud-other-server"),
    pytest.param({}, {"aud": AS_ISSUER + "/oauth/token"}, "audience", id="aud-token-endpoint-not-issuer"),
    pytest.param({}, {"client_id": "someone-else"}, "client_mismatch", id="client-id-mismatch"),
    pytest.param({}, {"client_id": ...}, "missing_claim", id="client-id-missing"),
    pytest.param({}, {"client_id": 42}, "claim_type", id="client-id-number"),
    pytest.param({}, {"resource": "https://other.example/mcp"}, "resource", id="resource-not-ours"),
    pytest.param({}, {"resource": "https://api.example.com"}, "resource", id="resource-parent-of-ours"),
    pytest.param({}, {"resource": ...}, "missing_claim", id="resource-missing"),
    pytest.param({}, {"resource": [RESOURCE]}, "claim_type", id="resource-array"),
    pytest.param({}, {"sub": ...}, "missing_claim", id="sub-missing"),
    pytest.param({}, {"jti": ...}, "missing_claim", id="jti-missing"),
    pytest.param({}, {"iat": ...}, "missing_claim", id="iat-missing"),
    pytest.param({}, {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3900}, "expired", id="exp-past"),
    pytest.param({}, {"exp": int(time.time()) + 7200}, "lifetime", id="lifetime-too-long"),
    pytest.param({}, {"scope": 7}, "claim_type", id="scope-number"),
    pytest.param({}, {"scope": "read\twrite"}, "claim_type", id="scope-invalid-token"),
    pytest.param({"alg": "HS256"}, {}, "algorithm", id="alg-hs256"),
]


@pytest.mark.parametrize(("header", "overrides", "reason"), BAD)
async def test_bad_id_jag_is_invalid_grant_with_its_reason(
    idp: IdJagIssuer, header: dict[str, Any], overrides: dict[str, Any], reason: str
) -> None:
    full_header = {"typ": ID_JAG_TYP, **header}
    full_header = {k: v for k, v in full_header.items() if v is not ...}
    if full_header.get("alg") == "HS256":
        from tests.shim.assertion_kit import b64, b64json

        token = f"{b64json(full_header)}.{b64json(good(idp, **overrides))}.{b64(b'mac')}"
    else:
        token = idp.sign(full_header, good(idp, **overrides))
    if "typ" not in full_header:
        token = idp.sign({}, good(idp, **overrides))
        assert "typ" not in __import__("joserfc").jws.extract_compact(token.encode()).headers()
    with pytest.raises(InvalidGrantError) as refused:
        await verifier(idp, None, jwks=idp.jwks()).verify(token, client_id=CLIENT)
    assert refused.value.__cause__.reason == reason
    assert refused.value.error == "invalid_grant" and refused.value.status_code == 400


async def test_client_outside_the_idps_allowed_clients_is_refused(idp: IdJagIssuer) -> None:
    check = verifier(idp, None, jwks=idp.jwks(), allowed_clients=frozenset({"agent-2"}))
    with pytest.raises(InvalidGrantError) as refused:
        await check.verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
    assert refused.value.__cause__.reason == "client_mismatch"


async def test_replayed_id_jag_is_refused(idp: IdJagIssuer) -> None:
    check = verifier(idp, None, jwks=idp.jwks())
    token = idp.id_jag(**_args(idp))
    await check.verify(token, client_id=CLIENT)
    with pytest.raises(InvalidGrantError) as refused:
        await check.verify(token, client_id=CLIENT)
    assert refused.value.__cause__.reason == "replayed"


async def test_refused_id_jag_does_not_use_up_its_jti(idp: IdJagIssuer) -> None:
    check = verifier(idp, None, jwks=idp.jwks())
    token = idp.id_jag(**_args(idp))
    with pytest.raises(InvalidGrantError):
        await check.verify(token, client_id="someone-else")
    assert (await check.verify(token, client_id=CLIENT)).client_id == CLIENT


async def test_untrusted_issuer_makes_no_fetch(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    fetch = CountingFetcher(httpx_json_fetcher(http))
    check = verifier(idp, fetch)
    with pytest.raises(InvalidGrantError):
        await check.verify(idp.sign({"typ": ID_JAG_TYP}, good(idp, iss="http://127.0.0.1:1")), client_id=CLIENT)
    assert fetch.urls == []


async def test_rotated_idp_key_is_fetched_once(http: httpx.AsyncClient) -> None:
    with running_id_jag_issuer() as idp:
        fetch = CountingFetcher(httpx_json_fetcher(http))
        check = IdJagVerifier(
            issuer=AS_ISSUER, resource=RESOURCE, idps=[EnterpriseIdP(issuer=idp.issuer, jwks_uri=f"{idp.issuer}/jwks")],
            replay_guard=MemoryReplayGuard(), fetch=fetch, unknown_kid_refetch_after=0.0,
        )
        await check.verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
        idp.rotate()
        grant = await check.verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
        assert grant.subject == "U019488227"
        assert fetch.urls == [f"{idp.issuer}/jwks"] * 2


async def test_unknown_kids_refetch_at_most_once_per_interval(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    from joserfc.jwk import ECKey

    fetch = CountingFetcher(httpx_json_fetcher(http))
    check = verifier(idp, fetch, jwks_uri=f"{idp.issuer}/jwks")
    for i in range(20):
        stranger = ECKey.generate_key("P-256", parameters={"kid": f"made-up-{i}"})
        with pytest.raises(InvalidGrantError) as refused:
            await check.verify(idp.sign({"typ": ID_JAG_TYP}, good(idp), key=stranger), client_id=CLIENT)
        assert refused.value.__cause__.reason == "unknown_key"
    assert len(fetch.urls) == 1


async def test_idp_unreachable_is_an_upstream_error_not_a_refusal(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    fetch = CountingFetcher(httpx_json_fetcher(http))
    fetch.down = True
    with pytest.raises(UpstreamError) as failed:
        await verifier(idp, fetch).verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
    assert failed.value.status_code == 502
    assert "idp-secret" not in failed.value.description


async def test_idp_hiccup_keeps_serving_cached_keys(idp: IdJagIssuer, http: httpx.AsyncClient) -> None:
    clock = [time.time()]
    fetch = CountingFetcher(httpx_json_fetcher(http))
    check = IdJagVerifier(
        issuer=AS_ISSUER, resource=RESOURCE, idps=[EnterpriseIdP(issuer=idp.issuer)],
        replay_guard=MemoryReplayGuard(), fetch=fetch, clock=lambda: clock[0], key_max_age=60,
    )
    await check.verify(idp.id_jag(**_args(idp)), client_id=CLIENT)
    fetch.down = True
    clock[0] += 61
    assert (await check.verify(idp.id_jag(**_args(idp)), client_id=CLIENT)).subject == "U019488227"


async def test_discovery_refuses_metadata_for_another_issuer(http: httpx.AsyncClient) -> None:
    with running_id_jag_issuer() as idp:
        token = idp.id_jag(**_args(idp))
        trusted = EnterpriseIdP(issuer=idp.issuer)
        idp.issuer = "https://impostor.example"  # its discovery document now names another issuer
        check = IdJagVerifier(
            issuer=AS_ISSUER, resource=RESOURCE, idps=[trusted], replay_guard=MemoryReplayGuard(), fetch=httpx_json_fetcher(http)
        )
        with pytest.raises(UpstreamError) as failed:
            await check.verify(token, client_id=CLIENT)
        assert "names another issuer" in failed.value.description


@pytest.mark.parametrize(
    ("granted", "requested", "expected"),
    [
        ("read write", None, ("read", "write")),
        ("read write", "read", ("read",)),
        ("read write", "write read read", ("write", "read")),
        (None, "read", ("read",)),
        (None, None, ()),
    ],
)
async def test_scopes_of_the_access_token_stay_within_the_grant(idp: IdJagIssuer, granted: Any, requested: Any, expected: Any) -> None:
    args = {**_args(idp), "scope": granted}
    grant = await verifier(idp, None, jwks=idp.jwks()).verify(idp.id_jag(**args), client_id=CLIENT)
    assert grant.granted_scopes(requested) == expected


async def test_scope_beyond_the_grant_is_invalid_scope(idp: IdJagIssuer) -> None:
    grant = await verifier(idp, None, jwks=idp.jwks()).verify(idp.id_jag(**{**_args(idp), "scope": "read"}), client_id=CLIENT)
    with pytest.raises(InvalidScopeError):
        grant.granted_scopes("read admin")


async def test_resource_compares_as_a_url(idp: IdJagIssuer) -> None:
    args = {**_args(idp), "resource": "HTTPS://API.example.com:443/mcp/"}
    grant = await verifier(idp, None, jwks=idp.jwks()).verify(idp.id_jag(**args), client_id=CLIENT)
    assert grant.resource == "HTTPS://API.example.com:443/mcp/"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "http://idp.example"},
        {"issuer": "https://idp.example#x"},
        {"issuer": "https://idp.example", "jwks": {"keys": []}, "jwks_uri": "https://idp.example/jwks"},
        {"issuer": "https://idp.example", "jwks_uri": "ftp://idp.example/jwks"},
        {"issuer": "https://idp.example", "algorithms": ("HS256",)},
        {"issuer": "https://idp.example", "max_lifetime": 0},
    ],
)
def test_enterprise_idp_refuses_unsafe_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EnterpriseIdP(**kwargs)


def test_same_issuer_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        IdJagVerifier(
            issuer=AS_ISSUER, resource=RESOURCE, replay_guard=MemoryReplayGuard(),
            idps=[EnterpriseIdP(issuer="https://idp.example"), EnterpriseIdP(issuer="https://idp.example")],
            fetch=httpx_json_fetcher(httpx.AsyncClient()),
        )
