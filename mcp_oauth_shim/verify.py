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
callers: JWKS refetches for unknown ``kid`` values are bounded by the key store
(:mod:`mcp_oauth_shim.jwks`), introspection refusals are remembered for a while and concurrent
requests with the same opaque token share one introspection (:mod:`mcp_oauth_shim.rfc7662`).

The ``mcp`` SDK is imported lazily: this package must not import it at module import time.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jws import extract_compact
from joserfc.jwt import JWTClaimsRegistry

from .bearer_errors import InsufficientScope, InvalidToken
from .config import OIDC_ACCESS_TOKENS, AccessTokenProfile, Upstream
from .jwks import ASYMMETRIC_ALGORITHMS, FORBIDDEN_ALGORITHMS, MAX_JWKS_BYTES, UNKNOWN_KID_REFETCH_AFTER, KeySource, KeyStore
from .jwt_claims import algorithm_registry, audience_values, claims_object, is_numeric_date, signature_valid, typ_value
from .memo import BoundedMemo, SingleFlight
from .rfc6750 import is_b64token, validate_scope_token
from .rfc7662 import INTROSPECTION_CACHE_TTL, NO_INTROSPECTION, REFUSAL_CACHE_TTL, IntrospectionClient, introspect
from .upstream import UpstreamError

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

__all__ = [
    "DEFAULT_ALGORITHMS",
    "INTROSPECTION_CACHE_TTL",
    "MAX_JWKS_BYTES",
    "MAX_TOKEN_LENGTH",
    "REFUSAL_CACHE_TTL",
    "AccessToken",
    "BearerVerifier",
    "InsufficientScope",
    "InvalidToken",
    "token_client",
    "token_scopes",
]

logger = logging.getLogger("mcp_oauth_shim.verify")

#: Asymmetric JWS algorithms only (RFC 7518 §3, RFC 8037, RFC 9864). ``none`` and the HMAC
#: family are never accepted whatever the configuration says: with a public JWKS, accepting
#: HS256 lets anyone sign with the public key as the HMAC secret (algorithm confusion).
DEFAULT_ALGORITHMS = ASYMMETRIC_ALGORITHMS

#: Larger than any real access token (Entra's are ~2-4 KiB); refused before any parsing.
MAX_TOKEN_LENGTH = 16 * 1024


class VerifierUpstream(KeySource, IntrospectionClient, Protocol):
    """What the verifier needs from :class:`mcp_oauth_shim.upstream.UpstreamClient`: discovery,
    JSON documents (the JWKS) and authenticated form POSTs (introspection)."""


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


