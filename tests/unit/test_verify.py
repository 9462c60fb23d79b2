"""BearerVerifier: JWT access tokens against a JWKS served by a fake IdP (httpx.MockTransport).

The IdP is the shim's real UpstreamClient talking to an in-process transport, so discovery,
JWKS fetching and error mapping run exactly as in production; time comes from an injected
clock, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from mcp_oauth_shim.config import Upstream
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError
from mcp_oauth_shim.verify import BearerVerifier, InsufficientScope, InvalidToken, token_scopes

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
AUDIENCE = "https://api.example.com/mcp"
PRM = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
NOW = 1_800_000_000
# RSA key generation is slow; tests take key material from this pool and give it their own kid.
_RSA_POOL = [RSAKey.generate_key(2048, private=True) for _ in range(3)]


@functools.cache
def rsa(kid: str, material: int = 1) -> RSAKey:
    """An RSA key with this kid; material 0 is the IdP's own "rsa-1" key, 1 and 2 are others."""
    return RSAKey.import_key({**_RSA_POOL[material].as_dict(private=True), "kid": kid})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


class FakeIdP:
    """An OIDC discovery document and a JWKS, with switchable failure modes."""

    def __init__(self) -> None:
        self.keys: list[Key] = [rsa("rsa-1", 0)]
        self.jwks_mode = "ok"
        self.jwks_fetches = 0
        self.introspection: dict[str, Any] | None = None
        self.introspection_requests: list[dict[str, str]] = []
        self.metadata_extra: dict[str, Any] = {"jwks_uri": ISSUER + "jwks"}
        self.extra_jwks: list[dict[str, Any]] = []  # published as given, beside self.keys

    def key(self, kid: str) -> Key:
        return next(k for k in self.keys if k.kid == kid)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            doc = {
                "issuer": ISSUER,
                "authorization_endpoint": ISSUER + "authorize",
                "token_endpoint": ISSUER + "token",
                **self.metadata_extra,
            }
            if self.introspection is not None:
                doc["introspection_endpoint"] = ISSUER + "introspect"
            return httpx.Response(200, json=doc)
        if path == "/jwks":
            self.jwks_fetches += 1
            mode = self.jwks_mode
            if mode == "down":
                raise httpx.ConnectError("connection refused", request=request)
            if mode == "slow":
                raise httpx.ReadTimeout("timed out", request=request)
            if mode == "garbage":
                return httpx.Response(200, content=b"<html>oops</html>")
            if mode == "error":
                return httpx.Response(500, content=b"{}")
            if mode == "no-keys-member":
                return httpx.Response(200, json={"kets": []})
            if mode == "only-oct":
                return httpx.Response(200, json={"keys": [{"kty": "oct", "k": b64(b"s" * 32), "kid": "hs"}]})
            return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys] + self.extra_jwks})
        if path == "/introspect":
            form = dict(httpx.QueryParams(request.content.decode()))
            self.introspection_requests.append(form)
            return httpx.Response(200, json=self.introspection or {"active": False})
        return httpx.Response(404)


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def upstream(idp: FakeIdP):
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    config = Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="upstream-secret", audience=AUDIENCE)
    client = UpstreamClient(config, http=http)
    yield client
    await http.aclose()


@pytest.fixture
def make_verifier(upstream: UpstreamClient, clock: Clock) -> Callable[..., BearerVerifier]:
    def make(**kwargs: Any) -> BearerVerifier:
        options: dict[str, Any] = {"audience": AUDIENCE, "resource_metadata_url": PRM, "clock": clock}
        options.update(kwargs)
        return BearerVerifier(upstream, **options)

    return make


@pytest.fixture
def verifier(make_verifier: Callable[..., BearerVerifier]) -> BearerVerifier:
    return make_verifier()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "azp": "mcp-client",
        "scope": "openid files:read",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Key, payload: dict[str, Any], *, alg: str = "RS256", kid: str | None = "use-key", **header: Any) -> str:
    hdr: dict[str, Any] = {"alg": alg, **header}
    if kid == "use-key":
        kid = key.kid
    if kid is not None:
        hdr["kid"] = kid
    return jwt.encode(hdr, payload, key, algorithms=[alg])


