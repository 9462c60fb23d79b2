"""Who the user is, learned once at the token endpoint, from what the IdP offers.

In issued-token mode the shim's access token names the user (``sub``, RFC 9068 §2.2), so the
shim must learn the user's identity right after the upstream code exchange. Three sources:

- the ID token that came with the IdP's token response (OpenID Connect Core §3.1.3.7):
  :func:`verify_id_token` then :func:`identity_from_claims`;
- the OIDC UserInfo endpoint (OpenID Connect Core §5.3), asked with the upstream access token:
  :func:`fetch_userinfo`;
- a provider's own user API, for IdPs without OpenID Connect (GitHub's ``GET /user``):
  :func:`fetch_github_user`.

The resolvers (:class:`IdTokenResolver`, :class:`UserinfoResolver`, :class:`GitHubResolver`)
wrap each source behind one call, ``await resolver.resolve(transport, tokens)``. The caller brings
the :class:`~mcp_oauth_shim.upstream.Transport` the shim talks to its IdP on (the keep-alive
pool, or the operator's httpx client); every request has a total deadline, every answer a size
bound, and every failure becomes an :class:`~mcp_oauth_shim.upstream.UpstreamError` with a
description free of secrets: a 401 means the upstream token is not good (``invalid_grant``,
400), a 5xx or a timeout that the IdP is unavailable (502/504).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jws import CompactSignature, JWSRegistry, extract_compact

from . import jsonsafe
from .jwt_claims import algorithm_registry, audience_values, claims_object, is_numeric_date, lifetime_problem, signature_valid
from .logs import without_password
from .signing_keys import PublicKey, PublicKeys
from .telemetry import idp_call
from .upstream import UpstreamError
from .upstream.client import busy_error, retry_after_seconds
from .upstream.framing import HTTPError, RawResponse
from .upstream.transport import Transport
from .verify import InvalidToken

__all__ = [
    "GITHUB_API",
    "GITHUB_ISSUER",
    "ID_TOKEN_ALGORITHMS",
    "MAX_IDENTITY_BYTES",
    "GitHubResolver",
    "IdTokenResolver",
    "Identity",
    "IdentityResolver",
    "KeyLookup",
    "UpstreamTokens",
    "UserinfoResolver",
    "fetch_github_user",
    "fetch_userinfo",
    "identity_from_claims",
    "verify_id_token",
    "verify_id_token_with",
]

logger = logging.getLogger(__name__)

GITHUB_API = "https://api.github.com"
#: GitHub is no OpenID provider; its users are named under this issuer.
GITHUB_ISSUER = "https://github.com"
#: Asymmetric only: an ID token's signature is checked against the IdP's public JWKS.
ID_TOKEN_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_ID_TOKEN_REGISTRY = algorithm_registry(ID_TOKEN_ALGORITHMS)
#: Larger than any real ID token; refused before parsing.
MAX_ID_TOKEN_LENGTH = 16 * 1024
#: A user document larger than this is an attack or a bug (GitHub's ``/user`` is ~1.5 KiB).
MAX_IDENTITY_BYTES = 256 * 1024
#: Seconds one identity request may take in all (connecting, headers and body), within the
#: transport's own deadline: a peer that drips bytes is cut off.
DEFAULT_TIMEOUT = 10.0
#: The standard claims (OpenID Connect Core §5.1) an :class:`Identity` keeps in ``claims``.
KEPT_CLAIMS = frozenset(
    {"sub", "iss", "name", "given_name", "family_name", "preferred_username", "email", "email_verified", "picture", "locale", "auth_time", "acr", "amr"}
)
# The identity claims an issued access token repeats, in this order; ``email_verified`` follows ``email``.
_TOKEN_CLAIMS = ("name", "preferred_username", "email")
_GITHUB_HEADERS = (("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"))
_ACCEPT_JSON = (("Accept", "application/json"),)


@dataclass(frozen=True)
class Identity:
    """The user, as the IdP names them. ``subject`` is stable and unique at ``issuer``
    (OpenID Connect Core §5.7: only ``iss`` + ``sub`` identify a user; an e-mail address or a
    login name can change hands). ``claims`` holds the standard claims that were given."""

    subject: str
    issuer: str | None = None
    name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    preferred_username: str | None = None
    # Not part of equality or the hash: two answers naming the same user are the same identity.
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    def token_claims(self) -> dict[str, Any]:
        """Identity claims for an issued access token (RFC 9068 §2.2.3.1), the ones known."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _TOKEN_CLAIMS if getattr(self, name) is not None}
        if self.email is not None and self.email_verified is not None:
            out["email_verified"] = self.email_verified
        return out


