"""Rate limits for the registration, authorization and token endpoints, as values.

The algorithm is GCRA, the generic cell rate algorithm (the "virtual scheduling" form of ITU-T
I.371, the token bucket seen from the clock): a limit of ``requests`` per ``period`` admits one
request every ``period / requests`` seconds on average and a burst of up to ``requests`` at
once. Each (bucket, key) keeps one number, the *theoretical arrival time* (TAT) of the next
request if the key sent at exactly the allowed rate. A request at ``now`` is admitted when
``TAT - period + interval <= now`` and then moves the TAT on by one interval.

Why GCRA rather than a fixed window (``INCR`` plus ``EXPIRE``): the same cost (one key, one
round trip, one small script), but no double burst at the boundary between two windows, and
the refusal says exactly when the next request will be admitted, which is what ``Retry-After``
(RFC 9110 §10.2.3, RFC 6585 §4) should carry. A sliding log would need one entry per request.

:func:`gcra` is the rule in Python (the in-memory store runs it); the Redis store runs the same
rule as a Lua script, on the Redis server's clock, so every replica counts on one clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["GcraStep", "RateBucket", "RateDecision", "RateLimit", "RateLimits", "gcra"]


class RateBucket(StrEnum):
    """What is counted, and by which key the endpoint counts it.

    The key the endpoint passes to :meth:`~mcp_oauth_shim.strict.StrictMode.hit` is named in
    each member's comment ("IP address": an IPv6 caller's /64 network); a key is reduced to its
    SHA-256 digest before it is stored.
    """

    REGISTER_IP = "register-ip"  # POST /oauth/register, keyed by the caller's IP address
    AUTHORIZE_IP = "authorize-ip"  # GET /oauth/authorize, keyed by the caller's IP address
    AUTHORIZE_CLIENT_IP = "authorize-client-ip"  # GET /oauth/authorize, keyed by client_id and IP address
    TOKEN_IP = "token-ip"  # POST /oauth/token, keyed by the caller's IP address
    TOKEN_CLIENT_IP = "token-client-ip"  # POST /oauth/token, keyed by client_id and IP address


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` per ``period_seconds``, a burst of ``requests`` included."""

    requests: int
    period_seconds: float

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError("RateLimit.requests must be at least 1")
        if not self.period_seconds > 0:
            raise ValueError("RateLimit.period_seconds must be positive")

    @property
    def interval_ms(self) -> int:
        """The average time between two admitted requests, in whole milliseconds (rounded up)."""
        return max(1, math.ceil(self.period_seconds * 1000 / self.requests))

    @property
    def period_ms(self) -> int:
        """The period as GCRA counts it: ``requests`` whole intervals, so that a burst of exactly
        ``requests`` is admitted. The interval is rounded up to a whole millisecond; the period
        itself rounded would fall short of ``requests`` intervals whenever they do not divide it
        (3 in 10 s: intervals of 3334 ms, two of which fit before 10000 - 3334) and admit one fewer."""
        return self.interval_ms * self.requests


@dataclass(frozen=True, slots=True)
class RateLimits:
    """One limit per :class:`RateBucket`; ``None`` turns that bucket off.

    The defaults stop scripted abuse without touching people: a client registers once per
    installation (30 a minute per address); a person starts a few logins a minute (60 a minute
    per client and address, 300 a minute per address for a shared NAT); clients refresh far
    less often than that. An MCP client that calls the token endpoint *from its own servers*
    for all its users (claude.ai, ChatGPT) sends every user's refreshes from a few addresses:
    raise ``token_ip`` and ``token_client_ip`` (or set them to ``None``) if you serve many
    users of such a client. (A :class:`RateLimit` is frozen, so the defaults can be shared.)
    """

    register_ip: RateLimit | None = RateLimit(30, 60.0)
    authorize_ip: RateLimit | None = RateLimit(300, 60.0)
    authorize_client_ip: RateLimit | None = RateLimit(60, 60.0)
    token_ip: RateLimit | None = RateLimit(600, 60.0)
    token_client_ip: RateLimit | None = RateLimit(60, 60.0)

    @classmethod
    def off(cls) -> RateLimits:
        """No rate limit at all (single use and refresh families still apply)."""
        return cls(None, None, None, None, None)

    def for_bucket(self, bucket: RateBucket) -> RateLimit | None:
        limit: RateLimit | None = getattr(self, bucket.value.replace("-", "_"))
        return limit


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether one request is admitted; when refused, the whole seconds until one would be
    (the value of the ``Retry-After`` header of the 429 answer, at least 1)."""

    allowed: bool
    retry_after_seconds: int = 0

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` for a refusal (RFC 6585 §4), nothing for an admitted request."""
        return {} if self.allowed else {"Retry-After": str(self.retry_after_seconds)}


ALLOWED = RateDecision(True, 0)


def refused_after_ms(wait_ms: float) -> RateDecision:
    """A refusal whose next admission is ``wait_ms`` away, rounded up to whole seconds."""
    return RateDecision(False, max(1, math.ceil(wait_ms / 1000)))


@dataclass(frozen=True, slots=True)
class GcraStep:
    """The outcome of one request under GCRA: admitted (and the new TAT), or the wait."""

    allowed: bool
    new_tat_ms: float  # unchanged when refused
    wait_ms: float  # 0 when admitted


def gcra(tat_ms: float | None, now_ms: float, limit: RateLimit) -> GcraStep:
    """One request at ``now_ms`` against the stored TAT (``None``: nothing stored)."""
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    new_tat = tat + limit.interval_ms
    admit_at = new_tat - limit.period_ms
    if now_ms < admit_at:
        return GcraStep(False, tat, admit_at - now_ms)
    return GcraStep(True, new_tat, 0.0)