class BearerVerifier:
    """Checks access tokens from the upstream IdP; the ``mcp`` SDK's ``TokenVerifier``.

    ``audience``: the ``aud`` value(s) a token must carry, normally the MCP resource URL (the
    RFC 8707 resource) or the Auth0-style API identifier. ``issuer``: the exact ``iss``;
    defaults to the ``issuer`` of the upstream's discovered metadata. ``required_scopes`` must
    be on every token. ``resource_metadata_url`` and ``scopes_supported`` are what a 401
    challenge advertises (RFC 9728 §5.1). ``leeway`` is the clock skew tolerated on ``exp``,
    ``nbf`` and ``iat``. ``jwks_refetch_interval`` is how old the keys must be before a token with an unknown ``kid``
    refetches them (at most 5 s: a rotated key is picked up at once, a flood of made-up ones
    costs one fetch per interval),
    ``jwks_max_age`` how long keys are trusted without a refetch. ``cache_size`` and
    ``cache_ttl`` bound the verified-token cache. ``introspect`` enables RFC 7662 for opaque
    tokens when the IdP metadata lists an ``introspection_endpoint`` (and ``profile`` allows
    opaque tokens); ``refusal_cache_size`` and ``refusal_cache_ttl`` bound the memory of
    tokens the introspection refused. ``profile`` describes the IdP's access tokens and
    ``client_id`` is the shim's client at the IdP (what ID tokens carry as ``aud``); both
    default to the values of the upstream's :class:`~mcp_oauth_shim.config.Upstream`.
    """

    #: Longer tokens are refused before any parsing.
    max_token_length = MAX_TOKEN_LENGTH

    def __init__(
        self,
        upstream: VerifierUpstream,
        *,
        audience: str | Sequence[str],
        resource_metadata_url: str,
        issuer: str | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        required_scopes: Iterable[str] = (),
        scopes_supported: Iterable[str] | None = None,
        jwks_refetch_interval: float = UNKNOWN_KID_REFETCH_AFTER,
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
        registry = algorithm_registry(algorithms)
        if min(leeway, cache_size, cache_ttl, refusal_cache_size, refusal_cache_ttl) < 0:
            raise ValueError("leeway and the cache sizes and lifetimes must not be negative")
        config = getattr(upstream, "upstream", None)
        if isinstance(config, Upstream):
            profile = config.access_tokens if profile is None else profile
            if client_id is None:
                client_id = config.client_id or None
        self.upstream = upstream
        self.audiences: tuple[str, ...] = audiences
        self.audience: str = audiences[0]
        self.resource_metadata_url = resource_metadata_url
        self.required_scopes: tuple[str, ...] = tuple(validate_scope_token(s) for s in required_scopes)
        self.scopes_supported: tuple[str, ...] | None = (
            None if scopes_supported is None else tuple(validate_scope_token(s) for s in scopes_supported)
        )
        self.algorithms: tuple[str, ...] = tuple(registry.allowed or ())
        self.leeway = int(leeway)
        self.introspect = introspect
        self.profile = OIDC_ACCESS_TOKENS if profile is None else profile
        self.client_id = client_id
        self._issuer = issuer
        self._registry = registry
        self._clock = clock
        # Verified tokens by the token itself: the cached value (the SDK's ``AccessToken``) holds
        # the token in any case, so a hashed key would hide nothing, and a SHA-256 of a JWT is
        # about a third of the cost of an authenticated call's whole check (the dictionary's
        # own hash of a str is keyed per process, so lookups give no timing oracle).
        self._cache: BoundedMemo[str, AccessToken] = BoundedMemo(cache_size)
        self._cache_ttl = cache_ttl
        # Tokens the introspection refused, by hash: asked about again only after a while.
        self._refused: BoundedMemo[bytes, str] = BoundedMemo(refusal_cache_size if refusal_cache_ttl > 0 else 0)
        self._refusal_ttl = refusal_cache_ttl
        self._introspections: SingleFlight[bytes, AccessToken] = SingleFlight()
        self.keys = KeyStore(upstream, refetch_after=jwks_refetch_interval, max_age=jwks_max_age, clock=clock)

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

    def remembered(self, token: str) -> AccessToken | None:
        """``token``'s verified info if a verification within ``cache_ttl`` accepted it and it
        has not expired since; ``None`` otherwise. No scope check, no IdP request, no coroutine:
        the path of every repeated call (:class:`~mcp_oauth_shim.protect.RequireBearer` takes
        it before :meth:`authenticate`)."""
        if len(token) > self.max_token_length:
            return None
        return self._cache.get(token, self._clock())

    async def access_token(self, token: str) -> AccessToken:
        """Verify ``token`` (signature or introspection, issuer, audience, lifetime) without any
        scope check. Cached: the same token is only verified again after ``cache_ttl`` or when
        it expires, whichever comes first."""
        if not isinstance(token, str) or not token:
            raise InvalidToken("No access token was given.")
        if len(token) > self.max_token_length:
            raise InvalidToken("The access token is too large.")
        now = self._clock()
        cached = self._cache.get(token, now)
        if cached is not None:
            return cached
        try:
            return await self._verify_new(token, now)
        except InvalidToken as exc:
            logger.info("token refused: %s", exc.description)
            raise

    async def verify_locally(self, token: str) -> AccessToken:
        """Like :meth:`access_token`, but never asks the IdP about this token: a JWT is checked
        against the IdP's (cached) keys; an opaque token is known only if a recent introspection
        accepted it. For callers that must not make the IdP work for whoever sends a string
        (token revocation). Raises :class:`InvalidToken` or
        :class:`~mcp_oauth_shim.upstream.UpstreamError` (keys unavailable)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The token is not an access token for this resource.")
        now = self._clock()
        return self._cache.get(token, now) or await self._verify_new_locally(token, now)

    async def _verify_new(self, token: str, now: float) -> AccessToken:
        if token.count(".") != 2:
            return await self._introspect_once(token, now)
        return await self._verify_new_locally(token, now)

    async def _verify_new_locally(self, token: str, now: float) -> AccessToken:
        if token.count(".") != 2:
            raise InvalidToken("The token is not an access token this resource has seen.")
        access = await self._verify_jwt(token, now)
        self._remember(token, access, now, self._cache_ttl)
        return access

    def _remember(self, token: str, access: AccessToken, now: float, ttl: float) -> None:
        """Cache ``access`` for ``ttl`` seconds, never past its expiry (nothing when ``ttl <= 0``)."""
        valid_until = now + ttl if access.expires_at is None else min(now + ttl, float(access.expires_at))
        if valid_until > now:
            self._keep(token, access, valid_until)

    def _keep(self, token: str, access: AccessToken, valid_until: float) -> None:
        """Put ``access`` in the cache under ``token`` if an ``Authorization: Bearer`` header
        can carry ``token`` (RFC 6750 §2.1 b64token). Whichever way a token was verified (a
        request, the SDK's ``verify_token``, the revocation endpoint), :meth:`remembered` then
        only ever hands out one that a well-formed header sends exactly as it is, which is what
        :class:`~mcp_oauth_shim.protect.RequireBearer`'s short way relies on."""
        if token.isascii() and is_b64token(token.encode("ascii")):
            self._cache.put(token, access, valid_until)

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
        if not isinstance(alg, str) or alg in FORBIDDEN_ALGORITHMS:
            raise InvalidToken("The access token is unsigned or uses a symmetric algorithm; neither is accepted.")
        if alg not in self.algorithms:
            raise InvalidToken("The access token's signature algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(header.get("typ"), (str, type(None))) or not isinstance(kid, (str, type(None))):
            raise InvalidToken("The access token's header is malformed.")
        key = await self.keys.key_for(kid, alg)
        if not signature_valid(jws, key, self._registry):
            raise InvalidToken("The access token's signature is invalid.")
        claims = claims_object(jws.payload)
        if claims is None:
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
        kind = "" if typ is None else typ_value(typ)
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
        addressed_to_client = self.client_id is not None and self.client_id in audience_values(claims.get("aud"))
        if profile.client_audience_needs_scopes and not scopes and addressed_to_client:
            raise InvalidToken("The token is addressed to the client and grants nothing: an ID token, not an access token.")

    def _check_claims(self, claims: dict[str, Any], issuer: str, now: float, *, require_exp: bool = True) -> None:
        exp = claims.get("exp")
        if exp is not None and not is_numeric_date(exp):
            # joserfc takes any integer; one beyond a float's range would overflow the cache's deadline.
            raise InvalidToken(_CLAIM_PROBLEMS["exp"])
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
        # RFC 9068 §2.2 requires a subject, and it is who the caller is: MCP sessions, the
        # bridge's per-user limits and the tools' view of the caller are keyed on it, so tokens
        # without one would all be one user. Checked last: a token for another audience or
        # issuer is refused for that first.
        if not claims.get("sub"):
            raise InvalidToken(_NO_SUBJECT)

    def _to_access_token(self, token: str, claims: dict[str, Any], scopes: list[str]) -> AccessToken:
        from mcp.server.auth.provider import AccessToken

        audience_list = audience_values(claims.get("aud"))
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

    async def _introspect_once(self, token: str, now: float) -> AccessToken:
        """Introspect ``token`` unless a recent introspection refused it; concurrent callers with
        the same token share one introspection (and so one IdP request)."""
        # A refused token is not kept: its hash stands for it, here and while it is in flight.
        cache_key = hashlib.sha256(token.encode()).digest()
        refusal = self._refused.get(cache_key, now)
        if refusal is not None:
            raise InvalidToken(refusal)
        if not self.profile.opaque_tokens:
            raise InvalidToken(_OPAQUE_REFUSED)
        if not self.introspect:
            raise InvalidToken(NO_INTROSPECTION)
        try:
            access = await self._introspections.run(cache_key, lambda: self._introspect(token, now))
        except InvalidToken as exc:
            # An UpstreamError is not the token's fault and is not remembered.
            self._refused.put(cache_key, exc.description, self._clock() + self._refusal_ttl)
            raise
        # A revocation at the IdP must show here soon: remember introspections briefly.
        self._remember(token, access, self._clock(), min(self._cache_ttl, INTROSPECTION_CACHE_TTL))
        return access

    async def _introspect(self, token: str, now: float) -> AccessToken:
        claims = await introspect(self.upstream, token)
        issuer = await self._expected_issuer()
        claims.setdefault("iss", issuer)  # RFC 7662 §2.2: optional; the introspecting IdP vouches for itself
        # RFC 7662 §2.2 makes exp optional: the IdP said "active" just now. Audience binding is
        # not optional: an active token for another API must still be refused here.
        self._check_claims(claims, issuer, now, require_exp=False)
        return self._to_access_token(token, claims, token_scopes(claims, self.profile))


_OPAQUE_REFUSED = (
    "The access token is not a JWT, and this identity provider's access tokens for an API always "
    "are. Ask the identity provider for a JWT access token for this resource (set the audience)."
)


_NO_SUBJECT = "The access token names no subject (sub): this resource cannot tell whose token it is."

_CLAIM_PROBLEMS = {
    "iss": "The access token was issued by another issuer than this resource trusts.",
    "aud": "The access token was not issued for this resource (audience mismatch).",
    "exp": "The access token's expiry (exp) is malformed.",
    "nbf": "The access token is not valid yet (nbf).",
    "iat": "The access token's issue time (iat) is in the future or malformed.",
    "sub": "The access token's subject (sub) is malformed.",
    "jti": "The access token's identifier (jti) is malformed.",
}


def __getattr__(name: str) -> Any:
    """``AccessToken`` is the ``mcp`` SDK's class, imported only when asked for: importing this
    module must not import the SDK."""
    if name == "AccessToken":
        from mcp.server.auth.provider import AccessToken

        return AccessToken
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