@dataclass(frozen=True)
class UpstreamTokens:
    """What the IdP's token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3) gave, and
    the ``nonce`` the shim sent in the authorization request, if any."""

    access_token: str
    id_token: str | None = None
    nonce: str | None = None

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, nonce: str | None = None) -> UpstreamTokens:
        access = _text(body.get("access_token"))
        if access is None:
            raise UpstreamError(502, "server_error", "The identity provider's token response has no access_token.")
        return cls(access, _text(body.get("id_token")), nonce)


def identity_from_claims(claims: Mapping[str, Any], *, issuer: str | None = None) -> Identity:
    """An :class:`Identity` from OpenID Connect claims (an ID token's or UserInfo's, §5.1).

    ``sub`` is required (a string, OpenID Connect Core §2 / §5.3.2); other claims of the wrong
    type are ignored, not trusted.
    """
    subject = _text(claims.get("sub"))
    if subject is None:
        raise UpstreamError(502, "server_error", "The identity provider named no user (no sub claim).")
    iss = claims.get("iss")
    verified = claims.get("email_verified")
    return Identity(
        subject=subject,
        issuer=iss if isinstance(iss, str) else issuer,
        name=_text(claims.get("name")),
        email=_text(claims.get("email")),
        email_verified=verified if isinstance(verified, bool) else None,
        preferred_username=_text(claims.get("preferred_username")),
        claims=MappingProxyType({k: v for k, v in claims.items() if k in KEPT_CLAIMS}),
    )


# -- ID token (OpenID Connect Core §3.1.3.7) ---------------------------------------------------


def verify_id_token(
    id_token: str,
    keys: PublicKeys | Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str | None = None,
    now: float | None = None,
    leeway: int = 60,
) -> dict[str, Any]:
    """The claims of an ID token checked as OpenID Connect Core §3.1.3.7 says (§3.1.3.7 items in
    brackets): signature by a key of the IdP's JWKS with an algorithm of
    :data:`ID_TOKEN_ALGORITHMS` [6, 7],
    ``iss`` exact [2], ``aud`` contains ``client_id`` [3], ``azp`` is ``client_id`` when
    present [4, 5], ``exp`` in the future [9], ``iat`` not in the future [10], ``nonce`` equal
    to the one sent [11] (and present then).

    ``keys``: the IdP's keys, e.g. ``PublicKeys.from_jwks(await upstream.get_json(jwks_uri))``;
    :func:`verify_id_token_with` takes a key lookup instead (one that refetches on rotation).
    Failures are :class:`UpstreamError`: 502 when the IdP's token is unusable, 400
    ``invalid_grant`` when the nonce does not match (a code injected from another login).
    """
    try:
        public = keys if isinstance(keys, PublicKeys) else PublicKeys.from_jwks(keys)
    except ValueError:
        raise UpstreamError(502, "server_error", "The identity provider's key set is not a JWKS document.") from None
    parsed = _ParsedIdToken.parse(id_token)
    return parsed.finish(_published_key(public, parsed.kid, parsed.alg).key, issuer, client_id, nonce, time.time() if now is None else now, leeway)


#: Finds the IdP's key for a token header (``kid``, ``alg``): e.g. the ``key_for`` of
#: :class:`mcp_oauth_shim.verify.BearerVerifier`'s key cache, which refetches the JWKS (rate
#: limited) when an unknown ``kid`` shows a key rotation. It raises
#: :class:`~mcp_oauth_shim.verify.InvalidToken` for a key it cannot find and
#: :class:`UpstreamError` when the JWKS cannot be fetched.
KeyLookup = Callable[[str | None, str], Awaitable[Any]]


async def verify_id_token_with(
    id_token: str,
    key_for: KeyLookup,
    *,
    issuer: str,
    client_id: str,
    nonce: str | None = None,
    now: float | None = None,
    leeway: int = 60,
) -> dict[str, Any]:
    """:func:`verify_id_token` with the key found by ``key_for(kid, alg)``."""
    parsed = _ParsedIdToken.parse(id_token)
    try:
        key = await key_for(parsed.kid, parsed.alg)
    except InvalidToken:
        raise _bad_id_token("is signed with a key the identity provider does not publish") from None
    return parsed.finish(key, issuer, client_id, nonce, time.time() if now is None else now, leeway)


