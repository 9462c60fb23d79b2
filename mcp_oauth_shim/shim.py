"""``OAuthShim``: configuration in, routes / router / app / verifier out."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from .clients import ClientResolver
from .config import ConfigurationError, Lifetimes, Paths, Upstream
from .context import ShimContext
from .endpoints.authorize import AuthorizeHandler
from .endpoints.base import Endpoint, with_cors
from .endpoints.callback import CallbackHandler
from .endpoints.consent import ConsentHandler, ConsentPage
from .endpoints.jwks import JwksHandler
from .endpoints.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from .endpoints.register import RegistrationHandler
from .endpoints.revoke import RevocationHandler
from .endpoints.token import TokenHandler
from .id_jag import EnterpriseIdP
from .logs import redact_access_logs as install_access_log_redaction
from .machine_access import build_machine_access
from .machine_clients import MachineClient
from .rfc7523 import MemoryReplayGuard, ReplayGuard
from .rfc8414 import metadata_paths
from .rfc9728 import resource_metadata_paths, resource_metadata_url
from .sealing import Sealer
from .upstream import UpstreamClient
from .urls import service_url_problem

if TYPE_CHECKING:
    from fastapi import APIRouter

    from .cimd import ClientMetadataDocuments
    from .issuing import IssuedMode
    from .strict import StrictMode
    from .verify import BearerVerifier

logger = logging.getLogger("mcp_oauth_shim")

Registration = Literal["signed", "static"]


class OAuthShim:
    """An OAuth 2.1 authorization server for MCP clients in front of an existing IdP.

    Args:
        public_url: where clients reach the shim, e.g. ``https://api.example.com``. The issuer
            is derived from it (no trailing slash) unless ``issuer`` is given.
        resource: the protected MCP endpoint (RFC 8707 / RFC 9728); default ``public_url + "/mcp"``.
        upstream: the identity provider (:class:`Upstream`); not needed with ``custom_metadata``.
        secret_keys: keys signing everything the shim hands out, newest first (rotation: add a
            new key in front, drop the oldest after the longest lifetime has passed).
        scopes_supported: scopes advertised to clients; default: the upstream's default scopes.
        required_scopes: scopes every access token must carry at the MCP endpoint.
        registration: ``"signed"`` (default: each client gets a signed client_id carrying its
            own redirect URIs) or ``"static"`` (every client gets the upstream client_id and
            must use a redirect URI from ``allowed_redirect_uris``).
        allowed_redirect_uris: redirect URIs the operator accepts beyond the default policy
            (plain http to an intranet host), and the only ones in ``"static"`` mode.
        client_metadata_documents: accept URL client_ids (MCP 2025-11-25 CIMD).
        custom_metadata: serve this RFC 8414 document verbatim instead of proxying an IdP.
        http_client: the ``httpx.AsyncClient`` for calls to the IdP (default: a pooled one).
        redact_access_logs: remove query strings (the callback's code and state) from the
            ``uvicorn.access`` log of the whole process, wherever the shim is mounted
            (:func:`.logs.redact_access_logs`); default on.
        strict: strict mode (:class:`.strict.StrictMode`): codes, consent tickets and the IdP's
            state honoured once, refresh-token reuse detection with rotation, rate limits on
            register, authorize and token. ``StrictMode.redis(url)`` for any number of replicas,
            ``StrictMode.in_memory()`` for one process; default ``None``, the stateless shim.
            The shim closes it on shutdown.
        issue_tokens: ``True``: the shim issues its own access tokens (RFC 9068 JWTs for
            ``resource``, signed with its own key, published at ``Paths.jwks``) and refresh
            tokens, after learning the user from the IdP; the IdP's tokens never reach the
            client. Needed for IdPs whose access tokens are opaque or not addressed to the
            resource (Google, GitHub, Cognito). ``False``: the IdP's tokens are passed through.
            ``None`` (default): what the upstream's preset prefers
            (:meth:`.config.Upstream.resolve_issue_tokens`).
        signing_keys: issued-token mode: the keys that sign access tokens (PEM or JWK, newest
            first); default: EC P-256 keys derived from ``secret_keys`` (one per entry, so
            rotating ``secret_keys`` rotates them).
        machine_clients: confidential clients the operator registers (:class:`MachineClient`),
            the only ones allowed the ``client_credentials`` grant (OAuth 2.1 §4.2) and the
            jwt-bearer grant of enterprise-managed authorization (RFC 7523 §2.1).
        enterprise_idps: the enterprise identity providers (:class:`EnterpriseIdP`) whose
            ID-JAGs machine clients may exchange for access tokens.
        replay_guard: where used assertion ``jti`` values are remembered (default: this
            process's memory; give a shared one when several replicas serve the token endpoint).
        metrics: record Prometheus metrics (:mod:`.metrics`; needs ``prometheus-client``).
            They are served by :attr:`metrics_app`, to mount on an internal port, never by
            :attr:`app`. Default off.
        tracing: make OpenTelemetry spans around IdP requests and tool calls (:mod:`.tracing`;
            needs ``opentelemetry-api``); default off.
    """

    def __init__(
        self,
        *,
        public_url: str,
        resource: str | None = None,
        upstream: Upstream | None = None,
        secret_keys: Sequence[str | bytes] | None = None,
        scopes_supported: Iterable[str] | None = None,
        required_scopes: Iterable[str] = (),
        registration: Registration = "signed",
        allowed_redirect_uris: Iterable[str] = (),
        client_metadata_documents: bool | ClientMetadataDocuments = True,
        custom_metadata: Mapping[str, Any] | None = None,
        issuer: str | None = None,
        resource_name: str | None = None,
        lifetimes: Lifetimes | None = None,
        paths: Paths | None = None,
        http_client: httpx.AsyncClient | None = None,
        redact_access_logs: bool = True,
        strict: StrictMode | None = None,
        issue_tokens: bool | None = None,
        signing_keys: Sequence[str | bytes | Mapping[str, Any]] | None = None,
        machine_clients: Sequence[MachineClient] = (),
        enterprise_idps: Sequence[EnterpriseIdP] = (),
        replay_guard: ReplayGuard | None = None,
        metrics: bool = False,
        tracing: bool = False,
    ) -> None:
        # RFC 8414 §2: the issuer (by default the public URL) is https with no query or fragment.
        _require_service_url("public_url", public_url, query_allowed=False)
        if issuer is not None:
            _require_service_url("issuer", issuer, query_allowed=False)
        self.public_url = public_url.rstrip("/")
        self.resource = resource or self.public_url + "/mcp"
        _require_service_url("resource", self.resource)
        self.resource_metadata_url = resource_metadata_url(self.resource)
        if registration not in ("signed", "static"):
            raise ConfigurationError("registration must be 'signed' or 'static'.")
        if strict is not None:
            from .strict import StrictMode

            if not isinstance(strict, StrictMode):
                raise ConfigurationError("strict must be a StrictMode (StrictMode.redis(url) or StrictMode.in_memory()) or None.")
        self.custom_metadata = dict(custom_metadata) if custom_metadata is not None else None
        if self.custom_metadata is not None:
            upstream = upstream or _upstream_from_custom_metadata(self.custom_metadata)
            issuer = issuer or self.custom_metadata.get("issuer")
            if scopes_supported is None:
                scopes_supported = self.custom_metadata.get("scopes_supported") or ()
        if upstream is None:
            raise ConfigurationError("OAuthShim needs upstream=Upstream.oidc(...) (or custom_metadata=...).")
        if isinstance(secret_keys, (str, bytes)):
            raise ConfigurationError(
                "secret_keys must be a list of keys, newest first: secret_keys=[key], not secret_keys=key."
            )
        _refuse_placeholders(upstream, secret_keys or ())
        if self.custom_metadata is None and not secret_keys:
            raise ConfigurationError(
                "OAuthShim needs secret_keys=[...]: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and keep it secret."
            )
        self.upstream = upstream
        self.issuer = issuer if issuer is not None else self.public_url
        self.registration: Registration = registration
        self.required_scopes = tuple(required_scopes)
        default_scopes = tuple(upstream.default_scopes)
        supported = tuple(scopes_supported) if scopes_supported is not None else default_scopes
        self.scopes_supported = tuple(dict.fromkeys([*supported, *self.required_scopes]))
        self.allowed_redirect_uris = tuple(allowed_redirect_uris)
        self.upstream_client = UpstreamClient(upstream, http=http_client)
        # In custom-metadata mode nothing is signed; a throwaway key keeps the types simple.
        sealer = Sealer(secret_keys or [secrets.token_bytes(32)])
        lifetimes = lifetimes or Lifetimes()
        documents = None
        if registration == "static" and not self.allowed_redirect_uris:
            raise ConfigurationError('registration="static" needs allowed_redirect_uris=[...]: the only URIs clients may use.')
        # In static mode the allow-list is the whole policy: no self-describing clients.
        if client_metadata_documents is not False and self.custom_metadata is None and registration == "signed":
            from .cimd import ClientMetadataDocuments

            given = client_metadata_documents
            documents = given if isinstance(given, ClientMetadataDocuments) else ClientMetadataDocuments()
        self.context = ShimContext(
            public_url=self.public_url,
            issuer=self.issuer,
            resource=self.resource,
            upstream=upstream,
            upstream_client=self.upstream_client,
            sealer=sealer,
            clients=ClientResolver(
                sealer,
                client_id_max_age=lifetimes.client_id,
                static_client_id=upstream.client_id if registration == "static" else None,
                allowed_redirect_uris=self.allowed_redirect_uris,
                metadata_documents=documents,
            ),
            scopes_supported=self.scopes_supported,
            # A client that asks for nothing must still get what the MCP endpoint requires.
            default_scopes=tuple(dict.fromkeys([*default_scopes, *self.required_scopes])) or self.scopes_supported,
            lifetimes=lifetimes,
            paths=paths or Paths(),
            resource_name=resource_name,
            metadata_documents=documents is not None,
            strict=strict,
        )
        self.strict = strict
        self.issue_tokens = self.custom_metadata is None and upstream.resolve_issue_tokens(issue_tokens)
        if signing_keys is not None and not self.issue_tokens:
            raise ConfigurationError("signing_keys sign the shim's own tokens: they need issue_tokens=True.")
        if self.issue_tokens:
            self.context.issued = self._issued_mode(secret_keys or (), signing_keys)
        if machine_clients or enterprise_idps:
            if self.custom_metadata is not None:
                raise ConfigurationError("machine_clients and enterprise_idps need the shim's token endpoint, not custom_metadata.")
            guard = replay_guard or MemoryReplayGuard()
            self.context.machine_clients, self.context.id_jag = build_machine_access(
                self.context, machine_clients, enterprise_idps, replay_guard=guard
            )
        if redact_access_logs:
            # Now rather than at start-up: routes mounted in another app never run our lifespan.
            install_access_log_redaction()
        if metrics:
            from .metrics import enable_metrics

            enable_metrics()
        if tracing:
            from .tracing import enable_tracing

            enable_tracing()

    def _issued_mode(
        self, secret_keys: Sequence[str | bytes], signing_keys: Sequence[str | bytes | Mapping[str, Any]] | None
    ) -> IssuedMode:
        """What issued-token mode needs, built once: cipher, token issuer (with its keys), identity source."""
        from .encryption import TokenCipher
        from .identity_source import UpstreamIdentity
        from .issuing import IssuedMode, TokenIssuer
        from .jwks import KeyStore
        from .signing_keys import SigningKeys

        cipher = TokenCipher(secret_keys)
        tokens = TokenIssuer(
            keys=SigningKeys.load(secret_keys=secret_keys, signing_keys=signing_keys),
            cipher=cipher,
            sealer=self.context.sealer,
            issuer=self.issuer,
            resource=self.resource,
            access_token_lifetime=self.context.lifetimes.access_token,
        )
        identity = UpstreamIdentity(self.upstream, self.upstream_client, KeyStore(self.upstream_client, clock=time.time))
        return IssuedMode(cipher=cipher, tokens=tokens, identity=identity)

    # -- what the shim serves ----------------------------------------------------------------

    @cached_property
    def routes(self) -> list[BaseRoute]:
        """Starlette routes for every endpoint; mount them at the root of the hosting app."""
        ctx = self.context
        p, at, cors = ctx.paths, ctx.route_path, ["GET", "OPTIONS"]
        endpoints: list[tuple[str, Callable[..., Any], list[str]]] = []
        if self.custom_metadata is None:
            # The endpoints of every login and refresh first: a router tries routes in order.
            endpoints += [
                (at(p.token), with_cors(TokenHandler(ctx)), ["POST", "OPTIONS"]),
                (at(p.authorize), AuthorizeHandler(ctx, ConsentPage(ctx)).__call__, ["GET"]),
                (at(p.callback), CallbackHandler(ctx).__call__, ["GET"]),
                (at(p.consent), ConsentHandler(ctx).__call__, ["POST"]),
                (at(p.register), with_cors(RegistrationHandler(ctx, mode=self.registration, allowed_redirect_uris=self.allowed_redirect_uris)), ["POST", "OPTIONS"]),
                (at(p.revoke), with_cors(RevocationHandler(ctx, lambda: self.verifier)), ["POST", "OPTIONS"]),
            ]
            if ctx.issued is not None:
                endpoints.append((at(p.jwks), with_cors(JwksHandler(ctx.issued.tokens.keys)), cors))
        prm = with_cors(ProtectedResourceMetadataHandler(ctx))
        endpoints += [(path, prm, cors) for path in resource_metadata_paths(self.resource)]
        metadata = with_cors(MetadataHandler(ctx, custom=self.custom_metadata))
        endpoints += [(path, metadata, cors) for path in metadata_paths(self.issuer)]
        return [
            Route(path, Endpoint(endpoint), methods=methods, include_in_schema=False) for path, endpoint, methods in endpoints
        ]

    @cached_property
    def health_routes(self) -> list[BaseRoute]:
        """``GET /healthz`` (liveness) and ``GET /readyz`` (the IdP reachable), at
        ``Paths.liveness`` and ``Paths.readiness`` (:mod:`.health`). :attr:`app` serves them;
        mount them yourself next to :attr:`routes` in an app of your own."""
        from .health import Liveness, Readiness

        ctx = self.context
        probes = [(ctx.paths.liveness, Liveness().__call__), (ctx.paths.readiness, Readiness(self.upstream_client).__call__)]
        return [Route(ctx.route_path(path), probe, methods=["GET"], include_in_schema=False) for path, probe in probes]

    @cached_property
    def metrics_app(self) -> ASGIApp:
        """The Prometheus exposition as an ASGI app, for an internal port (enables metrics).

        Not part of :attr:`app`: login volumes, tool names and error rates are the operator's
        business, not the public's. ``mcp-oauth-shim serve --metrics-port`` serves it.
        """
        from .metrics import metrics_app

        return metrics_app()

    @cached_property
    def router(self) -> APIRouter:
        """The same routes as a FastAPI ``APIRouter``: ``app.include_router(shim.router)``."""
        from fastapi import APIRouter

        return APIRouter(routes=self.routes, lifespan=self.lifespan)

    @cached_property
    def app(self) -> Starlette:
        """A standalone ASGI app serving the shim's endpoints and health probes, with an
        ``X-Request-ID`` per request (:class:`.request_id.RequestIdMiddleware`)."""
        from starlette.middleware import Middleware

        from .request_id import RequestIdMiddleware

        return Starlette(
            routes=[*self.routes, *self.health_routes],
            lifespan=self.lifespan,
            middleware=[Middleware(RequestIdMiddleware)],
        )

    @cached_property
    def verifier(self) -> BearerVerifier:
        """Verifies access tokens for this resource; the mcp SDK's ``TokenVerifier``.

        Passthrough mode: the IdP's access tokens (:class:`.verify.BearerVerifier`). Issued-token
        mode: the shim's own, checked locally, the IdP's refused
        (:class:`.issued_verifier.IssuedBearerVerifier`, whose tokens are
        :class:`.issued_verifier.IssuedAccessToken`).
        """
        from .verify import BearerVerifier

        issued = self.context.issued
        if issued is not None:
            from .issued_verifier import IssuedBearerVerifier

            return IssuedBearerVerifier(
                self.upstream_client,
                issued.tokens,
                resource_metadata_url=self.resource_metadata_url,
                required_scopes=self.required_scopes,
                scopes_supported=self.scopes_supported,
            )

        return BearerVerifier(
            self.upstream_client,
            # Tokens name the configured API identifier (Auth0 style) or the resource URL itself.
            audience=tuple(dict.fromkeys([self.upstream.audience or self.resource, self.resource])),
            resource_metadata_url=self.resource_metadata_url,
            required_scopes=self.required_scopes,
            scopes_supported=self.scopes_supported,
        )

    def protect(self, app: ASGIApp, *, scopes: Iterable[str] = ()) -> ASGIApp:
        """Wrap an ASGI app so every HTTP request needs a valid bearer token (RFC 6750)."""
        from .protect import RequireBearer

        return RequireBearer(app, self.verifier, scopes=scopes)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Closes the pooled connections to the IdP (and strict mode's store) on shutdown."""
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connections to the IdP. The shim stays usable: a later request or lifespan
        (a second ``TestClient``, an app restarted in the same process) opens new ones."""
        await self.upstream_client.aclose()  # stays usable: its pool reconnects on demand
        if self.strict is not None:
            await self.strict.aclose()  # redis.asyncio reconnects on the next call

    def __repr__(self) -> str:
        return f"OAuthShim(issuer={self.issuer!r}, resource={self.resource!r}, upstream={self.upstream.name!r})"


def _is_placeholder(value: str) -> bool:
    """A documentation placeholder pasted as is: ``...``, ``…``, ``<your key here>``."""
    text = value.strip()
    return bool(text) and (set(text) <= {".", "\u2026"} or (text.startswith("<") and text.endswith(">")))


def _refuse_placeholders(upstream: Upstream, secret_keys: Sequence[str | bytes]) -> None:
    """Refuse the README's snippet pasted unchanged, which would otherwise build a shim that
    starts, signs with a published key and fails only at the IdP."""
    for name, value in (("client_id", upstream.client_id), ("client_secret", upstream.client_secret)):
        if isinstance(value, str) and _is_placeholder(value):
            raise ConfigurationError(f"{name}={value!r} is a placeholder: use the value from your identity provider.")
    for key in secret_keys:
        if isinstance(key, str) and _is_placeholder(key):
            raise ConfigurationError(
                f"secret_keys contains the placeholder {key!r}: generate a key with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and keep it secret."
            )


def _require_service_url(name: str, url: object, *, query_allowed: bool = True) -> None:
    problem = service_url_problem(url, query_allowed=query_allowed)
    if problem is not None:
        raise ConfigurationError(f"{name} must {problem}, got {url!r}.")


def _upstream_from_custom_metadata(doc: Mapping[str, Any]) -> Upstream:
    if not all(isinstance(doc.get(name), str) for name in ("issuer", "authorization_endpoint", "token_endpoint")):
        raise ConfigurationError("custom_metadata needs issuer, authorization_endpoint and token_endpoint.")
    try:
        # No client: in custom-metadata mode the shim only serves the document.
        return Upstream(
            client_id="",
            client_secret="",
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            revocation_endpoint=doc.get("revocation_endpoint"),
            jwks_uri=doc.get("jwks_uri"),
            default_scopes=tuple(doc.get("scopes_supported") or ()),
            name="custom",
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"custom_metadata: {exc}") from None
