"""Everything the shim says to the identity provider, in three layers.

- :mod:`.client`: what is asked (discovery, the token endpoint, revocation, JSON documents),
  with bounded timeouts and every failure mapped to :class:`UpstreamError`;
- :mod:`.pool`: the keep-alive HTTP/1.1 connection pool the hot POSTs travel on;
- :mod:`.framing`: where one HTTP/1.1 response ends (llhttp through ``httptools``).
"""

from .client import DISCOVERY_TTL, MAX_JSON_BYTES, UpstreamClient, UpstreamError, UpstreamMetadata, default_http_client

__all__ = ["DISCOVERY_TTL", "MAX_JSON_BYTES", "UpstreamClient", "UpstreamError", "UpstreamMetadata", "default_http_client"]