@dataclass(frozen=True)
class _ParsedIdToken:
    """An ID token split and its header checked, before any key is chosen."""

    jws: CompactSignature
    registry: JWSRegistry
    alg: str
    kid: str | None

    @classmethod
    def parse(cls, id_token: str) -> _ParsedIdToken:
        if not isinstance(id_token, str) or len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise _bad_id_token("is missing or too large")
        registry = _ID_TOKEN_REGISTRY
        try:
            jws = extract_compact(id_token.encode("ascii"), registry=registry)
            registry.check_header(jws.headers())
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise _bad_id_token("is not a well-formed signed JWT with an accepted algorithm") from None
        header = jws.headers()
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in registry.allowed_names:
            raise _bad_id_token("uses a signature algorithm that is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise _bad_id_token("is signed with a key the identity provider does not publish")
        return cls(jws, registry, alg, kid)

    def finish(self, key: Any, issuer: str, client_id: str, nonce: str | None, now: float, leeway: int) -> dict[str, Any]:
        """The claims, once the signature by ``key`` and then the claims themselves are checked."""
        if not signature_valid(self.jws, key, self.registry):
            raise _bad_id_token("has an invalid signature")
        claims = claims_object(self.jws.payload)
        if claims is None:
            raise _bad_id_token("payload is not a JSON object")
        if claims.get("iss") != issuer:
            raise _bad_id_token("was issued by another issuer")
        if client_id not in audience_values(claims.get("aud")):
            raise _bad_id_token("is not addressed to this client (aud)")
        azp = claims.get("azp")
        if azp is not None and azp != client_id:
            raise _bad_id_token("was issued to another party (azp)")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not (is_numeric_date(exp) and is_numeric_date(iat)):
            raise _bad_id_token("lacks exp or iat")
        late = lifetime_problem({"exp": exp, "iat": iat}, now, leeway)
        if late is not None:
            raise _bad_id_token("has expired" if late == "exp" else "was issued in the future (iat)")
        if nonce is not None and claims.get("nonce") != nonce:
            raise UpstreamError(400, "invalid_grant", "The identity provider's ID token does not belong to this login (nonce).")
        if _text(claims.get("sub")) is None:
            raise _bad_id_token("names no user (sub)")
        return claims


def _published_key(public: PublicKeys, kid: str | None, alg: str) -> PublicKey:
    if kid is not None:
        key = public.get(kid)
    else:
        candidates = [k for k in public.by_kid.values() if k.alg == alg]
        key = candidates[0] if len(candidates) == 1 else None  # RFC 7515 §4.1.4: without kid, only an unambiguous key
    if key is None:
        raise _bad_id_token("is signed with a key the identity provider does not publish")
    if key.alg_given and key.alg != alg:
        raise _bad_id_token("uses another algorithm than its key is published for")
    return key


def _bad_id_token(problem: str) -> UpstreamError:
    logger.warning("ID token refused: %s", problem)
    return UpstreamError(502, "server_error", f"The identity provider's ID token {problem}.")


# -- HTTP identity sources -------------------------------------------------------------------


async def fetch_userinfo(
    transport: Transport,
    url: str,
    access_token: str,
    *,
    issuer: str | None = None,
    expected_subject: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Identity:
    """The user from the OpenID Connect UserInfo endpoint (Core §5.3): ``GET`` with the upstream
    access token as a Bearer token (§5.3.1, RFC 6750 §2.1), a JSON object with ``sub`` (§5.3.2).

    ``expected_subject`` (the ID token's ``sub``) must match when given (§5.3.2: otherwise the
    response "MUST NOT be used"). Signed or encrypted UserInfo (``application/jwt``) is refused.
    """
    with idp_call("userinfo") as call:
        status, document = await _get_json(transport, url, _ACCEPT_JSON, access_token, timeout, "UserInfo")
        call.status(status)
    _raise_for_status(status, "UserInfo")
    if not isinstance(document, dict):
        raise UpstreamError(502, "server_error", "The identity provider's UserInfo answer is not a JSON object.")
    identity = identity_from_claims(document, issuer=issuer)
    if expected_subject is not None and identity.subject != expected_subject:
        raise UpstreamError(502, "server_error", "The identity provider's UserInfo names another user than its ID token.")
    return identity


async def fetch_github_user(
    transport: Transport,
    access_token: str,
    *,
    api_url: str = GITHUB_API,
    fetch_emails: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Identity:
    """The user from GitHub's REST API: ``GET /user`` ("Get the authenticated user").

    ``subject`` is the numeric ``id`` as text: stable for the account, unlike ``login``, which
    the user can change (and someone else can then take). ``login`` becomes
    ``preferred_username``. ``email`` is the user's public e-mail address and often ``null``;
    then, with ``fetch_emails``, ``GET /user/emails`` (needs the ``user:email`` scope) gives the
    primary verified address. Without that scope GitHub answers 403/404 there and the identity
    simply has no e-mail.
    """
    base = api_url.rstrip("/")
    status, user = await _get_json(transport, f"{base}/user", _GITHUB_HEADERS, access_token, timeout, "GitHub user API")
    _raise_for_status(status, "GitHub user API")
    if not isinstance(user, dict):
        raise UpstreamError(502, "server_error", "GitHub's user API answer is not a JSON object.")
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise UpstreamError(502, "server_error", "GitHub's user API answer has no numeric user id.")
    email = _text(user.get("email"))
    verified: bool | None = None
    if email is None and fetch_emails:
        email = await _github_primary_email(transport, base, access_token, timeout)
        verified = True if email is not None else None
    claims = {
        "sub": str(user_id),
        "iss": GITHUB_ISSUER,
        "preferred_username": _text(user.get("login")),
        "name": _text(user.get("name")),
        "email": email,
    }
    identity = identity_from_claims({k: v for k, v in claims.items() if v is not None})
    return replace(identity, email_verified=verified)


async def _github_primary_email(transport: Transport, base: str, access_token: str, timeout: float) -> str | None:
    """``GET /user/emails``: the address with ``primary`` and ``verified`` both true, if any."""
    status, emails = await _get_json(
        transport, f"{base}/user/emails", _GITHUB_HEADERS, access_token, timeout, "GitHub e-mail API", absent=(403, 404)
    )
    if status in (403, 404):  # no user:email scope (or over the rate limit): an identity without an e-mail address
        return None
    _raise_for_status(status, "GitHub e-mail API")
    if not isinstance(emails, list):
        raise UpstreamError(502, "server_error", "GitHub's e-mail API answer is not a JSON list.")
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") is True and entry.get("verified") is True:
            return _text(entry.get("email"))
    return None


async def _get_json(
    transport: Transport,
    url: str,
    headers: Sequence[tuple[str, str]],
    access_token: str,
    timeout: float,
    what: str,
    *,
    absent: tuple[int, ...] = (),
) -> tuple[int, Any]:
    """``GET url`` with ``access_token`` as a Bearer token (RFC 6750 §2.1): the status and, for
    a 200, the parsed JSON (``None`` otherwise). The body is read up to
    :data:`MAX_IDENTITY_BYTES`, all within ``timeout`` seconds. An answer saying "come back
    later" is raised at once (:func:`_busy`), unless its status is one of ``absent`` (the
    caller can do without the document)."""
    try:
        async with asyncio.timeout(timeout):
            response = await transport.request("GET", url, headers=headers, authorization=f"Bearer {access_token}")
    except TimeoutError:
        logger.warning("identity request timed out: %s", without_password(url))
        raise UpstreamError(504, "temporarily_unavailable", f"The identity provider's {what} did not answer in time.") from None
    except HTTPError as exc:
        logger.warning("identity request failed: %s (%s)", without_password(url), exc)
        raise UpstreamError(502, "temporarily_unavailable", f"The identity provider's {what} could not be reached.") from None
    busy = None if response.status in absent else _busy(response, what)
    if busy is not None:
        raise busy
    if response.status != 200:
        return response.status, None
    if len(response.body) > MAX_IDENTITY_BYTES:
        raise UpstreamError(502, "server_error", f"The identity provider's {what} answer is too large.")
    try:
        return 200, jsonsafe.loads(response.body)
    except (ValueError, UnicodeError):
        raise UpstreamError(502, "server_error", f"The identity provider's {what} answer is not JSON.") from None


def _busy(response: RawResponse, what: str) -> UpstreamError | None:
    """A 503 ``temporarily_unavailable`` with the wait the IdP asked for, as for its other
    endpoints, when ``response`` says "come back later": a 429 (RFC 6585 §4) or 503 (RFC 9110
    §15.6.4), or GitHub's rate limits, a 403 with ``Retry-After`` (secondary limit) or with
    ``x-ratelimit-remaining: 0`` and the Unix time it resets at in ``x-ratelimit-reset``."""
    headers = response.headers
    if response.status == 403 and ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"):
        retry_after = retry_after_seconds(headers.get("retry-after") or _seconds_until(headers.get("x-ratelimit-reset")))
    else:
        busy = busy_error(response)
        if busy is None:
            return None
        retry_after = busy.retry_after
    return UpstreamError(503, "temporarily_unavailable", f"The identity provider's {what} is busy; try again later.", retry_after=retry_after)


def _seconds_until(unix_time: str | None) -> str | None:
    """Delay-seconds (RFC 9110 §10.2.3) until ``unix_time``, when it is a number of seconds."""
    if unix_time is None or not (unix_time.isascii() and unix_time.isdigit()):
        return None
    return str(max(0, int(unix_time[:12]) - int(time.time())))


def _raise_for_status(status: int, what: str) -> None:
    if status == 200:
        return
    if status == 401:
        # RFC 6750 §3.1: the IdP does not take the access token it just issued.
        raise UpstreamError(400, "invalid_grant", f"The identity provider's {what} refused the upstream access token (401).")
    if status >= 500:
        raise UpstreamError(502, "temporarily_unavailable", f"The identity provider's {what} is unavailable ({status}).")
    raise UpstreamError(502, "server_error", f"The identity provider's {what} answered {status}.", reason=f"HTTP {status}")


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


# -- resolvers: one call per source ------------------------------------------------------------


class IdentityResolver(Protocol):
    """How the token endpoint learns the user after the upstream exchange."""

    async def resolve(self, transport: Transport, tokens: UpstreamTokens) -> Identity: ...


@dataclass(frozen=True)
class IdTokenResolver:
    """From the ID token of the token response (OpenID Connect Core §3.1.3.7), falling back to
    UserInfo when the response has none and ``userinfo_url`` is set. ``keys`` are the IdP's:
    fixed :class:`PublicKeys`, or a :data:`KeyLookup` that follows the IdP's key rotation."""

    keys: PublicKeys | KeyLookup
    issuer: str
    client_id: str
    userinfo_url: str | None = None
    leeway: int = 60

    async def resolve(self, transport: Transport, tokens: UpstreamTokens) -> Identity:
        if tokens.id_token is None:
            if self.userinfo_url is None:
                raise UpstreamError(502, "server_error", "The identity provider returned no ID token (is the openid scope requested?).")
            return await fetch_userinfo(transport, self.userinfo_url, tokens.access_token, issuer=self.issuer)
        if isinstance(self.keys, PublicKeys):
            claims = verify_id_token(
                tokens.id_token, self.keys, issuer=self.issuer, client_id=self.client_id, nonce=tokens.nonce, leeway=self.leeway
            )
        else:
            claims = await verify_id_token_with(
                tokens.id_token, self.keys, issuer=self.issuer, client_id=self.client_id, nonce=tokens.nonce, leeway=self.leeway
            )
        return identity_from_claims(claims, issuer=self.issuer)


@dataclass(frozen=True)
class UserinfoResolver:
    """From the OpenID Connect UserInfo endpoint (Core §5.3)."""

    url: str
    issuer: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    async def resolve(self, transport: Transport, tokens: UpstreamTokens) -> Identity:
        return await fetch_userinfo(transport, self.url, tokens.access_token, issuer=self.issuer, timeout=self.timeout)


@dataclass(frozen=True)
class GitHubResolver:
    """From GitHub's ``GET /user`` (and ``/user/emails`` when the public e-mail is hidden)."""

    api_url: str = GITHUB_API
    fetch_emails: bool = True
    timeout: float = DEFAULT_TIMEOUT

    async def resolve(self, transport: Transport, tokens: UpstreamTokens) -> Identity:
        return await fetch_github_user(
            transport, tokens.access_token, api_url=self.api_url, fetch_emails=self.fetch_emails, timeout=self.timeout
        )
