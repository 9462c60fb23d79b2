"""RFC 9068 access tokens the shim issues: mint, verify, refusals, and PyJWT as a second opinion."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jws
from joserfc.jws import JWSRegistry

from mcp_oauth_shim import rfc9068
from mcp_oauth_shim.encryption import DecryptionError, TokenCipher
from mcp_oauth_shim.rfc9068 import (
    AlgorithmNotAllowed,
    BadSignature,
    ExpiredToken,
    IssuedTokenVerifier,
    MalformedToken,
    MissingClaim,
    NotYetValid,
    OversizedToken,
    UnknownKey,
    WrongAudience,
    WrongIssuer,
    WrongType,
    mint,
    verify,
)
from mcp_oauth_shim.signing_keys import PublicKeys, SigningKeys
from mcp_oauth_shim.verify import InsufficientScope, InvalidToken

ISSUER = "https://api.example.com"
RESOURCE = "https://api.example.com/mcp"
SECRET = "shim-secret-of-at-least-32-bytes-ssssssssss"
OTHER_SECRET = "another-shims-secret-of-32-bytes-oooooooooo"
NOW = 1_800_000_000
KEYS = SigningKeys.from_secrets([SECRET])


def pem(private: Any) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


OPERATOR_KEYS = {
    "ES256": SigningKeys.from_keys([pem(ec.generate_private_key(ec.SECP256R1()))]),
    "RS256": SigningKeys.from_keys([pem(rsa.generate_private_key(65537, 2048))]),
    "EdDSA": SigningKeys.from_keys([pem(ed25519.Ed25519PrivateKey.generate())]),
}


def issue(keys: SigningKeys = KEYS, **overrides: Any) -> str:
    arguments: dict[str, Any] = dict(
        issuer=ISSUER, audience=RESOURCE, subject="user-1", client_id="client-1", scopes=["read", "write"], lifetime=300, now=NOW
    )
    arguments.update(overrides)
    return mint(keys, **arguments)


def check(token: str, keys: Any = KEYS, **overrides: Any) -> rfc9068.ShimClaims:
    arguments: dict[str, Any] = dict(issuer=ISSUER, audience=RESOURCE, now=NOW)
    arguments.update(overrides)
    return verify(token, keys, **arguments)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def good_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "read",
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "jti-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def forge(claims: dict[str, Any] | None = None, keys: SigningKeys = KEYS, **header: Any) -> str:
    """A token signed by the shim's real key with the given claims and header changes."""
    key = keys.current
    protected = {"typ": "at+jwt", "alg": key.alg, "kid": key.kid, **header}
    protected = {k: v for k, v in protected.items() if v is not None}
    return jws.serialize_compact(protected, json.dumps(good_claims() if claims is None else claims), key.key, algorithms=[key.alg])


def signed_raw(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed by the shim's key, header as given: for headers joserfc itself will not produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), KEYS.current.key)
    return f"{signing_input}.{b64(signature)}"


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


# -- minting ------------------------------------------------------------------------------------


def test_minted_header_is_at_jwt_with_alg_and_kid() -> None:
    header = pyjwt.get_unverified_header(issue())
    assert header == {"typ": "at+jwt", "alg": "ES256", "kid": KEYS.current.kid}


def test_minted_claims_are_the_rfc9068_set() -> None:
    claims = json.loads(base64.urlsafe_b64decode(issue().split(".")[1] + "=="))
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "read write",
        "iat": NOW,
        "exp": NOW + 300,
    }


def test_scopes_given_as_a_space_separated_string_are_split() -> None:
    assert check(issue(scopes="read  write read")).scopes == ("read", "write")


def test_each_minted_token_has_its_own_jti() -> None:
    assert check(issue()).jti != check(issue()).jti


def test_auth_time_and_identity_claims_are_carried() -> None:
    token = issue(auth_time=NOW - 5, extra_claims={"name": "Ada", "email": "ada@example.com", "preferred_username": "ada"})
    claims = check(token)
    assert (claims.auth_time, claims.name, claims.email, claims.preferred_username) == (NOW - 5, "Ada", "ada@example.com", "ada")


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "client_id", "scope", "jti", "upt"])
def test_extra_claims_may_not_override_the_shims_claims(claim: str) -> None:
    with pytest.raises(ValueError, match=claim):
        issue(extra_claims={claim: "x"})


def test_upstream_token_without_cipher_is_refused() -> None:
    with pytest.raises(ValueError, match="cipher"):
        issue(upstream_access_token="gho_x")


