"""Identity Assertion JWT Authorization Grants (ID-JAG): MCP enterprise-managed authorization.

An enterprise IdP that the operator trusts signs an ID-JAG for a user after an RFC 8693 token
exchange with the MCP client; the client presents it at our token endpoint as an RFC 7523
§2.1 grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``, ``assertion=<ID-JAG>``)
while authenticating as itself. This module checks such a grant, following the MCP extension
"Enterprise-Managed Authorization" (an application of draft-ietf-oauth-identity-assertion-
authz-grant):

- §4.3 / §5.1: header ``typ`` is ``oauth-id-jag+jwt`` (RFC 8725 §3.11 explicit typing);
- §4.3: ``iss`` is a trusted IdP (:class:`EnterpriseIdP`) and the signature is by one of its
  published keys; ``sub``, ``aud``, ``resource``, ``client_id``, ``jti``, ``exp``, ``iat``
  present; ``scope`` optional, a space-separated string (RFC 6749 §3.3);
- §5.1: ``aud`` identifies this authorization server's issuer identifier; ``client_id`` is the
  client that authenticated this token request;
- §4.3: ``resource`` is this MCP server's resource identifier (RFC 9728 §1.2);
- RFC 7521 §5.2 / RFC 7523 §3: lifetime bounds, and the ``jti`` is single-use
  (:class:`~mcp_oauth_shim.rfc7523.ReplayGuard`).

Every refusal is ``invalid_grant`` (RFC 7523 §3.1), except a requested scope beyond the grant
(``invalid_scope``, RFC 6749 §5.2) and keys that cannot be fetched (an upstream failure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidScopeError
from .remote_keys import JsonFetcher, KeysUnavailable, RemoteKeys
from .rfc6750 import validate_scope_token
from .rfc7523 import (
    ASYMMETRIC_ALGORITHMS,
    JWT_BEARER_GRANT_TYPE,
    AssertionRefused,
    AssertionRules,
    ReplayGuard,
    read_assertion,
    replay_key,
    string_claim,
    verify_assertion,
)
from .rfc8707 import resource_matches
from .upstream import UpstreamError
from .urls import service_url_problem

__all__ = [
    "ID_JAG_TOKEN_TYPE",
    "ID_JAG_TYP",
    "JWT_BEARER_GRANT_TYPE",
    "EnterpriseIdP",
    "IdJagGrant",
    "IdJagVerifier",
    "same_resource",
]

#: §4.3: the ``typ`` header every ID-JAG carries.
ID_JAG_TYP = "oauth-id-jag+jwt"
#: §4: the RFC 8693 token type the client asks its IdP for.
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"


@dataclass(frozen=True)
class EnterpriseIdP:
    """An enterprise identity provider whose ID-JAGs this authorization server accepts.

    ``issuer``: its issuer identifier, compared exactly with the ID-JAG's ``iss``.
    Keys: ``jwks`` (a static JWK Set), or ``jwks_uri``, or neither (the ``jwks_uri`` is
    discovered from the issuer's metadata). ``allowed_clients``: the client_ids it may issue
    grants for (``None``: any machine client allowed the jwt-bearer grant). ``max_lifetime``:
    the longest ``exp - iat`` accepted, in seconds. ``leeway``: tolerated clock skew.
    ``algorithms``: the asymmetric JWS algorithms accepted from it.
    """

    issuer: str
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    allowed_clients: frozenset[str] | None = None
    max_lifetime: int = 3600
    leeway: int = 60
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS

    def __post_init__(self) -> None:
        if problem := service_url_problem(self.issuer, query_allowed=False):
            raise ValueError(f"EnterpriseIdP issuer must {problem}")
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("EnterpriseIdP takes jwks or jwks_uri, not both")
        if self.jwks_uri is not None and (problem := service_url_problem(self.jwks_uri)):
            raise ValueError(f"EnterpriseIdP jwks_uri must {problem}")
        if self.allowed_clients is not None:
            object.__setattr__(self, "allowed_clients", frozenset(self.allowed_clients))
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        # The rules validate lifetime, leeway and algorithms (asymmetric only).
        self.rules(issuer="https://placeholder.invalid")

    def rules(self, *, issuer: str) -> AssertionRules:
        """The RFC 7523 §3 rules for this IdP's ID-JAGs sent to the authorization server
        ``issuer`` (§5.1: ``aud`` is our issuer identifier, nothing else)."""
        return AssertionRules(
            audiences=frozenset({issuer}),
            algorithms=self.algorithms,
            leeway=self.leeway,
            max_lifetime=self.max_lifetime,
            require_iat=True,
            require_jti=True,
            typ=ID_JAG_TYP,
        )


@dataclass(frozen=True)
class IdJagGrant:
    """A verified ID-JAG: who the user is (``issuer`` + ``subject`` is unique, §4.3
    implementation notes), which client it was issued to, for which resource and scopes.
    ``scopes`` is ``None`` when the IdP put no ``scope`` claim. ``claims`` holds every claim
    (an IdP may add e.g. ``email``)."""

    issuer: str
    subject: str
    client_id: str
    resource: str
    scopes: tuple[str, ...] | None
    jti: str
    expires_at: float
    issued_at: float
    claims: Mapping[str, Any] = field(repr=False)

    def granted_scopes(self, requested: str | None) -> tuple[str, ...]:
        """The scopes of the access token (RFC 7521 §4.1 ``scope``, RFC 6749 §3.3): the
        requested ones, each within the grant's; without a request, the grant's own.
        :class:`InvalidScopeError` for a scope the IdP did not grant."""
        wanted = _scope_tokens(requested) if requested is not None else None
        if self.scopes is None:
            return wanted or ()
        if wanted is None:
            return self.scopes
        if beyond := [s for s in wanted if s not in self.scopes]:
            raise InvalidScopeError(
                description="The identity assertion does not grant the scope(s): " + " ".join(beyond) + "."
            )
        return wanted


def same_resource(a: str, b: str) -> bool:
    """Do two resource identifiers name the same resource (RFC 3986 §6.2.3: scheme and host
    case, default port and a trailing slash do not matter)? Stricter than the request
    parameter's rule: a parent of the resource is not the resource."""
    return resource_matches(a, b) and resource_matches(b, a)


class IdJagVerifier:
    """Checks ID-JAGs presented to the authorization server ``issuer`` for ``resource``.

    ``idps``: the trusted enterprise IdPs. ``fetch``: how their metadata and keys are fetched
    (only URLs from this configuration are ever fetched). ``replay_guard``: remembers used
    ``jti`` values until the grant expires.
    """

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        idps: Iterable[EnterpriseIdP],
        replay_guard: ReplayGuard,
        fetch: JsonFetcher | None = None,
        clock: Callable[[], float] = time.time,
        key_max_age: float = 3600.0,
        unknown_kid_refetch_after: float = 60.0,
    ) -> None:
        self.issuer = issuer
        self.resource = resource
        self._replay_guard = replay_guard
        self._clock = clock
        self._idps: dict[str, EnterpriseIdP] = {}
        self._keys: dict[str, RemoteKeys] = {}
        for idp in idps:
            if idp.issuer in self._idps:
                raise ValueError(f"enterprise IdP {idp.issuer} is configured twice")
            self._idps[idp.issuer] = idp
            self._keys[idp.issuer] = RemoteKeys(
                fetch,
                jwks=idp.jwks,
                jwks_uri=idp.jwks_uri,
                issuer=idp.issuer if idp.jwks is None and idp.jwks_uri is None else None,
                max_age=key_max_age,
                unknown_kid_refetch_after=unknown_kid_refetch_after,
                clock=clock,
            )

    async def verify(self, assertion: object, *, client_id: str) -> IdJagGrant:
        """The grant in ``assertion``, presented by the authenticated client ``client_id``.

        Raises :class:`~mcp_oauth_shim.errors.InvalidGrantError` (its ``__cause__`` an
        :class:`~mcp_oauth_shim.rfc7523.AssertionRefused` with the precise reason) or
        :class:`~mcp_oauth_shim.upstream.UpstreamError` when the IdP's keys cannot be fetched.
        """
        try:
            return await self._verify(assertion, client_id)
        except AssertionRefused as refusal:
            raise refusal.oauth_error() from refusal

    async def _verify(self, assertion: object, client_id: str) -> IdJagGrant:
        # Any IdP's rules serve for parsing: typ, size and algorithms are checked again below
        # with the issuer's own rules once we know which IdP claims to have signed.
        parse_rules = AssertionRules(audiences=frozenset({self.issuer}), typ=ID_JAG_TYP)
        unverified = read_assertion(assertion, parse_rules, "grant")
        issuer = unverified.issuer
        idp = self._idps.get(issuer)
        if idp is None:
            # Checked before anything is fetched: an assertion never makes us contact a URL.
            raise AssertionRefused("grant", "untrusted_issuer", "The assertion was issued by an identity provider this server does not trust.")
        rules = idp.rules(issuer=self.issuer)
        if unverified.algorithm not in rules.algorithms:
            raise AssertionRefused("grant", "algorithm", "The assertion's signature algorithm is not accepted from this identity provider.")
        try:
            keys = await self._keys[issuer].keys(kid=unverified.kid)
        except KeysUnavailable as exc:
            raise UpstreamError(502, "temporarily_unavailable", f"The identity provider's keys are unavailable: {exc.description}") from None
        verified = verify_assertion(unverified, keys, rules, now=self._clock())
        claims = verified.claims
        granted_client = string_claim(claims, "client_id", "grant")
        if granted_client != client_id:
            raise AssertionRefused("grant", "client_mismatch", "The assertion was issued to another client than the one authenticating.")
        if idp.allowed_clients is not None and client_id not in idp.allowed_clients:
            raise AssertionRefused("grant", "client_mismatch", "This identity provider may not issue grants for this client.")
        resource = string_claim(claims, "resource", "grant")
        if not same_resource(resource, self.resource):
            raise AssertionRefused("grant", "resource", f"The assertion is for another resource (resource must be {self.resource}).")
        scopes = _scope_claim(claims)
        assert verified.jti is not None and verified.issued_at is not None  # required by the rules
        if not await self._replay_guard.first_use(replay_key("grant", issuer, verified.jti), until=verified.expires_at + rules.leeway):
            raise AssertionRefused("grant", "replayed", "The assertion was already used.")
        return IdJagGrant(
            issuer=issuer,
            subject=verified.subject,
            client_id=granted_client,
            resource=resource,
            scopes=scopes,
            jti=verified.jti,
            expires_at=verified.expires_at,
            issued_at=verified.issued_at,
            claims=claims,
        )


def _scope_claim(claims: Mapping[str, Any]) -> tuple[str, ...] | None:
    """§4.3 ``scope``: a space-separated string (RFC 6749 §3.3); an array of such strings is
    read the same way, as some IdPs write it."""
    value = claims.get("scope")
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    if not isinstance(value, str):
        raise AssertionRefused("grant", "claim_type", "The assertion's scope claim is not a space-separated string.")
    try:
        return _scope_tokens(value)
    except InvalidScopeError:
        raise AssertionRefused("grant", "claim_type", "The assertion's scope claim holds an invalid scope.") from None


def _scope_tokens(text: str) -> tuple[str, ...]:
    """RFC 6749 §3.3 scope: space-separated scope-tokens, duplicates dropped, order kept."""
    try:
        return tuple(dict.fromkeys(validate_scope_token(s) for s in text.split(" ") if s))
    except ValueError:
        raise InvalidScopeError(description="The scope parameter holds an invalid scope token.") from None

