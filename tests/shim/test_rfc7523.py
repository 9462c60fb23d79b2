"""RFC 7523 JWT assertions: what is accepted, and the precise refusal for every bad one.

Signatures are real (joserfc keys); the malformed shapes are assembled by hand, as an attacker
would. Every refusal is an ``AssertionRefused`` whose ``oauth_error()`` is ``invalid_grant``
for a grant (§3.1) and ``invalid_client`` for client authentication (§3.2); nothing else
escapes, whatever the input.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_oauth_shim.rfc7523 import (
    AssertionRefused,
    AssertionRules,
    MemoryReplayGuard,
    SignatureKeys,
    read_assertion,
    replay_key,
    verify_assertion,
)

from .assertion_kit import (
    AS_ISSUER,
    EC_KEY,
    NOW,
    OTHER_EC_KEY,
    RSA_KEY,
    TOKEN_ENDPOINT,
    b64json,
    claims,
    forge,
    hs256_with_public_key,
    jwks,
    sign,
    unsigned,
)

RULES = AssertionRules(audiences=frozenset({AS_ISSUER, TOKEN_ENDPOINT}), max_lifetime=300, require_jti=True)
KEYS = SignatureKeys.from_jwks(jwks(EC_KEY, RSA_KEY))


def check(assertion: Any, rules: AssertionRules = RULES, use: Any = "grant", keys: SignatureKeys = KEYS):
    return verify_assertion(read_assertion(assertion, rules, use), keys, rules, now=NOW)


@pytest.mark.parametrize(
    "assertion",
    [
        pytest.param(sign(claims()), id="es256"),
        pytest.param(sign(claims(), key=RSA_KEY), id="rs256"),
        pytest.param(sign(claims(aud=TOKEN_ENDPOINT)), id="aud-token-endpoint"),
        pytest.param(sign(claims(aud=["https://other.example", AS_ISSUER])), id="aud-array-containing-ours"),
        pytest.param(sign(claims(exp=NOW - 10)), id="exp-just-past-within-leeway"),
        pytest.param(sign(claims(iat=...)), id="iat-optional"),
        pytest.param(sign(claims(exp=NOW + 60.5, iat=NOW - 0.5)), id="fractional-numeric-dates"),
    ],
)
def test_valid_assertion_is_accepted(assertion: str) -> None:
    verified = check(assertion)
    assert (verified.issuer, verified.subject, verified.jti) == ("client-1", "client-1", "jti-1")


def test_verified_assertion_carries_claims_and_dates() -> None:
    verified = check(sign(claims(extra="x")))
    assert verified.expires_at == NOW + 60 and verified.issued_at == NOW
    assert verified.audiences == (AS_ISSUER,)
    assert verified.claims["extra"] == "x"


NESTED = b64json({"alg": "ES256"}) + "." + __import__("base64").urlsafe_b64encode(b"[" * 5000).decode().rstrip("=") + ".c2ln"

MALFORMED: list[Any] = [
    pytest.param("", "missing", id="empty"),
    pytest.param(None, "missing", id="absent"),
    pytest.param(["a.b.c"], "missing", id="not-a-string"),
    pytest.param("not a jwt", "malformed", id="not-jwt"),
    pytest.param("a.b", "malformed", id="two-parts"),
    pytest.param("a.b.c.d.e", "malformed", id="jwe-shape"),
    pytest.param("!!!.@@@.###", "malformed", id="bad-base64"),
    pytest.param("é.é.é", "malformed", id="non-ascii"),
    pytest.param(f"{b64json([1])}.{b64json(claims())}.c2ln", "malformed", id="header-not-object"),
    pytest.param(f"{b64json({'alg': 'ES256'})}.bm90IGpzb24.c2ln", "malformed", id="payload-not-json"),
    pytest.param(sign([1, 2]), "malformed", id="payload-array"),
    pytest.param(sign("just a string"), "malformed", id="payload-string"),
    pytest.param(NESTED, "malformed", id="payload-deeply-nested"),
    pytest.param("a" * 10_000 + "." + "b" * 10_000 + ".c", "too_large", id="huge"),
    pytest.param(unsigned(claims()), "algorithm", id="alg-none"),
    pytest.param(hs256_with_public_key(claims()), "algorithm", id="hs256-public-key-as-secret"),
    pytest.param(forge({"alg": "ES256K", "kid": "ec-1"}, claims()), "algorithm", id="alg-not-allowed"),
    pytest.param(forge({"alg": 256, "kid": "ec-1"}, claims()), "algorithm", id="alg-not-string"),
    pytest.param(forge({"kid": "ec-1"}, claims()), "malformed", id="alg-missing"),
    pytest.param(forge({"alg": "ES256", "kid": 7}, claims()), "header", id="kid-not-string"),
    pytest.param(forge({"alg": "ES256", "kid": "ec-1", "typ": ["JWT"]}, claims()), "header", id="typ-not-string"),
    pytest.param(forge({"alg": "ES256", "kid": "ec-1", "crit": ["x-unknown"], "x-unknown": 1}, claims()), "header", id="crit-unknown"),
    pytest.param(forge({"alg": "ES256", "kid": "ec-1", "crit": [1]}, claims()), "header", id="crit-not-strings"),
    pytest.param(forge({"alg": "ES256", "kid": "ec-1"}, claims()), "signature", id="garbage-signature"),
    pytest.param(sign(claims(), {"kid": "nope"}), "unknown_key", id="kid-unknown"),
    pytest.param(sign(claims(), {"kid": "rsa-1"}), "unknown_key", id="kid-of-key-that-cannot-do-alg"),
    pytest.param(sign(claims(), key=OTHER_EC_KEY), "signature", id="signed-by-other-key"),
    pytest.param(sign(claims(iss=...)), "missing_claim", id="iss-missing"),
    pytest.param(sign(claims(iss=12)), "claim_type", id="iss-number"),
    pytest.param(sign(claims(iss="")), "claim_type", id="iss-empty"),
    pytest.param(sign(claims(sub=...)), "missing_claim", id="sub-missing"),
    pytest.param(sign(claims(sub=["client-1"])), "claim_type", id="sub-array"),
    pytest.param(sign(claims(aud=...)), "missing_claim", id="aud-missing"),
    pytest.param(sign(claims(aud="https://evil.example")), "audience", id="aud-wrong"),
    pytest.param(sign(claims(aud=AS_ISSUER + "/")), "audience", id="aud-issuer-with-slash"),
    pytest.param(sign(claims(aud=[])), "claim_type", id="aud-empty-array"),
    pytest.param(sign(claims(aud=[AS_ISSUER, 3])), "claim_type", id="aud-array-with-number"),
    pytest.param(sign(claims(aud={"a": AS_ISSUER})), "claim_type", id="aud-object"),
    pytest.param(sign(claims(exp=...)), "missing_claim", id="exp-missing"),
    pytest.param(sign(claims(exp=str(NOW + 60))), "claim_type", id="exp-string"),
    pytest.param(sign(claims(exp=True)), "claim_type", id="exp-boolean"),
    pytest.param(sign(claims(exp=NOW - 31)), "expired", id="exp-past"),
    pytest.param(sign(claims(nbf=NOW + 31)), "not_yet_valid", id="nbf-future"),
    pytest.param(sign(claims(nbf="soon")), "claim_type", id="nbf-string"),
    pytest.param(sign(claims(iat=NOW + 31)), "issued_in_future", id="iat-future"),
    pytest.param(sign(claims(iat=None, exp=NOW + 3600)), "lifetime", id="exp-too-far-without-iat"),
    pytest.param(sign(claims(exp=NOW + 3600)), "lifetime", id="exp-too-far"),
    pytest.param(sign(claims(iat=NOW - 1000, exp=NOW + 10)), "lifetime", id="issued-long-ago"),
    pytest.param(sign(claims(jti=...)), "missing_claim", id="jti-missing"),
    pytest.param(sign(claims(jti=5)), "claim_type", id="jti-number"),
    pytest.param(sign(claims(jti="")), "claim_type", id="jti-empty"),
]


@pytest.mark.parametrize(("assertion", "reason"), MALFORMED)
@pytest.mark.parametrize(("use", "error"), [("grant", "invalid_grant"), ("client_authentication", "invalid_client")])
def test_bad_assertion_is_refused_with_its_reason(assertion: Any, reason: str, use: Any, error: str) -> None:
    with pytest.raises(AssertionRefused) as refused:
        check(assertion, use=use)
    assert refused.value.reason == reason
    err = refused.value.oauth_error()
    assert (err.error, err.status_code) == (error, 400)
    assert err.description and "eyJ" not in err.description


def test_typ_is_required_when_the_profile_says_so() -> None:
    rules = AssertionRules(audiences=frozenset({AS_ISSUER}), typ="oauth-id-jag+jwt")
    with pytest.raises(AssertionRefused) as refused:
        check(sign(claims(), {"typ": "JWT"}), rules=rules)
    assert refused.value.reason == "typ"
    with pytest.raises(AssertionRefused):
        check(sign(claims()), rules=rules)


@pytest.mark.parametrize("typ", ["oauth-id-jag+jwt", "OAUTH-ID-JAG+JWT", "application/oauth-id-jag+jwt"])
def test_typ_compares_as_a_media_type(typ: str) -> None:
    rules = AssertionRules(audiences=frozenset({AS_ISSUER}), typ="oauth-id-jag+jwt")
    assert check(sign(claims(), {"typ": typ}), rules=rules).subject == "client-1"


def test_without_kid_the_only_fitting_key_is_used() -> None:
    assert check(sign(claims(), {"kid": ...}), keys=KEYS).subject == "client-1"


def test_without_kid_an_ambiguous_key_set_refuses() -> None:
    from joserfc.jwk import ECKey

    two_ec = SignatureKeys.from_jwks({"keys": [EC_KEY.as_dict(private=False), {**ECKey.generate_key("P-256").as_dict(private=False)}]})
    with pytest.raises(AssertionRefused) as refused:
        check(sign(claims(), {"kid": ...}), keys=two_ec)
    assert refused.value.reason == "unknown_key"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="no-keys"),
        pytest.param({"keys": "x"}, id="keys-not-list"),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, id="only-symmetric"),
        pytest.param({"keys": [{**EC_KEY.as_dict(private=False), "use": "enc"}]}, id="only-encryption"),
        pytest.param({"keys": [{"kty": "EC", "crv": "P-256", "x": "!!", "y": "!!"}]}, id="broken-key"),
        pytest.param([1], id="not-object"),
    ],
)
def test_key_set_without_usable_signature_key_is_refused(document: Any) -> None:
    with pytest.raises(ValueError):
        SignatureKeys.from_jwks(document)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audiences": frozenset()},
        {"audiences": frozenset({AS_ISSUER}), "algorithms": ("HS256",)},
        {"audiences": frozenset({AS_ISSUER}), "algorithms": ("none",)},
        {"audiences": frozenset({AS_ISSUER}), "algorithms": ("XX999",)},
        {"audiences": frozenset({AS_ISSUER}), "max_lifetime": 0},
        {"audiences": frozenset({AS_ISSUER}), "leeway": -1},
    ],
)
def test_rules_refuse_unsafe_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AssertionRules(**kwargs)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.from_regex(r"[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,40}", fullmatch=True)))
def test_arbitrary_text_is_refused_never_crashes(text: str) -> None:
    with pytest.raises(AssertionRefused):
        check(text)


@pytest.mark.anyio
async def test_replay_guard_accepts_a_key_once_until_it_expires() -> None:
    clock = [float(NOW)]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    key = replay_key("grant", "https://idp.example", "jti-1")
    assert await guard.first_use(key, until=NOW + 60) is True
    assert await guard.first_use(key, until=NOW + 60) is False
    clock[0] = NOW + 61
    assert await guard.first_use(key, until=NOW + 120) is True


@pytest.mark.anyio
async def test_replay_guard_is_bounded() -> None:
    guard = MemoryReplayGuard(max_entries=3, clock=lambda: float(NOW))
    for i in range(10):
        await guard.first_use(str(i), until=NOW + 60)
    assert len(guard) == 3


def test_replay_keys_separate_issuers_and_uses() -> None:
    keys = {
        replay_key("grant", "https://a", "1"),
        replay_key("grant", "https://b", "1"),
        replay_key("client_authentication", "https://a", "1"),
        replay_key("grant", "https://a1", ""),
    }
    assert len(keys) == 4


@pytest.mark.parametrize("alg", ['<script>"x', "ES256\u202e", "A" * 500])
def test_refusal_never_echoes_header_values(alg: str) -> None:
    with pytest.raises(AssertionRefused) as refused:
        check(forge({"alg": alg, "kid": "ec-1"}, claims()))
    assert alg not in refused.value.description
    assert refused.value.description.isascii()