def good_token(idp: FakeIdP, **overrides: Any) -> str:
    return sign(idp.key("rsa-1"), claims(**overrides))


def hs256_with_public_key(idp: FakeIdP) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the published public key."""
    public_pem = idp.key("rsa-1").as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def unsigned(idp: FakeIdP) -> str:
    header = b64(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
    return f"{header}.{b64(json.dumps(claims()).encode())}."


def tampered(idp: FakeIdP) -> str:
    header, _, signature = good_token(idp).split(".")
    forged = b64(json.dumps(claims(sub="admin", scope="admin")).encode())
    return f"{header}.{forged}.{signature}"


def signed_by_stranger(idp: FakeIdP) -> str:
    stranger = rsa("rsa-1", 1)
    return sign(stranger, claims())


def self_signed_with_embedded_jwk() -> str:
    """RFC 7515 §4.1.3 ``jwk``: a key the token brings itself is no trust anchor."""
    attacker = ECKey.generate_key("P-256", private=True)
    return sign(attacker, claims(), alg="ES256", kid=None, jwk=attacker.as_dict(private=False))


def raw_segments(header: dict[str, Any], payload: Any) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(b'sig')}"


BAD_TOKENS: list[tuple[str, Callable[[FakeIdP], str], str]] = [
    ("wrong issuer", lambda idp: good_token(idp, iss="https://evil.example.com/"), "another issuer"),
    ("issuer differs by a trailing slash", lambda idp: good_token(idp, iss=ISSUER.rstrip("/")), "another issuer"),
    ("wrong audience", lambda idp: good_token(idp, aud="https://other.example.com/mcp"), "audience"),
    ("audience list without ours", lambda idp: good_token(idp, aud=["a", "b"]), "audience"),
    ("audience of another type", lambda idp: good_token(idp, aud=7), "audience"),
    ("expired", lambda idp: good_token(idp, exp=NOW - 3600), "expired"),
    ("expired beyond the leeway", lambda idp: good_token(idp, exp=NOW - 31), "expired"),
    ("not valid yet", lambda idp: good_token(idp, nbf=NOW + 3600), "not valid yet"),
    ("issued in the future", lambda idp: good_token(idp, iat=NOW + 3600), "future"),
    ("no exp", lambda idp: good_token(idp, exp=None), "exp"),
    ("no iss", lambda idp: good_token(idp, iss=None), "iss"),
    ("no aud", lambda idp: good_token(idp, aud=None), "aud"),
    ("no sub: tokens without a subject would all be one user", lambda idp: good_token(idp, sub=None), "no subject"),
    ("empty sub", lambda idp: good_token(idp, sub=""), "subject"),
    ("exp as a string", lambda idp: good_token(idp, exp=str(NOW + 3600)), "expiry"),
    ("alg none", unsigned, "unsigned"),
    ("HS256 keyed with the public key", hs256_with_public_key, "symmetric"),
    ("unknown kid", lambda idp: sign(rsa("nope"), claims()), "does not publish"),
    ("tampered payload", tampered, "signature"),
    ("signed by another key under our kid", signed_by_stranger, "signature"),
    ("RS256 header on an EC key", lambda idp: raw_segments({"alg": "RS256", "kid": "ec-1"}, claims()), "signature"),
    ("not a JWT", lambda idp: "opaque-token-value", "not a JWT"),
    ("empty", lambda idp: "", "No access token"),
    ("huge", lambda idp: "a." + "b" * 20000 + ".c", "too large"),
    ("JWE-shaped", lambda idp: "a.b.c.d.e", "not a JWT"),
    ("header not JSON", lambda idp: f"{b64(b'nope')}.{b64(b'{}')}.{b64(b'x')}", "well-formed"),
    ("header without alg", lambda idp: raw_segments({"kid": "rsa-1"}, claims()), "well-formed"),
    ("kid of the wrong type", lambda idp: raw_segments({"alg": "RS256", "kid": 5}, claims()), "malformed"),
    (
        "payload swapped for a list",
        lambda idp: (
            sign(idp.key("rsa-1"), claims()).split(".")[0]
            + "."
            + b64(b"[1,2]")
            + "."
            + sign(idp.key("rsa-1"), claims()).split(".")[2]
        ),
        "signature",
    ),
    (
        "unknown critical header",
        lambda idp: raw_segments({"alg": "RS256", "kid": "rsa-1", "crit": ["x-must"], "x-must": 1}, claims()),
        "critical",
    ),
    (
        "critical header list of non-strings",
        lambda idp: raw_segments({"alg": "RS256", "kid": "rsa-1", "crit": [1]}, claims()),
        "critical",
    ),
    ("attacker's JWK embedded in the header is ignored", lambda idp: self_signed_with_embedded_jwk(), "signature"),
    ("non-ASCII token", lambda idp: "ä.b.c", "well-formed"),
]


@pytest.mark.parametrize(("name", "build", "reason"), BAD_TOKENS, ids=[row[0] for row in BAD_TOKENS])
async def test_bad_tokens_are_refused_with_a_reason(
    verifier: BearerVerifier, idp: FakeIdP, name: str, build: Callable[[FakeIdP], str], reason: str
) -> None:
    idp.keys.append(ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True))
    token = build(idp)
    with pytest.raises(InvalidToken) as caught:
        await verifier.authenticate(token)
    assert reason.lower() in caught.value.description.lower()
    assert await verifier.verify_token(token) is None


@pytest.mark.parametrize(("name", "build", "reason"), BAD_TOKENS, ids=[row[0] for row in BAD_TOKENS])
async def test_refusal_reasons_never_contain_the_token(
    verifier: BearerVerifier, idp: FakeIdP, name: str, build: Callable[[FakeIdP], str], reason: str
) -> None:
    token = build(idp)
    with pytest.raises(InvalidToken) as caught:
        await verifier.authenticate(token)
    for part in token.split("."):
        if len(part) > 8:
            assert part not in caught.value.description


async def test_a_genuinely_signed_payload_that_is_not_an_object_is_refused(
    verifier: BearerVerifier, idp: FakeIdP
) -> None:
    from joserfc import jws

    token = jws.serialize_compact({"alg": "RS256", "kid": "rsa-1"}, b"[1,2]", idp.key("rsa-1"), algorithms=["RS256"])
    with pytest.raises(InvalidToken, match="not a JSON object"):
        await verifier.authenticate(token)


async def test_a_token_expired_within_the_leeway_is_accepted(verifier: BearerVerifier, idp: FakeIdP) -> None:
    access = await verifier.authenticate(good_token(idp, exp=NOW - 10))
    assert access.subject == "user-1"


async def test_nbf_within_the_leeway_is_accepted(verifier: BearerVerifier, idp: FakeIdP) -> None:
    assert await verifier.verify_token(good_token(idp, nbf=NOW + 20)) is not None


async def test_zero_leeway_refuses_a_just_expired_token(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    with pytest.raises(InvalidToken, match="expired"):
        await make_verifier(leeway=0).authenticate(good_token(idp, exp=NOW - 1))


async def test_good_token_becomes_an_sdk_access_token(verifier: BearerVerifier, idp: FakeIdP) -> None:
    from mcp.server.auth.provider import AccessToken

    token = good_token(idp)
    access = await verifier.verify_token(token)
    assert isinstance(access, AccessToken)
    assert access.token == token
    assert access.client_id == "mcp-client"
    assert access.subject == "user-1"
    assert access.resource == AUDIENCE
    assert access.expires_at == NOW + 3600
    assert access.scopes == ["openid", "files:read"]
    assert access.claims is not None and access.claims["iss"] == ISSUER


@pytest.mark.parametrize(
    ("scope_claims", "expected"),
    [
        ({"scope": "a b c"}, ["a", "b", "c"]),
        ({"scope": None, "scp": ["a", "b"]}, ["a", "b"]),
        ({"scope": None, "scp": "a b"}, ["a", "b"]),
        ({"scope": None, "permissions": ["read:x", "write:x"]}, ["read:x", "write:x"]),
        ({"scope": "openid a", "permissions": ["a", "read:x"]}, ["openid", "a", "read:x"]),
        ({"scope": None}, []),
        ({"scope": None, "scp": 5, "permissions": [1, "ok", ""]}, ["ok"]),
    ],
)
async def test_scopes_come_from_every_claim_style(
    verifier: BearerVerifier, idp: FakeIdP, scope_claims: dict[str, Any], expected: list[str]
) -> None:
    access = await verifier.authenticate(good_token(idp, **scope_claims))
    assert access.scopes == expected
    assert token_scopes(claims(**scope_claims)) == expected


@pytest.mark.parametrize(
    ("client_claims", "expected"),
    [({}, "mcp-client"), ({"azp": None, "client_id": "cid"}, "cid"), ({"azp": None}, "unknown")],
)
async def test_client_id_comes_from_azp_or_client_id(
    verifier: BearerVerifier, idp: FakeIdP, client_claims: dict[str, Any], expected: str
) -> None:
    assert (await verifier.authenticate(good_token(idp, **client_claims))).client_id == expected


async def test_audience_list_containing_ours_is_accepted(verifier: BearerVerifier, idp: FakeIdP) -> None:
    access = await verifier.authenticate(good_token(idp, aud=["https://other.example.com", AUDIENCE]))
    assert access.resource == AUDIENCE


async def test_resource_is_the_configured_audience_that_matched(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    verifier = make_verifier(audience=[AUDIENCE, "https://api.example.com/"])
    access = await verifier.authenticate(good_token(idp, aud="https://api.example.com/"))
    assert access.resource == "https://api.example.com/"


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (rsa("ps"), "PS256"),
        (rsa("rs512"), "RS512"),
        (ECKey.generate_key("P-256", parameters={"kid": "es256"}, private=True), "ES256"),
        (ECKey.generate_key("P-384", parameters={"kid": "es384"}, private=True), "ES384"),
        (OKPKey.generate_key("Ed25519", parameters={"kid": "ed"}, private=True), "EdDSA"),
        (OKPKey.generate_key("Ed25519", parameters={"kid": "ed2"}, private=True), "Ed25519"),
    ],
)
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
async def test_every_default_asymmetric_algorithm_verifies(
    verifier: BearerVerifier, idp: FakeIdP, key: Key, alg: str
) -> None:
    idp.keys.append(key)
    assert await verifier.verify_token(sign(key, claims(), alg=alg)) is not None


async def test_an_algorithm_outside_the_allow_list_is_refused(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    with pytest.raises(InvalidToken, match="algorithm"):
        await make_verifier(algorithms=["ES256"]).authenticate(good_token(idp))


async def test_a_key_whose_jwk_alg_differs_from_the_header_is_refused(verifier: BearerVerifier, idp: FakeIdP) -> None:
    key = rsa("rs-pinned")
    idp.extra_jwks.append({**key.as_dict(private=False), "alg": "RS512"})
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.authenticate(sign(key, claims(), alg="RS256"))


@pytest.mark.parametrize("restriction", [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": "verify"}])
async def test_keys_not_meant_for_verifying_signatures_are_not_used(
    verifier: BearerVerifier, idp: FakeIdP, restriction: dict[str, Any]
) -> None:
    key = rsa("enc")
    idp.extra_jwks.append({**key.as_dict(private=False), **restriction})
    with pytest.raises(InvalidToken, match="does not publish"):
        await verifier.authenticate(sign(key, claims()))


async def test_a_symmetric_key_in_the_jwks_is_never_a_trust_anchor(verifier: BearerVerifier, idp: FakeIdP) -> None:
    secret = b"s" * 32
    idp.extra_jwks.append({"kty": "oct", "kid": "hs", "k": b64(secret)})
    header = b64(json.dumps({"alg": "HS256", "kid": "hs"}).encode())
    payload = b64(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="symmetric"):
        await verifier.authenticate(f"{header}.{payload}.{b64(mac)}")


async def test_a_malformed_key_in_the_jwks_is_skipped(verifier: BearerVerifier, idp: FakeIdP) -> None:
    idp.extra_jwks.append({"kty": "RSA", "kid": "broken", "n": "!!", "e": 5})
    assert await verifier.verify_token(good_token(idp)) is not None


async def test_token_without_kid_uses_the_only_fitting_key(verifier: BearerVerifier, idp: FakeIdP) -> None:
    assert await verifier.verify_token(sign(idp.key("rsa-1"), claims(), kid=None)) is not None


async def test_token_without_kid_is_refused_when_several_keys_fit(verifier: BearerVerifier, idp: FakeIdP) -> None:
    idp.keys.append(rsa("rsa-2"))
    with pytest.raises(InvalidToken, match="kid"):
        await verifier.authenticate(sign(idp.key("rsa-1"), claims(), kid=None))


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512"])
async def test_symmetric_or_no_algorithm_cannot_be_configured(upstream: UpstreamClient, alg: str) -> None:
    with pytest.raises(ValueError):
        BearerVerifier(upstream, audience=AUDIENCE, resource_metadata_url=PRM, algorithms=["RS256", alg])


@pytest.mark.parametrize("audience", ["", [], [""]])
async def test_an_empty_audience_cannot_be_configured(upstream: UpstreamClient, audience: Any) -> None:
    with pytest.raises(ValueError):
        BearerVerifier(upstream, audience=audience, resource_metadata_url=PRM)


async def test_explicit_issuer_overrides_discovery(make_verifier: Callable[..., BearerVerifier], idp: FakeIdP) -> None:
    verifier = make_verifier(issuer="https://tenant.example.com/")
    with pytest.raises(InvalidToken, match="issuer"):
        await verifier.authenticate(good_token(idp))
    assert await verifier.verify_token(good_token(idp, iss="https://tenant.example.com/")) is not None


# -- scopes ------------------------------------------------------------------------------------


async def test_required_scopes_missing_raise_insufficient_scope(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    verifier = make_verifier(required_scopes=["files:read", "files:write"])
    with pytest.raises(InsufficientScope) as caught:
        await verifier.authenticate(good_token(idp))
    assert caught.value.missing == ("files:write",)
    assert caught.value.required == ("files:read", "files:write")


async def test_required_scopes_missing_make_verify_token_refuse(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    assert await make_verifier(required_scopes=["admin"]).verify_token(good_token(idp)) is None


async def test_per_call_scopes_add_to_the_required_ones(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    verifier = make_verifier(required_scopes=["openid"])
    with pytest.raises(InsufficientScope) as caught:
        await verifier.authenticate(good_token(idp), scopes=["files:write"])
    assert caught.value.required == ("openid", "files:write")
    assert caught.value.missing == ("files:write",)


async def test_challenge_scopes_prefer_required_over_supported(make_verifier: Callable[..., BearerVerifier]) -> None:
    assert make_verifier(required_scopes=["a"], scopes_supported=["a", "b"]).challenge_scopes == ("a",)
    assert make_verifier(scopes_supported=["a", "b"]).challenge_scopes == ("a", "b")
    assert make_verifier().challenge_scopes == ()


# -- the JWKS cache ---------------------------------------------------------------------------


async def test_keys_are_fetched_once_for_many_tokens(verifier: BearerVerifier, idp: FakeIdP) -> None:
    for n in range(5):
        assert await verifier.verify_token(good_token(idp, sub=f"user-{n}")) is not None
    assert idp.jwks_fetches == 1


async def test_concurrent_first_requests_share_one_jwks_fetch(verifier: BearerVerifier, idp: FakeIdP) -> None:
    tokens = [good_token(idp, sub=f"user-{n}") for n in range(10)]
    results = await asyncio.gather(*(verifier.verify_token(t) for t in tokens))
    assert all(r is not None for r in results)
    assert idp.jwks_fetches == 1


async def test_a_rotated_in_key_is_picked_up_by_refetching(
    verifier: BearerVerifier, idp: FakeIdP, clock: Clock
) -> None:
    await verifier.authenticate(good_token(idp))
    clock.now += 60  # past the refetch interval
    new_key = rsa("rsa-2")
    idp.keys.append(new_key)
    access = await verifier.authenticate(sign(new_key, claims(sub="rotated", exp=NOW + 7200)))
    assert access.subject == "rotated"
    assert idp.jwks_fetches == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(
    verifier: BearerVerifier, idp: FakeIdP, clock: Clock
) -> None:
    await verifier.authenticate(good_token(idp))
    clock.now += 60
    for n in range(5):
        stranger = rsa(f"made-up-{n}", 2)
        with pytest.raises(InvalidToken, match="does not publish"):
            await verifier.authenticate(sign(stranger, claims(sub=f"x{n}")))
    assert idp.jwks_fetches == 2
    clock.now += 31
    with pytest.raises(InvalidToken):
        await verifier.authenticate(sign(stranger, claims(sub="later")))
    assert idp.jwks_fetches == 3


async def test_unknown_kid_right_after_the_first_fetch_does_not_refetch(verifier: BearerVerifier, idp: FakeIdP) -> None:
    await verifier.authenticate(good_token(idp))
    stranger = rsa("made-up")
    with pytest.raises(InvalidToken):
        await verifier.authenticate(sign(stranger, claims()))
    assert idp.jwks_fetches == 1


async def test_keys_older_than_max_age_are_refetched(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(jwks_max_age=600, cache_ttl=0)
    await verifier.authenticate(good_token(idp))
    clock.now += 601
    await verifier.authenticate(good_token(idp, sub="again"))
    assert idp.jwks_fetches == 2


async def test_a_removed_key_stops_verifying_after_max_age(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(jwks_max_age=600, cache_ttl=0)
    old = idp.key("rsa-1")
    await verifier.authenticate(sign(old, claims()))
    idp.keys = [rsa("rsa-2")]
    clock.now += 601
    with pytest.raises(InvalidToken, match="does not publish"):
        await verifier.authenticate(sign(old, claims(sub="after-removal", exp=NOW + 7200)))


async def test_stale_keys_keep_working_while_the_idp_is_down(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(jwks_max_age=600, cache_ttl=0)
    await verifier.authenticate(good_token(idp))
    idp.jwks_mode = "down"
    clock.now += 601
    assert (
        await verifier.authenticate(good_token(idp, sub="during-outage", exp=NOW + 7200))
    ).subject == "during-outage"


@pytest.mark.parametrize(
    ("mode", "status"),
    [("down", 502), ("slow", 504), ("garbage", 502), ("error", 502), ("no-keys-member", 502), ("only-oct", 502)],
)
async def test_jwks_failures_raise_upstream_errors(
    verifier: BearerVerifier, idp: FakeIdP, mode: str, status: int
) -> None:
    idp.jwks_mode = mode
    with pytest.raises(UpstreamError) as caught:
        await verifier.authenticate(good_token(idp))
    assert caught.value.status_code == status
    assert await verifier.verify_token(good_token(idp)) is None


async def test_an_idp_failure_is_answered_from_memory_for_a_moment(
    verifier: BearerVerifier, idp: FakeIdP, clock: Clock
) -> None:
    idp.jwks_mode = "down"
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await verifier.authenticate(good_token(idp))
    assert idp.jwks_fetches == 1
    idp.jwks_mode = "ok"
    clock.now += 6
    assert await verifier.verify_token(good_token(idp)) is not None


async def test_concurrent_requests_share_one_failed_fetch(verifier: BearerVerifier, idp: FakeIdP) -> None:
    idp.jwks_mode = "slow"
    results = await asyncio.gather(
        *(verifier.authenticate(good_token(idp, sub=f"u{n}")) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, UpstreamError) and r.status_code == 504 for r in results)
    assert idp.jwks_fetches == 1


async def test_metadata_without_jwks_uri_is_an_upstream_error(verifier: BearerVerifier, idp: FakeIdP) -> None:
    idp.metadata_extra = {}
    with pytest.raises(UpstreamError) as caught:
        await verifier.authenticate(good_token(idp))
    assert caught.value.status_code == 502


# -- the verified-token cache -------------------------------------------------------------------


async def test_a_verified_token_is_answered_from_the_cache(verifier: BearerVerifier, idp: FakeIdP) -> None:
    token = good_token(idp)
    first = await verifier.authenticate(token)
    assert await verifier.authenticate(token) is first


async def test_the_cache_never_outlives_the_token(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(leeway=0)
    token = good_token(idp, exp=NOW + 60)
    await verifier.authenticate(token)
    clock.now += 61
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.authenticate(token)


async def test_the_cache_entry_expires_after_its_ttl(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(cache_ttl=10)
    token = good_token(idp)
    first = await verifier.authenticate(token)
    clock.now += 11
    assert await verifier.authenticate(token) is not first


async def test_the_cache_is_bounded_and_evicts_the_least_recent(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    verifier = make_verifier(cache_size=2)
    a, b, c = (good_token(idp, sub=s) for s in "abc")
    first_a = await verifier.authenticate(a)
    await verifier.authenticate(b)
    await verifier.authenticate(c)
    assert len(verifier._cache) == 2
    assert await verifier.authenticate(a) is not first_a


async def test_the_cache_keys_a_verified_token_by_the_token_its_value_already_holds(
    verifier: BearerVerifier, idp: FakeIdP
) -> None:
    token = good_token(idp)
    access = await verifier.authenticate(token)
    assert access.token == token
    assert len(verifier._cache) == 1
    assert verifier._cache.get(token) is access


async def test_a_remembered_token_is_answered_without_a_coroutine(verifier: BearerVerifier, idp: FakeIdP) -> None:
    token = good_token(idp)
    assert verifier.remembered(token) is None
    access = await verifier.authenticate(token)
    assert verifier.remembered(token) is access


async def test_a_remembered_token_is_forgotten_when_it_expires(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, clock: Clock
) -> None:
    verifier = make_verifier(cache_ttl=10)
    token = good_token(idp)
    await verifier.authenticate(token)
    clock.now += 11
    assert verifier.remembered(token) is None


async def test_a_token_longer_than_any_accepted_one_is_never_remembered(verifier: BearerVerifier) -> None:
    assert verifier.remembered("a" * (verifier.max_token_length + 1)) is None


async def test_a_cached_token_still_meets_the_scope_check(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP
) -> None:
    verifier = make_verifier()
    token = good_token(idp)
    await verifier.authenticate(token)
    with pytest.raises(InsufficientScope):
        await verifier.authenticate(token, scopes=["admin"])


# -- opaque tokens (RFC 7662 introspection) ------------------------------------------------------


async def test_opaque_token_is_introspected_with_the_upstream_credentials(
    verifier: BearerVerifier, idp: FakeIdP
) -> None:
    idp.introspection = {
        "active": True,
        "aud": AUDIENCE,
        "sub": "u",
        "scope": "files:read",
        "exp": NOW + 60,
        "client_id": "c",
    }
    access = await verifier.authenticate("opaque-token-value")
    assert (access.subject, access.client_id, access.scopes, access.resource) == ("u", "c", ["files:read"], AUDIENCE)
    request = idp.introspection_requests[0]
    assert request["token"] == "opaque-token-value"
    assert request["client_id"] == "shim" and request["client_secret"] == "upstream-secret"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"active": False}, "not active"),
        ({"active": "true", "aud": AUDIENCE}, "not active"),
        ({"active": True, "aud": "https://other.example.com"}, "audience"),
        ({"active": True}, "aud"),
        ({"active": True, "aud": AUDIENCE, "iss": "https://evil.example.com/"}, "issuer"),
        ({"active": True, "aud": AUDIENCE, "exp": NOW - 3600}, "expired"),
        ({"active": True, "aud": AUDIENCE, "exp": NOW + 3600}, "no subject"),
    ],
)
async def test_introspection_refusals(
    verifier: BearerVerifier, idp: FakeIdP, answer: dict[str, Any], reason: str
) -> None:
    idp.introspection = answer
    with pytest.raises(InvalidToken) as caught:
        await verifier.authenticate("opaque-token-value")
    assert reason in caught.value.description


async def test_introspection_can_be_switched_off(make_verifier: Callable[..., BearerVerifier], idp: FakeIdP) -> None:
    idp.introspection = {"active": True, "aud": AUDIENCE}
    with pytest.raises(InvalidToken, match="not a JWT"):
        await make_verifier(introspect=False).authenticate("opaque-token-value")
    assert idp.introspection_requests == []


async def test_introspection_results_are_cached_briefly(verifier: BearerVerifier, idp: FakeIdP, clock: Clock) -> None:
    idp.introspection = {"active": True, "aud": AUDIENCE, "sub": "user-1", "exp": NOW + 3600}
    await verifier.authenticate("opaque-token-value")
    await verifier.authenticate("opaque-token-value")
    assert len(idp.introspection_requests) == 1
    clock.now += 61
    idp.introspection = {"active": False}
    with pytest.raises(InvalidToken, match="not active"):
        await verifier.authenticate("opaque-token-value")


# -- hygiene -------------------------------------------------------------------------------------


async def test_no_log_line_contains_the_token(
    make_verifier: Callable[..., BearerVerifier], idp: FakeIdP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    verifier = make_verifier(required_scopes=["admin"])
    tokens = [good_token(idp), tampered(idp), unsigned(idp), "opaque-token-value"]
    for token in tokens:
        await verifier.verify_token(token)
    idp.jwks_mode = "down"
    await make_verifier().verify_token(tokens[0])
    text = caplog.text
    assert "token refused" in text
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in text


def test_importing_the_verifier_does_not_import_mcp() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mcp_oauth_shim.verify, mcp_oauth_shim.protect, mcp_oauth_shim.rfc6750;"
        "print('mcp' in sys.modules, 'fastapi' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_one_verifier_serves_successive_event_loops(idp: FakeIdP) -> None:
    """Test clients and embedded servers run one loop after another; the key cache must follow."""

    async def slow_handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let the other requests queue on the refresh lock
        return idp.handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow_handler))
    config = Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="s")
    verifier = BearerVerifier(
        UpstreamClient(config, http=http), audience=AUDIENCE, resource_metadata_url=PRM, clock=Clock(), cache_size=0
    )

    async def burst(subject: str) -> list[Any]:
        tokens = [good_token(idp, sub=f"{subject}-{n}") for n in range(5)]
        return await asyncio.gather(*(verifier.verify_token(t) for t in tokens))

    first = asyncio.run(burst("a"))
    verifier.keys.expire()  # force a contended refresh in the next loop
    second = asyncio.run(burst("b"))
    assert all(first) and all(second)


# -- IdP answers that lie ------------------------------------------------------------------------

# One past what a float holds: Python's JSON parser reads it as an exact integer.
BEYOND_FLOAT = 10**400


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_an_introspection_time_beyond_any_float_is_refused_as_malformed(
    verifier: BearerVerifier, idp: FakeIdP, claim: str
) -> None:
    idp.introspection = {"active": True, "aud": AUDIENCE, "exp": NOW + 60, claim: BEYOND_FLOAT}
    with pytest.raises(InvalidToken, match=claim):
        await verifier.authenticate("opaque-token-value")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_a_signed_jwt_time_beyond_any_float_is_refused_as_malformed(
    verifier: BearerVerifier, idp: FakeIdP, claim: str
) -> None:
    with pytest.raises(InvalidToken, match=claim):
        await verifier.authenticate(good_token(idp, **{claim: BEYOND_FLOAT}))
