"""The shim's own signature keys for the access tokens it issues, and their public JWKS.

A :class:`SigningKeys` value holds one or more private asymmetric keys, each with a ``kid``;
the first signs, all are published (public parts only) in the JWK Set document a resource
server fetches from ``jwks_uri`` (RFC 7517 §5, RFC 8414 §2 ``jwks_uri``).

Two sources:

- :meth:`SigningKeys.from_secrets` (the default): one EC P-256 key DERIVED from each of the
  shim's ``secret_keys`` (newest first). The scalar comes from HKDF-SHA256 (RFC 5869) over the
  secret with a label of its own, reduced into ``[1, n-1]`` from 384 bits so that the bias is
  below 2^-128 (the "extra random bits" method of FIPS 186-5 §A.2.1). Every replica that has
  the same ``secret_keys`` therefore signs with and publishes the same keys without any other
  setting, and rotating ``secret_keys`` rotates the signature keys too.
- :meth:`SigningKeys.from_keys`: keys the operator gives (PEM or JWK JSON text): EC P-256 signs
  ES256, RSA of at least 2048 bits RS256, Ed25519 EdDSA (RFC 7518 §3.3/§3.4, RFC 8037 §3.1).

``kid`` is the key's RFC 7638 JWK thumbprint (SHA-256) unless a JWK names its own ``kid``.

:class:`PublicKeys` is the verifying side: keys by ``kid``, built from a JWKS document (RFC 7517
§5) or from a :class:`SigningKeys` value, imported once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from . import jsonsafe
from .config import ConfigurationError
from .encryption import MIN_SECRET_BYTES, secret_key_bytes
from .jwks import PUBLIC_KEY_TYPES

__all__ = [
    "DERIVATION_LABEL",
    "MAX_JWKS_KEYS",
    "MIN_SECRET_BYTES",
    "PublicKey",
    "PublicKeys",
    "SigningKey",
    "SigningKeys",
]

#: HKDF ``info`` for the derived EC P-256 signature keys; no other key of the shim uses it.
DERIVATION_LABEL = b"mcp-oauth-shim/v1/access-token-signing-key/ES256"
#: More keys than this in a JWKS document is an attack or a mistake, not rotation.
MAX_JWKS_KEYS = 64
_MIN_RSA_BITS = 2048
# Twice-ish the order's size: reducing a 384-bit number mod n-1 leaves a bias below 2^-128.
_SCALAR_BYTES = 48
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

AsymmetricKey = ECKey | RSAKey | OKPKey
#: What makes a public key of each type (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2): all a verifier needs.
_PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}


@dataclass(frozen=True)
class SigningKey:
    """One private key, the JWS algorithm it signs with (RFC 7518 §3.1) and its ``kid``."""

    kid: str
    alg: str
    key: AsymmetricKey = field(repr=False)

    @cached_property
    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as published (RFC 7517 §4): the key type's public members only, with
        kid, alg, use. Nothing else of an operator's JWK is carried over: not its private
        members, not its own members, not ``key_ops`` (a private key exported by WebCrypto says
        ``["sign"]``, and a verifier that honours it would refuse to verify with the public key)."""
        public = self.key.as_dict(private=False)
        jwk = {member: public[member] for member in _PUBLIC_MEMBERS[self.key.key_type]}
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


