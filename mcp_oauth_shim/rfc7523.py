"""RFC 7523 JWT assertions: as an authorization grant (§2.1) and for client authentication (§2.2).

A JWT assertion arrives at the token endpoint in one of two places:

- ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with ``assertion=<JWT>``
  (RFC 7523 §2.1): the JWT *is* the grant; a refusal is ``invalid_grant`` (§3.1);
- ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` with
  ``client_assertion=<JWT>`` (§2.2, ``private_key_jwt``): the JWT authenticates the client; a
  refusal is ``invalid_client`` (§3.2).

Both are checked the same way (§3, with RFC 7521 §5.2): a signature by one of the trusted
keys with an asymmetric algorithm (never ``none`` nor HMAC: a public key used as an HMAC secret
would let anyone sign), ``iss`` and ``sub`` present, ``aud`` naming this authorization server
(its issuer identifier, or its token endpoint URL where the caller allows it), ``exp`` required
and not unreasonably far away (§3 item 4), ``nbf`` and ``iat`` with clock-skew leeway (items 5
and 6), and ``jti`` for replay protection (item 7, through a :class:`ReplayGuard`).

Checking happens in two steps, because which keys to use depends on who claims to have signed:
:func:`read_assertion` parses without trusting anything (the caller picks keys by ``iss`` or
``sub``), :func:`verify_assertion` checks signature and claims. Every refusal is an
:class:`AssertionRefused` with a machine-readable ``reason`` and a description that is safe to
show the client (it never repeats the assertion); :meth:`AssertionRefused.oauth_error` turns it
into the RFC 6749 §5.2 error the use calls for.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from joserfc.errors import JoseError
from joserfc.jws import CompactSignature, extract_compact

from .errors import InvalidClientError, InvalidGrantError, OAuth2Error
from .jwks import ASYMMETRIC_ALGORITHMS, FORBIDDEN_ALGORITHMS, SignatureKeys, key_fits
from .jwt_claims import algorithm_registry, audience_values, claims_object, is_numeric_date, signature_valid, typ_value
from .memo import BoundedMemo

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JWT_BEARER_CLIENT_ASSERTION_TYPE",
    "JWT_BEARER_GRANT_TYPE",
    "MAX_ASSERTION_LENGTH",
    "AssertionRefused",
    "AssertionRules",
    "AssertionUse",
    "MemoryReplayGuard",
    "RefusalReason",
    "ReplayGuard",
    "SignatureKeys",
    "UnverifiedAssertion",
    "VerifiedAssertion",
    "key_fits",
    "read_assertion",
    "replay_key",
    "string_claim",
    "verify_assertion",
]

#: RFC 7523 §2.1: the ``grant_type`` of a JWT used as an authorization grant.
JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: RFC 7523 §2.2: the ``client_assertion_type`` of a JWT used for client authentication.
JWT_BEARER_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: Larger than any real assertion (an ID-JAG or a client assertion is well under 2 KiB);
#: refused before any parsing.
MAX_ASSERTION_LENGTH = 16 * 1024

AssertionUse = Literal["grant", "client_authentication"]
"""RFC 7523 §2.1 (the JWT is the grant) or §2.2 (the JWT authenticates the client)."""

RefusalReason = Literal[
    "missing",
    "too_large",
    "malformed",
    "algorithm",
    "header",
    "typ",
    "unknown_key",
    "signature",
    "claim_type",
    "missing_claim",
    "issuer",
    "subject",
    "audience",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "lifetime",
    "replayed",
    "untrusted_issuer",
    "client_mismatch",
    "resource",
    "scope",
]


class AssertionRefused(Exception):
    """An assertion that must not be accepted: ``reason`` for code and tests, ``description``
    for the client (never contains the assertion or claim values beyond public identifiers)."""

    def __init__(self, use: AssertionUse, reason: RefusalReason, description: str) -> None:
        super().__init__(description)
        self.use = use
        self.reason = reason
        self.description = description

    def oauth_error(self) -> OAuth2Error:
        """RFC 7523 §3.1 ``invalid_grant`` for a grant, §3.2 ``invalid_client`` for client
        authentication (400: the credential travelled in the body, not in a header)."""
        if self.use == "grant":
            return InvalidGrantError(description=self.description)
        return InvalidClientError(description=self.description, status_code=400)


@dataclass(frozen=True)
class AssertionRules:
    """What a verified assertion must satisfy (RFC 7523 §3, RFC 7521 §5.2).

    ``audiences``: the values of which ``aud`` must contain at least one (§3 item 3: the
    issuer identifier of this authorization server, and its token endpoint URL where allowed).
    ``leeway``: clock skew in seconds tolerated on ``exp``, ``nbf`` and ``iat``.
    ``max_lifetime``: the longest an assertion may be valid, measured as ``exp - iat`` and as
    ``exp - now`` (§3 item 4 lets us refuse an ``exp`` unreasonably far in the future).
    ``require_iat``, ``require_jti``: make those claims mandatory (§3 items 6 and 7 leave them
    optional; profiles such as ID-JAG require them). ``typ``: the exact ``typ`` header the
    profile requires (RFC 8725 §3.11 explicit typing), ``None`` for no requirement.
    """

    audiences: frozenset[str]
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    leeway: int = 30
    max_lifetime: int = 300
    require_iat: bool = False
    require_jti: bool = False
    typ: str | None = None
    max_length: int = MAX_ASSERTION_LENGTH

    def __post_init__(self) -> None:
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ValueError("audiences must hold at least one non-empty string")
        algorithm_registry(self.algorithms)  # ValueError for none, HMAC or an unknown algorithm
        if self.leeway < 0 or self.max_lifetime <= 0 or self.max_length <= 0:
            raise ValueError("leeway must not be negative; max_lifetime and max_length must be positive")


@dataclass(frozen=True)
class UnverifiedAssertion:
    """A JWT parsed but NOT verified: nothing in it may be trusted yet. ``issuer`` and
    ``subject`` are only there to choose the keys it must have been signed with."""

    use: AssertionUse
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signature: CompactSignature = field(repr=False)

    @property
    def algorithm(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def issuer(self) -> str:
        """The ``iss`` claim (RFC 7523 §3 item 1), or :class:`AssertionRefused`."""
        return string_claim(self.claims, "iss", self.use)

    @property
    def subject(self) -> str:
        """The ``sub`` claim (RFC 7523 §3 item 2), or :class:`AssertionRefused`."""
        return string_claim(self.claims, "sub", self.use)


@dataclass(frozen=True)
class VerifiedAssertion:
    """An assertion whose signature and registered claims passed (RFC 7523 §3)."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]
    expires_at: float
    issued_at: float | None
    jti: str | None
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def read_assertion(assertion: object, rules: AssertionRules, use: AssertionUse) -> UnverifiedAssertion:
    """Parse a compact JWS (RFC 7515 §7.1) carrying a JWT (RFC 7519 §7.2), trusting nothing.

    Checks the shape and the header only: size, three base64url parts, a JSON object as
    header and payload, an allowed asymmetric ``alg``, ``kid`` a string if present, ``crit``
    understood (RFC 7515 §4.1.11), and the profile's ``typ`` (RFC 8725 §3.11).
    """
    if not isinstance(assertion, str) or not assertion:
        raise AssertionRefused(use, "missing", f"The {_noun(use)} is missing.")
    if len(assertion) > rules.max_length:
        raise AssertionRefused(use, "too_large", f"The {_noun(use)} is too large.")
    if assertion.count(".") != 2:
        raise AssertionRefused(use, "malformed", f"The {_noun(use)} is not a JWT in compact serialization.")
    registry = algorithm_registry(rules.algorithms)
    try:
        signature = extract_compact(assertion.encode("ascii"), registry=registry)
        header = signature.headers()
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
        raise AssertionRefused(use, "malformed", f"The {_noun(use)} is not a well-formed JWT.") from None
    if not isinstance(header, dict):
        raise AssertionRefused(use, "malformed", f"The {_noun(use)} is not a well-formed JWT.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg in FORBIDDEN_ALGORITHMS:
        raise AssertionRefused(
            use, "algorithm", f"The {_noun(use)} is unsigned or uses a symmetric algorithm; neither is accepted."
        )
    if alg not in rules.algorithms:
        raise AssertionRefused(use, "algorithm", f"The {_noun(use)}'s signature algorithm is not accepted (accepted: {' '.join(rules.algorithms)}).")
    try:
        # RFC 7515 §4.1.11: a "crit" parameter we do not understand makes the JWS invalid.
        registry.check_header(header)
    except (JoseError, ValueError, TypeError):
        raise AssertionRefused(use, "header", f"The {_noun(use)}'s header is malformed or has unsupported critical parameters.") from None
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AssertionRefused(use, "header", f"The {_noun(use)}'s kid header is not a string.")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise AssertionRefused(use, "header", f"The {_noun(use)}'s typ header is not a string.")
    if rules.typ is not None and (typ is None or typ_value(typ) != typ_value(rules.typ)):
        raise AssertionRefused(use, "typ", f"The {_noun(use)}'s typ header must be {rules.typ}.")
    claims = claims_object(signature.payload)
    if claims is None:
        raise AssertionRefused(use, "malformed", f"The {_noun(use)}'s payload is not a JSON object.")
    return UnverifiedAssertion(use, header, claims, signature)


def verify_assertion(
    unverified: UnverifiedAssertion,
    keys: SignatureKeys,
    rules: AssertionRules,
    *,
    now: float,
) -> VerifiedAssertion:
    """Check the signature against ``keys`` and the claims against ``rules`` (RFC 7523 §3).

    Replay (§3 item 7) is the caller's next step, with the returned ``jti`` and
    ``expires_at`` and a :class:`ReplayGuard`: only an otherwise valid assertion may use up
    its ``jti``.
    """
    use = unverified.use
    key = keys.find(unverified.kid, unverified.algorithm)
    if key is None:
        if unverified.kid is None:
            raise AssertionRefused(use, "unknown_key", f"The {_noun(use)} names no key (kid) and no single published key fits it.")
        raise AssertionRefused(use, "unknown_key", f"The {_noun(use)} is signed with a key its issuer does not publish.")
    if not signature_valid(unverified.signature, key, algorithm_registry((unverified.algorithm,))):
        raise AssertionRefused(use, "signature", f"The {_noun(use)}'s signature is invalid.")
    # The registered-claim rules of RFC 7523 §3 items 1-7.
    claims = unverified.claims
    issuer = unverified.issuer
    subject = unverified.subject
    audiences = audience_values(_claim(claims, "aud", use, _is_audience, "is neither a string nor an array of strings"))
    if rules.audiences.isdisjoint(audiences):
        expected = " or ".join(sorted(rules.audiences))
        raise AssertionRefused(use, "audience", f"The {_noun(use)} is not addressed to this authorization server (aud must be {expected}).")
    expires_at = float(_claim(claims, "exp", use, is_numeric_date, _NOT_A_DATE))
    issued_at = _numeric_date(claims, "iat", use, required=rules.require_iat)
    not_before = _numeric_date(claims, "nbf", use, required=False)
    leeway = rules.leeway
    if expires_at <= now - leeway:
        raise AssertionRefused(use, "expired", f"The {_noun(use)} has expired.")
    if not_before is not None and not_before > now + leeway:
        raise AssertionRefused(use, "not_yet_valid", f"The {_noun(use)} is not valid yet (nbf).")
    if issued_at is not None and issued_at > now + leeway:
        raise AssertionRefused(use, "issued_in_future", f"The {_noun(use)} was issued in the future (iat).")
    lifetime = expires_at - issued_at if issued_at is not None else 0.0
    if lifetime > rules.max_lifetime or expires_at - now > rules.max_lifetime + leeway:
        raise AssertionRefused(
            use, "lifetime", f"The {_noun(use)} is valid for too long: at most {rules.max_lifetime} seconds are accepted."
        )
    jti = _claim(claims, "jti", use, _is_non_empty_string, _NOT_A_STRING, required=rules.require_jti)
    return VerifiedAssertion(
        issuer=issuer,
        subject=subject,
        audiences=audiences,
        expires_at=expires_at,
        issued_at=issued_at,
        jti=jti,
        header=unverified.header,
        claims=claims,
    )


class ReplayGuard(Protocol):
    """Remembers which assertions were used, for as long as they would be valid (RFC 7523 §3
    item 7, RFC 7519 §4.1.7). One guard may serve several purposes: keys are namespaced by
    :func:`replay_key`. Asynchronous so that a shared store (Redis) can implement it."""

    async def first_use(self, key: str, *, until: float) -> bool:
        """Record ``key`` as used until ``until`` (epoch seconds); ``True`` if it was not
        already recorded, ``False`` for a replay."""
        ...


def replay_key(use: AssertionUse, issuer: str, jti: str) -> str:
    """The :class:`ReplayGuard` key of one assertion: ``jti`` is unique per issuer (RFC 7519
    §4.1.7), and grants and client assertions are kept apart. A SHA-256 hash, so the guard's
    memory per entry is bounded whatever the claims' lengths."""
    material = json.dumps([use, issuer, jti], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class MemoryReplayGuard:
    """A :class:`ReplayGuard` in this process's memory: bounded, each entry kept until its
    assertion expires.

    Exact for one process; with several replicas, an assertion could be used once per replica
    (use a shared store for that). When ``max_entries`` unexpired entries are held, the oldest
    is forgotten: only signed, otherwise valid assertions reach the guard, so filling it takes
    that many genuine assertions within their lifetime.
    """

    __slots__ = ("_clock", "_used")

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._used: BoundedMemo[str, bool] = BoundedMemo(max_entries)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._used)

    async def first_use(self, key: str, *, until: float) -> bool:
        now = self._clock()
        if self._used.get(key, now) is not None:
            return False
        self._used.put(key, True, until)
        return True


def _noun(use: AssertionUse) -> str:
    return "assertion" if use == "grant" else "client assertion"


def string_claim(claims: Mapping[str, Any], name: str, use: AssertionUse) -> str:
    """The claim ``name``, a non-empty string, or :class:`AssertionRefused`."""
    value: str = _claim(claims, name, use, _is_non_empty_string, _NOT_A_STRING)
    return value


#: What a claim of the wrong type is not, completing "The assertion's <name> claim ...".
_NOT_A_STRING = "is not a non-empty string"
_NOT_A_DATE = "is not a NumericDate"


def _claim(
    claims: Mapping[str, Any], name: str, use: AssertionUse, valid: Callable[[Any], bool], shape: str, *, required: bool = True
) -> Any:
    """The claim ``name`` when ``valid(value)``; ``None`` when absent and not ``required``;
    otherwise :class:`AssertionRefused` (``missing_claim``, or ``claim_type`` saying it ``shape``)."""
    value = claims.get(name)
    if value is None:
        if required:
            raise AssertionRefused(use, "missing_claim", f"The {_noun(use)} lacks the {name} claim.")
        return None
    if not valid(value):
        raise AssertionRefused(use, "claim_type", f"The {_noun(use)}'s {name} claim {shape}.")
    return value


def _is_non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_audience(value: Any) -> bool:
    """RFC 7519 §4.1.3: one string or an array of strings."""
    values = audience_values(value)
    return bool(values) and all(isinstance(v, str) and v for v in values)


def _numeric_date(claims: Mapping[str, Any], name: str, use: AssertionUse, *, required: bool) -> float | None:
    """RFC 7519 §2 NumericDate: a JSON number (not a boolean, not infinite)."""
    value = _claim(claims, name, use, is_numeric_date, _NOT_A_DATE, required=required)
    return None if value is None else float(value)
