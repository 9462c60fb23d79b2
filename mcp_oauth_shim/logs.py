"""Keep codes, states and tokens out of access logs.

The shim itself never logs them, but a server's access log prints every request line, and the
query strings of ``/oauth/callback`` (the IdP's code, the signed state) and ``/oauth/authorize``
(the client's state) are secrets. :class:`OAuthShim` therefore installs
:class:`RedactQueryStrings` on the ``uvicorn.access`` logger when it is constructed
(:func:`redact_access_logs`; ``OAuthShim(redact_access_logs=False)`` opts out).

Why on the *logger*, when the shim is constructed: uvicorn configures logging with
``logging.config.dictConfig`` (or ``fileConfig`` for ``--log-config x.ini``) either before the
app module is imported (``uvicorn module:app``, workers) or after the app was built
(``uvicorn.run(app)``). Both replace the handlers of the loggers they name, and with them any
filter on a handler, but leave a logger's own filters in place; gunicorn's ``UvicornWorker``
also only swaps handlers. So a filter on the logger works in either order and with any log
configuration, and nothing depends on the lifespan being run (``shim.routes`` mounted in an
app of your own does not run the shim's lifespan).

Every query string on that logger is redacted, not only the shim's: the filter is process-wide,
the paths the shim serves depend on its ``Paths`` and on any ``root_path`` prefix, and an
application's own query strings may carry secrets too (RFC 6750 §2.3 ``access_token=``).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from typing import Any

# Where ASGI servers print request lines with their query strings. uvicorn (also under gunicorn
# with ``uvicorn.workers.UvicornWorker``) is the one the shim is served with; hypercorn's default
# access format (``%(r)s``) prints the path without the query string.
ACCESS_LOGGER = "uvicorn.access"

# Everything from "?" to the next white space: a quote inside the query (a client may send
# one) must not end the redaction early.
_QUERY = re.compile(r"\?\S*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_installing = threading.Lock()


def redact(text: str) -> str:
    """Drop query strings and bearer credentials from a log message."""
    return _BEARER.sub(r"\1[redacted]", _QUERY.sub("?[redacted]", text))


def without_password(url: str) -> str:
    """``url`` with the password of its userinfo (RFC 3986 §3.2.1) replaced by ``<redacted>``:
    fit to print in a log line or a configuration report, the user name still saying which
    account it is."""
    scheme, separator, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (separator and at and colon and password):
        return url
    return f"{scheme}://{user}:<redacted>@{host}{slash}{path}"


class RedactQueryStrings(logging.Filter):
    """A logging filter that removes query strings (and bearer tokens) from records."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Positional arguments only: a mapping (hypercorn's access atoms) is left as it is.
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_logs() -> None:
    """Install :class:`RedactQueryStrings` on the access logger, once per process.

    Idempotent: several shims (or an explicit call besides one) install a single filter.
    """
    with _installing:
        logger = logging.getLogger(ACCESS_LOGGER)
        if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
            logger.addFilter(RedactQueryStrings())


def uvicorn_log_config(format: str | None = None) -> dict[str, Any]:
    """uvicorn's default logging configuration with query strings redacted from access logs.

    ``format``: ``"json"`` or ``"text"`` prints uvicorn's lines and every other record of the
    process (the root logger) in that format, with the request id
    (:mod:`mcp_oauth_shim.log_format`); ``None`` keeps uvicorn's own formats.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    filters = config.setdefault("filters", {})
    filters["redact_queries"] = {"()": RedactQueryStrings}
    config["handlers"]["access"]["filters"] = ["redact_queries"]
    if format is not None:
        from .log_format import formatter_for

        formatter_for(format)  # type: ignore[arg-type]  # refuses an unknown format now
        filters["log_context"] = {"()": "mcp_oauth_shim.log_context.LogContextFilter"}
        factory = "mcp_oauth_shim.log_format.JsonFormatter" if format == "json" else "mcp_oauth_shim.log_format.TextFormatter"
        config["formatters"] = {"shim": {"()": factory}}
        for handler in config["handlers"].values():
            handler["formatter"] = "shim"
            handler["filters"] = [*handler.get("filters", ()), "log_context"]
        # Every other logger (the shim's, the application's) through the same handler.
        config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
