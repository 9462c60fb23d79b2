"""mcp-oauth-shim: let any MCP server accept logins from any existing identity provider.

>>> from mcp_oauth_shim import OAuthShim, Upstream

The public names load on first use (PEP 562), so importing one small submodule (the bridge
uses :mod:`mcp_oauth_shim.jsonsafe`) does not pull in the whole OAuth stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import AccessTokenProfile, ConfigurationError, Lifetimes, Paths, Upstream
    from .issued_verifier import IssuedAccessToken
    from .shim import OAuthShim
    from .upstream import UpstreamError

__all__ = [
    "AccessTokenProfile",
    "ConfigurationError",
    "IssuedAccessToken",
    "Lifetimes",
    "OAuthShim",
    "Paths",
    "Upstream",
    "UpstreamError",
]
__version__ = "0.1.0"

_HOMES = {
    "AccessTokenProfile": ".config",
    "ConfigurationError": ".config",
    "Upstream": ".config",
    "Lifetimes": ".config",
    "Paths": ".config",
    "OAuthShim": ".shim",
    # Imports the mcp SDK (it extends the SDK's AccessToken): loaded only when named.
    "IssuedAccessToken": ".issued_verifier",
    "UpstreamError": ".upstream",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mcp_oauth_shim' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
