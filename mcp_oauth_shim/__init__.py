"""mcp-oauth-shim: let any MCP server accept logins from any existing identity provider.

>>> from mcp_oauth_shim import OAuthShim, Upstream

The public names load on first use (PEP 562), so importing one small submodule (the bridge
uses :mod:`mcp_oauth_shim.jsonsafe`) does not pull in the whole OAuth stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .caller import Caller, UpstreamTokenUnavailable, current_caller
    from .config import AccessTokenProfile, ConfigurationError, Lifetimes, Paths, Upstream
    from .id_jag import EnterpriseIdP
    from .issued_verifier import IssuedAccessToken
    from .machine_clients import MachineClient
    from .shim import OAuthShim
    from .upstream import UpstreamError

__all__ = [
    "AccessTokenProfile",
    "Caller",
    "ConfigurationError",
    "EnterpriseIdP",
    "IssuedAccessToken",
    "Lifetimes",
    "MachineClient",
    "OAuthShim",
    "Paths",
    "Upstream",
    "UpstreamError",
    "UpstreamTokenUnavailable",
    "current_caller",
]
__version__ = "0.1.0"

# Where each public name lives, as in the imports above.
_MODULES = {
    ".config": ("AccessTokenProfile", "ConfigurationError", "Lifetimes", "Paths", "Upstream"),
    ".shim": ("OAuthShim",),
    ".machine_clients": ("MachineClient",),
    ".id_jag": ("EnterpriseIdP",),
    # Imports the mcp SDK (it extends the SDK's AccessToken): loaded only when named.
    ".issued_verifier": ("IssuedAccessToken",),
    ".upstream": ("UpstreamError",),
    ".caller": ("Caller", "UpstreamTokenUnavailable", "current_caller"),
}
_HOMES = {name: home for home, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mcp_oauth_shim' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
