"""Verifying bearer access tokens that the upstream identity provider minted.

A resource server must check every access token it accepts: that the IdP signed it (RFC 7515
signature against the IdP's JWKS, RFC 7517), that it was issued by the expected issuer and for
this resource (RFC 7519 §4.1.1 ``iss``, §4.1.3 ``aud``; RFC 8707 / RFC 9068 §4 audience
binding; MCP authorization "Token Audience Binding and Validation"), and that it is still valid
(``exp`` required, ``nbf``/``iat`` with clock-skew leeway). Opaque tokens are checked through
RFC 7662 introspection when the IdP offers it.

:class:`BearerVerifier` does that and implements the ``mcp`` SDK's ``TokenVerifier`` protocol
(``verify_token``); :meth:`BearerVerifier.authenticate` is the richer path that says *why* a
token was refused, which :mod:`mcp_oauth_shim.protect` turns into RFC 6750 challenges.

Only access tokens pass: the IdP signs its ID tokens with the same keys, and some IdPs give
them the access tokens' audience, so each token is also checked against the IdP's
:class:`~mcp_oauth_shim.config.AccessTokenProfile` (RFC 9068 §4 ``typ``, ID-token claims, where
the scopes are).

Speed matters (a verified call must cost almost nothing over an unauthenticated one), so keys
are imported once per JWKS fetch and kept by ``kid``, and each verified token is remembered,
under its SHA-256 hash, in a bounded LRU until shortly before it expires.

Nobody may turn the verifier into an amplifier that makes the IdP work for unauthenticated
callers: JWKS refetches for unknown ``kid`` values are rate-limited, introspection refusals are
remembered for a while (bounded, by hash, like successes), and concurrent requests with the same
opaque token share one introspection.

The ``mcp`` SDK is imported lazily: this package must not import it at module import time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import (
    CompactSignature,
    JWSAlgModel,
    JWSRegistry,
    extract_compact,
    validate_compact,
)
from joserfc.jwt import JWTClaimsRegistry

from . import jsonsafe
from .config import OIDC_ACCESS_TOKENS, AccessTokenProfile, Upstream
from .outbound import TRANSPORT_ERRORS
from .rfc6750 import validate_scope_token
from .upstream import UpstreamError, UpstreamMetadata

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

__all__ = [
    "DEFAULT_ALGORITHMS",
    "BearerVerifier",
    "InsufficientScope",
    "InvalidToken",
    "token_scopes",
]

logger = logging.getLogger("mcp_oauth_shim.verify")

#: Asymmetric JWS algorithms only (RFC 7518 §3, RFC 8037, RFC 9864). ``none`` and the HMAC
#: family are never accepted whatever the configuration says: with a public JWKS, accepting
#: HS256 lets anyone sign with the public key as the HMAC secret (algorithm confusion).
DEFAULT_ALGORITHMS: tuple[str, ...] = (
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
_FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
_KEY_CLASSES: tuple[type, ...] = (RSAKey, ECKey, OKPKey)  # never OctKey: no shared secrets

#: Larger than any real access token (Entra's are ~2-4 KiB); refused before any parsing.
MAX_TOKEN_LENGTH = 16 * 1024
#: A JWKS bigger than this is an attack or a misconfiguration, not a key set.
MAX_JWKS_BYTES = 512 * 1024
#: Seconds an introspection result is reused (RFC 7662 §4: caching trades freshness for load).
INTROSPECTION_CACHE_TTL = 60.0
#: Seconds a token the introspection refused stays refused without asking again. A refused token
#: does not become valid (short of IdP replication lag right after issuance, which the shortness
#: covers), and a client or attacker repeating one costs the IdP one call per period at most.
REFUSAL_CACHE_TTL = 30.0


class InvalidToken(Exception):
    """The token must not be accepted (RFC 6750 §3.1 ``invalid_token``).

    ``description`` is safe to show the client: it never contains the token or claim values.
    ``reason`` is what the refusal is counted as (``invalid``, ``expired``, ``wrong_audience``).
    """

    def __init__(self, description: str, *, reason: str = "invalid") -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


class InsufficientScope(Exception):
    """The token is valid but lacks scopes (RFC 6750 §3.1 ``insufficient_scope``).

    ``required`` is every scope the request needs (so a client's step-up keeps what it has);
    ``missing`` the ones the token lacks.
    """

    def __init__(self, required: Sequence[str], missing: Sequence[str]) -> None:
        super().__init__("The access token lacks required scopes: " + " ".join(missing))
        self.required = tuple(required)
        self.missing = tuple(missing)
        self.description = str(self)


class _Upstream(Protocol):
    """What the verifier needs from :class:`mcp_oauth_shim.upstream.UpstreamClient`."""

    http: httpx.AsyncClient

    async def metadata(self) -> UpstreamMetadata: ...


class _Registry(JWSRegistry):
    """A JWS registry that knows only our allow-list.

    joserfc warns on every use of ``EdDSA`` (deprecated by RFC 9864 in favour of ``Ed25519``);
    IdPs still sign with it and the allow-list is the operator's decision, so the per-token
    warning is noise on a hot path.
    """

    def __init__(self, algorithms: Iterable[str]) -> None:
        super().__init__(algorithms=list(algorithms), strict_check_header=False)
        self._allowed = frozenset(self.allowed or ())

    def get_alg(self, name: str) -> JWSAlgModel:
        if name not in self._allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


def token_scopes(claims: Mapping[str, Any], profile: AccessTokenProfile = OIDC_ACCESS_TOKENS) -> list[str]:
    """The scopes a token grants, from the claims the IdP's profile names, in first-seen order.

    ``scope``: a space-separated string (RFC 9068 §2.2.3, RFC 8693 §4.2; Auth0, Keycloak,
    oidc-provider). ``scp``: a list (Okta) or a space-separated string (Entra ID).
    ``permissions``: a list (Auth0 RBAC). ``roles`` (Entra ID application permissions, from
    ``profile.app_permission_claims``) only on an application's token: one with none of the
    scope claims and no ``idtyp: user``. Values of any other shape are ignored.
    """
    found: dict[str, None] = {}
    delegated = _collect(claims, profile.scope_claims, found)
    if not delegated and profile.app_permission_claims and claims.get("idtyp") != "user":
        _collect(claims, profile.app_permission_claims, found)
    return list(found)


def _collect(claims: Mapping[str, Any], names: Iterable[str], found: dict[str, None]) -> bool:
    """Add the scopes of the claims ``names`` to ``found``; whether any such claim was there."""
    present = False
    for name in names:
        value = claims.get(name)
        if isinstance(value, str):
            items: Iterable[Any] = value.split()
        elif isinstance(value, list):
            items = value
        else:
            continue
        present = True
        for item in items:
            if isinstance(item, str) and item:
                found[item] = None
    return present


def token_client(claims: Mapping[str, Any], profile: AccessTokenProfile = OIDC_ACCESS_TOKENS) -> str | None:
    """The client a token was issued to, from the first of ``profile.client_claims`` present."""
    for name in profile.client_claims:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


class _CacheEntry:
    __slots__ = ("token", "valid_until")

    def __init__(self, token: AccessToken, valid_until: float) -> None:
        self.token = token
        self.valid_until = valid_until


class _Refusal:
    """A token the IdP's introspection refused: why, and until when that answer is reused."""

    __slots__ = ("description", "valid_until")

    def __init__(self, description: str, valid_until: float) -> None:
        self.description = description
        self.valid_until = valid_until


class _KeyCache:
    """The IdP's signature keys, imported once per fetch and looked up by ``kid``.

    Refetched when older than ``max_age`` and when a token names a ``kid`` we do not know (key
    rotation), but the latter at most once per ``refetch_interval`` so that tokens with made-up
    ``kid`` values cannot turn the shim into a JWKS-fetching amplifier. Concurrent callers share
    one fetch.
    """

    def __init__(
        self,
        upstream: _Upstream,
        *,
        refetch_interval: float,
        max_age: float,
        clock: Callable[[], float],
    ) -> None:
        self._upstream = upstream
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._by_kid: dict[str, Key] = {}
        self._without_kid: list[Key] = []
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._attempts = 0
        self._last_error: UpstreamError | None = None
        self._failure_backoff = min(refetch_interval, 5.0)
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that must have signed a token with this header, or :class:`InvalidToken`."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._max_age:
            await self._refresh(stale_ok=self._fetched_at is not None)
        key = self._find(kid, alg)
        if key is None and kid is not None and self._may_refetch():
            # An unknown kid is what key rotation looks like from here: look once more.
            await self._refresh(stale_ok=False)
            key = self._find(kid, alg)
        if key is None:
            if kid is None:
                raise InvalidToken("The access token names no signing key (kid) and none fits unambiguously.")
            raise InvalidToken("The access token is signed with a key the identity provider does not publish.")
        return key

    def _may_refetch(self) -> bool:
        last = self._attempted_at
        return last is None or abs(self._clock() - last) >= self._refetch_interval

    def _find(self, kid: str | None, alg: str) -> Key | None:
        if kid is not None:
            return self._by_kid.get(kid)
        # RFC 7515 §4.1.4: kid is optional. Without it, only an unambiguous choice is safe.
        candidates = [k for k in (*self._by_kid.values(), *self._without_kid) if _key_fits(k, alg)]
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self, *, stale_ok: bool) -> None:
        attempts = self._attempts
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            # An asyncio.Lock belongs to one event loop; a verifier may outlive one (test clients,
            # several servers in one process). Refreshes are rare, so a fresh lock is cheap.
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            if self._attempts != attempts:
                # Another request fetched while we waited for the lock: share its outcome.
                error = self._last_error
            elif (
                self._last_error is not None
                and abs(self._clock() - (self._attempted_at or 0.0)) < self._failure_backoff
            ):
                # The IdP failed moments ago; answer at once instead of queueing behind timeouts.
                error = self._last_error
            else:
                self._attempted_at = self._clock()
                try:
                    by_kid, without_kid = await self._fetch()
                except UpstreamError as exc:
                    self._last_error = error = exc
                    self._attempts += 1  # counted when done: waiters compare against it
                else:
                    self._attempts += 1
                    self._by_kid, self._without_kid = by_kid, without_kid
                    self._fetched_at = self._clock()
                    self._last_error = None
                    return
        if error is None:
            return
        if stale_ok and (self._by_kid or self._without_kid):
            # Keep serving with the keys we have: an IdP hiccup must not lock users out.
            logger.warning("JWKS refresh failed, keeping cached keys: %s", error.description)
            return
        raise UpstreamError(error.status_code, error.error, error.description)

    async def _fetch(self) -> tuple[dict[str, Key], list[Key]]:
        meta = await self._upstream.metadata()
        url = meta.jwks_uri
        if not url:
            raise UpstreamError(
                502, "server_error", "The identity provider publishes no jwks_uri, so tokens cannot be verified."
            )
        try:
            response = await self._upstream.http.get(url, headers={"Accept": "application/json"})
        except httpx.TimeoutException:
            logger.warning("JWKS fetch timed out: %s", url)
            raise UpstreamError(
                504, "temporarily_unavailable", "The identity provider's key set did not arrive in time."
            ) from None
        except TRANSPORT_ERRORS as exc:
            logger.warning("JWKS fetch failed: %s (%s)", url, type(exc).__name__)
            raise UpstreamError(
                502, "temporarily_unavailable", "The identity provider's key set could not be fetched."
            ) from None
        if response.status_code != 200:
            logger.warning("JWKS fetch answered %s: %s", response.status_code, url)
            raise UpstreamError(
                502, "server_error", f"The identity provider answered {response.status_code} for its key set."
            )
        if len(response.content) > MAX_JWKS_BYTES:
            raise UpstreamError(502, "server_error", "The identity provider's key set is too large.")
        try:
            document = jsonsafe.loads(response.content)
        except ValueError:
            document = None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise UpstreamError(502, "server_error", "The identity provider's key set is not a JWKS document.")
        by_kid: dict[str, Key] = {}
        without_kid: list[Key] = []
        for data in keys:
            key = _import_public_key(data)
            if key is None:
                continue
            kid = data.get("kid")
            if isinstance(kid, str):
                by_kid.setdefault(kid, key)
            else:
                without_kid.append(key)
        if not by_kid and not without_kid:
            raise UpstreamError(502, "server_error", "The identity provider's key set holds no usable signature key.")
        logger.info("JWKS fetched: %d signature keys", len(by_kid) + len(without_kid))
        return by_kid, without_kid


