"""The shim's own access tokens: JWTs in the RFC 9068 profile, minted and verified.

:func:`mint` signs an access token with the current :class:`~.signing_keys.SigningKeys` key:
header ``typ: at+jwt``, ``alg``, ``kid`` (RFC 9068 §2.1); claims ``iss``, ``exp``, ``aud`` (the
RFC 8707 resource), ``sub``, ``client_id``, ``iat``, ``jti`` (RFC 9068 §2.2), ``scope``
(§2.2.3), optionally ``auth_time`` (§2.2.1) and identity claims such as ``name`` and ``email``
(§2.2.3.1). It may also carry the IdP's access token, encrypted (private claim ``upt``, see
:mod:`.encryption`), bound to this token's ``jti``, resource and client, so that a tool can call
the IdP's API without any server-side store. Other resource servers ignore the claim.

:func:`verify` does what RFC 9068 §4 asks of a resource server: ``typ`` is ``at+jwt`` (or
``application/at+jwt``), the algorithm is one allowed (never ``none``, never HMAC: the keys are
public), the ``kid`` names a published key whose algorithm is the header's, the signature holds,
``iss`` is the shim, ``aud`` contains the resource, ``exp``/``nbf``/``iat`` with leeway, and the
required claims are there. Every refusal is an :class:`IssuedTokenError` subclass naming why; all
of them are :class:`~mcp_oauth_shim.verify.InvalidToken` (RFC 6750 §3.1 ``invalid_token``).

:class:`IssuedTokenVerifier` adds what a hot path needs: the keys imported once and verified
tokens remembered under their SHA-256 hash until they expire (bounded LRU).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from joserfc.jws import extract_compact, serialize_compact

from .encryption import UPSTREAM_ACCESS_TOKEN, TokenCipher
from .jwt_claims import (
    AlgorithmRegistry,
    algorithm_registry,
    audience_values,
    claims_object,
    is_numeric_date,
    lifetime_problem,
    signature_valid,
    typ_value,
)
from .memo import BoundedMemo
from .signing_keys import PublicKeys, SigningKeys
from .verify import InsufficientScope, InvalidToken

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "UPSTREAM_TOKEN_CLAIM",
    "AlgorithmNotAllowed",
    "BadSignature",
    "ExpiredToken",
    "IssuedTokenError",
    "IssuedTokenVerifier",
    "MalformedToken",
    "MissingClaim",
    "NotYetValid",
    "OversizedToken",
    "ShimClaims",
    "UnknownKey",
    "WrongAudience",
    "WrongIssuer",
    "WrongType",
    "mint",
    "verify",
]

#: RFC 9068 §2.1: the ``typ`` header of a JWT access token.
ACCESS_TOKEN_TYPE = "at+jwt"
#: What the shim signs with (:mod:`.signing_keys`) and therefore accepts by default.
ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
#: An issued token grows with the IdP access token it carries encrypted in ``upt``: about 1.8
#: times its length (AES-GCM, base64url, then base64url again as part of the payload) plus 1 KiB
#: or so. 32 KiB holds one carrying the largest IdP token the shim accepts (16 KiB, the
#: passthrough limit); roles-and-groups JWTs of Keycloak, Entra ID or Okta run to several KiB.
#: Longer is refused before it is hashed or parsed.
MAX_TOKEN_LENGTH = 32 * 1024
#: The private claim carrying the IdP's access token, encrypted (:mod:`.encryption`).
UPSTREAM_TOKEN_CLAIM = "upt"

#: RFC 9068 §2.2: every one must be present.
_REQUIRED = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
#: Claims the shim sets itself; ``extra_claims`` may not override them.
_RESERVED = frozenset({*_REQUIRED, "nbf", "scope", "auth_time", UPSTREAM_TOKEN_CLAIM})
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# -- refusals -----------------------------------------------------------------------------------


class IssuedTokenError(InvalidToken):
    """An issued access token that must be refused; ``description`` is safe to show a client
    (it never contains the token or a claim value). Subclasses say why, in ``message`` (its
    ``{}`` takes the constructor's argument)."""

    message = "The access token is invalid."

    def __init__(self, *detail: str) -> None:
        super().__init__(self.message.format(*detail))


class OversizedToken(IssuedTokenError):
    message = "The access token is too large."


class MalformedToken(IssuedTokenError):
    message = "The access token {}."

    def __init__(self, what: str = "is not a well-formed JWT") -> None:
        super().__init__(what)


class WrongType(IssuedTokenError):
    message = "The token is not an access token: its typ header is not at+jwt (RFC 9068 §4)."


class AlgorithmNotAllowed(IssuedTokenError):
    message = "The access token's signature algorithm is not accepted."


class UnknownKey(IssuedTokenError):
    message = "The access token is signed with a key this resource does not know (kid)."


class BadSignature(IssuedTokenError):
    message = "The access token's signature is invalid."


class WrongIssuer(IssuedTokenError):
    message = "The access token was issued by another issuer than this resource trusts."


class WrongAudience(IssuedTokenError):
    message = "The access token was not issued for this resource (audience mismatch)."


class ExpiredToken(IssuedTokenError):
    message = "The access token has expired."


class NotYetValid(IssuedTokenError):
    message = "The access token is not valid yet ({})."


class MissingClaim(IssuedTokenError):
    message = "The access token {}: {}."

    def __init__(self, claim: str, problem: str = "lacks the required claim") -> None:
        super().__init__(problem, claim)
        self.claim = claim


# -- what a verified token says -----------------------------------------------------------------


@dataclass(frozen=True)
class ShimClaims:
    """What a verified issued access token says, for tools and the bearer check.

    ``resource`` is the audience value that matched this resource. ``upstream_token`` is the
    IdP's access token, still encrypted (or ``None``): :meth:`upstream_access_token` opens it.
    ``claims`` is the whole verified payload.
    """

    subject: str
    client_id: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    resource: str
    issuer: str
    expires_at: int
    issued_at: int
    jti: str
    name: str | None = None
    email: str | None = None
    preferred_username: str | None = None
    auth_time: int | None = None
    upstream_token: str | None = field(default=None, repr=False)
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def upstream_access_token(self, cipher: TokenCipher) -> str | None:
        """The IdP's access token this token carries, decrypted; ``None`` if it carries none.

        Raises :class:`~.encryption.DecryptionError` if it cannot be opened (keys rotated out,
        or the ciphertext was moved from another token).
        """
        if self.upstream_token is None:
            return None
        return cipher.decrypt_text(
            self.upstream_token, purpose=UPSTREAM_ACCESS_TOKEN, context=upstream_token_context(self.jti, self.resource, self.client_id)
        )

    def to_access_token(self, token: str) -> AccessToken:
        """The ``mcp`` SDK's ``AccessToken`` for this token (the SDK is imported only here)."""
        from mcp.server.auth.provider import AccessToken

        return AccessToken(
            token=token,
            client_id=self.client_id,
            scopes=list(self.scopes),
            expires_at=self.expires_at,
            resource=self.resource,
            subject=self.subject,
            claims=dict(self.claims),
        )


def upstream_token_context(jti: str, resource: str, client_id: str) -> tuple[str, str, str]:
    """What an encrypted upstream access token is bound to: the one issued token carrying it."""
    return (jti, resource, client_id)


# -- minting ------------------------------------------------------------------------------------


def mint(
    keys: SigningKeys,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scopes: Iterable[str],
    lifetime: int,
    now: float | None = None,
    auth_time: int | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    upstream_access_token: str | None = None,
    cipher: TokenCipher | None = None,
) -> str:
    """A signed RFC 9068 access token (compact JWS, RFC 7515 §7.1) for ``audience``.

    ``scopes`` (a list, or a space-separated string as in RFC 6749 §3.3) become the
    space-separated ``scope`` claim (RFC 9068 §2.2.3); ``lifetime`` is
    seconds from ``now`` (default: the clock) to ``exp``. ``extra_claims`` (identity claims such
    as ``name``, ``email``: :meth:`.identity.Identity.token_claims`) may not override a claim
    the shim sets. ``upstream_access_token`` (with ``cipher``) is carried encrypted in ``upt``.
    """
    if not (issuer and audience and subject and client_id):
        raise ValueError("issuer, audience, subject and client_id must be non-empty")
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    if isinstance(scopes, str):
        scopes = scopes.split()
    issued_at = int(time.time() if now is None else now)
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {}
    if extra_claims:
        if clash := sorted(_RESERVED.intersection(extra_claims)):
            raise ValueError(f"extra_claims may not set {', '.join(clash)}")
        claims.update(extra_claims)
    claims.update(
        iss=issuer,
        sub=subject,
        aud=audience,
        client_id=client_id,
        scope=" ".join(dict.fromkeys(scopes)),
        iat=issued_at,
        exp=issued_at + int(lifetime),
        jti=jti,
    )
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if upstream_access_token is not None:
        if cipher is None:
            raise ValueError("carrying the upstream access token needs the cipher that encrypts it")
        claims[UPSTREAM_TOKEN_CLAIM] = cipher.encrypt(
            upstream_access_token, purpose=UPSTREAM_ACCESS_TOKEN, context=upstream_token_context(jti, audience, client_id)
        )
    key = keys.current
    header = {"typ": ACCESS_TOKEN_TYPE, "alg": key.alg, "kid": key.kid}
    return serialize_compact(header, _encode_json(claims), key.key, registry=algorithm_registry((key.alg,)))


# -- verifying ----------------------------------------------------------------------------------


def verify(
    token: str,
    keys: SigningKeys | PublicKeys | Mapping[str, Any],
    *,
    issuer: str,
    audience: str | Sequence[str],
    now: float | None = None,
    leeway: int = 30,
    algorithms: Iterable[str] = ALGORITHMS,
) -> ShimClaims:
    """Verify an issued access token as RFC 9068 §4 asks; its claims, or an :class:`IssuedTokenError`.

    ``keys``: the shim's :class:`SigningKeys`, :class:`PublicKeys`, or a JWKS document (imported
    on every call: keep a :class:`PublicKeys` on a hot path). ``audience``: the resource(s) this
    server is; the token's ``aud`` must contain one.
    """
    public = keys.public_keys if isinstance(keys, SigningKeys) else keys
    if not isinstance(public, PublicKeys):
        try:
            public = PublicKeys.from_jwks(public)
        except ValueError:
            raise ValueError("keys is not a JWK Set document") from None
    audiences = (audience,) if isinstance(audience, str) else tuple(audience)
    return _verify(token, public, algorithm_registry(algorithms), issuer, audiences, time.time() if now is None else now, leeway)


def _verify(
    token: str, keys: PublicKeys, registry: AlgorithmRegistry, issuer: str, audiences: tuple[str, ...], now: float, leeway: int
) -> ShimClaims:
    if not isinstance(token, str) or not token:
        raise MalformedToken("is missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise OversizedToken()
    try:
        jws = extract_compact(token.encode("ascii"), registry=registry)
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise MalformedToken() from None
    header = jws.headers()
    try:
        registry.check_header(header)  # RFC 7515 §4.1.11: unknown "crit" makes it invalid
    except (JoseError, ValueError, TypeError):
        raise MalformedToken("has a malformed header or unsupported critical parameters") from None
    typ = header.get("typ")
    if not isinstance(typ, str) or typ_value(typ) != ACCESS_TOKEN_TYPE:
        raise WrongType()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in registry.allowed_names:
        raise AlgorithmNotAllowed()
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise UnknownKey()
    if key.alg != alg:
        # A key verifies the one algorithm it was published for (RFC 7517 §4.4; RFC 8725 §3.1).
        raise AlgorithmNotAllowed()
    if not signature_valid(jws, key.key, registry):
        raise BadSignature()
    claims = claims_object(jws.payload)
    if claims is None:
        raise MalformedToken("payload is not a JSON object")
    return _check_claims(claims, issuer, audiences, now, leeway)


def _check_claims(claims: dict[str, Any], issuer: str, audiences: tuple[str, ...], now: float, leeway: int) -> ShimClaims:
    for name in _REQUIRED:
        if name not in claims:
            raise MissingClaim(name)
    if claims["iss"] != issuer:
        raise WrongIssuer()
    values = audience_values(claims["aud"])
    resource = next((a for a in audiences if a in values), None)
    if resource is None:
        raise WrongAudience()
    exp, iat = _number(claims, "exp"), _number(claims, "iat")
    nbf = _number(claims, "nbf") if "nbf" in claims else None
    late = lifetime_problem({"exp": exp, "iat": iat, "nbf": nbf}, now, leeway)
    if late == "exp":
        raise ExpiredToken()
    if late is not None:
        raise NotYetValid(late)
    subject, client_id, jti = _text(claims, "sub"), _text(claims, "client_id"), _text(claims, "jti")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise MissingClaim("scope", "has a malformed claim")
    auth_time = claims.get("auth_time")
    return ShimClaims(
        subject=subject,
        client_id=client_id,
        scopes=tuple(dict.fromkeys(scope.split())),
        audience=tuple(v for v in values if isinstance(v, str)),
        resource=resource,
        issuer=issuer,
        expires_at=int(exp),
        issued_at=int(iat),
        jti=jti,
        name=_optional_text(claims, "name"),
        email=_optional_text(claims, "email"),
        preferred_username=_optional_text(claims, "preferred_username"),
        auth_time=int(auth_time) if is_numeric_date(auth_time) else None,
        upstream_token=_optional_text(claims, UPSTREAM_TOKEN_CLAIM),
        claims=claims,
    )


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if not is_numeric_date(value):
        raise MissingClaim(name, "has a malformed claim")
    return float(value)


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise MissingClaim(name, "has a malformed claim")
    return value


def _optional_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


class IssuedTokenVerifier:
    """Verifies the shim's issued access tokens for one resource, fast.

    The keys are imported once (``keys``: the shim's own :class:`SigningKeys`, or the
    :class:`PublicKeys` of its JWKS). A verified token is remembered under its SHA-256 hash
    until it expires (at most ``cache_size`` tokens, least recently used forgotten first), so a
    client's repeated calls cost one signature check per token, not one per call.
    """

    def __init__(
        self,
        keys: SigningKeys | PublicKeys,
        *,
        issuer: str,
        audience: str | Sequence[str],
        leeway: int = 30,
        algorithms: Iterable[str] = ALGORITHMS,
        required_scopes: Iterable[str] = (),
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys.public_keys if isinstance(keys, SigningKeys) else keys
        self.issuer = issuer
        self.audiences: tuple[str, ...] = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ValueError("audience must be a non-empty string or a list of them")
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        self.leeway = int(leeway)
        self.required_scopes: tuple[str, ...] = tuple(required_scopes)
        self._registry = algorithm_registry(algorithms)
        self._clock = clock
        self._verified: BoundedMemo[bytes, ShimClaims] = BoundedMemo(cache_size)

    def verify(self, token: str) -> ShimClaims:
        """The claims of ``token``, or an :class:`IssuedTokenError`."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise OversizedToken() if isinstance(token, str) else MalformedToken("is missing")
        now = self._clock()
        cache_key = hashlib.sha256(token.encode()).digest()
        claims = self._verified.get(cache_key, now)
        if claims is not None:
            return claims
        claims = _verify(token, self.keys, self._registry, self.issuer, self.audiences, now, self.leeway)
        # Remember it while ``exp`` (without leeway) lies ahead; a cached answer is never
        # more lenient than a fresh one.
        self._verified.put(cache_key, claims, float(claims.expires_at))
        return claims

    def authenticate(self, token: str, *, scopes: Iterable[str] = ()) -> ShimClaims:
        """:meth:`verify`, then ``required_scopes`` plus ``scopes`` must all be granted
        (:class:`~mcp_oauth_shim.verify.InsufficientScope`, RFC 6750 §3.1, otherwise)."""
        claims = self.verify(token)
        needed = tuple(dict.fromkeys((*self.required_scopes, *scopes)))
        missing = [s for s in needed if s not in claims.scopes]
        if missing:
            raise InsufficientScope(needed, missing)
        return claims
