"""Everything the shim says to the identity provider, in three layers.

- :mod:`.client`: what is asked (discovery, the token endpoint, revocation, JSON documents),
  with bounded timeouts and every failure mapped to :class:`UpstreamError`; how the shim
  authenticates itself is :mod:`.client_auth`;
- :mod:`.transport`: the one way bytes travel, chosen when the client is built (the pool, or
  an httpx client the operator passed);
- :mod:`.pool`: the keep-alive HTTP/1.1 connection pool the hot POSTs travel on;
- :mod:`.framing`: where one HTTP/1.1 response ends (llhttp through ``httptools``).
"""

from .client import (
    UpstreamClient,
    UpstreamError,
    UpstreamMetadata,
    default_http_client,
    exchange,
    get_json,
)
from .client_auth import client_authentication
from .transport import HttpxTransport, Transport

__all__ = [
    "HttpxTransport",
    "Transport",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamMetadata",
    "client_authentication",
    "default_http_client",
    "exchange",
    "get_json",
]