def _import_public_key(data: Any) -> Key | None:
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
        key = (
            RSAKey.import_key(data)
            if data["kty"] == "RSA"
            else (ECKey.import_key(data) if data["kty"] == "EC" else OKPKey.import_key(data))
        )
    except (JoseError, ValueError, TypeError, KeyError):
        logger.warning("ignoring a malformed key in the JWKS (kid=%r)", data.get("kid"))
        return None
    return key if isinstance(key, _KEY_CLASSES) else None


def _key_fits(key: Key, alg: str) -> bool:
    try:
        JWSRegistry.algorithms[alg].check_key(key)
    except (JoseError, KeyError):
        return False
    return True


class BearerVerifier:
    """Checks access tokens from the upstream IdP; the ``mcp`` SDK's ``TokenVerifier``.

    ``audience``: the ``aud`` value(s) a token must carry, normally the MCP resource URL (the
    RFC 8707 resource) or the Auth0-style API identifier. ``issuer``: the exact ``iss``;
    defaults to the ``issuer`` of the upstream's discovered metadata. ``required_scopes`` must
    be on every token. ``resource_metadata_url`` and ``scopes_supported`` are what a 401
    challenge advertises (RFC 9728 §5.1). ``leeway`` is the clock skew tolerated on ``exp``,
    ``nbf`` and ``iat``. ``jwks_refetch_interval`` bounds refetches for unknown ``kid`` values,
    ``jwks_max_age`` how long keys are trusted without a refetch. ``cache_size`` and
    ``cache_ttl`` bound the verified-token cache. ``introspect`` enables RFC 7662 for opaque
    tokens when the IdP metadata lists an ``introspection_endpoint`` (and ``profile`` allows
    opaque tokens); ``refusal_cache_size`` and ``refusal_cache_ttl`` bound the memory of
    tokens the introspection refused. ``profile`` describes the IdP's access tokens and
    ``client_id`` is the shim's client at the IdP (what ID tokens carry as ``aud``); both
    default to the values of the upstream's :class:`~mcp_oauth_shim.config.Upstream`.
    """

    def __init__(
        self,
        upstream: _Upstream,
        *,
        audience: str | Sequence[str],
        resource_metadata_url: str,
        issuer: str | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        required_scopes: Iterable[str] = (),
        scopes_supported: Iterable[str] | None = None,
        jwks_refetch_interval: float = 30.0,
        jwks_max_age: float = 3600.0,
        cache_size: int = 4096,
        cache_ttl: float = 300.0,
        introspect: bool = True,
        refusal_cache_size: int = 4096,
        refusal_cache_ttl: float = REFUSAL_CACHE_TTL,
        profile: AccessTokenProfile | None = None,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must be a non-empty string or a list of them")
        chosen = tuple(dict.fromkeys(algorithms))
        forbidden = sorted(_FORBIDDEN_ALGORITHMS.intersection(chosen))
        if forbidden:
            raise ValueError(
                f"algorithms may not include {', '.join(forbidden)}: only asymmetric signatures "
                "can be checked against a public key set"
            )
        unknown = sorted(set(chosen) - set(JWSRegistry.algorithms))
        if unknown or not chosen:
            raise ValueError(f"unsupported JWS algorithms: {', '.join(unknown) or '(none given)'}")
        if min(leeway, cache_size, cache_ttl, refusal_cache_size, refusal_cache_ttl) < 0:
            raise ValueError("leeway and the cache sizes and lifetimes must not be negative")
        config = getattr(upstream, "upstream", None)
        if not isinstance(config, Upstream):
            config = None
        if profile is None:
            profile = config.access_tokens if config is not None else OIDC_ACCESS_TOKENS
        if client_id is None and config is not None:
            client_id = config.client_id or None
        self.upstream = upstream
        self.audiences: tuple[str, ...] = audiences
        self.audience: str = audiences[0]
        self.resource_metadata_url = resource_metadata_url
        self.required_scopes: tuple[str, ...] = tuple(validate_scope_token(s) for s in required_scopes)
        self.scopes_supported: tuple[str, ...] | None = (
            None if scopes_supported is None else tuple(validate_scope_token(s) for s in scopes_supported)
        )
        self.algorithms = chosen
        self.leeway = int(leeway)
        self.introspect = introspect
        self.profile = profile
        self.client_id = client_id
        self._issuer = issuer
        self._registry = _Registry(chosen)
        self._clock = clock
        self._cache: OrderedDict[bytes, _CacheEntry] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._refused: OrderedDict[bytes, _Refusal] = OrderedDict()
        self._refusal_cache_size = refusal_cache_size
        self._refusal_cache_ttl = refusal_cache_ttl
        self._introspections: dict[bytes, asyncio.Task[AccessToken]] = {}
        self.keys = _KeyCache(upstream, refetch_interval=jwks_refetch_interval, max_age=jwks_max_age, clock=clock)

    # -- what a 401 advertises --------------------------------------------------------------

    @property
    def challenge_scopes(self) -> tuple[str, ...]:
        """Scopes named in a 401 challenge (MCP 2025-11-25 "Protected Resource Metadata
        Discovery Requirements"): the required ones when set, else the advertised ones."""
        return self.required_scopes or self.scopes_supported or ()

    # -- the TokenVerifier protocol ---------------------------------------------------------

    async def verify_token(self, token: str) -> AccessToken | None:
        """The ``mcp`` SDK's ``TokenVerifier.verify_token``: the token's info, or ``None``.

        ``None`` for every refused token, including one without the ``required_scopes``, and
        also when the IdP cannot be reached (the protocol has no other way to say it; the SDK
        then answers 401). :func:`mcp_oauth_shim.protect.RequireBearer` distinguishes these.
        """
        try:
            return await self.authenticate(token)
        except (InvalidToken, InsufficientScope):
            return None
        except UpstreamError as exc:
            logger.warning("token not verified, identity provider unavailable: %s", exc.description)
            return None

    # -- the richer path ---------------------------------------------------------------------

    async def authenticate(self, token: str, *, scopes: Iterable[str] = ()) -> AccessToken:
        """Verify ``token`` and check it carries ``required_scopes`` plus ``scopes``.

        Raises :class:`InvalidToken` (refuse with 401), :class:`InsufficientScope` (403) or
        :class:`mcp_oauth_shim.upstream.UpstreamError` (502/504: the IdP's metadata or keys
        could not be fetched).
        """
        access = await self.access_token(token)
        needed = self.required_scopes + tuple(scopes) if scopes else self.required_scopes
        if needed:
            granted = access.scopes
            missing = [s for s in dict.fromkeys(needed) if s not in granted]
            if missing:
                logger.info("token refused: lacks scopes %s", missing)
                raise InsufficientScope(tuple(dict.fromkeys(needed)), missing)
        return access

    async def access_token(self, token: str) -> AccessToken:
        """Verify ``token`` (signature or introspection, issuer, audience, lifetime) without any
        scope check. Cached: the same token is only verified again after ``cache_ttl`` or when
        it expires, whichever comes first."""
        if not isinstance(token, str) or not token:
            raise InvalidToken("No access token was given.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The access token is too large.")
        cache_key = hashlib.sha256(token.encode()).digest()
        entry = self._cache.get(cache_key)
        now = self._clock()
        if entry is not None:
            if now < entry.valid_until:
                self._cache.move_to_end(cache_key)
                return entry.token
            del self._cache[cache_key]
        try:
            if token.count(".") == 2:
                access = await self._verify_jwt(token, now)
                self._remember(cache_key, access, now, self._cache_ttl)
            else:
                access = await self._introspect_once(cache_key, token, now)
        except InvalidToken as exc:
            logger.info("token refused: %s", exc.description)
            raise
        return access

    async def verify_locally(self, token: str) -> AccessToken:
        """Like :meth:`access_token`, but never asks the IdP about this token: a JWT is checked
        against the IdP's (cached) keys; an opaque token is known only if a recent introspection
        accepted it. For callers that must not make the IdP work for whoever sends a string
        (token revocation). Raises :class:`InvalidToken` or
        :class:`~mcp_oauth_shim.upstream.UpstreamError` (keys unavailable)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The token is not an access token for this resource.")
        cache_key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        entry = self._cache.get(cache_key)
        if entry is not None and now < entry.valid_until:
            return entry.token
        if token.count(".") != 2:
            raise InvalidToken("The token is not an access token this resource has seen.")
        access = await self._verify_jwt(token, now)
        self._remember(cache_key, access, now, self._cache_ttl)
        return access

    def _remember_refusal(self, cache_key: bytes, description: str, now: float) -> None:
        if self._refusal_cache_size == 0 or self._refusal_cache_ttl <= 0:
            return
        self._refused[cache_key] = _Refusal(description, now + self._refusal_cache_ttl)
        self._refused.move_to_end(cache_key)
        while len(self._refused) > self._refusal_cache_size:
            self._refused.popitem(last=False)

    def _remember(self, cache_key: bytes, access: AccessToken, now: float, ttl: float) -> None:
        if self._cache_size == 0 or ttl <= 0:
            return
        valid_until = now + ttl
        if access.expires_at is not None:
            valid_until = min(valid_until, float(access.expires_at))
        if valid_until <= now:
            return
        self._cache[cache_key] = _CacheEntry(access, valid_until)
        self._cache.move_to_end(cache_key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _expected_issuer(self) -> str:
        if self._issuer is not None:
            return self._issuer
        meta = await self.upstream.metadata()
        if not meta.issuer:
            raise UpstreamError(
                502, "server_error", "The identity provider's metadata names no issuer, so tokens cannot be verified."
            )
        return meta.issuer

    # -- JWT (RFC 7515 / RFC 7519 / RFC 9068) ------------------------------------------------

    async def _verify_jwt(self, token: str, now: float) -> AccessToken:
        try:
            jws = extract_compact(token.encode("ascii"), registry=self._registry)
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise InvalidToken("The access token is not a well-formed JWT.") from None
        header = jws.headers()
        try:
            # RFC 7515 §4.1.11: a "crit" parameter we do not understand makes the token invalid.
            self._registry.check_header(header)
        except (JoseError, ValueError, TypeError):  # joserfc raises TypeError for e.g. crit: [1]
            raise InvalidToken(
                "The access token's header is malformed or has unsupported critical parameters."
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg in _FORBIDDEN_ALGORITHMS:
            raise InvalidToken("The access token is unsigned or uses a symmetric algorithm; neither is accepted.")
        if alg not in self.algorithms:
            raise InvalidToken("The access token's signature algorithm is not accepted.")
        if header.get("typ") is not None and not isinstance(header.get("typ"), str):
            raise InvalidToken("The access token's header is malformed.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("The access token's header is malformed.")
        key = await self.keys.key_for(kid, alg)
        if not self._signature_ok(jws, key):
            raise InvalidToken("The access token's signature is invalid.")
        try:
            claims = jsonsafe.loads(jws.payload or b"")
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise InvalidToken("The access token's payload is not a JSON object.")
        issuer = await self._expected_issuer()
        self._check_claims(claims, issuer, now)
        scopes = token_scopes(claims, self.profile)
        self._check_access_token_kind(header, claims, scopes)
        return self._to_access_token(token, claims, scopes)

    def _check_access_token_kind(self, header: Mapping[str, Any], claims: Mapping[str, Any], scopes: list[str]) -> None:
        """Refuse every genuinely signed JWT that is not an access token: ID tokens above all.

        RFC 9068 §4 and RFC 8725 §3.11: an explicit ``typ`` other than the profile's (``at+jwt``,
        or ``JWT`` for IdPs that do not follow RFC 9068) is another kind of token. OpenID
        Connect Core §2: ``nonce``/``at_hash``/``c_hash``/``s_hash`` are ID-token claims, and an
        ID token's ``aud`` is the client ID; an access token for this resource addressed to the
        client ID must at least grant something.
        """
        profile = self.profile
        typ = header.get("typ")
        kind = "" if typ is None else typ.lower().removeprefix("application/")
        if kind not in profile.header_types:
            raise InvalidToken("The token is not an access token: its typ header names another kind of token.")
        if profile.type_claim is not None:
            value = claims.get(profile.type_claim)
            if not isinstance(value, str) or value not in profile.type_claim_values:
                raise InvalidToken(f"The token is not an access token: its {profile.type_claim} claim says otherwise.")
        if not profile.id_token_claims.isdisjoint(claims):
            raise InvalidToken("The token is an ID token, not an access token.")
        if profile.require_client_claim and token_client(claims, profile) is None:
            raise InvalidToken("The token names no client it was issued to, as every access token of this IdP does.")
        if profile.client_audience_needs_scopes and not scopes and self.client_id is not None:
            aud = claims.get("aud")
            if aud == self.client_id or (isinstance(aud, list) and self.client_id in aud):
                raise InvalidToken("The token is addressed to the client and grants nothing: an ID token, not an access token.")

    def _signature_ok(self, jws: CompactSignature, key: Key) -> bool:
        try:
            return validate_compact(jws, key, registry=self._registry)
        except (JoseError, ValueError, TypeError):
            # Key type, curve or key "alg" does not match the header: not a valid signature.
            return False

    def _check_claims(self, claims: dict[str, Any], issuer: str, now: float, *, require_exp: bool = True) -> None:
        registry = JWTClaimsRegistry(
            now=int(now),
            leeway=self.leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "values": list(self.audiences)},
            exp={"essential": require_exp},
        )
        try:
            registry.validate(claims)
        except MissingClaimError as exc:
            raise InvalidToken(f"The access token lacks the required claim(s): {exc.claim}.") from None
        except ExpiredTokenError:
            raise InvalidToken("The access token has expired.", reason="expired") from None
        except InvalidClaimError as exc:
            raise InvalidToken(
                _CLAIM_PROBLEMS.get(exc.claim, f"The access token's {exc.claim} claim is invalid."),
                reason="wrong_audience" if exc.claim == "aud" else "invalid",
            ) from None

    def _to_access_token(self, token: str, claims: dict[str, Any], scopes: list[str]) -> AccessToken:
        from mcp.server.auth.provider import AccessToken

        aud = claims.get("aud")
        audience_list = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
        resource = next((a for a in self.audiences if a in audience_list), self.audience)
        exp = claims.get("exp")
        sub = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=token_client(claims, self.profile) or "unknown",
            scopes=scopes,
            expires_at=int(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None,
            resource=resource,
            subject=sub if isinstance(sub, str) else None,
            claims=claims,
        )

    # -- opaque tokens (RFC 7662) ------------------------------------------------------------

    async def _introspect_once(self, cache_key: bytes, token: str, now: float) -> AccessToken:
        """Introspect ``token`` unless a recent introspection refused it; concurrent callers with
        the same token share one introspection (and so one IdP request)."""
        refusal = self._refused.get(cache_key)
        if refusal is not None:
            if now < refusal.valid_until:
                self._refused.move_to_end(cache_key)
                raise InvalidToken(refusal.description)
            del self._refused[cache_key]
        if not self.profile.opaque_tokens:
            raise InvalidToken(_OPAQUE_REFUSED)
        loop = asyncio.get_running_loop()
        flight = self._introspections.get(cache_key)
        if flight is None or flight.get_loop() is not loop:
            flight = loop.create_task(self._introspect(token, now))
            self._introspections[cache_key] = flight
            flight.add_done_callback(functools.partial(self._introspected, cache_key))
        # shield: a caller that goes away (client disconnect) does not cancel the others' answer.
        return await asyncio.shield(flight)

    def _introspected(self, cache_key: bytes, flight: asyncio.Task[AccessToken]) -> None:
        """Remember what one introspection said, whoever is still waiting for it."""
        if self._introspections.get(cache_key) is flight:
            del self._introspections[cache_key]
        if flight.cancelled():
            return
        error = flight.exception()  # also marks it retrieved when every waiter went away
        now = self._clock()
        if error is None:
            # A revocation at the IdP must show here soon: remember introspections briefly.
            self._remember(cache_key, flight.result(), now, min(self._cache_ttl, INTROSPECTION_CACHE_TTL))
        elif isinstance(error, InvalidToken):
            self._remember_refusal(cache_key, error.description, now)
        # An UpstreamError is not the token's fault: the next request asks again.

    async def _introspect(self, token: str, now: float) -> AccessToken:
        post_form = getattr(self.upstream, "post_form", None)
        meta = await self.upstream.metadata()
        endpoint = getattr(meta, "introspection_endpoint", None) or meta.raw.get("introspection_endpoint")
        if not self.introspect or not endpoint or post_form is None:
            raise InvalidToken(
                "The access token is not a JWT, and opaque tokens cannot be checked here "
                "(the identity provider offers no token introspection). Ask the identity provider "
                "for a JWT access token for this resource."
            )
        status, body = await post_form(endpoint, {"token": token, "token_type_hint": "access_token"})
        if status != 200:
            logger.warning("token introspection answered %s", status)
            raise UpstreamError(502, "server_error", f"The identity provider's introspection answered {status}.")
        # RFC 7662 §2.2: "active" is the only required member; anything but true is inactive.
        if body.get("active") is not True:
            raise InvalidToken("The access token is not active.")
        issuer = await self._expected_issuer()
        claims = dict(body)
        if "iss" not in claims:
            claims["iss"] = issuer  # §2.2: optional; the introspecting IdP vouches for itself
        # RFC 7662 §2.2 makes exp optional: the IdP said "active" just now. Audience binding is
        # not optional: an active token for another API must still be refused here.
        self._check_claims(claims, issuer, now, require_exp=False)
        return self._to_access_token(token, claims, token_scopes(claims, self.profile))


_OPAQUE_REFUSED = (
    "The access token is not a JWT, and this identity provider's access tokens for an API always "
    "are. Ask the identity provider for a JWT access token for this resource (set the audience)."
)


_CLAIM_PROBLEMS = {
    "iss": "The access token was issued by another issuer than this resource trusts.",
    "aud": "The access token was not issued for this resource (audience mismatch).",
    "exp": "The access token's expiry (exp) is malformed.",
    "nbf": "The access token is not valid yet (nbf).",
    "iat": "The access token's issue time (iat) is in the future or malformed.",
    "sub": "The access token's subject (sub) is malformed.",
    "jti": "The access token's identifier (jti) is malformed.",
}
