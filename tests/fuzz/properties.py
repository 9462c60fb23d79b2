"""What every answer of the shim and the bridge must look like, whatever the input.

The fuzz modules generate requests; this module states the properties each answer is held to:

- never a 5xx, except 502/503/504 for a fault of the identity provider, and those are JSON
  with an OAuth ``error`` (or, on the browser endpoints, an HTML page);
- errors in the shape their RFC defines: a JSON ``{error, error_description?}`` with a
  registered code (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1), an RFC 6750 §3
  ``WWW-Authenticate`` challenge, or an HTML error page on the browser endpoints;
- a redirect (3xx ``Location``) only to a redirect URI the client registered, compared exactly
  (any port for loopback http, RFC 8252 §7.3), or to the IdP's configured authorization endpoint;
- no secret (the upstream client secret, the shim's keys) and no credential the fuzzer planted
  in the request, in the answer's headers and body or in any log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import httpx

# RFC 6749 §5.2 (token endpoint) plus RFC 8707 §2 invalid_target.
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
    }
)
# RFC 6749 §4.1.2.1 (authorization endpoint), RFC 8707 §2, OpenID Connect Core §3.1.2.6 (the
# errors an IdP may send back through the callback and RFC 9101's request object errors).
AUTHORIZATION_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_target",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "request_not_supported",
        "request_uri_not_supported",
        "invalid_client",
    }
)
# RFC 7591 §3.2.2.
REGISTRATION_ERRORS = frozenset(
    {"invalid_redirect_uri", "invalid_client_metadata", "invalid_software_statement", "unapproved_software_statement"}
)
# RFC 7009 §2.2.1 adds unsupported_token_type to RFC 6749 §5.2.
REVOCATION_ERRORS = TOKEN_ERRORS | {"unsupported_token_type"}
# RFC 6750 §3.1.
BEARER_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})
# What a 502/503/504 says: the IdP (not the client) failed (RFC 6749 §4.1.2.1 codes).
IDP_FAULT_ERRORS = frozenset({"server_error", "temporarily_unavailable"})
IDP_FAULT_STATUSES = frozenset({502, 503, 504})

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# RFC 6750 §3: the challenge's auth-params, as the shim writes them.
_CHALLENGE_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def assert_no_server_error(response: httpx.Response) -> None:
    """Never a 5xx except the documented 502/503/504 for IdP faults."""
    assert response.status_code < 500 or response.status_code in IDP_FAULT_STATUSES, (
        response.status_code,
        response.text[:500],
    )


def assert_json_error(response: httpx.Response, allowed: Iterable[str], *, used_authorization_header: bool = False) -> dict[str, str]:
    """An RFC 6749 §5.2 shaped error: JSON object, registered ``error``, ASCII description.

    5xx answers (IdP faults) must say ``server_error`` or ``temporarily_unavailable``; a 401
    must carry ``WWW-Authenticate``; an ``invalid_client`` to a client that authenticated with
    the Authorization header must be a 401 (RFC 6749 §5.2).
    """
    assert_no_server_error(response)
    assert 400 <= response.status_code < 600, (response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").split(";")[0].strip() == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict), body
    error = body.get("error")
    assert isinstance(error, str), body
    if response.status_code in IDP_FAULT_STATUSES:
        assert error in IDP_FAULT_ERRORS, body
    else:
        assert error in set(allowed), body
    description = body.get("error_description")
    if description is not None:
        assert isinstance(description, str) and _DESCRIPTION.fullmatch(description), body
    if response.status_code == 401:
        assert response.headers.get("www-authenticate"), "a 401 must name its authentication scheme"
    if error == "invalid_client" and used_authorization_header:
        assert response.status_code == 401, (response.status_code, body)
    return body


def assert_html_error_page(response: httpx.Response) -> None:
    """An error shown to the person: an HTML page, 4xx (or 502/503/504), never cached or framed."""
    assert_no_server_error(response)
    assert 400 <= response.status_code < 600, (response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("text/html"), response.headers
    assert "location" not in response.headers
    assert "no-store" in response.headers.get("cache-control", "")
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")


def assert_bearer_challenge(response: httpx.Response) -> dict[str, str]:
    """RFC 6750 §3: 401/403 with ``WWW-Authenticate: Bearer`` whose ``error`` is registered."""
    assert response.status_code in (400, 401, 403), (response.status_code, response.text[:300])
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer"), response.headers
    params = dict(_CHALLENGE_PARAM.findall(challenge))
    if response.status_code == 403:
        assert params.get("error") == "insufficient_scope", challenge
    if "error" in params:
        assert params["error"] in BEARER_ERRORS, challenge
    if "error_description" in params:
        assert _DESCRIPTION.fullmatch(params["error_description"]), challenge
    return params


def _without_loopback_port(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.port is not None:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return parts._replace(netloc=host).geturl()
    return uri


def redirect_target_allowed(location: str, registered: Iterable[str], idp_authorize: str | None) -> bool:
    """``location`` is a registered redirect URI (exactly, any port for loopback http) with the
    answer's parameters appended, or the IdP's authorization endpoint with its parameters."""
    targets = [(_without_loopback_port(uri), uri) for uri in registered]
    if idp_authorize is not None:
        targets.append((idp_authorize, idp_authorize))
    candidate = _without_loopback_port(location)
    for target, original in targets:
        # The client's own query stays (RFC 6749 §3.1.2); ours is appended after ? or &.
        joiner = "&" if "?" in original else "?"
        if candidate.startswith(target + joiner) or location.startswith(original + joiner):
            return True
    return False


def assert_redirect_only_to(response: httpx.Response, registered: Iterable[str], idp_authorize: str | None = None) -> None:
    """No 3xx ``Location`` except to an exactly registered URI or the IdP's authorize endpoint."""
    if 300 <= response.status_code < 400 or "location" in response.headers:
        location = response.headers.get("location", "")
        registered = list(registered)
        assert redirect_target_allowed(location, registered, idp_authorize), (location, registered)


def assert_nothing_leaks(response: httpx.Response, logs: Iterable[str], secrets: Iterable[str]) -> None:
    """None of ``secrets`` in the answer's headers, body or the log lines."""
    head = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    body = response.content.decode("utf-8", "replace")
    text = "\n".join(logs)
    for secret in secrets:
        if not secret:
            continue
        assert secret not in head, ("headers", secret)
        assert secret not in body, ("body", secret)
        assert secret not in text, ("logs", secret, [line for line in logs if secret in line][:3])


class _Collect(logging.Handler):
    def __init__(self, own_requests: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.own_requests = own_requests
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if record.name.startswith("httpx") and any(origin in line for origin in self.own_requests):
            return  # the test's own client logging the request it sent, not the server
        self.lines.append(line)


@contextlib.contextmanager
def captured_logs(*own_origins: str) -> Iterator[list[str]]:
    """Every log record of the process at DEBUG, formatted (tracebacks included), while open,
    except the test client's own lines about requests it sent to ``own_origins``.

    pytest's ``caplog`` is function-scoped and hypothesis runs many examples per function: this
    handler is attached per example instead.
    """
    root = logging.getLogger()
    handler = _Collect(tuple(f"HTTP Request: {m} {o}" for o in own_origins for m in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH")))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def json_or_none(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except ValueError:
        return None
