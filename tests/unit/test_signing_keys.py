"""SigningKeys: keys derived from secret_keys or given by the operator, and their JWKS."""

from __future__ import annotations

import json

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc.jwk import ECKey

from mcp_oauth_shim.config import ConfigurationError
from mcp_oauth_shim.signing_keys import PublicKeys, SigningKeys, derive_p256_scalar

SECRET_A = "a-secret-of-at-least-32-bytes-aaaaaaaaaaaa"
SECRET_B = "b-secret-of-at-least-32-bytes-bbbbbbbbbbbb"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def pem(private: object) -> str:
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


RSA_2048 = rsa.generate_private_key(65537, 2048)


def test_same_secrets_derive_the_same_jwks_on_every_replica() -> None:
    assert SigningKeys.from_secrets([SECRET_A, SECRET_B]).jwks == SigningKeys.from_secrets([SECRET_A, SECRET_B]).jwks


def test_different_secrets_derive_different_keys() -> None:
    assert SigningKeys.from_secrets([SECRET_A]).current.kid != SigningKeys.from_secrets([SECRET_B]).current.kid


def test_the_first_secret_signs_and_all_are_published() -> None:
    keys = SigningKeys.from_secrets([SECRET_B, SECRET_A])
    old = SigningKeys.from_secrets([SECRET_A]).current.kid
    assert keys.current.kid == SigningKeys.from_secrets([SECRET_B]).current.kid
    assert [k["kid"] for k in keys.jwks["keys"]] == [keys.current.kid, old]


def test_derived_kid_is_the_rfc7638_thumbprint() -> None:
    key = SigningKeys.from_secrets([SECRET_A]).current
    public = ECKey.import_key({k: v for k, v in key.public_jwk.items() if k in ("kty", "crv", "x", "y")})
    assert key.kid == public.thumbprint()


def test_derived_keys_are_es256_on_p256() -> None:
    jwk = SigningKeys.from_secrets([SECRET_A]).jwks["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")


@pytest.mark.parametrize("secret", [b"\x00" * 32, b"\xff" * 32, SECRET_A.encode(), bytes(range(64))])
def test_derived_scalar_lies_in_1_to_n_minus_1(secret: bytes) -> None:
    assert 1 <= derive_p256_scalar(secret) <= P256_ORDER - 1


def test_jwks_never_contains_private_members() -> None:
    keys = SigningKeys.from_keys([pem(RSA_2048), pem(ec.generate_private_key(ec.SECP256R1()))])
    for jwk in keys.jwks["keys"]:
        assert PRIVATE_MEMBERS.isdisjoint(jwk)


def test_jwks_json_is_the_jwks_document() -> None:
    keys = SigningKeys.from_secrets([SECRET_A])
    assert json.loads(keys.jwks_json) == keys.jwks


@pytest.mark.parametrize(
    ("private", "alg"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (RSA_2048, "RS256"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
    ids=["ec-p256", "rsa-2048", "ed25519"],
)
def test_operator_pem_keys_get_their_algorithm(private: object, alg: str) -> None:
    assert SigningKeys.from_keys([pem(private)]).current.alg == alg


def test_operator_jwk_json_keeps_its_kid() -> None:
    jwk = ECKey.generate_key("P-256", private=True).as_dict(private=True)
    keys = SigningKeys.from_keys([json.dumps({**jwk, "kid": "ops-2026"})])
    assert keys.current.kid == "ops-2026"


def test_published_jwks_loads_in_pyjwt() -> None:
    keys = SigningKeys.from_keys([pem(RSA_2048), pem(ed25519.Ed25519PrivateKey.generate())])
    loaded = pyjwt.PyJWKSet.from_dict(keys.jwks)
    assert [k.key_id for k in loaded.keys] == [k.kid for k in keys.keys]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (pem(rsa.generate_private_key(65537, 1024)), "at least 2048 bits"),
        (pem(ec.generate_private_key(ec.SECP384R1())), "use P-256"),
        (pem(ed448.Ed448PrivateKey.generate()), "Ed448PrivateKey"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "kty 'oct'"),
        (json.dumps(ECKey.generate_key("P-256").as_dict(private=False)), "public JWK"),
        ("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "neither a PEM private key"),
        ("not a key", "neither a PEM private key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "could not be read"),
        ("[1, 2]", "neither a PEM private key nor a JWK"),
    ],
    ids=["rsa-1024", "ec-p384", "ed448", "oct-jwk", "public-jwk", "public-pem", "garbage", "bad-pem", "json-list"],
)
def test_unusable_operator_keys_are_refused_with_a_clear_message(key: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SigningKeys.from_keys([key])


def test_encrypted_pem_is_refused_with_a_clear_message() -> None:
    encrypted = RSA_2048.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    with pytest.raises(ConfigurationError, match="encrypted"):
        SigningKeys.from_keys([encrypted])


@pytest.mark.parametrize("secrets", [[], ["short"]], ids=["none", "too-short"])
def test_unusable_secrets_are_refused(secrets: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        SigningKeys.from_secrets(secrets)


def test_two_keys_with_one_kid_are_refused() -> None:
    jwk = ECKey.generate_key("P-256", private=True).as_dict(private=True)
    with pytest.raises(ConfigurationError, match="same kid"):
        SigningKeys.from_keys([{**jwk, "kid": "k"}, {**ECKey.generate_key("P-256", private=True).as_dict(private=True), "kid": "k"}])


def test_load_prefers_the_operators_keys() -> None:
    keys = SigningKeys.load(secret_keys=[SECRET_A], signing_keys=[pem(RSA_2048)])
    assert keys.current.alg == "RS256"


def test_load_derives_from_secrets_by_default() -> None:
    assert SigningKeys.load(secret_keys=[SECRET_A]).jwks == SigningKeys.from_secrets([SECRET_A]).jwks


def test_public_keys_from_jwks_match_the_signing_keys() -> None:
    keys = SigningKeys.from_secrets([SECRET_A, SECRET_B])
    public = PublicKeys.from_jwks(keys.jwks_json)
    assert {(k.kid, k.alg) for k in public.by_kid.values()} == {(k.kid, k.alg) for k in keys.keys}


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {**ECKey.generate_key("P-256").as_dict(private=False), "kid": "enc", "use": "enc"},
        {**ECKey.generate_key("P-256").as_dict(private=False)},
        {**ECKey.generate_key("P-256").as_dict(private=False), "kid": "hs", "alg": "HS256"},
        {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
    ],
    ids=["symmetric", "encryption-key", "no-kid", "hmac-alg", "malformed"],
)
def test_public_keys_skip_unusable_jwks_entries(entry: dict) -> None:
    assert len(PublicKeys.from_jwks({"keys": [entry]})) == 0


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, [], {"keys": [{}] * 65}], ids=["empty", "not-list", "list", "too-many"])
def test_public_keys_refuse_what_is_no_jwks(document: object) -> None:
    with pytest.raises(ValueError):
        PublicKeys.from_jwks(document)  # type: ignore[arg-type]
