"""Strict mode: what a stateless shim cannot promise, kept in a small store.

- single use of codes and consent tickets (:meth:`StrictMode.consume_once`);
- refresh-token reuse detection: a refresh token presented twice revokes its whole family
  (:meth:`StrictMode.use_refresh`, :meth:`StrictMode.revoke_family`);
- rate limits per client and per address (:meth:`StrictMode.hit`, :class:`RateLimits`).

``StrictMode.redis(url)`` shares the records between replicas (the ``redis`` extra);
``StrictMode.in_memory()`` keeps them in one process. Nothing here imports ``redis`` until
``StrictMode.redis`` is called.
"""

from .limits import RateBucket, RateDecision, RateLimit, RateLimits
from .mode import OnUnavailable, StrictMode, StrictModeUnavailable
from .store import RefreshUse, StoreUnavailable, StrictStore

__all__ = [
    "OnUnavailable",
    "RateBucket",
    "RateDecision",
    "RateLimit",
    "RateLimits",
    "RefreshUse",
    "StoreUnavailable",
    "StrictMode",
    "StrictModeUnavailable",
    "StrictStore",
]
