"""A complete shim in one process for fast tests: the development IdP (authlib based) behind
an in-process transport, the shim under Starlette's TestClient, and a tiny "browser" that walks
authorize -> consent -> IdP -> callback. The real-peer suites live in tests/integration."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.dev_idp import DevIdP

PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
IDP_ISSUER = "http://127.0.0.1:9000"
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
SECRET_KEY = "k" * 48


def sealed_at(purpose: str, value: Any, signed_at: int, key: str = SECRET_KEY) -> str:
    """A value sealed ``signed_at`` (POSIX seconds) by itsdangerous itself, the reference for
    the shim's wire format (tests/unit/test_sealing.py): for tests about expiry."""
    from itsdangerous import TimestampSigner

    signer = TimestampSigner(key, salt=purpose, digest_method=hashlib.sha256)
    signer.get_timestamp = lambda: signed_at  # type: ignore[method-assign]
    payload = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=")
    return signer.sign(payload).decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Kit:
    idp: DevIdP
    shim: OAuthShim
    client: TestClient
    idp_client: TestClient
    extra: dict[str, Any] = field(default_factory=dict)

    def register(self, **metadata: Any) -> dict[str, Any]:
        body = {"redirect_uris": [CLIENT_REDIRECT], "client_name": "Test client", **metadata}
        response = self.client.post("/oauth/register", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def authorize_params(self, client_id_: str, challenge: str, **overrides: Any) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": client_id_,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "client-state-123",
            "resource": RESOURCE,
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def consent_form(self, params: dict[str, str]) -> dict[str, str]:
        """GET /oauth/authorize and return the consent form's hidden fields."""
        page = self.client.get("/oauth/authorize", params=params, follow_redirects=False)
        assert page.status_code == 200, page.text
        return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)) | {
            k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
        }

    def approve(self, params: dict[str, str], decision: str = "approve") -> httpx.Response:
        form = self.consent_form(params)
        return self.client.post(
            "/oauth/consent", data={**form, "decision": decision}, follow_redirects=False
        )

    def idp_round_trip(self, idp_authorize_url: str) -> str:
        """Play the IdP part: the dev IdP auto-approves and redirects to the shim's callback."""
        parts = urlsplit(idp_authorize_url)
        response = self.idp_client.get(parts.path + "?" + parts.query, follow_redirects=False)
        assert response.status_code in (302, 303), response.text
        return response.headers["location"]

    def callback(self, callback_url: str) -> httpx.Response:
        parts = urlsplit(callback_url)
        return self.client.get(parts.path + "?" + parts.query, follow_redirects=False)

    def login(self, client_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        """The whole browser part; returns the client's redirect parameters and PKCE verifier."""
        client_id = client_id or self.register()["client_id"]
        verifier, challenge = pkce_pair()
        consent = self.approve(self.authorize_params(client_id, challenge, **overrides))
        assert consent.status_code == 303, consent.text
        callback = self.idp_round_trip(consent.headers["location"])
        relay = self.callback(callback)
        assert relay.status_code == 302, relay.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(relay.headers["location"]).query).items()}
        return {"client_id": client_id, "verifier": verifier, "location": relay.headers["location"], **query}

    def token(self, **form: str) -> httpx.Response:
        return self.client.post("/oauth/token", data=form)

    def exchange(self, login: dict[str, Any]) -> httpx.Response:
        return self.token(
            grant_type="authorization_code",
            code=login["code"],
            redirect_uri=CLIENT_REDIRECT,
            code_verifier=login["verifier"],
            client_id=login["client_id"],
            resource=RESOURCE,
        )


def make_kit(*, send_iss: bool = True, upstream_overrides: dict[str, Any] | None = None, **shim_kwargs: Any) -> Kit:
    idp = DevIdP(
        issuer=IDP_ISSUER,
        redirect_uris=[PUBLIC_URL + "/oauth/callback"],
        auto_approve=True,
        send_iss=send_iss,
        audiences=[RESOURCE],
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url=IDP_ISSUER)
    upstream = Upstream.oidc(
        **{
            "issuer": IDP_ISSUER,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "audience": RESOURCE,
            "default_scopes": ("openid", "profile"),
            "extra_scopes": ("offline_access",),
            **(upstream_overrides or {}),
        }
    )
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=upstream,
        secret_keys=[SECRET_KEY],
        http_client=http,
        **shim_kwargs,
    )
    client = TestClient(shim.app, base_url=PUBLIC_URL)
    idp_client = TestClient(idp.app, base_url=IDP_ISSUER)
    return Kit(idp=idp, shim=shim, client=client, idp_client=idp_client)