class SigningKeys:
    """The shim's signature keys, newest first: the first signs, every one is published."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.keys: tuple[SigningKey, ...] = tuple(keys)
        if not self.keys:
            raise ConfigurationError("The shim needs at least one signing key for the tokens it issues.")
        self.by_kid: dict[str, SigningKey] = {k.kid: k for k in self.keys}
        if len(self.by_kid) != len(self.keys):
            raise ConfigurationError("Two signing keys have the same kid; each key needs its own.")

    @property
    def current(self) -> SigningKey:
        """The key that signs new tokens."""
        return self.keys[0]

    def __repr__(self) -> str:
        return f"SigningKeys(kids={[k.kid for k in self.keys]!r})"

    # -- sources ------------------------------------------------------------------------------

    @classmethod
    def from_secrets(cls, secret_keys: Sequence[str | bytes]) -> SigningKeys:
        """One derived EC P-256 (ES256) key per secret, in the same order (newest first).

        Deterministic: the same secrets give the same keys and ``kid`` values everywhere.
        """
        # dict.fromkeys: a repeated secret would repeat its kid.
        return cls(_derived_key(secret) for secret in dict.fromkeys(secret_key_bytes(secret_keys)))

    @classmethod
    def from_keys(cls, keys: Sequence[str | bytes | Mapping[str, Any]]) -> SigningKeys:
        """The operator's private keys (PEM text or JWK JSON, or a JWK as a mapping), newest first."""
        return cls(_load_private_key(item, position) for position, item in enumerate(keys, 1))

    @classmethod
    def load(
        cls, *, secret_keys: Sequence[str | bytes], signing_keys: Sequence[str | bytes | Mapping[str, Any]] | None = None
    ) -> SigningKeys:
        """The operator's ``signing_keys`` when given, else keys derived from ``secret_keys``."""
        return cls.from_keys(signing_keys) if signing_keys else cls.from_secrets(secret_keys)

    # -- publishing ---------------------------------------------------------------------------

    @cached_property
    def jwks(self) -> dict[str, Any]:
        """The JWK Set document (RFC 7517 §5): every key's public part, newest first."""
        return {"keys": [k.public_jwk for k in self.keys]}

    @cached_property
    def jwks_json(self) -> bytes:
        """:attr:`jwks` encoded once, for the ``jwks_uri`` endpoint (``application/jwk-set+json``)."""
        return json.dumps(self.jwks, separators=(",", ":")).encode("ascii")

    @cached_property
    def public_keys(self) -> PublicKeys:
        """The verifying side of these keys."""
        return PublicKeys(PublicKey(k.kid, k.alg, type(k.key).import_key(k.public_jwk)) for k in self.keys)


def _derived_key(secret: bytes) -> SigningKey:
    """The EC P-256 (ES256) key derived from one secret, named by its thumbprint."""
    jwk = ECKey.import_key(ec.derive_private_key(derive_p256_scalar(secret), ec.SECP256R1()))
    return SigningKey(kid=jwk.thumbprint(), alg="ES256", key=jwk)


def derive_p256_scalar(secret: bytes) -> int:
    """A P-256 private scalar in ``[1, n-1]`` from ``secret`` (HKDF-SHA256, RFC 5869)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=_SCALAR_BYTES, salt=None, info=DERIVATION_LABEL).derive(secret)
    return int.from_bytes(okm, "big") % (_P256_ORDER - 1) + 1


@dataclass(frozen=True)
class PublicKey:
    """One verification key: its ``kid``, the one algorithm it verifies, the key.

    ``alg_given``: whether the JWK named its ``alg`` (RFC 7517 §4.4) or it was implied by the
    key type (then a verifier of other parties' tokens may accept another algorithm of that
    key type; the shim's own tokens always name it).
    """

    kid: str
    alg: str
    key: AsymmetricKey = field(repr=False)
    alg_given: bool = True


class PublicKeys:
    """Verification keys by ``kid`` (RFC 7515 §4.1.4), imported once."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self.by_kid: dict[str, PublicKey] = {}
        for key in keys:
            self.by_kid.setdefault(key.kid, key)

    def __len__(self) -> int:
        return len(self.by_kid)

    def get(self, kid: str) -> PublicKey | None:
        return self.by_kid.get(kid)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes) -> PublicKeys:
        """The signature keys of a JWK Set (RFC 7517 §5) that can be used: asymmetric, with a
        ``kid``, ``use`` absent or ``sig``, and an algorithm (the key's ``alg``, else the one
        its type implies: ES256 for P-256, EdDSA for Ed25519; an RSA key without ``alg`` is
        taken as RS256). Anything else in the set is skipped; a document that is not a JWKS
        raises ``ValueError``.
        """
        if isinstance(document, (str, bytes)):
            document = jsonsafe.loads(document)
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list) or len(entries) > MAX_JWKS_KEYS:
            raise ValueError("not a JWK Set document")
        return cls(key for key in map(_public_entry, entries) if key is not None)


# -- helpers ------------------------------------------------------------------------------------

_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA"}


def _public_entry(data: Any) -> PublicKey | None:
    kind = PUBLIC_KEY_TYPES.get(str(data.get("kty"))) if isinstance(data, dict) else None
    if kind is None or not isinstance(data.get("kid"), str) or data.get("use", "sig") != "sig":
        return None
    try:
        key: AsymmetricKey = kind.import_key(data)
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    default = "RS256" if kind is RSAKey else _CURVE_ALG.get(str(data.get("crv")))
    alg = data.get("alg", default)
    if not isinstance(alg, str) or alg.startswith("HS") or alg == "none":
        return None
    return PublicKey(data["kid"], alg, key, alg_given="alg" in data)


