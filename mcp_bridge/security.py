"""Host/Origin checks of the MCP endpoint (MCP 2025-11-25 "Transports", Security Warning).

A DNS-rebinding page reaches a local server with a foreign `Host` or `Origin`; both are
checked on every request. The rules are the SDK's `TransportSecurityMiddleware` rules (exact
value, or `name:*` for any port; a missing Origin is a same-origin request; a missing Host is
refused) so that the fast path and the SDK path always agree - `to_sdk()` hands the same lists
to the SDK. Kept here rather than imported so that serving `tools/list` never loads the SDK.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcp_oauth_shim.memo import BoundedMemo

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings

logger = logging.getLogger("mcp_bridge")

# Bounds the memo of refusals: Host/Origin values come from clients.
_MAX_MEMO = 256

# RFC 9110 §15.5.20 421 Misdirected Request. The Host itself is not echoed: the log has it.
FOREIGN_HOST_BODY = (
    b"421 Misdirected Request: this MCP endpoint does not answer to the Host name in the request "
    b"(DNS rebinding protection). If clients reach the server under that name, its operator "
    b"adds it to allowed_hosts=[...] of mount_http() / mount_sse(); the server log names the host."
)


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def default_allowed(public_url: str | None) -> tuple[list[str], list[str]]:
    """The default (allowed hosts, allowed origins): loopback on any port, and `public_url`'s
    host and origin when given (an absolute URL)."""
    hosts = [h for base in _LOOPBACK_HOSTS for h in (base, base + ":*")]
    origins = [f"{scheme}://{h}{port}" for h in _LOOPBACK_HOSTS for scheme in ("http", "https") for port in ("", ":*")]
    public = urlsplit(public_url or "")
    if public.netloc:
        hosts.append(public.netloc)
        origins.append(f"{public.scheme}://{public.netloc}")
    return hosts, origins


def _allowed(value: str, patterns: Sequence[str]) -> bool:
    if value in patterns:
        return True
    return any(pattern.endswith(":*") and value.startswith(pattern[:-1]) for pattern in patterns)


# What the memo holds for a request that is not refused (`BoundedMemo` gives None for "unknown").
_ALLOWED = 0


@dataclass(frozen=True)
class HostOriginPolicy:
    """The Host and Origin values an endpoint answers to (exact, or `name:*` for any port)."""

    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    _refusals: BoundedMemo[tuple[str | None, str | None], int] = field(
        default_factory=lambda: BoundedMemo(_MAX_MEMO), init=False, repr=False, compare=False
    )

    def refusal(self, host: str | None, origin: str | None) -> int | None:
        """The HTTP status to refuse with (421 foreign Host, 403 foreign Origin), or None."""
        key = (host, origin)
        known = self._refusals.get(key)
        if known is not None:
            return known or None
        status: int | None = None
        if not host or not _allowed(host, self.allowed_hosts):
            status = 421
            # Once per value while remembered (the memo): a refused Host must be visible to the operator.
            logger.warning(
                "refused a request for Host %r with 421: not in allowed_hosts %s. If clients reach "
                "this server under that name, pass allowed_hosts=[...] to mount_http() / mount_sse().",
                (host or "")[:200],
                list(self.allowed_hosts),
            )
        elif origin and not _allowed(origin, self.allowed_origins):
            status = 403
        self._refusals.put(key, status or _ALLOWED)
        return status

    def to_sdk(self) -> TransportSecuritySettings:
        """The same lists as the SDK's settings (its transports check them again)."""
        from mcp.server.transport_security import TransportSecuritySettings

        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(self.allowed_hosts),
            allowed_origins=list(self.allowed_origins),
        )


@functools.lru_cache(maxsize=_MAX_MEMO)
def accepts(accept: str) -> tuple[bool, bool]:
    """(JSON acceptable, SSE acceptable) for an Accept header, wildcards included (RFC 9110 §12.5.1)."""
    types = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    anything = "*/*" in types
    return (
        anything or "application/json" in types or "application/*" in types,
        anything or "text/event-stream" in types or "text/*" in types,
    )
