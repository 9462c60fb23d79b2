"""The observation points in place: a real login, token requests, bearer refusals and tool
calls, counted, logged with their login id, and traced."""

import base64
import hashlib
import io
import json
import logging
import time

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.log_context import LogContextFilter, login_correlation_id
from mcp_oauth_shim.log_format import JsonFormatter

from ..shim.counting_idp import RESOURCE, SHIM_URL, CountingIdP
from ..shim.kit import CLIENT_REDIRECT, make_kit, pkce_pair
from .conftest import sample

ACCEPT = "application/json, text/event-stream"


def test_a_login_is_counted_step_by_step(prometheus):
    kit = make_kit()
    counters = {
        ("mcp_oauth_shim_authorize_requests_total", (("result", "consent"),)): 1,
        ("mcp_oauth_shim_consent_decisions_total", (("decision", "approve"),)): 1,
        ("mcp_oauth_shim_callbacks_total", (("result", "ok"),)): 1,
        (
            "mcp_oauth_shim_token_requests_total",
            (("grant_type", "authorization_code"), ("result", "ok"), ("client_kind", "registered")),
        ): 1,
        (
            "mcp_oauth_shim_token_requests_total",
            (("grant_type", "refresh_token"), ("result", "ok"), ("client_kind", "registered")),
        ): 1,
        ("mcp_oauth_shim_idp_request_duration_seconds_count", (("operation", "token"), ("outcome", "ok"))): 2,
    }
    before = {key: sample(prometheus, key[0], **dict(key[1])) for key in counters}
    login = kit.login()
    tokens = kit.exchange(login).json()
    kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    after = {key: sample(prometheus, key[0], **dict(key[1])) for key in counters}
    assert {key: after[key] - before[key] for key in counters} == counters


@pytest.mark.parametrize(
    ("form", "labels"),
    [
        ({"grant_type": "authorization_code", "code": "forged", "code_verifier": "v" * 43, "redirect_uri": CLIENT_REDIRECT},
         {"grant_type": "authorization_code", "result": "invalid_grant", "client_kind": "registered"}),
        ({"grant_type": "refresh_token", "refresh_token": "forged"},
         {"grant_type": "refresh_token", "result": "invalid_grant", "client_kind": "registered"}),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"},
         {"grant_type": "other", "result": "unsupported_grant_type", "client_kind": "none"}),
        ({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "not-a-client"},
         {"grant_type": "refresh_token", "result": "invalid_client", "client_kind": "none"}),
    ],
)
def test_token_refusals_are_counted_by_their_error(prometheus, form, labels):
    kit = make_kit()
    client_id = kit.register()["client_id"]
    before = sample(prometheus, "mcp_oauth_shim_token_requests_total", **labels)
    answer = kit.token(**{"client_id": client_id, **form})
    assert answer.status_code in (400, 401)
    assert sample(prometheus, "mcp_oauth_shim_token_requests_total", **labels) == before + 1


def test_a_denied_consent_is_counted_as_deny(prometheus):
    kit = make_kit()
    _, challenge = pkce_pair()
    before = sample(prometheus, "mcp_oauth_shim_consent_decisions_total", decision="deny")
    assert kit.approve(kit.authorize_params(kit.register()["client_id"], challenge), decision="deny").status_code == 302
    assert sample(prometheus, "mcp_oauth_shim_consent_decisions_total", decision="deny") == before + 1


def test_the_steps_of_one_login_share_a_login_id_in_the_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LogContextFilter())
    events = logging.getLogger("mcp_oauth_shim.events")
    events.addHandler(handler)
    level = events.level
    events.setLevel(logging.INFO)
    try:
        kit = make_kit()
        login = kit.login()
        kit.exchange(login)
    finally:
        events.removeHandler(handler)
        events.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    steps = {line.get("event"): line for line in lines}
    assert set(steps) == {"login.authorize", "login.consent", "login.callback", "token"}
    # The challenge the kit sent, from its verifier (RFC 7636 §4.2 S256).
    challenge = base64.urlsafe_b64encode(hashlib.sha256(login["verifier"].encode()).digest()).rstrip(b"=").decode()
    assert {line["login_id"] for line in lines} == {login_correlation_id(challenge)}
    assert steps["token"]["grant_type"] == "authorization_code" and steps["token"]["result"] == "ok"


@pytest.fixture
def guarded():
    """``shim.protect`` around a trivial app, in front of the counting IdP (JWT access tokens)."""
    idp = CountingIdP()
    shim = idp.shim(
        Upstream.oidc(issuer=idp.issuer, client_id="shim", client_secret="s", audience=RESOURCE),
        required_scopes=["read"],
    )

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return idp, TestClient(shim.protect(app), base_url=SHIM_URL)


