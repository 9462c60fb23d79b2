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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .bearer_errors import InvalidToken
from .memo import SingleFlight
from .upstream import UpstreamError, UpstreamMetadata

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "FORBIDDEN_ALGORITHMS",
    "MAX_JWKS_BYTES", "UNKNOWN_KID_REFETCH_AFTER", "KeySet", "KeySource", "KeyStore", "import_public_key", "key_fits"]

logger = logging.getLogger("mcp_oauth_shim.verify")

#: A JWKS bigger than this is an attack or a misconfiguration, not a key set.
MAX_JWKS_BYTES = 512 * 1024
#: The longest a token with an unknown ``kid`` waits for a refetch: the age the held keys must
#: reach before such a token may make the shim ask the IdP again.
UNKNOWN_KID_REFETCH_AFTER = 5.0
_KEY_CLASSES: tuple[type, ...] = (RSAKey, ECKey, OKPKey)  # never OctKey: no shared secrets

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


@dataclass(frozen=True)
class KeySet:
    """One fetched JWKS: keys with a ``kid`` by ``kid``, the others in order."""

    by_kid: dict[str, Key] = field(default_factory=dict)
    without_kid: tuple[Key, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.by_kid or self.without_kid)

    def find(self, kid: str | None, alg: str) -> Key | None:
        if kid is not None:
            return self.by_kid.get(kid)
        # RFC 7515 §4.1.4: kid is optional. Without it, only an unambiguous choice is safe.
        candidates = [k for k in (*self.by_kid.values(), *self.without_kid) if key_fits(k, alg)]
        return candidates[0] if len(candidates) == 1 else None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> KeySet:
        """The signature keys of a JWK Set document (RFC 7517 §5), or :class:`UpstreamError`."""
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise UpstreamError(502, "server_error", "The identity provider's key set is not a JWKS document.")
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
            raise UpstreamError(502, "server_error", "The identity provider's key set holds no usable signature key.")
        return found


class KeyStore:
    """The IdP's keys under the lookup policy described in this module's docstring."""

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
        self._source = source
        self.refetch_after = min(refetch_after, UNKNOWN_KID_REFETCH_AFTER)
        self.max_age = max_age
        self._clock = clock
        self._keys = KeySet()
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._last_error: UpstreamError | None = None
        self._failure_backoff = UNKNOWN_KID_REFETCH_AFTER
        self._flight: SingleFlight[str, None] = SingleFlight()

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that must have signed a token with this header, or :class:`~mcp_oauth_shim.bearer_errors.InvalidToken`."""
        fetched_at = self._fetched_at
        if fetched_at is None or abs(self._clock() - fetched_at) >= self.max_age:
            await self._refresh(stale_ok=fetched_at is not None)
        key = self._keys.find(kid, alg)
        if key is None and kid is not None and self._may_refetch():
            await self._refresh(stale_ok=False)
            key = self._keys.find(kid, alg)
        if key is None:
            if kid is None:
                raise InvalidToken("The access token names no signing key (kid) and none fits unambiguously.")
            raise InvalidToken("The access token is signed with a key the identity provider does not publish.")
        return key

    def _may_refetch(self) -> bool:
        """Are the keys old enough that an unknown ``kid`` may ask the IdP again? (A fetch
        already running is joined instead.)"""
        if len(self._flight):
            return True
        last = self._attempted_at
        return last is None or abs(self._clock() - last) >= self.refetch_after

    async def _refresh(self, *, stale_ok: bool) -> None:
        error, attempted_at = self._last_error, self._attempted_at
        if (
            len(self._flight) == 0
            and error is not None
            and attempted_at is not None
            and abs(self._clock() - attempted_at) < self._failure_backoff
        ):
            # The IdP failed moments ago; answer at once instead of queueing behind timeouts.
            self._raise_unless_stale_ok(error, stale_ok)
            return
        try:
            await self._flight.run("jwks", self._fetch)
        except UpstreamError as exc:
            self._raise_unless_stale_ok(exc, stale_ok)

    def _raise_unless_stale_ok(self, error: UpstreamError, stale_ok: bool) -> None:
        if stale_ok and self._keys:
            logger.warning("JWKS refresh failed, keeping cached keys: %s", error.description)
            return
        raise UpstreamError(error.status_code, error.error, error.description, retry_after=error.retry_after)

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            meta = await self._source.metadata()
            url = meta.jwks_uri
            if not url:
                raise UpstreamError(
                    502, "server_error", "The identity provider publishes no jwks_uri, so tokens cannot be verified."
                )
            keys = KeySet.from_document(await self._source.get_json(url, what="key set", max_bytes=MAX_JWKS_BYTES))
        except UpstreamError as exc:
            logger.warning("JWKS fetch failed: %s", exc.description)
            self._last_error = exc
            raise
        self._keys, self._fetched_at, self._last_error = keys, self._clock(), None
        logger.info("JWKS fetched: %d signature keys", len(keys.by_kid) + len(keys.without_kid))

    def expire(self) -> None:
        """Forget when the keys were fetched: the next lookup refreshes them."""
        self._fetched_at = None


def import_public_key(data: Any) -> Key | None:
    """One JWK from the set, or ``None`` when it cannot verify signatures (RFC 7517 §4.2/§4.3).

    Symmetric (``oct``) keys are skipped: a published shared secret is no trust anchor.
    """
    if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    if data.get("use", "sig") != "sig":
        return None
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        key: Key
        if data["kty"] == "RSA":
            key = RSAKey.import_key(data)
        elif data["kty"] == "EC":
            key = ECKey.import_key(data)
        else:
            key = OKPKey.import_key(data)
    except (JoseError, ValueError, TypeError, KeyError):
        logger.warning("ignoring a malformed key in the JWKS (kid=%r)", data.get("kid"))
        return None
    return key if isinstance(key, _KEY_CLASSES) else None


def key_fits(key: Key, alg: str) -> bool:
    """Can ``key`` verify signatures of algorithm ``alg`` (type, curve, size)?"""
    try:
        JWSRegistry.algorithms[alg].check_key(key)
    except (JoseError, KeyError, ValueError, TypeError):
        return False
    return True