def _load_private_key(item: str | bytes | Mapping[str, Any], position: int) -> SigningKey:
    where = f"signing key #{position}"
    given_kid: str | None = None
    data: dict[str, Any] = {}
    try:
        if isinstance(item, Mapping) or (isinstance(item, (str, bytes)) and item.strip()[:1] in ("{", b"{")):
            data = dict(item) if isinstance(item, Mapping) else jsonsafe.loads(item)
            if not isinstance(data, dict):
                raise ConfigurationError(f"{where} is neither a PEM private key nor a JWK object.")
            kty = data.get("kty")
            if kty not in ("EC", "RSA", "OKP"):
                raise ConfigurationError(f"{where} has kty {kty!r}; use EC P-256, RSA (2048+ bits) or Ed25519.")
            if not isinstance(data.get("d"), str):
                raise ConfigurationError(f"{where} is a public JWK; the shim needs the private key to sign.")
            kid = data.get("kid")
            given_kid = kid if isinstance(kid, str) and kid else None
            key: AsymmetricKey = PUBLIC_KEY_TYPES[kty].import_key(data)
        else:
            text = item.encode() if isinstance(item, str) else bytes(item)
            if b"PRIVATE KEY-----" not in text:
                raise ConfigurationError(f"{where} is neither a PEM private key nor a JWK object.")
            key = _from_pem(text, where)
    except ConfigurationError:
        raise
    except (JoseError, ValueError, TypeError, KeyError):
        raise ConfigurationError(f"{where} could not be read as a PEM private key or a private JWK.") from None
    alg = _algorithm_for(key, where)
    _check_jwk_purpose(data, alg, where)
    return SigningKey(kid=given_kid or key.thumbprint(), alg=alg, key=key)


def _check_jwk_purpose(data: Mapping[str, Any], alg: str, where: str) -> None:
    """A JWK that names its purpose (RFC 7517 §4.2 ``use``, §4.3 ``key_ops``, §4.4 ``alg``)
    must allow signing with ``alg``; the JOSE library would otherwise refuse it at the first
    token, not at start-up."""
    use, key_ops, named_alg = data.get("use"), data.get("key_ops"), data.get("alg")
    if use is not None and use != "sig":
        raise ConfigurationError(f"{where} has use {use!r}; a signing key needs use 'sig' or none.")
    if key_ops is not None and not (isinstance(key_ops, list) and "sign" in key_ops):
        raise ConfigurationError(f"{where} has key_ops {key_ops!r}, without 'sign'; add it or leave key_ops out.")
    if named_alg is not None and named_alg != alg:
        raise ConfigurationError(f"{where} names alg {named_alg!r}; the shim signs this key type with {alg}: set that or leave alg out.")


def _from_pem(text: bytes, where: str) -> AsymmetricKey:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private = load_pem_private_key(text, password=None)
    except TypeError:
        raise ConfigurationError(f"{where} is encrypted; give the shim an unencrypted PEM private key.") from None
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(private)
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < _MIN_RSA_BITS:  # before joserfc, which would only warn
            raise ConfigurationError(f"{where} is a {private.key_size}-bit RSA key; RSA keys need at least {_MIN_RSA_BITS} bits.")
        return RSAKey.import_key(private)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(private)
    raise ConfigurationError(f"{where} is a {type(private).__name__}; use EC P-256, RSA (2048+ bits) or Ed25519.")


def _algorithm_for(key: AsymmetricKey, where: str) -> str:
    """The one algorithm a key signs with; weak or unsupported keys are refused."""
    if not key.is_private:
        raise ConfigurationError(f"{where} is a public key; the shim needs the private key to sign.")
    if isinstance(key, ECKey):
        if key.curve_name != "P-256":
            raise ConfigurationError(f"{where} is on curve {key.curve_name}; use P-256 (ES256).")
        return "ES256"
    if isinstance(key, RSAKey):
        bits = key.raw_value.key_size
        if bits < _MIN_RSA_BITS:
            raise ConfigurationError(f"{where} is a {bits}-bit RSA key; RSA keys need at least {_MIN_RSA_BITS} bits.")
        return "RS256"
    if key.curve_name != "Ed25519":
        raise ConfigurationError(f"{where} is an {key.curve_name} key; of the OKP keys only Ed25519 signs.")
    return "EdDSA"
