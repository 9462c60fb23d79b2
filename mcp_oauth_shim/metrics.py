"""Prometheus metrics (``pip install 'mcp-oauth-shim[metrics]'``), off unless asked for.

:func:`enable_metrics` (``OAuthShim(metrics=True)``, the CLI's ``--metrics-port``) creates the
collectors below once per process in a ``prometheus_client`` registry (its default one unless
another is given) and switches the recording functions of :mod:`mcp_oauth_shim.telemetry` on.
Until then they return at their first line, and ``prometheus_client`` is never imported: a
process without it works as before; asking for metrics without it is a one-line
:class:`~mcp_oauth_shim.config.ConfigurationError`.

Every label takes its values from a fixed set (results are OAuth error codes, RFC 6749 §5.2;
operations and reasons are listed here) or from something the application bounds (tool names:
the tools it serves, capped at :data:`MAX_TOOL_LABELS`). No label carries a token, a client_id
(registered clients are unbounded: the *kind* of client is used instead), a user or a URL.

The exposition is served by a separate app (:func:`metrics_app`, or
:func:`start_metrics_server` on its own port): operational numbers (login volumes, tool names,
error rates) are for the operator's network, not for whoever can reach the public endpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = [
    "BEARER_REJECTION_REASONS",
    "CLIENT_KINDS",
    "IDP_OPERATIONS",
    "MAX_TOOL_LABELS",
    "ShimMetrics",
    "active_metrics",
    "disable_metrics",
    "enable_metrics",
    "metrics_app",
    "start_metrics_server",
]

PREFIX = "mcp_oauth_shim"

#: What the shim asks the IdP (label ``operation``).
IDP_OPERATIONS = ("discovery", "jwks", "token", "introspection", "userinfo", "revoke", "other")
#: Why a bearer token was refused at the protected resource (label ``reason``).
BEARER_REJECTION_REASONS = (
    "missing",
    "malformed",
    "invalid",
    "expired",
    "wrong_audience",
    "insufficient_scope",
    "idp_unavailable",
)
#: Kinds of OAuth clients (label ``client_kind``): a client_id the shim signed at registration
#: (RFC 7591), a URL client_id (client ID metadata document), the IdP's own client_id
#: (``registration="static"``), or none given.
CLIENT_KINDS = ("registered", "metadata_document", "static", "none")
#: Grant types counted by name; any other is ``other`` (label ``grant_type``).
GRANT_TYPES = ("authorization_code", "refresh_token")
#: OAuth error codes (RFC 6749 §4.1.2.1, §5.2; RFC 8707 §2; RFC 6750 §3.1) and the shim's own
#: results; anything else is counted as ``other``.
RESULTS = frozenset(
    {
        "ok",
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "unsupported_response_type",
        "invalid_scope",
        "invalid_target",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
        "upstream_error",
        "consent",
        "redirect",
        "approve",
        "deny",
    }
)
#: Distinct tool names counted before the rest share the label ``other``: an app serves a
#: fixed set of tools, and this caps the series even if a caller passed unchecked names.
MAX_TOOL_LABELS = 1000
# Seconds; IdP calls are network round trips (ms to s).
IDP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


#: The counters (a ShimMetrics field each, named ``mcp_oauth_shim_<field>_total``): help, labels.
# A tool call is counted, not timed: on the hot path a histogram doubled the cost of the
# observation (8.8 vs 4.6 µs in process, bench/inproc_observe.py), and a tool call runs
# through the app's own ASGI stack, where its HTTP metrics time the route anyway.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "authorize_requests": ("Authorization requests (RFC 6749 §4.1.1) by result.", ("result",)),
    "consent_decisions": ("Consent page decisions by decision.", ("decision",)),
    "callbacks": ("Callbacks from the identity provider by result.", ("result",)),
    "token_requests": (
        "Token requests (RFC 6749 §3.2) by grant type, result (ok or the OAuth error code) and client kind.",
        ("grant_type", "result", "client_kind"),
    ),
    "tool_calls": ("MCP tool calls served by the bridge, by tool and outcome.", ("tool", "outcome")),
    "bearer_rejections": ("Requests refused at the protected resource (RFC 6750 §3.1) by reason.", ("reason",)),
}


def bounded(value: str, allowed: Iterable[str] | frozenset[str]) -> str:
    return value if value in allowed else "other"


@dataclass(frozen=True)
class ShimMetrics:
    """The shim's collectors (``prometheus_client`` objects)."""

    registry: Any
    authorize_requests: Any
    consent_decisions: Any
    callbacks: Any
    token_requests: Any
    idp_request_duration: Any
    tool_calls: Any
    bearer_rejections: Any
    # Label children by collector and label values: ``labels()`` takes a lock and builds a key
    # on every call; remembering the child took a tool call's observation from 13.7 to 8.6 µs
    # (bench/inproc_observe.py, shared 2-core machine). Bounded like the labels themselves
    # (tools x outcomes, operations x outcomes).
    _children: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def child(self, collector: Any, *values: str) -> Any:
        """``collector.labels(*values)``, remembered."""
        key = (id(collector), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = collector.labels(*values)
        return found

    @classmethod
    def create(cls, registry: Any) -> ShimMetrics:
        from prometheus_client import Counter, Histogram

        counters: dict[str, Any] = {
            field_name: Counter(f"{PREFIX}_{field_name}", doc, labels, registry=registry)
            for field_name, (doc, labels) in COUNTERS.items()
        }
        idp_request_duration = Histogram(
            f"{PREFIX}_idp_request_duration_seconds",
            "Requests to the identity provider by operation and outcome.",
            ("operation", "outcome"),
            buckets=IDP_BUCKETS,
            registry=registry,
        )
        return cls(registry=registry, idp_request_duration=idp_request_duration, **counters)


_created: ShimMetrics | None = None  # collectors exist once per process (per registry name)
_active: ShimMetrics | None = None  # what the recording functions use; None: metrics off
_lock = threading.Lock()


def active_metrics() -> ShimMetrics | None:
    """The collectors when metrics are enabled in this process, else ``None``."""
    return _active


def enable_metrics(registry: Any = None) -> ShimMetrics:
    """Create the collectors (once per process) and start recording.

    ``registry``: a ``prometheus_client.CollectorRegistry`` (default: its global ``REGISTRY``,
    where the process and garbage-collector metrics already are). A later call returns the
    collectors of the first, whatever registry it names: a name can be registered only once.
    """
    global _created, _active
    with _lock:
        if _created is None:
            try:
                import prometheus_client
            except ImportError:
                from .config import ConfigurationError

                raise ConfigurationError(
                    "metrics need prometheus-client: pip install 'mcp-oauth-shim[metrics]'."
                ) from None
            _created = ShimMetrics.create(registry if registry is not None else prometheus_client.REGISTRY)
        _active = _created
        return _active


def disable_metrics() -> None:
    """Stop recording; the collectors keep their counts and :func:`enable_metrics` resumes them."""
    global _active
    with _lock:
        _active = None


def metrics_app() -> ASGIApp:
    """An ASGI app answering every GET with the Prometheus exposition (enables metrics).

    Mount it where only the operator's network reaches, e.g. on an internal port.
    """
    from prometheus_client import make_asgi_app

    metrics = enable_metrics()
    app: ASGIApp = make_asgi_app(registry=metrics.registry)
    return app


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serve the exposition on ``host:port`` from a background thread (``prometheus_client``'s
    own server), apart from the shim's public port."""
    from prometheus_client import start_http_server

    metrics = enable_metrics()
    start_http_server(port, addr=host, registry=metrics.registry)
