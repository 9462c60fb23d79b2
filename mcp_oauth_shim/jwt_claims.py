"""What every JWT check of the shim shares: the algorithm allow-list, the signature and payload
steps of a compact JWS, and the registered claims' types and time window.

The shim checks four kinds of JWT: the IdP's access tokens (:mod:`.verify`), its own issued
access tokens (:mod:`.rfc9068`), RFC 7523 assertions and ID-JAGs (:mod:`.rfc7523`,
:mod:`.id_jag`) and the IdP's ID tokens (:mod:`.identity`). Each says *why* it refuses a token in
its own words (its tests and clients see those), so these helpers answer with facts (a claim
name, ``None``, ``False``) and leave the wording to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import Key
from joserfc.jws import CompactSignature, JWSAlgModel, JWSRegistry, validate_compact

from . import jsonsafe
from .jwks import FORBIDDEN_ALGORITHMS

__all__ = [
    "AlgorithmRegistry",
    "algorithm_registry",
    "audience_values",
    "claims_object",
    "is_numeric_date",
    "lifetime_problem",
    "signature_valid",
    "typ_value",
]


class AlgorithmRegistry(JWSRegistry):
    """A JWS registry that knows only an allow-list of asymmetric algorithms.

    joserfc warns on every use of ``EdDSA`` (deprecated by RFC 9864 in favour of ``Ed25519``);
    IdPs still sign with it and the allow-list is the operator's decision, so the per-token
    warning is noise on a hot path.
    """

    def __init__(self, algorithms: Iterable[str]) -> None:
        super().__init__(algorithms=list(algorithms), strict_check_header=False)
        self.allowed_names = frozenset(self.allowed or ())

    def check_header(self, header: dict[str, Any]) -> None:
        """joserfc's checks (``crit`` must name only parameters it understands, RFC 7515
        §4.1.11), and no ``b64``: a JWT's payload is always base64url-encoded (RFC 7519 §7.2),
        so an RFC 7797 unencoded payload, which joserfc would accept, makes it no JWT."""
        if "b64" in header:
            raise ValueError("a JWT has no unencoded payload (b64)")
        super().check_header(header)

    def get_alg(self, name: str) -> JWSAlgModel:
        if name not in self.allowed_names or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRIES: dict[tuple[str, ...], AlgorithmRegistry] = {}


def algorithm_registry(algorithms: Iterable[str]) -> AlgorithmRegistry:
    """The registry of ``algorithms`` (made once per allow-list, from configuration).

    ``ValueError`` for an empty list, an algorithm joserfc does not know, or ``none`` and the
    HMAC family: every signature is checked against a public key, and a public key used as an
    HMAC secret would let anyone sign (algorithm confusion).
    """
    chosen = tuple(dict.fromkeys(algorithms))
    registry = _REGISTRIES.get(chosen)
    if registry is None:
        if forbidden := sorted(FORBIDDEN_ALGORITHMS.intersection(chosen)):
            raise ValueError(
                f"algorithms may not include {', '.join(forbidden)}: only asymmetric signatures "
                "can be checked against a public key set"
            )
        unknown = sorted(set(chosen) - set(JWSRegistry.algorithms))
        if unknown or not chosen:
            raise ValueError(f"unsupported JWS algorithms: {', '.join(unknown) or '(none given)'}")
        registry = _REGISTRIES[chosen] = AlgorithmRegistry(chosen)
    return registry


def signature_valid(jws: CompactSignature, key: Key, registry: JWSRegistry) -> bool:
    """Does ``key`` verify the signature of ``jws`` (RFC 7515 §5.2)? A key whose type, curve
    or own ``alg`` does not match the header's is no valid signature either."""
    try:
        return validate_compact(jws, key, registry=registry)
    except (JoseError, ValueError, TypeError):
        return False


def claims_object(payload: bytes | None) -> dict[str, Any] | None:
    """The JWT claims set (RFC 7519 §7.2 step 10: a JSON object), or ``None``."""
    try:
        claims = jsonsafe.loads(payload or b"")
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def is_numeric_date(value: Any) -> TypeGuard[float]:
    """An RFC 7519 §2 NumericDate: a JSON number, not a boolean; Python's JSON parser also
    accepts NaN and Infinity, and neither is a time, and reads an integer of any length exactly:
    one beyond the range of a float is no time either (comparing or converting it overflows)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def audience_values(aud: Any) -> tuple[Any, ...]:
    """RFC 7519 §4.1.3 ``aud``: one value or an array of them, as a tuple (empty for anything
    else); the caller decides which values may count."""
    return (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()


def lifetime_problem(times: Mapping[str, float | None], now: float, leeway: float) -> str | None:
    """The first claim of ``times`` (name to NumericDate or ``None``, in the caller's order) that
    rules the token out at ``now``, with ``leeway`` seconds of clock skew: ``exp`` once passed
    (RFC 7519 §4.1.4), ``nbf`` (§4.1.5) or ``iat`` (§4.1.6) while in the future. ``None``
    when the token is within its lifetime."""
    for name, value in times.items():
        if value is None:
            continue
        if now >= value + leeway if name == "exp" else value > now + leeway:
            return name
    return None


def typ_value(typ: str) -> str:
    """RFC 7515 §4.1.9: ``typ`` compares case-insensitively, and ``application/`` may be left out."""
    return typ.lower().removeprefix("application/")
