"""What a strict-mode store does, whichever memory holds it (Redis, or this process).

Four kinds of record, all with a deadline and none holding a secret (every identifier is
reduced to its SHA-256 digest by the store before it is kept):

- a *single-use mark* per consumed value (an authorization code, a consent ticket): OAuth 2.1
  §4.1.2 and RFC 6749 §4.1.2 ("the client MUST NOT use the authorization code more than once");
- a *used mark* per refresh token and a *revoked mark* per refresh-token family: reuse of a
  rotated refresh token revokes the family (RFC 9700 §4.14.2, OAuth 2.1 §4.3.1); a used mark
  is released when the IdP failed to answer the refresh it was set for, so the client's retry
  with the same token is not taken for a reuse;
- a rate-limit TAT per (bucket, key) (see :mod:`mcp_oauth_shim.strict.limits`).
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Protocol

from .limits import RateBucket, RateDecision

__all__ = ["RETENTION_MARGIN_SECONDS", "RefreshUse", "StoreUnavailable", "StrictStore", "digest"]

# Records outlive the value they describe by this much: replicas whose clocks disagree by less
# than this still agree that a value was used. A value the shim accepts until ``until`` on its
# own clock is accepted by a replica whose clock is behind until a little later.
RETENTION_MARGIN_SECONDS = 60.0


def digest(value: str) -> str:
    """SHA-256 of ``value`` in hex: what is stored instead of a code, a token id or an address."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class RefreshUse(Enum):
    """What presenting a refresh token means for its family (RFC 9700 §4.14.2)."""

    FIRST_USE = "first_use"  # honour it, and rotate
    REUSED = "reused"  # used before: the family is now revoked; refuse with invalid_grant
    REVOKED = "revoked"  # the family was revoked earlier; refuse with invalid_grant

    @property
    def ok(self) -> bool:
        return self is RefreshUse.FIRST_USE


class StoreUnavailable(Exception):
    """The store could not answer in time (connection refused or lost, timeout, read-only
    replica). The message names the failure's type, never an address or a credential."""


class StrictStore(Protocol):
    """The operations :class:`~mcp_oauth_shim.strict.StrictMode` runs; ``until`` is a Unix
    time (``time.time()``) after which the record is no longer needed."""

    covers_replicas: bool

    async def consume_once(self, kind: str, identifier: str, until: float) -> bool: ...

    async def use_refresh(self, family: str, token_id: str, until: float) -> RefreshUse: ...

    async def release_refresh(self, family: str, token_id: str) -> bool:
        """Forget the used mark of ``token_id``, atomically and only while ``family`` is not
        revoked (a revocation is never undone); whether a mark was released."""
        ...

    async def is_family_revoked(self, family: str) -> bool: ...

    async def revoke_family(self, family: str, until: float) -> None: ...

    async def hit(self, bucket: RateBucket, key: str) -> RateDecision: ...

    async def aclose(self) -> None: ...
