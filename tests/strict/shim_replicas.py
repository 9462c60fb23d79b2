"""Replicas of the shim in one process: several ``OAuthShim`` objects with the same secret keys
and the same strict-mode store, as several processes behind a load balancer would be, each
reached through ``httpx.ASGITransport`` (one event loop, so redis.asyncio pools work), in
front of one development IdP (authlib based) whose token endpoint calls are counted.

``Browser`` walks authorize -> consent -> IdP -> callback against any replica, keeping its own
cookies; ``Login`` is what the MCP client ends up with (code, verifier, client_id).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.dev_idp import DevIdP
from mcp_oauth_shim.strict import StrictMode

PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
IDP_ISSUER = "http://127.0.0.1:9000"
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
SECRET_KEY = "r" * 48
DEFAULT_ADDRESS = "198.51.100.7"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class CountingApp:
    """ASGI wrapper counting the requests per path that reach the IdP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests[scope["path"]] += 1
        await self.app(scope, receive, send)


@dataclass
class IdP:
    dev: DevIdP
    counted: CountingApp

    @property
    def token_calls(self) -> int:
        return self.counted.requests["/oauth/token"]

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.counted), base_url=IDP_ISSUER)

    def upstream(self) -> Upstream:
        return Upstream.oidc(
            issuer=IDP_ISSUER,
            client_id=self.dev.client_id,
            client_secret=self.dev.client_secret,
            audience=RESOURCE,
            default_scopes=("openid", "profile"),
            extra_scopes=("offline_access",),
        )


def make_idp() -> IdP:
    dev = DevIdP(
        issuer=IDP_ISSUER,
        redirect_uris=[PUBLIC_URL + "/oauth/callback"],
        auto_approve=True,
        send_iss=True,
        audiences=[RESOURCE],
    )
    return IdP(dev, CountingApp(dev.app))


@dataclass
class Replica:
    """One replica of the shim, reached in process."""

    shim: OAuthShim
    idp_http: httpx.AsyncClient

    def client(self, address: str = DEFAULT_ADDRESS) -> httpx.AsyncClient:
        """An HTTP client whose requests come from ``address`` (the ASGI scope's ``client``)."""
        transport = httpx.ASGITransport(app=self.shim.app, client=(address, 50000))
        return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)

    async def aclose(self) -> None:
        await self.shim.aclose()
        await self.idp_http.aclose()


def make_replica(idp: IdP, strict: StrictMode | None) -> Replica:
    http = idp.http()
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=idp.upstream(),
        secret_keys=[SECRET_KEY],
        http_client=http,
        strict=strict,
    )
    return Replica(shim, http)


@dataclass
class Login:
    client_id: str
    code: str
    verifier: str

    def code_form(self) -> dict[str, str]:
        return {
            "grant_type": "authorization_code",
            "code": self.code,
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
            "resource": RESOURCE,
        }


@dataclass
class Browser:
    """A person's browser: its own cookies, sent to whichever replica it reaches."""

    idp: IdP
    address: str = DEFAULT_ADDRESS
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)

    async def request(self, replica: Replica, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with replica.client(self.address) as http:
            http.cookies = self.cookies
            response = await http.request(method, url, **kwargs)
            self.cookies = http.cookies
            return response

    async def register(self, replica: Replica, name: str = "Strict test") -> str:
        """A new client_id (the same ``name`` in the same second gives the same one)."""
        response = await self.request(
            replica, "POST", "/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": name}
        )
        assert response.status_code == 201, response.text
        client_id: str = response.json()["client_id"]
        return client_id

    async def authorize(self, replica: Replica, client_id: str, challenge: str) -> httpx.Response:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "client-state",
            "resource": RESOURCE,
        }
        return await self.request(replica, "GET", "/oauth/authorize", params=params)

    async def consent_form(self, replica: Replica, client_id: str, challenge: str) -> dict[str, str]:
        page = await self.authorize(replica, client_id, challenge)
        assert page.status_code == 200, page.text
        return {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}

    async def approve(self, replica: Replica, form: dict[str, str]) -> httpx.Response:
        return await self.request(replica, "POST", "/oauth/consent", data={**form, "decision": "approve"})

    async def at_idp(self, idp_authorize_url: str) -> str:
        """The IdP's part (it signs the demo user in at once): the URL of the shim's callback."""
        parts = urlsplit(idp_authorize_url)
        async with self.idp.http() as http:
            response = await http.get(parts.path + "?" + parts.query)
        assert response.status_code in (302, 303), response.text
        return response.headers["location"]

    async def callback(self, replica: Replica, callback_url: str) -> httpx.Response:
        parts = urlsplit(callback_url)
        return await self.request(replica, "GET", parts.path + "?" + parts.query)

    async def login(self, replica: Replica, client_id: str | None = None) -> Login:
        """The whole browser part on ``replica``; what the MCP client receives."""
        client_id = client_id or await self.register(replica)
        verifier, challenge = pkce_pair()
        consent = await self.approve(replica, await self.consent_form(replica, client_id, challenge))
        assert consent.status_code == 303, consent.text
        relay = await self.callback(replica, await self.at_idp(consent.headers["location"]))
        assert relay.status_code == 302, relay.text
        query = parse_qs(urlsplit(relay.headers["location"]).query)
        return Login(client_id, query["code"][0], verifier)


async def token(replica: Replica, form: dict[str, str], address: str = DEFAULT_ADDRESS) -> httpx.Response:
    async with replica.client(address) as http:
        return await http.post("/oauth/token", data=form)


def refresh_form(login: Login, refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": login.client_id}


Factory = Callable[[], StrictMode]
