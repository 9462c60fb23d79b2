"""No secret of a whole flow, its error paths included, reaches the logs (JSON at DEBUG),
the Prometheus exposition, the spans, or any answer that is not meant to carry it.

The companion of ``test_no_secrets_in_logs``: the same login, exchange, refresh and tool call
against a real uvicorn on loopback, then what that test leaves out: the revocation of the
refresh token, and the error paths an attacker or a confused client walks (a replayed code, a
wrong verifier, a replayed callback, an ID token or an unknown tool at the MCP endpoint, a
refresh token used after its revocation), with metrics and tracing on. Every answer is kept;
the secrets are looked for in all of them, except where an answer carries one by design
(the token endpoint's 200s, the consent page's ticket, the redirects that carry the signed
state and the code).
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest

from mcp_oauth_shim.logs import uvicorn_log_config
from mcp_oauth_shim.request_id import RequestIdMiddleware

from ..shim.kit import CLIENT_REDIRECT, Kit, make_kit
from .test_no_secrets_in_logs import ACCEPT, from_other_parties, items_api_behind, serve, whole_flow

# Answers that carry a secret by design: (method, path, status).
CARRIERS = {
    ("POST", "/oauth/token", 200),
    ("GET", "/oauth/authorize", 200),
    ("POST", "/oauth/consent", 303),
    ("GET", "/oauth/callback", 302),
}
# Never in any answer, whatever it is.
NEVER_ANSWERED = ("client secret", "secret key", "code verifier", "IdP code")


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    text: str  # the status line's parts, every header and the body

    @property
    def carrier(self) -> bool:
        return (self.method, self.path, self.status) in CARRIERS


def tool_call(kit: Kit, token: str, name: str) -> httpx2.Response:
    return kit.client.post(  # type: ignore[return-value]
        "/mcp",
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}},
        headers={"Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25", "Authorization": f"Bearer {token}"},
    )


def error_paths(kit: Kit, seen: dict[str, str]) -> None:
    """What a hostile or confused client does after the flow; each answer is an error."""
    client_id = kit.register()["client_id"]
    replayed = kit.token(
        grant_type="authorization_code", code=seen["shim code"], redirect_uri=CLIENT_REDIRECT,
        code_verifier=seen["code verifier"], client_id=client_id,
    )
    assert replayed.status_code == 400, replayed.text
    login = kit.login()
    wrong_verifier = kit.token(
        grant_type="authorization_code", code=login["code"], redirect_uri=CLIENT_REDIRECT,
        code_verifier="w" * 43, client_id=login["client_id"],
    )
    assert wrong_verifier.status_code == 400, wrong_verifier.text
    seen["second shim code"] = login["code"]
    seen["second code verifier"] = login["verifier"]
    replayed_callback = kit.client.get(
        "/oauth/callback", params={"code": seen["IdP code"], "state": seen["signed state (to the IdP)"], "iss": kit.idp.issuer},
        follow_redirects=False,
    )
    assert replayed_callback.status_code >= 400, replayed_callback.text
    if "ID token" in seen:
        assert tool_call(kit, seen["ID token"], "get_item").status_code == 401
    unknown = tool_call(kit, seen["refreshed access token"], "no_such_tool_" + "z" * 40)
    assert unknown.status_code == 200, unknown.text
    revoked = kit.client.post("/oauth/revoke", data={"token": seen["refreshed refresh token"], "client_id": seen["client_id"]})
    assert revoked.status_code == 200, revoked.text
    after = kit.token(grant_type="refresh_token", refresh_token=seen["refreshed refresh token"], client_id=seen["client_id"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant", after.text


@pytest.fixture
def debug_json_logs() -> Iterator[None]:
    logging.config.dictConfig(uvicorn_log_config("json"))
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "mcp_oauth_shim", "mcp_bridge", "mcp", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "WARNING"}})


def test_a_whole_flow_and_its_error_paths_leak_no_secret_to_logs_metrics_spans_or_answers(
    debug_json_logs, prometheus, spans, caplog, capsys
):
    from prometheus_client import generate_latest

    kit = make_kit()
    api = items_api_behind(kit)
    caplog.set_level(logging.DEBUG)
    answers: list[Answer] = []

    def keep(response: httpx2.Response) -> None:
        response.read()
        text = " ".join([str(response.status_code), *(f"{k}: {v}" for k, v in response.headers.items()), response.text])
        answers.append(Answer(response.request.method, response.request.url.path, response.status_code, text))

    server, thread, port = serve(RequestIdMiddleware(api))
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, event_hooks={"response": [keep]}) as http:
            kit.client = http  # type: ignore[assignment]
            original_register = kit.register
            registered: list[str] = []

            def register(**metadata):
                document = original_register(**metadata)
                registered.append(document["client_id"])
                return document

            kit.register = register  # type: ignore[method-assign]
            seen = whole_flow(kit)
            seen["client_id"] = registered[0]
            error_paths(kit, seen)
    finally:
        server.should_exit = True
        thread.join(10)
    client_id = seen.pop("client_id")
    captured = capsys.readouterr()
    output = "\n".join(line for line in (captured.out + captured.err).splitlines() if not from_other_parties(line, "json"))
    records = "\n".join(
        f"{r.name} {r.getMessage()} {r.__dict__} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith(
            ("httpx2", "httpcore2", "authlib.oauth2.rfc6749.grants", "mcp_oauth_shim.dev_idp")
        )
    )
    exposition = generate_latest(prometheus.registry).decode()
    traced = "\n".join(json.dumps(span.to_json()) for span in spans.get_finished_spans())
    # The capture saw the flow and its errors.
    assert "mcp_oauth_shim_token_requests_total" in exposition and 'result="invalid_grant"' in exposition
    assert any(a.path == "/oauth/revoke" for a in answers) and any(a.status >= 400 for a in answers)
    assert client_id not in exposition and client_id not in traced
    for name, value in seen.items():
        assert value not in output, f"{name} in the log output"
        assert value not in records, f"{name} in a log record"
        assert value not in exposition, f"{name} in the metrics"
        assert value not in traced, f"{name} in a span"
        for answer in answers:
            if name in NEVER_ANSWERED or not answer.carrier:
                assert value not in answer.text, f"{name} in the answer to {answer.method} {answer.path} ({answer.status})"