# -- verifying: what passes -----------------------------------------------------------------------


def test_minted_token_verifies_to_its_claims() -> None:
    claims = check(issue())
    assert (claims.subject, claims.client_id, claims.scopes, claims.resource, claims.expires_at) == (
        "user-1",
        "client-1",
        ("read", "write"),
        RESOURCE,
        NOW + 300,
    )


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
def test_both_rfc9068_type_spellings_pass(typ: str) -> None:
    assert check(forge(typ=typ)).subject == "user-1"


def test_audience_list_containing_the_resource_passes() -> None:
    assert check(forge(good_claims(aud=["https://other.example.com", RESOURCE]))).resource == RESOURCE


def test_token_just_expired_within_leeway_passes() -> None:
    assert check(issue(), now=NOW + 300 + 29).subject == "user-1"


def test_verifies_against_the_published_jwks_document() -> None:
    assert check(issue(), json.loads(KEYS.jwks_json)).subject == "user-1"


def test_old_key_still_verifies_after_rotation() -> None:
    old_token = issue()
    rotated = SigningKeys.from_secrets([OTHER_SECRET, SECRET])
    assert check(old_token, rotated).subject == "user-1"


# -- verifying: the refusal matrix ---------------------------------------------------------------

OTHER_SHIM = SigningKeys.from_secrets([OTHER_SECRET])
RS_KEYS = OPERATOR_KEYS["RS256"]
MIXED = SigningKeys([*KEYS.keys, *RS_KEYS.keys])
PUBLIC_JWK_AS_SECRET = json.dumps(KEYS.current.public_jwk).encode()


