"""The shims the fuzz modules attack: the development IdP and the shim in one process.

Like ``tests/shim/kit.py`` (whose ``Kit`` drives the browser part), with the choices the fuzz
modules vary: the public URL (``https`` gives the ``__Host-`` cookies), the registration mode,
and client ID metadata documents served by an in-process document server whose answer a test
may replace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.cimd import ClientMetadataDocuments
from mcp_oauth_shim.dev_idp import DevIdP
from mcp_oauth_shim.sealing import CODE, digest
from tests.shim.kit import CLIENT_REDIRECT, IDP_ISSUER, SECRET_KEY, Kit, pkce_pair

HTTPS_PUBLIC_URL = "https://mcp.example.com"
HTTP_PUBLIC_URL = "http://127.0.0.1:8000"
CIMD_CLIENT_ID = "https://client.example.com/oauth/client.json"
CIMD_REDIRECTS = (CLIENT_REDIRECT, "https://client.example.com/cb")
PUBLIC_ADDRESS = "93.184.216.34"


def cimd_document(client_id: str = CIMD_CLIENT_ID, **changes: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": "Fuzzed client",
        "redirect_uris": list(CIMD_REDIRECTS),
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        **changes,
    }


@dataclass
class DocumentServer:
    """Serves client ID metadata documents in-process; ``answer`` builds the response."""

    answer: Callable[[httpx.Request], httpx.Response] = field(
        default=lambda request: httpx.Response(200, json=cimd_document(), headers={"Cache-Control": "no-store"})
    )
    resolve_to: list[str] | OSError = field(default_factory=lambda: [PUBLIC_ADDRESS])
    requests: list[httpx.Request] = field(default_factory=list, repr=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Short in hypothesis' falsifying examples (it prints dataclass fields itself)."""
        printer.text(f"DocumentServer(resolve_to={self.resolve_to!r}, {len(self.requests)} requests)")

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    async def resolver(self, host: str, port: int) -> list[str]:
        if isinstance(self.resolve_to, OSError):
            raise self.resolve_to
        return list(self.resolve_to)

    def documents(self) -> ClientMetadataDocuments:
        # No caching: every example's document is fetched and judged afresh.
        return ClientMetadataDocuments(
            http=httpx.AsyncClient(transport=httpx.MockTransport(self.handler)),
            allow_http_loopback=True,
            resolver=self.resolver,
            min_cache_seconds=0,
            default_cache_seconds=0,
            max_cache_seconds=0,
        )


class CountingTransport(httpx.AsyncBaseTransport):
    """The IdP's transport, counting the requests that reach it (by path)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


@dataclass
class FuzzKit(Kit):
    public_url: str = HTTP_PUBLIC_URL
    documents: DocumentServer | None = None
    idp_transport: CountingTransport | None = None

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Short in hypothesis' falsifying examples (it prints dataclass fields itself)."""
        printer.text(f"FuzzKit(public_url={self.public_url!r}, registration={self.shim.registration!r})")

    @property
    def resource(self) -> str:
        return self.public_url + "/mcp"

    @property
    def idp_authorize(self) -> str:
        return IDP_ISSUER + "/authorize"

    @property
    def secrets(self) -> list[str]:
        """What must never reach a client or a log line."""
        return [self.idp.client_secret, SECRET_KEY]

    def authorize_query(self, client_id: str, challenge: str, redirect_uri: str = CLIENT_REDIRECT) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "client-state",
            "resource": self.resource,
        }

    def consent_page(self, query: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """GET /oauth/authorize; the consent form's hidden fields and the cookies it set."""
        self.client.cookies.clear()
        page = self.client.get("/oauth/authorize", params=query, follow_redirects=False)
        assert page.status_code == 200, page.text
        fields = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
        cookies = dict(page.cookies)
        self.client.cookies.clear()
        return fields, cookies

    def approved(self, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        """Consent approved: the IdP authorize URL and the binding cookie(s) set with it."""
        fields, cookies = self.consent_page(query)
        response = self.client.post(
            "/oauth/consent", data={**fields, "decision": "approve"}, cookies=cookies, follow_redirects=False
        )
        assert response.status_code == 303, response.text
        flow = dict(response.cookies)
        self.client.cookies.clear()
        return response.headers["location"], flow

    def callback_query(self, idp_authorize_url: str) -> dict[str, str]:
        """The IdP's answer to an approved login: the query of the shim's callback."""
        location = self.idp_round_trip(idp_authorize_url)
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def sealed_code(self, client_id: str, challenge: str, upstream_code: str = "upstream-code") -> str:
        """An authorization code the shim would have relayed (for token requests past the
        local checks without a browser round trip)."""
        return self.shim.context.sealer.seal(
            CODE,
            {"u": upstream_code, "c": digest(client_id), "r": CLIENT_REDIRECT, "rg": 1, "cc": challenge, "sc": "openid profile"},
        )


def build_kit(
    *,
    public_url: str = HTTP_PUBLIC_URL,
    registration: str = "signed",
    documents: DocumentServer | None = None,
    http: httpx.AsyncClient | None = None,
    **shim_options: Any,
) -> FuzzKit:
    idp = DevIdP(
        issuer=IDP_ISSUER,
        redirect_uris=[public_url + "/oauth/callback"],
        auto_approve=True,
        send_iss=True,
        audiences=[public_url + "/mcp"],
    )
    upstream = Upstream.oidc(
        issuer=IDP_ISSUER,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        audience=public_url + "/mcp",
        default_scopes=("openid", "profile"),
        extra_scopes=("offline_access",),
    )
    transport = CountingTransport(httpx.ASGITransport(app=idp.app))
    if registration == "static":
        shim_options.setdefault("allowed_redirect_uris", [CLIENT_REDIRECT])
    shim = OAuthShim(
        public_url=public_url,
        upstream=upstream,
        secret_keys=[SECRET_KEY],
        registration=registration,  # type: ignore[arg-type]
        client_metadata_documents=documents.documents() if documents is not None else False,
        http_client=http or httpx.AsyncClient(transport=transport, base_url=IDP_ISSUER),
        **shim_options,
    )
    return FuzzKit(
        idp=idp,
        shim=shim,
        client=TestClient(shim.app, base_url=public_url, raise_server_exceptions=False),
        idp_client=TestClient(idp.app, base_url=IDP_ISSUER),
        public_url=public_url,
        documents=documents,
        idp_transport=transport if http is None else None,
    )


def registered_client(kit: FuzzKit, redirect_uris: list[str] | None = None) -> str:
    response = kit.client.post("/oauth/register", json={"redirect_uris": redirect_uris or [CLIENT_REDIRECT], "client_name": "Fuzz"})
    assert response.status_code == 201, response.text
    return response.json()["client_id"]


__all__ = [
    "CIMD_CLIENT_ID",
    "CIMD_REDIRECTS",
    "CLIENT_REDIRECT",
    "DocumentServer",
    "FuzzKit",
    "build_kit",
    "cimd_document",
    "pkce_pair",
    "registered_client",
]
