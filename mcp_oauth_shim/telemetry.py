"""The shim's observation points: one call at each place something worth counting happens.

Each function records into whatever is enabled (Prometheus metrics, OpenTelemetry spans, the
``mcp_oauth_shim.events`` log) and costs one global read when nothing is: the hot paths (a
verified MCP request, a tool call) stay as fast with observation off as without it.

* :func:`idp_call` times a request to the identity provider (metric
  ``mcp_oauth_shim_idp_request_duration_seconds``, span ``idp.<operation>``);
* :func:`tool_call` a tool call of the bridge (``mcp_oauth_shim_tool_calls_total``, span
  ``mcp.tool_call``);
* :func:`login_step` marks a step of a login (authorize, consent, callback, token): it binds the
  login's correlation id (:func:`~mcp_oauth_shim.log_context.login_correlation_id`) to the
  request's log records, logs the step at INFO and counts it;
* :func:`token_result` counts a token request by grant type, result and client kind;
* :func:`bearer_rejected` counts a request refused at the protected resource, by reason.

Every value given as a label is bounded here (:mod:`mcp_oauth_shim.metrics`): a caller cannot
create series by passing unexpected strings.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import metrics as _metrics_module
from . import tracing as _tracing_module
from .log_context import bind_login, current_login_id
from .metrics import (
    BEARER_REJECTION_REASONS,
    CLIENT_KINDS,
    GRANT_TYPES,
    IDP_OPERATIONS,
    MAX_TOOL_LABELS,
    RESULTS,
    bounded,
)

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = [
    "Observation",
    "TokenRequestSeen",
    "answered_result",
    "bearer_rejected",
    "client_kind",
    "idp_call",
    "login_step",
    "login_step_answered",
    "observing",
    "token_result",
    "tool_call",
]

events = logging.getLogger("mcp_oauth_shim.events")

# The ShimMetrics counter of each login step; the token step is counted by token_result.
_STEP_COUNTERS = {"authorize": "authorize_requests", "consent": "consent_decisions", "callback": "callbacks"}


class Observation:
    """A timed operation (an IdP request, a tool call); set :attr:`outcome` before it ends
    when it is not ``"ok"`` (an exception ending it sets ``"error"`` or ``"timeout"``)."""

    __slots__ = ("_name", "_span", "_span_cm", "_started", "kind", "outcome")

    #: Something records this observation: worth working out its outcome.
    active = True

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self._name = name
        self.outcome = "ok"
        self._span_cm: Any = None
        self._span: Any = None
        self._started = 0.0

    def status(self, code: int) -> None:
        """Set the outcome from an HTTP status: ``ok`` below 400, else ``http_4xx``/``http_5xx``."""
        self.outcome = "ok" if code < 400 else ("http_4xx" if code < 500 else "http_5xx")

    def __enter__(self) -> Observation:
        tracer = _tracing_module.active_tracer()
        if tracer is not None:
            if self.kind == "idp":
                name, attributes = f"idp.{self._name}", {"idp.operation": self._name}
            else:
                name, attributes = "mcp.tool_call", {"mcp.tool.name": self._name}
            self._span_cm = tracer.start_as_current_span(name, attributes=attributes, record_exception=False)
            self._span = self._span_cm.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = time.perf_counter() - self._started
        if exc is not None and self.outcome == "ok":
            # A timeout of ours, or the 504 an UpstreamError carries for the IdP's.
            timed_out = isinstance(exc, TimeoutError) or getattr(exc, "status_code", None) == 504
            self.outcome = "timeout" if timed_out else "error"
        metrics = _metrics_module.active_metrics()
        if metrics is not None:
            if self.kind == "idp":
                metrics.child(metrics.idp_request_duration, self._name, self.outcome).observe(elapsed)
            else:
                metrics.child(metrics.tool_calls, self._name, self.outcome).inc()
        if self._span_cm is not None:
            self._span.set_attribute("outcome", self.outcome)
            if self.outcome != "ok":
                _tracing_module.mark_error(self._span, self.outcome)
            # The exception is not recorded on the span: its message may quote a URL.
            self._span_cm.__exit__(None, None, None)


class _Unobserved:
    """What :func:`idp_call` and :func:`tool_call` return when nothing is enabled: no clock,
    no allocation, a shared object whose outcome is never read."""

    __slots__ = ()

    active = False

    @property
    def outcome(self) -> str:
        return "ok"

    @outcome.setter
    def outcome(self, value: str) -> None:
        pass

    def status(self, code: int) -> None:
        pass

    def __enter__(self) -> _Unobserved:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_UNOBSERVED = _Unobserved()


def observing() -> bool:
    """Whether metrics or tracing record anything in this process."""
    return _metrics_module.active_metrics() is not None or _tracing_module.active_tracer() is not None


def idp_call(operation: str) -> Observation | _Unobserved:
    """Context manager around one request to the IdP; ``operation`` one of
    :data:`~mcp_oauth_shim.metrics.IDP_OPERATIONS` (anything else counts as ``other``)."""
    if not observing():
        return _UNOBSERVED
    return Observation("idp", bounded(operation, IDP_OPERATIONS))


_tool_names: set[str] = set()


def tool_call(tool: str) -> Observation | _Unobserved:
    """Context manager around one tool call; ``tool`` must be a tool the app serves (an
    unknown name requested by a client is counted as ``unknown_tool`` by the caller)."""
    if not observing():
        return _UNOBSERVED
    if tool not in _tool_names:
        if len(_tool_names) >= MAX_TOOL_LABELS:
            tool = "other"
        else:
            _tool_names.add(tool)
    return Observation("tool", tool)


def answered_result(status: int, body: bytes | memoryview, location: str | None, *, success: str) -> str:
    """What an answer of an OAuth endpoint says, for counting: ``success`` for a 2xx or a
    redirect without ``error``; the ``error`` of a redirect (RFC 6749 §4.1.2.1) or of a JSON
    error body (§5.2); for an error page, ``invalid_request`` (4xx), ``temporarily_unavailable``
    (504) or ``upstream_error`` (other 5xx: the IdP failed)."""
    if location is not None:
        # A success carries a long signed code: parsed only when an error may be there.
        if "error=" not in location:
            return success
        error = parse_qs(urlsplit(location).query).get("error")
        return error[0] if error else success
    if 200 <= status < 300:
        return success
    if body[:1] == b"{":
        try:
            error = json.loads(bytes(body)).get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, str):
            return error
    if status == 504:
        return "temporarily_unavailable"
    return "upstream_error" if status >= 500 else "invalid_request"


def _observing_events() -> bool:
    return _metrics_module.active_metrics() is not None or events.isEnabledFor(logging.INFO)


def login_step_answered(step: str, response: Response, *, success: str = "ok") -> None:
    """:func:`login_step` for ``step`` with the result :func:`answered_result` reads from
    ``response`` (the login's id, when the step bound one, is already in the context)."""
    if _observing_events():
        result = answered_result(response.status_code, response.body, response.headers.get("location"), success=success)
        if step == "consent" and result == "access_denied":
            result = "deny"
        login_step(step, result)


@dataclass(slots=True)
class TokenRequestSeen:
    """What the token endpoint learnt about a request, counted once it is answered."""

    grant_type: str | None = None
    client_kind: str = "none"

    def answered(self, response: Response) -> None:
        if _observing_events():
            result = answered_result(response.status_code, response.body, None, success="ok")
            token_result(self.grant_type, result, kind=self.client_kind)


def login_step(step: str, result: str, *, code_challenge: str | None = None) -> None:
    """One step of a login happened (``step``: ``authorize``, ``consent``, ``callback`` or ``token``) with ``result`` (``ok``,
    ``consent``, ``redirect``, ``approve``, ``deny`` or an OAuth error code).

    ``code_challenge`` (public, RFC 7636 §4.2) ties the step to its login: its digest is bound
    to the request's log records and printed with this event.
    """
    bind_login(code_challenge)
    result = bounded(result, RESULTS)
    if events.isEnabledFor(logging.INFO):
        extra = {"event": f"login.{step}", "result": result, "login_id": current_login_id()}
        events.info("login %s: %s", step, result, extra=extra)
    metrics = _metrics_module.active_metrics()
    if metrics is not None and step in _STEP_COUNTERS:
        metrics.child(getattr(metrics, _STEP_COUNTERS[step]), result).inc()


def client_kind(client_id: str | None, *, static_client_id: str | None = None) -> str:
    """The kind of client a client_id names (:data:`~mcp_oauth_shim.metrics.CLIENT_KINDS`),
    decided from its shape alone: a label that never carries the id itself."""
    if not client_id:
        return "none"
    if static_client_id is not None and client_id == static_client_id:
        return "static"
    if client_id.startswith(("https://", "http://")):
        return "metadata_document"
    return "registered"


def token_result(grant_type: str | None, result: str, *, kind: str = "none") -> None:
    """A token request ended with ``result`` (``ok`` or the OAuth error code it answered).

    Logged at INFO as event ``token`` (with the login's id when the grant bound one, see
    :func:`~mcp_oauth_shim.log_context.bind_login`) and counted.
    """
    grant = bounded(grant_type or "", GRANT_TYPES)
    result = bounded(result, RESULTS)
    kind = bounded(kind, CLIENT_KINDS)
    if events.isEnabledFor(logging.INFO):
        events.info(
            "token %s: %s", grant, result, extra={"event": "token", "grant_type": grant, "result": result, "client_kind": kind}
        )
    metrics = _metrics_module.active_metrics()
    if metrics is not None:
        metrics.child(metrics.token_requests, grant, result, kind).inc()


def bearer_rejected(reason: str) -> None:
    """A request at the protected resource was refused; ``reason`` one of
    :data:`~mcp_oauth_shim.metrics.BEARER_REJECTION_REASONS`."""
    metrics = _metrics_module.active_metrics()
    if metrics is not None:
        metrics.child(metrics.bearer_rejections, bounded(reason, BEARER_REJECTION_REASONS)).inc()
