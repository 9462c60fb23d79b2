"""The app ``mcp-oauth-shim serve`` runs, built from resolved settings.

:func:`build_shim` turns the settings into an :class:`~mcp_oauth_shim.OAuthShim` (with
``Upstream.oidc``), :func:`build_app` adds the guarded reverse proxy to an MCP server when
``--mcp-upstream`` is set, and :func:`create_app` does both from ``MCP_OAUTH_SHIM_*`` variables
alone, for ``uvicorn --factory`` and gunicorn. The options themselves (flags, variables, how
they are read and checked) are :mod:`mcp_oauth_shim.cli`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .cli import UPSTREAM_OPTIONS, Settings, UsageError, parser, serve_settings
from .config import ConfigurationError

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp

    from .shim import OAuthShim

__all__ = ["APP_BOOT_FAILURE", "build_app", "build_shim", "create_app", "warn_if_idp_unavailable"]

logger = logging.getLogger("mcp_oauth_shim")

# uvicorn's STARTUP_FAILURE and gunicorn's WORKER_BOOT_ERROR: a worker exiting with it stops
# the whole server rather than being restarted.
APP_BOOT_FAILURE = 3

# The serve options that are OAuthShim keyword arguments of the same name.
SHIM_ARGUMENTS = (
    "public_url", "resource", "secret_keys", "required_scopes", "registration", "allowed_redirect_uris",
    "client_metadata_documents", "issue_tokens",
)


def build_shim(settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> OAuthShim:
    """``OAuthShim`` + ``Upstream.oidc`` from resolved settings."""
    from .config import Upstream
    from .shim import OAuthShim
    from .strict import StrictMode

    v = settings.values
    strict = None
    if v["redis_url"]:
        try:
            strict = StrictMode.redis(v["redis_url"], on_unavailable=v["strict_on_unavailable"])
        except ImportError:
            raise ConfigurationError("--redis-url needs the redis package: pip install 'mcp-oauth-shim[redis]'.") from None
        except ValueError:  # the message could quote the URL and its password
            raise ConfigurationError("--redis-url is not a usable Redis URL.") from None
    return OAuthShim(
        upstream=Upstream.oidc(**{option.keyword: v[option.name] for option in UPSTREAM_OPTIONS}),
        **{name: v[name] for name in SHIM_ARGUMENTS},
        http_client=http_client,
        strict=strict,
        metrics=v.get("metrics_port") is not None,
    )


def build_app(settings: Settings, shim: OAuthShim, *, mcp_http: httpx.AsyncClient | None = None) -> ASGIApp:
    """The shim's own routes, or with ``--mcp-upstream`` the shim plus the guarded proxy.

    At start-up the app reads the IdP's discovery document once: an IdP that is down or
    misconfigured is logged as a warning then, not first met by a user; start-up goes on.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    from .body_deadline import BodyDeadlineMiddleware
    from .request_id import RequestIdMiddleware
    from .shutdown import ShutdownMiddleware

    upstream_url = settings.values["mcp_upstream"]
    proxy = None
    routes = [*shim.routes, *shim.health_routes]
    if upstream_url:
        from .mcp_proxy import MCPReverseProxy

        public, resource = urlsplit(shim.public_url), urlsplit(shim.resource)
        if (public.scheme, public.netloc) != (resource.scheme, resource.netloc):
            raise UsageError("--mcp-upstream needs the resource on the same origin as the public URL.")
        path = resource.path.rstrip("/") or "/"
        try:
            proxy = MCPReverseProxy(
                upstream_url,
                mount_path=path,
                forward_authorization=settings.values["forward_authorization"],
                http=mcp_http,
                sealer=shim.context.sealer,  # session ids open on every replica sharing secret_keys
            )
        except ValueError:  # its message quotes the URL, whose query may hold a credential
            raise UsageError(
                "--mcp-upstream / MCP_OAUTH_SHIM_MCP_UPSTREAM must be an http(s) URL without query or fragment."
            ) from None
        guarded = shim.protect(proxy)
        # Exact routes, not Mount: a Mount at /mcp would answer POST /mcp with a redirect to /mcp/.
        routes += [Route(path, guarded), Route(path.rstrip("/") + "/{rest:path}", guarded)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shim.lifespan(app):
            await warn_if_idp_unavailable(shim)
            try:
                yield
            finally:
                if proxy is not None:
                    await proxy.aclose()

    # The guarded MCP endpoint is the hot path: request ids there only when logs are JSON.
    skip = [urlsplit(shim.resource).path] if proxy is not None and settings.values["log_format"] != "json" else []
    # Around the app rather than in its middleware list: Starlette's error handler is outermost
    # there, and the 500 it sends would go out without the request's id.
    # The body deadline and the shutdown answer inside the request ids: their 408 and 503 carry
    # the request's id too.
    app = BodyDeadlineMiddleware(Starlette(routes=routes, lifespan=lifespan), seconds=settings.values["body_timeout"])
    return RequestIdMiddleware(ShutdownMiddleware(app), skip=skip)


async def warn_if_idp_unavailable(shim: OAuthShim) -> None:
    """Read the IdP's metadata once; log a warning (and go on) when that fails."""
    from .upstream import UpstreamError

    try:
        await shim.upstream_client.metadata()
    except UpstreamError as exc:
        logger.warning(
            "The identity provider is not usable at start-up: %s Starting anyway; "
            "sign-ins fail until it answers (check it with `mcp-oauth-shim doctor`).",
            exc.description,
        )


def create_app() -> ASGIApp:
    """The ``serve`` app configured from ``MCP_OAUTH_SHIM_*`` variables alone, for your own server.

    ``MCP_OAUTH_SHIM_PUBLIC_URL=https://mcp.example.com uvicorn --factory
    mcp_oauth_shim.cli:create_app --workers 4`` (or gunicorn with uvicorn workers): the shim is
    stateless, so every worker, like every replica, serves every user as long as they share
    ``MCP_OAUTH_SHIM_SECRET_KEYS``. The public URL is required here: the factory cannot see the
    ``--host``/``--port`` given to the server, and a guessed one would send clients elsewhere.
    The shim keeps query strings (the callback's code and state) out of uvicorn's access log
    whatever its ``--log-config``. A wrong setting ends the process with one line, as with
    ``serve``, and status 3: uvicorn's and gunicorn's "the app failed to boot", on which their
    supervisors stop instead of restarting the worker forever.
    """
    try:
        settings = serve_settings(parser().parse_args(["serve"]), os.environ, factory=True)
        app = build_app(settings, build_shim(settings))
        if settings.values["log_format"] is not None:
            from .log_format import configure_logging

            # uvicorn configured its loggers before loading the factory: re-format them too.
            configure_logging(settings.values["log_format"])
        if settings.values["metrics_port"] is not None:
            from .metrics import start_metrics_server

            try:
                start_metrics_server(settings.values["metrics_port"], settings.values["host"])
            except OSError as exc:  # another worker of this server already serves the port
                logger.warning("metrics port %s not served by this worker: %s", settings.values["metrics_port"], exc)
        return app
    except (UsageError, ConfigurationError) as exc:
        print(f"mcp-oauth-shim create_app: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(APP_BOOT_FAILURE) from None
