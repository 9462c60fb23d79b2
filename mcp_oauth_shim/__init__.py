"""mcp-oauth-shim: let any MCP server accept logins from any existing identity provider.

>>> from mcp_oauth_shim import OAuthShim, Upstream
"""

from .config import ConfigurationError, Upstream
from .context import Lifetimes, Paths
from .shim import OAuthShim
from .upstream import UpstreamError

__all__ = ["ConfigurationError", "Lifetimes", "OAuthShim", "Paths", "Upstream", "UpstreamError"]
__version__ = "0.1.0"
