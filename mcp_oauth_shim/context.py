"""What every endpoint handler shares: settings derived once, the sealer, the IdP client."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .clients import ClientResolver
from .config import Lifetimes, Paths, Upstream
from .sealing import Sealer
from .upstream import UpstreamClient

if TYPE_CHECKING:
    from .id_jag import IdJagVerifier
    from .issuing import IssuedMode
    from .machine_clients import MachineClients
    from .strict import StrictMode


@dataclass
class ShimContext:
    public_url: str  # no trailing slash
    issuer: str
    resource: str
    upstream: Upstream
    upstream_client: UpstreamClient
    sealer: Sealer
    clients: ClientResolver
    scopes_supported: tuple[str, ...]
    default_scopes: tuple[str, ...]
    lifetimes: Lifetimes
    paths: Paths
    resource_name: str | None = None
    metadata_documents: bool = False
    # Single use, refresh-token reuse detection and rate limits; None: the stateless shim.
    strict: StrictMode | None = None
    # Issued-token mode: the shim's keys, cipher, token issuer and identity source; None when
    # the IdP's tokens are passed through.
    issued: IssuedMode | None = None
    # Operator-registered confidential clients (client_credentials, jwt-bearer) and the
    # enterprise IdPs whose ID-JAGs are accepted; None when none are configured.
    machine_clients: MachineClients | None = None
    id_jag: IdJagVerifier | None = None

    def url(self, path: str) -> str:
        return self.public_url + path

    def route_path(self, path: str) -> str:
        """Where a route lives on the host: the public URL's own path plus the endpoint path."""
        return urlsplit(self.public_url).path.rstrip("/") + path

    @cached_property
    def callback_url(self) -> str:
        return self.url(self.paths.callback)

    @property
    def secure_cookies(self) -> bool:
        # RFC 3986 §3.1: the scheme is case-insensitive ("HTTPS://" is https too).
        return self.public_url[:8].lower() == "https://"

    def cookie_name(self, name: str) -> str:
        # RFC 6265bis §4.1.3.2: __Host- pins the cookie to this host, https and path /.
        return ("__Host-" if self.secure_cookies else "") + name

    @property
    def origin(self) -> str:
        """The public URL's origin as a browser sends it in ``Origin`` (RFC 6454 §6.1): lower-case
        scheme and host, the port only when it is not the scheme's default."""
        parts = urlsplit(self.public_url)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        port = parts.port
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")
