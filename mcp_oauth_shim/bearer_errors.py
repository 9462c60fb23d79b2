"""Why a bearer token is refused (RFC 6750 §3.1), shared by the verifier and its parts."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["InsufficientScope", "InvalidToken"]


class InvalidToken(Exception):
    """The token must not be accepted (RFC 6750 §3.1 ``invalid_token``).

    ``description`` is safe to show the client: it never contains the token or claim values.
    ``reason`` is what the refusal is counted as (``invalid``, ``expired``, ``wrong_audience``).
    """

    def __init__(self, description: str, *, reason: str = "invalid") -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


class InsufficientScope(Exception):
    """The token is valid but lacks scopes (RFC 6750 §3.1 ``insufficient_scope``).

    ``required`` is every scope the request needs (so a client's step-up keeps what it has);
    ``missing`` the ones the token lacks.
    """

    def __init__(self, required: Sequence[str], missing: Sequence[str]) -> None:
        super().__init__("The access token lacks required scopes: " + " ".join(missing))
        self.required = tuple(required)
        self.missing = tuple(missing)
        self.description = str(self)
