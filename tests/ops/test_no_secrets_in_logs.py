"""No secret of a whole flow reaches the logs, in JSON or text, at DEBUG, access lines included.

One login (register, authorize, consent, the dev IdP, callback), the token exchange, a refresh
and a tool call of the bridge behind the shim, against a real uvicorn on loopback configured as
``serve`` configures it (``uvicorn_log_config(format)``) with every logger at DEBUG. All output
(the uvicorn handlers' streams, and every record through caplog) is scanned for every secret
value seen in the flow: the IdP client's secret, the shim's secret key, the client's state,
the IdP's and the shim's authorization codes, the PKCE verifier, the signed state and consent
ticket, the access, refresh and ID tokens, before and after the refresh.

Left out are only the records of the other parties, which run in this process for the test:
the test's own HTTP clients (the "browser" and the dev IdP's TestClient, httpx2 clients that
log the URLs they visit, which carry the client's state and codes by design: loggers
``httpx2``, ``httpcore2``), and the IdP (the dev IdP's authlib authorization server logs the
tokens it issues at DEBUG: ``authlib.oauth2.rfc6749.grants``, ``mcp_oauth_shim.dev_idp``).
The shim's own calls to the IdP go through httpx here and are scanned like everything else.
"""

import json
import logging
import logging.config
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from mcp_oauth_shim.logs import uvicorn_log_config
from mcp_oauth_shim.request_id import RequestIdMiddleware

from ..shim.kit import CLIENT_REDIRECT, RESOURCE, SECRET_KEY, Kit, make_kit, pkce_pair

ACCEPT = "application/json, text/event-stream"
OTHER_PARTIES = ("httpx2", "httpcore2", "authlib.oauth2.rfc6749.grants", "mcp_oauth_shim.dev_idp")


def serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, sock.getsockname()[1]


def whole_flow(kit: Kit) -> dict[str, str]:
    """Login, exchange, refresh and a tool call; every secret value seen, by name."""
    seen: dict[str, str] = {"client secret": kit.idp.client_secret, "secret key": SECRET_KEY}
    client_id = kit.register()["client_id"]
    verifier, challenge = pkce_pair()
    params = kit.authorize_params(client_id, challenge, state="client-state-" + "s" * 24)
    seen["client state"] = params["state"]
    form = kit.consent_form(params)
    seen["consent ticket"] = next(v for k, v in form.items() if k not in ("decision", "csrf"))
    consent = kit.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    assert consent.status_code == 303, consent.text
    seen["signed state (to the IdP)"] = parse_qs(urlsplit(consent.headers["location"]).query)["state"][0]
    callback = kit.idp_round_trip(consent.headers["location"])
    seen["IdP code"] = parse_qs(urlsplit(callback).query)["code"][0]
    relay = kit.callback(callback)
    assert relay.status_code == 302, relay.text
    seen["shim code"] = parse_qs(urlsplit(relay.headers["location"]).query)["code"][0]
    seen["code verifier"] = verifier
    tokens = kit.token(
        grant_type="authorization_code", code=seen["shim code"], redirect_uri=CLIENT_REDIRECT,
        code_verifier=verifier, client_id=client_id, resource=RESOURCE,
    )
    assert tokens.status_code == 200, tokens.text
    issued = tokens.json()
    seen |= {"access token": issued["access_token"], "refresh token": issued["refresh_token"]}
    if "id_token" in issued:
        seen["ID token"] = issued["id_token"]
    refreshed = kit.token(grant_type="refresh_token", refresh_token=issued["refresh_token"], client_id=client_id)
    assert refreshed.status_code == 200, refreshed.text
    seen |= {"refreshed access token": refreshed.json()["access_token"],
             "refreshed refresh token": refreshed.json()["refresh_token"]}
    call = kit.client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_item", "arguments": {"item_id": 7}}},
        headers={"Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25",
                 "Authorization": f"Bearer {refreshed.json()['access_token']}"},
    )
    assert call.status_code == 200 and '"isError":false' in call.text.replace(" ", ""), call.text
    # And a refused one, whose token must not be logged either.
    seen["refused token"] = "not-a-valid-token-" + "x" * 30
    kit.client.post("/mcp", json={}, headers={"Authorization": "Bearer " + seen["refused token"], "Accept": ACCEPT})
    return seen


def from_other_parties(line: str, format: str) -> bool:
    """A line logged by the test's own clients or by the IdP."""
    if format == "json":
        return line.startswith("{") and json.loads(line)["logger"].startswith(OTHER_PARTIES)
    fields = line.split(" ", 4)  # date time level logger: message
    return len(fields) > 3 and fields[3].startswith(OTHER_PARTIES)


def items_api_behind(kit: Kit) -> FastAPI:
    """A one-route FastAPI app served as an MCP tool behind the kit's shim."""
    api = FastAPI()

    @api.get("/items/{item_id}", operation_id="get_item")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    MCPBridge(api, auth=kit.shim).mount_http("/mcp", stateless=True)
    return api


@pytest.mark.parametrize("format", ["json", "text"])
def test_a_whole_flow_at_debug_logs_no_secret(format, caplog, capsys):
    kit = make_kit()
    api = items_api_behind(kit)
    logging.config.dictConfig(uvicorn_log_config(format))
    logging.getLogger().setLevel(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp_oauth_shim", "mcp_bridge", "mcp", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    server, thread, port = serve(RequestIdMiddleware(api))
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            kit.client = http  # type: ignore[assignment]
            seen = whole_flow(kit)
    finally:
        server.should_exit = True
        thread.join(10)
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "WARNING"}})
    captured = capsys.readouterr()
    output = "\n".join(line for line in (captured.out + captured.err).splitlines() if not from_other_parties(line, format))
    records = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records if not r.name.startswith(OTHER_PARTIES))
    # The capture saw the flow: uvicorn's access lines, the shim's token events.
    assert "POST /oauth/token" in output and "GET /oauth/callback?[redacted]" in output
    if format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert any(line["logger"] == "uvicorn.access" and line["request_id"] for line in lines)
    for name, value in seen.items():
        assert value not in output, f"{name} in the {format} output"
        assert value not in records, f"{name} in a log record"
