"""What every log record of a request carries: its request id and, during a login, the login's
correlation id.

Both live in :mod:`contextvars` variables, so they follow the request through ``await`` and
into tasks it starts, and never leak into another request. :class:`LogContextFilter` copies
them onto each record (``record.request_id``, ``record.login_id``) for a formatter to print;
:class:`~mcp_oauth_shim.log_format.JsonFormatter` does, and a text format can name them
(``%(request_id)s``).

A login is four HTTP requests (authorize, consent, callback, token), each with its own request
id. What they share, and is not secret, is the client's PKCE ``code_challenge`` (RFC 7636
§4.2): it travels in the front channel in clear, and the shim carries it inside its signed
state and code. :func:`login_correlation_id` is a short digest of it, so an operator can find
the four steps of one login without the logs holding anything an attacker could replay.

The digest is taken when a record is written, not when a step binds its login: a SHA-256
through OpenSSL costs about 2 µs, which every callback and token request would otherwise pay
with logging off (a tenth of what those endpoints spend of their own, ``bench/inproc_oauth.py``).
"""

from __future__ import annotations

import hashlib
import logging
from contextvars import ContextVar

__all__ = [
    "LogContextFilter",
    "bind_login",
    "current_login_id",
    "login_challenge_var",
    "login_correlation_id",
    "request_id_var",
]

#: The id of the HTTP request being served (``X-Request-ID``), or ``None`` outside one.
request_id_var: ContextVar[str | None] = ContextVar("mcp_oauth_shim_request_id", default=None)
#: The PKCE challenge of the login this request is a step of, or ``None``; the login's id is
#: derived from it on demand (:func:`current_login_id`).
login_challenge_var: ContextVar[str | None] = ContextVar("mcp_oauth_shim_login_challenge", default=None)

# 12 hex digits (48 bits): unique enough to tell apart the logins of a busy day, too short to
# be mistaken for (or used as) anything else. A digest of a public value reveals nothing new.
_LOGIN_ID_HEX = 12


def login_correlation_id(code_challenge: str) -> str:
    """A short, stable, non-secret id for the login started with ``code_challenge``."""
    return hashlib.sha256(b"login:" + code_challenge.encode("utf-8", "replace")).hexdigest()[:_LOGIN_ID_HEX]


def bind_login(code_challenge: str | None) -> None:
    """Mark the current request as a step of the login of ``code_challenge``."""
    if code_challenge:
        login_challenge_var.set(code_challenge)


def current_login_id() -> str | None:
    """The id of the login the current request is a step of, or ``None``."""
    challenge = login_challenge_var.get()
    return login_correlation_id(challenge) if challenge else None


class LogContextFilter(logging.Filter):
    """Adds ``request_id`` and ``login_id`` to every record (``None`` outside a request).

    A record that already has them (given with ``extra=``) keeps its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "login_id"):
            record.login_id = current_login_id()
        return True
