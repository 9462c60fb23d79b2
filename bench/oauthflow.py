"""Drive the shim's browser flow once, for real, to get valid inputs for the load runs.

register (RFC 7591) -> GET /oauth/authorize (consent page, CSRF cookie) -> POST /oauth/consent
(flow cookie, 303 to the IdP with the shim's signed state) -> GET /oauth/callback as the IdP
would redirect (302 to the client with a wrapped code) -> POST /oauth/token (wrapped refresh).

The load runs then need many *distinct* but equally valid codes, states and refresh tokens
(so that a single-use rule, if the shim adds one, cannot turn the run into a run of errors).
:func:`Resealer` makes them with the shim's own sealing API (``mcp_oauth_shim.sealing``):
it opens the real value with the shared key, changes only the upstream code / binding, and
seals it again for the same purpose. Payload keys are never written by hand here, so the
bench follows the shim's format as it changes.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

REDIRECT_URI = "http://127.0.0.1:9/bench-callback"


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)[:64]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Browser:
    """A cookie-keeping HTTP client for one origin (enough for the shim's flow)."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            for k, v in r.getheaders():
                if k.lower() == "set-cookie":
                    name, _, rest = v.partition("=")
                    value = rest.split(";", 1)[0]
                    if value in ("", '""') or "max-age=0" in v.lower():
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = value
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()


@dataclass
class Flow:
    """What one real flow produced (all valid for the shim it ran against)."""

    client_id: str
    verifier: str
    challenge: str
    authorize_path: str
    state: str  # the shim's signed state sent to the IdP
    flow_cookie: tuple[str, str]  # (name, value) binding cookie set on consent
    code: str  # wrapped code relayed to the client
    refresh_token: str  # wrapped refresh token from the first exchange
    token_answer: dict[str, Any]


def register(b: Browser) -> str:
    body = json.dumps(
        {
            "redirect_uris": [REDIRECT_URI],
            "client_name": "bench client",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }
    ).encode()
    status, _, data = b.request("POST", "/oauth/register", body, {"Content-Type": "application/json"})
    if status != 201:
        raise RuntimeError(f"register: {status} {data[:200]!r}")
    return json.loads(data)["client_id"]


def authorize_path(client_id: str, challenge: str, resource: str, state: str = "bench-state") -> str:
    q = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "scope": "openid profile",
        "resource": resource,
    }
    return "/oauth/authorize?" + urlencode(q)


def run_flow(port: int, upstream_issuer: str) -> Flow:
    b = Browser(port)
    resource = b.origin + "/mcp"
    client_id = register(b)
    verifier, challenge = pkce_pair()
    path = authorize_path(client_id, challenge, resource)
    status, _, page = b.request("GET", path)
    if status != 200:
        raise RuntimeError(f"authorize: {status} {page[:300]!r}")
    m = re.search(rb'name="ticket"\s+value="([^"]+)"', page) or re.search(rb'value="([^"]+)"\s+name="ticket"', page)
    if not m:
        raise RuntimeError("consent page without a ticket field")
    ticket = m.group(1).decode().replace("&amp;", "&")
    before = set(b.cookies)
    form = urlencode({"ticket": ticket, "decision": "approve"}).encode()
    status, headers, data = b.request(
        "POST", "/oauth/consent", form, {"Content-Type": "application/x-www-form-urlencoded", "Origin": b.origin}
    )
    if status not in (302, 303):
        raise RuntimeError(f"consent: {status} {data[:300]!r}")
    upstream_q = parse_qs(urlsplit(headers["location"]).query)
    state = upstream_q["state"][0]
    new = [c for c in b.cookies if c not in before]
    if len(new) != 1:
        raise RuntimeError(f"expected one flow cookie after consent, got {new}")
    flow_cookie = (new[0], b.cookies[new[0]])
    cb = "/oauth/callback?" + urlencode({"code": "upstream-code-0", "state": state, "iss": upstream_issuer})
    status, headers, data = b.request("GET", cb)
    if status != 302:
        raise RuntimeError(f"callback: {status} {data[:300]!r}")
    relayed = parse_qs(urlsplit(headers["location"]).query)
    code = relayed["code"][0]
    token_form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": resource,
        }
    ).encode()
    status, _, data = b.request(
        "POST", "/oauth/token", token_form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise RuntimeError(f"token: {status} {data[:300]!r}")
    answer = json.loads(data)
    if "refresh_token" not in answer:
        raise RuntimeError("token answer without a refresh_token")
    return Flow(client_id, verifier, challenge, path, state, flow_cookie, code, answer["refresh_token"], answer)


class Resealer:
    """Fresh, valid copies of the shim's sealed values, made with its own sealing API."""

    def __init__(self, secret_key: str) -> None:
        from mcp_oauth_shim import sealing

        self._sealing = sealing
        self._sealer = sealing.Sealer([secret_key])

    def _open(self, purpose: str, value: str) -> dict[str, Any]:
        return self._sealer.unseal(purpose, value, max_age=10**9)

    def codes(self, real_code: str, n: int) -> list[str]:
        """``n`` wrapped codes like ``real_code``, each for a different upstream code."""
        payload = self._open(self._sealing.CODE, real_code)
        upstream_key = _upstream_key(payload, "upstream-code-0")
        return [
            self._sealer.seal(self._sealing.CODE, {**payload, upstream_key: f"upstream-code-{i + 1}"}) for i in range(n)
        ]

    def refresh_tokens(self, real: str, n: int) -> list[str]:
        payload = self._open(self._sealing.REFRESH, real)
        from bench.targets import TOKEN_RESPONSE

        upstream_refresh = json.loads(TOKEN_RESPONSE)["refresh_token"]
        key = _upstream_key(payload, upstream_refresh)
        return [self._sealer.seal(self._sealing.REFRESH, {**payload, key: f"{upstream_refresh}-{i}"}) for i in range(n)]

    def callback_states(self, real_state: str, cookie: tuple[str, str], n: int) -> list[tuple[str, str, str]]:
        """``n`` (state, flow cookie name, cookie value) triples, each bound to its own cookie.

        The binding is the digest of the cookie value (as the consent handler makes it); the
        flow id picks the cookie name, so both are replaced together.
        """
        payload = self._open(self._sealing.STATE, real_state)
        cookie_name, cookie_value = cookie
        bind_key = _upstream_key(payload, self._sealing.digest(cookie_value))
        flow_key = next(k for k, v in payload.items() if isinstance(v, str) and v and cookie_name.endswith(v))
        prefix = cookie_name[: len(cookie_name) - len(payload[flow_key])]
        out = []
        for _ in range(n):
            flow = self._sealing.random_token(6)
            binding = self._sealing.random_token()
            state = self._sealer.seal(
                self._sealing.STATE, {**payload, flow_key: flow, bind_key: self._sealing.digest(binding)}
            )
            out.append((state, prefix + flow, binding))
        return out


def _upstream_key(payload: dict[str, Any], known_value: str) -> str:
    """The payload key that holds a value we know (the upstream code / refresh token)."""
    for k, v in payload.items():
        if v == known_value:
            return k
    raise RuntimeError(f"cannot find the upstream value in the sealed payload (keys {sorted(payload)})")
