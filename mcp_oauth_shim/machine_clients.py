"""Machine clients: confidential clients the operator registered, for grants without a user
present at the shim (OAuth 2.1 §4.2 ``client_credentials``, the MCP "OAuth Client Credentials"
extension) and for presenting ID-JAGs (RFC 7523 §2.1, MCP enterprise-managed authorization).

Only such pre-registered clients may use those grants: a dynamically registered client
(RFC 7591; its client_id is a signed blob) or a client ID metadata document client (its
client_id is an https URL) is public and has nothing to authenticate with, so every client_id
that is not configured here is ``unauthorized_client`` (RFC 6749 §5.2) for them.

Client authentication (the extension's "Client Authentication Methods"):

- ``client_secret_basic`` / ``client_secret_post`` (RFC 6749 §2.3.1, OAuth 2.1 §2.4.1): the
  secret compared in constant time, against the configured secret or its SHA-256;
- ``private_key_jwt`` (RFC 7523 §2.2, §3): a JWT signed with one of the client's keys, ``iss``
  and ``sub`` the client_id, ``aud`` this authorization server, its ``jti`` single-use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .clients import presented_credentials
from .errors import InvalidClientError, InvalidRequestError, InvalidScopeError, UnauthorizedClientError
from .remote_keys import JsonFetcher, KeysUnavailable, RemoteKeys
from .rfc6750 import validate_scope_token
from .rfc7523 import (
    JWT_BEARER_CLIENT_ASSERTION_TYPE,
    JWT_BEARER_GRANT_TYPE,
    AssertionRefused,
    AssertionRules,
    ReplayGuard,
    read_assertion,
    replay_key,
    verify_assertion,
)
from .upstream import UpstreamError
from .urls import service_url_problem

__all__ = [
    "CLIENT_CREDENTIALS_GRANT_TYPE",
    "MACHINE_GRANT_TYPES",
    "AuthenticatedMachineClient",
    "ClientAuthMethod",
    "MachineClient",
    "MachineClients",
    "NotAMachineClient",
    "TokenMode",
    "requested_scopes",
]

#: OAuth 2.1 §4.2 / RFC 6749 §4.4.
CLIENT_CREDENTIALS_GRANT_TYPE = "client_credentials"
#: The grants only machine clients may use.
MACHINE_GRANT_TYPES = frozenset({CLIENT_CREDENTIALS_GRANT_TYPE, JWT_BEARER_GRANT_TYPE})

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
TokenMode = Literal["issued", "upstream"]
"""Who makes the access token: the shim (``issued``, an RFC 9068 JWT it signs) or the IdP
(``upstream``, for deployments whose resource verifies the IdP's own machine tokens)."""

# RFC 6749 Appendix A.1: client_id = *VSCHAR (%x20-7E); we also refuse spaces and empties.
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class MachineClient:
    """One pre-registered machine client.

    Credentials, exactly one kind: ``client_secret`` (or ``client_secret_sha256``, its
    lowercase hex SHA-256, to keep the secret out of the configuration) for
    ``client_secret_basic``/``client_secret_post``; ``jwks`` or ``jwks_uri`` for
    ``private_key_jwt``. ``scopes``: the scopes it may be granted; a request without ``scope``
    gets all of them (RFC 6749 §3.3 default). ``grant_types``: which of
    :data:`MACHINE_GRANT_TYPES` it may use. ``mode``: see :data:`TokenMode`. ``name``: shown in
    logs. Secrets never appear in ``repr``.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    client_secret_sha256: str | None = field(default=None, repr=False)
    jwks: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    jwks_uri: str | None = None
    scopes: tuple[str, ...] = ()
    grant_types: frozenset[str] = frozenset({CLIENT_CREDENTIALS_GRANT_TYPE})
    mode: TokenMode = "issued"
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not _CLIENT_ID.fullmatch(self.client_id):
            raise ValueError("MachineClient client_id must be 1-255 visible ASCII characters (RFC 6749 Appendix A.1)")
        if self.client_id.lower().startswith(("https:", "http:")):
            raise ValueError("MachineClient client_id must not be a URL: URL client_ids name client ID metadata documents")
        credentials = sum(value is not None for value in (self.client_secret, self.client_secret_sha256, self.jwks, self.jwks_uri))
        url_problem = service_url_problem(self.jwks_uri) if self.jwks_uri is not None else None
        object.__setattr__(self, "scopes", tuple(dict.fromkeys(validate_scope_token(s) for s in self.scopes)))
        object.__setattr__(self, "grant_types", frozenset(self.grant_types))
        problems = {
            "give exactly one of client_secret, client_secret_sha256, jwks or jwks_uri": credentials != 1,
            "client_secret must be at least 16 characters": self.client_secret is not None and len(self.client_secret) < 16,
            "client_secret_sha256 must be 64 lowercase hex digits": (
                self.client_secret_sha256 is not None and not _SHA256_HEX.fullmatch(self.client_secret_sha256)
            ),
            f"jwks_uri must {url_problem}": url_problem is not None,
            f"grant_types must be a non-empty subset of {sorted(MACHINE_GRANT_TYPES)}": (
                not self.grant_types or not self.grant_types <= MACHINE_GRANT_TYPES
            ),
            "mode must be 'issued' or 'upstream'": self.mode not in ("issued", "upstream"),
        }
        for problem, found in problems.items():
            if found:
                raise ValueError(f"MachineClient {self.client_id}: {problem}")

    @property
    def auth_methods(self) -> tuple[ClientAuthMethod, ...]:
        """The RFC 7591 §2 ``token_endpoint_auth_method`` values this client may use."""
        if self.jwks is not None or self.jwks_uri is not None:
            return ("private_key_jwt",)
        return ("client_secret_basic", "client_secret_post")

    def secret_matches(self, presented: str) -> bool:
        """Constant-time comparison of a presented secret (RFC 6749 §10.1 / OAuth 2.1 §7.1)."""
        if self.client_secret is not None:
            return hmac.compare_digest(presented.encode(), self.client_secret.encode())
        digest = hashlib.sha256(presented.encode()).hexdigest()
        return self.client_secret_sha256 is not None and hmac.compare_digest(digest, self.client_secret_sha256)

    def granted_scopes(self, requested: str | None) -> tuple[str, ...]:
        """RFC 6749 §3.3: the requested scopes if all are allowed, all allowed ones if none
        were requested; :class:`InvalidScopeError` for any other."""
        wanted = requested_scopes(requested)
        beyond = [s for s in wanted if s not in self.scopes]
        if beyond:
            raise InvalidScopeError(description="This client may not be granted the scope(s): " + " ".join(beyond) + ".")
        return wanted or self.scopes

    def narrowed_scopes(self, requested: str | None) -> tuple[str, ...]:
        """RFC 6749 §3.3 as the token endpoint applies it: the requested scopes this client is
        allowed (the authorization server "MAY fully or partially ignore the scope requested",
        and the response's ``scope`` says what was granted); all allowed ones when none were
        requested; :class:`InvalidScopeError` when none of the requested ones is allowed.

        Partial grants matter because MCP clients request what the resource advertises (the
        MCP scope selection strategy: the challenge's ``scope``, else the protected resource
        metadata's ``scopes_supported``), not what one machine client may have.
        """
        wanted = requested_scopes(requested)
        if not wanted:
            return self.scopes
        granted = tuple(s for s in wanted if s in self.scopes)
        if not granted:
            raise InvalidScopeError(description="This client may be granted none of the requested scopes.")
        return granted


def requested_scopes(requested: str | None) -> tuple[str, ...]:
    """The scope-tokens of a request's ``scope`` parameter (RFC 6749 §3.3: space-separated),
    duplicates dropped, order kept; none when it is absent or blank. :class:`InvalidScopeError`
    for a token that is no scope-token."""
    try:
        return tuple(dict.fromkeys(validate_scope_token(s) for s in (requested or "").split(" ") if s))
    except ValueError:
        raise InvalidScopeError(description="The scope parameter holds an invalid scope token.") from None


class NotAMachineClient(UnauthorizedClientError):
    """``unauthorized_client`` because ``client_id`` is no machine client, so it may use none
    of their grants; the caller can tell an unknown client (``invalid_client``) from a public one."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            description="Only clients the operator registered for it may use this grant; "
            "dynamically registered and metadata document clients may not."
        )
        self.client_id = client_id


@dataclass(frozen=True)
class AuthenticatedMachineClient:
    """A machine client that proved who it is, and how (RFC 7591 §2 method names)."""

    client: MachineClient
    method: ClientAuthMethod


class MachineClients:
    """The operator's machine clients, and authentication of their token requests.

    ``issuer`` and ``token_endpoint``: this authorization server's, the accepted ``aud`` of a
    client assertion (RFC 7523 §3 item 3: either identifies the authorization server; the
    issuer is what the MCP SDK and RFC 7523bis clients send). ``replay_guard``: single use of
    client assertion ``jti`` values. ``fetch``: how ``jwks_uri`` key sets are fetched. A client
    assertion is checked by the :class:`~mcp_oauth_shim.rfc7523.AssertionRules` defaults
    (asymmetric algorithms, 30 s leeway, at most 300 s long) and must carry a ``jti``.
    """

    def __init__(
        self,
        clients: Iterable[MachineClient],
        *,
        issuer: str,
        token_endpoint: str,
        replay_guard: ReplayGuard,
        fetch: JsonFetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients: dict[str, MachineClient] = {}
        self._keys: dict[str, RemoteKeys] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"machine client {client.client_id} is configured twice")
            self._clients[client.client_id] = client
            if client.jwks is not None or client.jwks_uri is not None:
                self._keys[client.client_id] = RemoteKeys(fetch, jwks=client.jwks, jwks_uri=client.jwks_uri, clock=clock)
        self._rules = AssertionRules(audiences=frozenset({issuer, token_endpoint}), require_jti=True)
        self._replay_guard = replay_guard
        self._clock = clock

    def is_machine_client(self, client_id: object) -> bool:
        """Is ``client_id`` a configured machine client? Never true for a dynamically
        registered client (signed blob) or a metadata document client (URL): configured ids
        are compared exactly and may not be URLs."""
        return isinstance(client_id, str) and client_id in self._clients

    def serves(self, grant_type: str) -> bool:
        """Is any configured client allowed ``grant_type``?"""
        return any(grant_type in client.grant_types for client in self._clients.values())

    @property
    def auth_methods_supported(self) -> tuple[ClientAuthMethod, ...]:
        """RFC 8414 §2 ``token_endpoint_auth_methods_supported`` contributed by machine clients."""
        return tuple(dict.fromkeys(method for client in self._clients.values() for method in client.auth_methods))

    @property
    def signing_algorithms_supported(self) -> tuple[str, ...]:
        """RFC 8414 §2 ``token_endpoint_auth_signing_alg_values_supported`` (required by the
        client credentials extension when ``private_key_jwt`` is offered)."""
        return self._rules.algorithms if self._keys else ()

    async def authenticate(
        self, form: Mapping[str, str], authorization: str | None, *, grant_type: str
    ) -> AuthenticatedMachineClient:
        """Authenticate the machine client of a token request for ``grant_type``.

        ``form`` is the request body, ``authorization`` its Authorization header. Raises
        :class:`UnauthorizedClientError` for a client_id that is not a machine client allowed
        this grant, :class:`InvalidClientError` when authentication fails (401 when the client
        used the Authorization header, RFC 6749 §5.2), :class:`InvalidRequestError` for two
        methods at once, :class:`~mcp_oauth_shim.upstream.UpstreamError` when a ``jwks_uri``
        cannot be fetched.
        """
        return await self._authenticate(form, authorization, grant_type)

    async def authenticate_for_revocation(self, form: Mapping[str, str], authorization: str | None) -> AuthenticatedMachineClient:
        """Authenticate the machine client of a revocation request (RFC 7009 §2.1: as at the
        token endpoint, so with the same methods and checks; an assertion's ``jti`` is spent
        at whichever endpoint sees it first). Whatever grants the client is registered for:
        revoking grants nothing. Raises as :meth:`authenticate`, :class:`NotAMachineClient`
        for a client_id that is no machine client.
        """
        return await self._authenticate(form, authorization, None)

    async def _authenticate(
        self, form: Mapping[str, str], authorization: str | None, grant_type: str | None
    ) -> AuthenticatedMachineClient:
        assertion_type = form.get("client_assertion_type")
        if assertion_type is None and form.get("client_assertion") is None:
            # RFC 6749 §2.3.1: the client secret, in the Authorization header or the body.
            credentials = presented_credentials(dict(form), authorization)
            client = self._client_for_grant(credentials.client_id, grant_type)
            if "private_key_jwt" in client.auth_methods:
                raise credentials.refused("This client authenticates with private_key_jwt (a client assertion), not a secret.")
            if not credentials.secret:
                raise credentials.refused("This client must authenticate with its client secret.")
            if not client.secret_matches(credentials.secret):
                raise credentials.refused("The client secret is wrong.")
            return AuthenticatedMachineClient(client, "client_secret_basic" if credentials.basic else "client_secret_post")
        # RFC 7523 §2.2: a client assertion, checked by _verify_assertion.
        if assertion_type != JWT_BEARER_CLIENT_ASSERTION_TYPE:
            raise InvalidClientError(description=f"client_assertion_type must be {JWT_BEARER_CLIENT_ASSERTION_TYPE}.")
        if authorization or form.get("client_secret") is not None:
            # RFC 6749 §2.3: one client authentication method per request.
            raise InvalidRequestError(description="Send a client assertion or a client secret, not both.")
        try:
            return await self._verify_assertion(form.get("client_assertion"), form.get("client_id"), grant_type)
        except AssertionRefused as refusal:
            raise refusal.oauth_error() from refusal

    def _client_for_grant(self, client_id: str, grant_type: str | None) -> MachineClient:
        """The machine client ``client_id``, allowed ``grant_type`` (any grant when ``None``)."""
        client = self._clients.get(client_id)
        if client is None:
            raise NotAMachineClient(client_id)
        if grant_type is not None and grant_type not in client.grant_types:
            raise UnauthorizedClientError(description="This client is not registered for this grant type.")
        return client

    async def _verify_assertion(
        self, assertion: str | None, body_client_id: str | None, grant_type: str | None
    ) -> AuthenticatedMachineClient:
        unverified = read_assertion(assertion, self._rules, "client_authentication")
        # RFC 7523 §3 items 1-2: for client authentication both iss and sub are the client_id.
        client_id = unverified.subject
        if unverified.issuer != client_id:
            raise AssertionRefused("client_authentication", "issuer", "The client assertion's iss and sub must both be the client_id.")
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidClientError(description="client_id and the client assertion's sub differ.")
        client = self._client_for_grant(client_id, grant_type)
        remote = self._keys.get(client_id)
        if remote is None:
            raise InvalidClientError(description="This client authenticates with its client secret, not a client assertion.")
        try:
            keys = await remote.keys(kid=unverified.kid)
        except KeysUnavailable as exc:
            raise UpstreamError(502, "temporarily_unavailable", f"The client's keys are unavailable: {exc.description}") from None
        verified = verify_assertion(unverified, keys, self._rules, now=self._clock())
        assert verified.jti is not None  # required by the rules
        key = replay_key("client_authentication", client_id, verified.jti)
        if not await self._replay_guard.first_use(key, until=verified.expires_at + self._rules.leeway):
            raise AssertionRefused("client_authentication", "replayed", "The client assertion was already used.")
        return AuthenticatedMachineClient(client, "private_key_jwt")
