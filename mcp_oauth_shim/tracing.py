"""Optional OpenTelemetry spans (``pip install 'mcp-oauth-shim[otel]'``), off by default.

:func:`enable_tracing` (``OAuthShim(tracing=True)``) takes a tracer from the OpenTelemetry API;
the spans go wherever the application configured its tracer provider (the SDK and an exporter
are the application's choice, as the API intends). Spans: ``idp.<operation>`` around each
request to the identity provider (``idp.token``, ``idp.discovery``, ``idp.jwks``, ...) and
``mcp.tool_call`` around each tool call of the bridge. Their attributes are the operation, the
outcome and the tool's name: never a URL with its query, a token, a client_id or a user.

Until it is enabled nothing here imports ``opentelemetry``; asked for without it, it is a
one-line :class:`~mcp_oauth_shim.config.ConfigurationError`.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["active_tracer", "disable_tracing", "enable_tracing"]

INSTRUMENTATION_NAME = "mcp_oauth_shim"

_tracer: Any = None
_lock = threading.Lock()


def active_tracer() -> Any:
    """The tracer when tracing is enabled in this process, else ``None``."""
    return _tracer


def enable_tracing(tracer_provider: Any = None) -> Any:
    """Start making spans with a tracer from ``tracer_provider`` (default: the global one)."""
    global _tracer
    with _lock:
        try:
            from opentelemetry import trace
        except ImportError:
            from .config import ConfigurationError

            raise ConfigurationError("tracing needs opentelemetry-api: pip install 'mcp-oauth-shim[otel]'.") from None
        from . import __version__

        _tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider)
        return _tracer


def disable_tracing() -> None:
    global _tracer
    with _lock:
        _tracer = None


def mark_error(span: Any, outcome: str) -> None:
    """Set the span's status to error, naming the outcome (an OpenTelemetry ``Status``)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, outcome))
