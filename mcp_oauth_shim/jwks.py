"""The identity provider's signature keys (RFC 7517 JWK Set), fetched, imported once and
looked up by ``kid`` (RFC 7515 §4.1.4).

Key lookup policy:

- keys are refetched when older than ``max_age`` (an IdP that drops a key stops it verifying);
- a token naming a ``kid`` we do not know is what key rotation looks like from here, so it
  triggers a refetch as soon as the keys we hold are ``refetch_after`` seconds old (at most
  :data:`UNKNOWN_KID_REFETCH_AFTER`, 5 s): logins with a freshly rotated key work at once
  instead of failing until a long rate-limit window ends;
- the same age gate bounds the cost of made-up ``kid`` values: whatever a flood of them says,
  the IdP sees at most one JWKS request per ``refetch_after`` seconds;
- concurrent lookups share one fetch (:class:`~mcp_oauth_shim.memo.SingleFlight`), and an
  IdP that failed moments ago is not asked again at once;
- when a refresh fails, the keys held keep serving: an IdP hiccup must not lock users out.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .bearer_errors import InvalidToken
from .memo import SingleFlight
from .upstream import UpstreamError, UpstreamMetadata

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "FORBIDDEN_ALGORITHMS",
    "MAX_JWKS_BYTES",
    "NOT_A_KEY_SET",
    "NO_USABLE_KEY",
    "PUBLIC_KEY_TYPES",
    "UNKNOWN_KID_REFETCH_AFTER",
    "KeyCache",
    "KeySource",
    "KeyStore",
    "SignatureKeys",
    "import_public_key",
    "key_fits",
]

logger = logging.getLogger("mcp_oauth_shim.verify")

#: A JWKS bigger than this is an attack or a misconfiguration, not a key set.
MAX_JWKS_BYTES = 512 * 1024
#: The longest a token with an unknown ``kid`` waits for a refetch: the age the held keys must
#: reach before such a token may make the shim ask the IdP again.
UNKNOWN_KID_REFETCH_AFTER = 5.0
#: The JWK key types (RFC 7517 §4.1 ``kty``) a signature may be checked with; never ``oct``:
#: a published shared secret is no trust anchor.
PUBLIC_KEY_TYPES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}

#: The signature algorithms a JWT checked against a public key set may use (RFC 7518 §3.1,
#: RFC 8037 §3.1). ``none`` and the HMAC family never: with HMAC, anyone holding the published
#: key could sign (algorithm confusion).
ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


class KeySource(Protocol):
    """What the key store needs from :class:`mcp_oauth_shim.upstream.UpstreamClient`."""

    async def metadata(self) -> UpstreamMetadata: ...

    async def get_json(self, url: str, *, what: str = ..., max_bytes: int = ...) -> dict[str, Any]: ...


#: Why a document is no usable JWK Set (the ``ValueError`` of :meth:`SignatureKeys.from_jwks`).
NOT_A_KEY_SET = "not a JWK Set document (no keys array)"
NO_USABLE_KEY = "the JWK Set holds no usable public signature key"


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity, as before
class SignatureKeys:
    """The public signature keys of one signer, from a JWK Set (RFC 7517 §5), by ``kid``.

    Only keys that can verify signatures are kept (RFC 7517 §4.2 ``use``, §4.3 ``key_ops``),
    and never symmetric ones: a published shared secret is no trust anchor.
    """

    by_kid: dict[str, Key]
    without_kid: tuple[Key, ...] = ()

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.without_kid)

    @classmethod
    def from_jwks(cls, document: object) -> SignatureKeys:
        """The usable keys of a JWK Set document; ``ValueError`` (:data:`NOT_A_KEY_SET` or
        :data:`NO_USABLE_KEY`) if it is not one or has none."""
        keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(keys, list):
            raise ValueError(NOT_A_KEY_SET)
        by_kid: dict[str, Key] = {}
        without_kid: list[Key] = []
        for data in keys:
            key = import_public_key(data)
            if key is None:
                continue
            kid = data.get("kid")
            if isinstance(kid, str):
                by_kid.setdefault(kid, key)
            else:
                without_kid.append(key)
        found = cls(by_kid, tuple(without_kid))
        if not found:
            raise ValueError(NO_USABLE_KEY)
        return found

    def find(self, kid: str | None, alg: str, *, named_must_fit: bool = True) -> Key | None:
        """The key for a JWS header: by ``kid``, or without one the only key that fits ``alg``
        (RFC 7515 §4.1.4 makes ``kid`` optional; guessing among several is not safe). Without
        ``named_must_fit``, the key a ``kid`` names is returned even if it does not fit ``alg``
        (the signature check then refuses the token)."""
        if kid is not None:
            key = self.by_kid.get(kid)
            return key if key is not None and (not named_must_fit or key_fits(key, alg)) else None
        candidates = [k for k in (*self.by_kid.values(), *self.without_kid) if key_fits(k, alg)]
        return candidates[0] if len(candidates) == 1 else None


FailureT = TypeVar("FailureT", bound=Exception)


class KeyCache(ABC, Generic[FailureT]):
    """Keys that :meth:`fetch_keys` obtains, under the lookup policy described in this
    module's docstring. A subclass fetches, names the exception its fetch raises when it cannot
    obtain keys (``failure``) and what the keys are called in logs (``what``)."""

    failure: type[FailureT]
    what: str

    def __init__(self, *, max_age: float, refetch_after: float, failure_backoff: float, clock: Callable[[], float]) -> None:
        self.max_age = max_age
        self.refetch_after = refetch_after
        self._failure_backoff = failure_backoff
        self._clock = clock
        self.held: SignatureKeys | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at = float("-inf")  # last fetch attempt, successful or not (never: -inf)
        self._last_error: FailureT | None = None
        self._flight: SingleFlight[str, None] = SingleFlight()

    async def current(self) -> SignatureKeys:
        """The keys, refreshed first when older than ``max_age`` (if that fails, the keys held
        keep serving); ``failure`` when there are none."""
        fetched_at = self._fetched_at
        if fetched_at is None or abs(self._clock() - fetched_at) >= self.max_age:
            await self.refresh(stale_ok=fetched_at is not None)
        assert self.held is not None
        return self.held

    def may_refetch(self) -> bool:
        """Are the keys old enough that an unknown ``kid`` may ask again? (A fetch already
        running is joined instead.)"""
        if len(self._flight):
            return True
        return abs(self._clock() - self._attempted_at) >= self.refetch_after

    async def refresh(self, *, stale_ok: bool) -> None:
        """Fetch the keys (sharing a fetch already running). On failure, with ``stale_ok`` and
        keys held, those keep serving; otherwise ``failure`` is raised."""
        error = self._last_error
        if len(self._flight) == 0 and error is not None and abs(self._clock() - self._attempted_at) < self._failure_backoff:
            # Failed moments ago: answer at once instead of queueing behind timeouts.
            if not (stale_ok and self.held):
                raise error.with_traceback(None)
            return
        try:
            await self._flight.run("keys", self._fetch_and_keep)
        except self.failure as exc:
            if not (stale_ok and self.held):
                raise
            logger.warning("%s refresh failed, keeping the cached keys: %s", self.what, exc)

    async def _fetch_and_keep(self) -> None:
        self._attempted_at = self._clock()
        try:
            keys = await self.fetch_keys()
        except self.failure as exc:
            logger.warning("%s fetch failed: %s", self.what, exc)
            self._last_error = exc
            raise
        self.held, self._fetched_at, self._last_error = keys, self._clock(), None
        logger.info("%s fetched: %d signature keys", self.what, len(keys))

    @abstractmethod
    async def fetch_keys(self) -> SignatureKeys:
        """The keys, fetched now; ``failure`` when there are none to be had."""

    def expire(self) -> None:
        """Forget when the keys were fetched: the next lookup refreshes them."""
        self._fetched_at = None


#: What :class:`KeyStore` says when the IdP's document is no usable JWK Set.
_IDP_KEY_SET_PROBLEMS = {
    NOT_A_KEY_SET: "The identity provider's key set is not a JWKS document.",
    NO_USABLE_KEY: "The identity provider's key set holds no usable signature key.",
}


class KeyStore(KeyCache[UpstreamError]):
    """The IdP's keys (from its discovered ``jwks_uri``) under the lookup policy described in
    this module's docstring."""

    failure = UpstreamError
    what = "JWKS"

    def __init__(
        self,
        source: KeySource,
        *,
        refetch_after: float = UNKNOWN_KID_REFETCH_AFTER,
        max_age: float = 3600.0,
        clock: Callable[[], float],
    ) -> None:
        if refetch_after < 0:
            raise ValueError("refetch_after must not be negative")
        super().__init__(
            max_age=max_age,
            refetch_after=min(refetch_after, UNKNOWN_KID_REFETCH_AFTER),
            failure_backoff=UNKNOWN_KID_REFETCH_AFTER,
            clock=clock,
        )
        self._source = source

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that must have signed a token with this header, or :class:`~mcp_oauth_shim.bearer_errors.InvalidToken`."""
        # A key named by kid that does not fit alg is refused by the signature check, without a refetch.
        key = (await self.current()).find(kid, alg, named_must_fit=False)
        if key is None and kid is not None and self.may_refetch():
            await self.refresh(stale_ok=False)
            assert self.held is not None  # refresh(stale_ok=False) raises when it has no keys
            key = self.held.find(kid, alg, named_must_fit=False)
        if key is None:
            if kid is None:
                raise InvalidToken("The access token names no signing key (kid) and none fits unambiguously.")
            raise InvalidToken("The access token is signed with a key the identity provider does not publish.")
        return key

    async def fetch_keys(self) -> SignatureKeys:
        meta = await self._source.metadata()
        if not meta.jwks_uri:
            raise UpstreamError(
                502, "server_error", "The identity provider publishes no jwks_uri, so tokens cannot be verified."
            )
        document = await self._source.get_json(meta.jwks_uri, what="key set", max_bytes=MAX_JWKS_BYTES)
        try:
            return SignatureKeys.from_jwks(document)
        except ValueError as exc:
            raise UpstreamError(502, "server_error", _IDP_KEY_SET_PROBLEMS[str(exc)]) from None


def import_public_key(data: Any) -> Key | None:
    """One JWK from the set, or ``None`` when it cannot verify signatures (RFC 7517 §4.2/§4.3).

    Symmetric (``oct``) keys are skipped: a published shared secret is no trust anchor.
    """
    if not isinstance(data, dict) or data.get("kty") not in PUBLIC_KEY_TYPES:
        return None
    if data.get("use", "sig") != "sig":
        return None
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        key: Key = PUBLIC_KEY_TYPES[data["kty"]].import_key(data)
    except (JoseError, ValueError, TypeError, KeyError):
        logger.warning("ignoring a malformed key in the JWKS (kid=%r)", data.get("kid"))
        return None
    return key if isinstance(key, (RSAKey, ECKey, OKPKey)) else None


def key_fits(key: Key, alg: str) -> bool:
    """Can ``key`` verify signatures of algorithm ``alg`` (type, curve, size)?"""
    try:
        JWSRegistry.algorithms[alg].check_key(key)
    except (JoseError, KeyError, ValueError, TypeError):
        return False
    return True