def hs256_with_public_key() -> str:
    header = {"typ": "at+jwt", "alg": "HS256", "kid": KEYS.current.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(good_claims()).encode())}"
    mac = hmac.new(PUBLIC_JWK_AS_SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def flip_signature(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[5] ^= 1
    return f"{head}.{body}.{b64(bytes(raw))}"


def swap_payload(token: str) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{b64(json.dumps(good_claims(sub='admin')).encode())}.{signature}"


REFUSALS: list[tuple[str, Any, type[InvalidToken]]] = [
    ("typ-jwt", lambda: forge(typ="JWT"), WrongType),
    ("typ-missing", lambda: forge(typ=None), WrongType),
    ("typ-id-token", lambda: forge(typ="application/jwt"), WrongType),
    ("alg-none", lambda: unsigned({"typ": "at+jwt", "alg": "none", "kid": KEYS.current.kid}, good_claims()), AlgorithmNotAllowed),
    ("alg-hs256-public-key", hs256_with_public_key, AlgorithmNotAllowed),
    ("alg-not-the-keys", lambda: forge(keys=RS_KEYS, kid=KEYS.current.kid), AlgorithmNotAllowed),
    ("kid-unknown", lambda: forge(kid="nope"), UnknownKey),
    ("kid-missing", lambda: forge(kid=None), UnknownKey),
    ("other-shim", lambda: issue(OTHER_SHIM), UnknownKey),
    ("signature-flipped", lambda: flip_signature(issue()), BadSignature),
    ("payload-swapped", lambda: swap_payload(issue()), BadSignature),
    ("signed-by-other-key-same-kid", lambda: forge(keys=OTHER_SHIM, kid=KEYS.current.kid), BadSignature),
    ("iss-other", lambda: forge(good_claims(iss="https://evil.example.com")), WrongIssuer),
    ("iss-trailing-slash", lambda: forge(good_claims(iss=ISSUER + "/")), WrongIssuer),
    ("aud-other", lambda: forge(good_claims(aud="https://other.example.com/mcp")), WrongAudience),
    ("aud-list-without", lambda: forge(good_claims(aud=["https://other.example.com"])), WrongAudience),
    ("aud-number", lambda: forge(good_claims(aud=1)), WrongAudience),
    ("expired", lambda: forge(good_claims(exp=NOW - 31)), ExpiredToken),
    ("iat-future", lambda: forge(good_claims(iat=NOW + 31)), NotYetValid),
    ("nbf-future", lambda: forge(good_claims(nbf=NOW + 31)), NotYetValid),
    *[(f"missing-{c}", (lambda c=c: forge(good_claims(**{c: None}))), MissingClaim) for c in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")],
    ("exp-text", lambda: forge(good_claims(exp="soon")), MissingClaim),
    ("exp-bool", lambda: forge(good_claims(exp=True)), MissingClaim),
    ("exp-infinity", lambda: forge(good_claims(exp=float("inf"))), MissingClaim),
    ("exp-nan", lambda: forge(good_claims(exp=float("nan"))), MissingClaim),
    ("iat-nan", lambda: forge(good_claims(iat=float("nan"))), MissingClaim),
    ("sub-empty", lambda: forge(good_claims(sub="")), MissingClaim),
    ("client-id-number", lambda: forge(good_claims(client_id=7)), MissingClaim),
    ("scope-list", lambda: forge(good_claims(scope=["read"])), MissingClaim),
    ("oversized", lambda: forge(good_claims(pad="x" * rfc9068.MAX_TOKEN_LENGTH)), OversizedToken),
    ("two-parts", lambda: "a.b", MalformedToken),
    ("empty", lambda: "", MalformedToken),
    ("non-ascii", lambda: "é.é.é", MalformedToken),
    ("payload-not-object", lambda: jws.serialize_compact({"typ": "at+jwt", "alg": "ES256", "kid": KEYS.current.kid}, "[1]", KEYS.current.key), MalformedToken),
    ("crit-unknown", lambda: signed_raw({"typ": "at+jwt", "alg": "ES256", "kid": KEYS.current.kid, "crit": ["x"], "x": 1}, good_claims()), MalformedToken),
]


@pytest.mark.parametrize(("make", "refusal"), [(m, r) for _, m, r in REFUSALS], ids=[n for n, _, _ in REFUSALS])
def test_refused_tokens_name_their_reason(make: Any, refusal: type[InvalidToken]) -> None:
    with pytest.raises(refusal):
        check(make(), MIXED)


@pytest.mark.parametrize(("make", "refusal"), [(m, r) for _, m, r in REFUSALS], ids=[n for n, _, _ in REFUSALS])
def test_refusal_descriptions_never_contain_the_token(make: Any, refusal: type[InvalidToken]) -> None:
    token = make()
    with pytest.raises(InvalidToken) as caught:
        check(token, MIXED)
    assert not token or token not in caught.value.description


DESCRIBED_REFUSALS = [
    pytest.param(lambda: forge(good_claims(sub=None)), "lacks the required claim: sub", id="missing-sub"),
    pytest.param(lambda: forge(good_claims(client_id=7)), "has a malformed claim: client_id", id="client-id-number"),
    pytest.param(lambda: forge(good_claims(exp="soon")), "has a malformed claim: exp", id="exp-text"),
    pytest.param(lambda: "a.b", "is not a well-formed JWT", id="two-parts"),
    pytest.param(
        lambda: signed_raw({"typ": "at+jwt", "alg": "ES256", "kid": KEYS.current.kid, "crit": ["x"], "x": 1}, good_claims()),
        "unsupported critical parameters",
        id="crit-unknown",
    ),
    pytest.param(
        lambda: jws.serialize_compact({"typ": "at+jwt", "alg": "ES256", "kid": KEYS.current.kid}, "[1]", KEYS.current.key),
        "payload is not a JSON object",
        id="payload-not-object",
    ),
]


@pytest.mark.parametrize(("make", "says"), DESCRIBED_REFUSALS)
def test_refusal_description_says_which_check_failed(make: Any, says: str) -> None:
    """What the client reads in ``error_description`` (RFC 6750 §3) names the failed check."""
    with pytest.raises(InvalidToken) as caught:
        check(make(), MIXED)
    assert says in caught.value.description


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["ES256", "HS512"], [], ["XX999"]])
def test_symmetric_none_or_unknown_algorithm_lists_are_a_configuration_error(algorithms: list[str]) -> None:
    with pytest.raises(ValueError):
        check(issue(), algorithms=algorithms)


def test_algorithm_outside_the_allowed_list_is_refused() -> None:
    with pytest.raises(AlgorithmNotAllowed):
        check(issue(), algorithms=["RS256"])


# -- a second opinion: PyJWT ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(OPERATOR_KEYS))
def test_pyjwt_verifies_minted_tokens_with_the_published_jwks(alg: str) -> None:
    keys = OPERATOR_KEYS[alg]
    token = issue(keys, now=None)
    published = pyjwt.PyJWKSet.from_dict(json.loads(keys.jwks_json))[keys.current.kid]
    claims = pyjwt.decode(token, published.key, algorithms=[alg], audience=RESOURCE, issuer=ISSUER)
    assert (claims["sub"], claims["client_id"], claims["scope"]) == ("user-1", "client-1", "read write")


def test_pyjwt_verifies_derived_key_tokens() -> None:
    published = pyjwt.PyJWKSet.from_dict(KEYS.jwks)[KEYS.current.kid]
    claims = pyjwt.decode(issue(now=None), published.key, algorithms=["ES256"], audience=RESOURCE, issuer=ISSUER)
    assert claims["sub"] == "user-1"


@pytest.mark.parametrize("alg", sorted(OPERATOR_KEYS))
def test_tokens_pyjwt_mints_verify_here(alg: str) -> None:
    keys = OPERATOR_KEYS[alg]
    private = keys.current.key.private_key
    token = pyjwt.encode(good_claims(), private, algorithm=alg, headers={"typ": "at+jwt", "kid": keys.current.kid})
    assert check(token, keys.jwks).subject == "user-1"


@pytest.mark.parametrize("alg", sorted(OPERATOR_KEYS))
def test_tokens_pyjwt_mints_with_another_key_are_refused(alg: str) -> None:
    keys = OPERATOR_KEYS[alg]
    other = OPERATOR_KEYS["ES256" if alg != "ES256" else "EdDSA"].current.key.private_key
    other_alg = "ES256" if alg != "ES256" else "EdDSA"
    token = pyjwt.encode(good_claims(), other, algorithm=other_alg, headers={"typ": "at+jwt", "kid": keys.current.kid})
    with pytest.raises((AlgorithmNotAllowed, BadSignature)):
        check(token, keys.jwks)


# -- the upstream access token inside -------------------------------------------------------------

CIPHER = TokenCipher([SECRET])


def test_carried_upstream_token_decrypts() -> None:
    claims = check(issue(upstream_access_token="gho_upstream", cipher=CIPHER))
    assert claims.upstream_access_token(CIPHER) == "gho_upstream"


def test_carried_upstream_token_is_not_readable_in_the_token() -> None:
    token = issue(upstream_access_token="gho_upstream", cipher=CIPHER)
    payload = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    assert b"gho_upstream" not in payload


def test_token_without_upstream_token_gives_none() -> None:
    assert check(issue()).upstream_access_token(CIPHER) is None


def test_upstream_token_moved_into_another_token_does_not_decrypt() -> None:
    donor = check(issue(upstream_access_token="gho_upstream", cipher=CIPHER))
    receiver = check(forge(good_claims(jti="other-jti", upt=donor.upstream_token)))
    with pytest.raises(DecryptionError):
        receiver.upstream_access_token(CIPHER)


# -- the cached verifier --------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock, **options: Any) -> IssuedTokenVerifier:
    return IssuedTokenVerifier(KEYS, issuer=ISSUER, audience=RESOURCE, clock=clock, **options)


def test_verifier_returns_the_remembered_claims_for_a_repeated_token() -> None:
    v = verifier(Clock())
    token = issue()
    assert v.verify(token) is v.verify(token)


def test_verifier_refuses_a_remembered_token_once_expired() -> None:
    clock = Clock()
    v = verifier(clock)
    token = issue()
    v.verify(token)
    clock.now = NOW + 300 + 31
    with pytest.raises(ExpiredToken):
        v.verify(token)


def test_verifier_checks_required_scopes() -> None:
    v = verifier(Clock(), required_scopes=["admin"])
    with pytest.raises(InsufficientScope) as caught:
        v.authenticate(issue())
    assert caught.value.missing == ("admin",)


def test_verifier_accepts_granted_scopes() -> None:
    assert verifier(Clock()).authenticate(issue(), scopes=["read"]).subject == "user-1"


def test_verifier_from_a_jwks_refuses_another_shims_tokens() -> None:
    v = IssuedTokenVerifier(PublicKeys.from_jwks(KEYS.jwks), issuer=ISSUER, audience=RESOURCE, clock=Clock())
    with pytest.raises(UnknownKey):
        v.verify(issue(OTHER_SHIM))


def test_verifier_refuses_oversized_tokens_before_hashing() -> None:
    with pytest.raises(OversizedToken):
        verifier(Clock()).verify("a" * (rfc9068.MAX_TOKEN_LENGTH + 1))


def test_claims_become_the_mcp_sdks_access_token() -> None:
    token = issue()
    access = check(token).to_access_token(token)
    assert (access.client_id, access.scopes, access.resource, access.subject) == ("client-1", ["read", "write"], RESOURCE, "user-1")