def refused_with(idp: CountingIdP, reason: str) -> dict[str, str]:
    now = int(time.time())
    good = {"aud": RESOURCE, "sub": "u", "client_id": "c", "scope": "read"}
    tokens = {
        "missing": None,
        "malformed": "Bearer two tokens",
        "invalid": "Bearer " + idp.sign(good)[:-4] + "AAAA",
        "expired": "Bearer " + idp.sign({**good, "exp": now - 3600, "iat": now - 7200}),
        "wrong_audience": "Bearer " + idp.sign({**good, "aud": "https://other.example/api"}),
        "insufficient_scope": "Bearer " + idp.sign({**good, "scope": "other"}),
    }
    value = tokens[reason]
    return {} if value is None else {"Authorization": value}


@pytest.mark.parametrize("reason", ["missing", "malformed", "invalid", "expired", "wrong_audience", "insufficient_scope"])
def test_refused_bearer_tokens_are_counted_by_reason(prometheus, guarded, reason):
    idp, client = guarded
    before = sample(prometheus, "mcp_oauth_shim_bearer_rejections_total", reason=reason)
    assert client.get("/mcp", headers=refused_with(idp, reason)).status_code in (400, 401, 403)
    assert sample(prometheus, "mcp_oauth_shim_bearer_rejections_total", reason=reason) == before + 1


def test_a_token_refused_because_the_idp_is_down_is_counted_as_idp_unavailable(prometheus):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    idp = CountingIdP()
    shim = OAuthShim(
        public_url=SHIM_URL,
        upstream=Upstream.oidc(issuer=idp.issuer, client_id="shim", client_secret="s"),
        secret_keys=["s" * 48],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
    )
    before = sample(prometheus, "mcp_oauth_shim_bearer_rejections_total", reason="idp_unavailable")
    discovery_before = sample(
        prometheus, "mcp_oauth_shim_idp_request_duration_seconds_count", operation="discovery", outcome="error"
    )
    answer = TestClient(shim.protect(lambda *a: None), base_url=SHIM_URL).get(
        "/mcp", headers={"Authorization": "Bearer " + idp.sign({"aud": RESOURCE})}
    )
    assert answer.status_code == 502
    assert sample(prometheus, "mcp_oauth_shim_bearer_rejections_total", reason="idp_unavailable") == before + 1
    assert sample(
        prometheus, "mcp_oauth_shim_idp_request_duration_seconds_count", operation="discovery", outcome="error"
    ) == discovery_before + 1


@pytest.fixture
def bridged():
    """A FastAPI app served as tools by the bridge (no auth: the tool calls are the subject)."""
    api = FastAPI()

    @api.get("/items/{item_id}", operation_id="get_item")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 404:
            from fastapi import HTTPException

            raise HTTPException(404, "no such item")
        return {"item_id": item_id}

    MCPBridge(api).mount_http("/mcp", stateless=True)
    with TestClient(api, base_url="http://127.0.0.1:8000") as client:
        yield client


def call(client: TestClient, name: str, arguments: dict) -> dict:
    answer = client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
        headers={"Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"},
    )
    assert answer.status_code == 200, answer.text
    text = answer.text
    payload = text[text.index("{"):] if not text.startswith("{") else text
    return json.loads(payload.splitlines()[0])


@pytest.mark.parametrize(
    ("name", "arguments", "tool", "outcome"),
    [
        ("get_item", {"item_id": 7}, "get_item", "ok"),
        ("get_item", {"item_id": 404}, "get_item", "tool_error"),
        ("get_item", {"item_id": "not a number"}, "get_item", "tool_error"),
        ("no_such_tool_" + "x" * 30, {}, "unknown_tool", "tool_error"),
    ],
)
def test_tool_calls_are_counted_by_tool_and_outcome(prometheus, bridged, name, arguments, tool, outcome):
    before = sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool=tool, outcome=outcome)
    call(bridged, name, arguments)
    assert sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool=tool, outcome=outcome) == before + 1
    assert sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool=name, outcome=outcome) == (before + 1 if name == tool else 0)


def test_a_tool_call_and_a_login_make_their_spans(spans, bridged):
    call(bridged, "get_item", {"item_id": 7})
    kit = make_kit()
    kit.exchange(kit.login())
    names = [span.name for span in spans.get_finished_spans()]
    assert "mcp.tool_call" in names
    assert {"idp.discovery", "idp.token"} <= set(names)
    for span in spans.get_finished_spans():
        for value in span.attributes.values():
            assert "eyJ" not in str(value) and "http" not in str(value)
