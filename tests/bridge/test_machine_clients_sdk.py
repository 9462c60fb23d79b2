"""The mcp SDK's own client-side auth extensions, unmodified, get tokens from the shim and call
FastAPI routes through the bridge: client credentials (secret and private_key_jwt) with the
shim's own tokens, and enterprise-managed authorization (ID-JAG).

What is real here: the SDK clients (``ClientCredentialsOAuthProvider``,
``PrivateKeyJWTOAuthProvider``, ``IdentityAssertionOAuthProvider``) doing their whole flow over
HTTP (401 challenge, RFC 9728 and RFC 8414 discovery, token request, MCP session); the shim,
bridge and app served by uvicorn on loopback; the RFC 8693 token exchange at the enterprise
IdP over HTTP. What is a stand-in: the enterprise IdP (tests/peers/id_jag_issuer.py: real
keys, signatures, discovery and token exchange shapes; no user login, a fixed policy table),
whose ID token the test takes as if the user had signed in to the client.
The client credentials run against a real IdP (oidc-provider) is in
tests/integration/test_machine_clients_upstream.py.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# a dependency local to build_api.
import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
import httpx2
import pytest
from fastapi import FastAPI, Security
from joserfc.jwk import RSAKey
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.types import CallToolResult, TextContent

from mcp_bridge import MCPBridge
from mcp_bridge.dependencies import bearer_token
from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.id_jag import EnterpriseIdP
from mcp_oauth_shim.issued_verifier import IssuedAccessToken
from mcp_oauth_shim.machine_clients import MachineClient
from mcp_oauth_shim.rfc7523 import JWT_BEARER_GRANT_TYPE
from tests.peers.id_jag_issuer import ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE, IdJagIssuer, running_id_jag_issuer
from tests.peers.servers import bind_loopback, serve_asgi

TIMEOUT_S = 60.0
SECRET = secrets.token_urlsafe(24)
SIGNER_KEY = RSAKey.generate_key(2048, parameters={"kid": "signer-1"})
UPSTREAM = Upstream(
    client_id="shim-at-the-idp",
    client_secret="upstream-secret-0123456789",
    issuer="https://idp.upstream.example",
    authorization_endpoint="https://idp.upstream.example/authorize",
    token_endpoint="https://idp.upstream.example/token",
    jwks_uri="https://idp.upstream.example/jwks",
)


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, info: Any) -> None:
        self.client_info = info


def build_api(shim: OAuthShim) -> FastAPI:
    """An ordinary FastAPI app whose routes say who called them, each needing a scope."""
    app = FastAPI(title="machine-clients-under-test")
    verified = bearer_token(shim)

    @app.get("/whoami", operation_id="whoami")
    def whoami(token: Annotated[AccessToken, Security(verified, scopes=["notes:read"])]) -> dict[str, Any]:
        email = token.email if isinstance(token, IssuedAccessToken) else None
        return {"subject": token.subject, "client_id": token.client_id, "scopes": token.scopes, "email": email}

    @app.post("/notes", operation_id="write_note")
    def write_note(token: Annotated[AccessToken, Security(verified, scopes=["notes:write"])]) -> dict[str, str]:
        return {"written_by": str(token.subject)}

    return app


@dataclass(frozen=True)
class Server:
    url: str
    shim: OAuthShim

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"


@contextlib.contextmanager
def serve(**shim_options: Any) -> Iterator[Server]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    shim = OAuthShim(
        public_url=url,
        upstream=UPSTREAM,
        secret_keys=[secrets.token_urlsafe(48)],
        issue_tokens=True,
        # What SDK clients request (MCP scope selection: the resource metadata's scopes_supported).
        scopes_supported=["notes:read", "notes:write"],
        **shim_options,
    )
    app = build_api(shim)
    MCPBridge(app, auth=shim).mount_http("/mcp")
    with serve_asgi(app, sock):
        yield Server(url, shim)


def seen(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return dict(json.loads(content.text))


async def call_tools(mcp_url: str, auth: httpx2.Auth, *calls: tuple[str, dict[str, Any]]) -> list[CallToolResult]:
    with anyio.fail_after(TIMEOUT_S):
        async with httpx2.AsyncClient(auth=auth, timeout=TIMEOUT_S) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), read_timeout_seconds=TIMEOUT_S) as session:
                return [await session.call_tool(name, arguments) for name, arguments in calls]


READER = MachineClient("nightly-report", client_secret=SECRET, scopes=("notes:read",))


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_sdk_client_credentials_calls_a_tool_as_the_machine(method: str) -> None:
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    with serve(machine_clients=[READER]) as server:
        provider = ClientCredentialsOAuthProvider(
            server_url=server.mcp, storage=MemoryStorage(), client_id="nightly-report", client_secret=SECRET,
            token_endpoint_auth_method=method,  # type: ignore[arg-type]
            scope="notes:read", issuer=server.shim.issuer,
        )
        (result,) = anyio.run(call_tools, server.mcp, provider, ("whoami", {}))
    assert seen(result) == {"subject": "nightly-report", "client_id": "nightly-report", "scopes": ["notes:read"], "email": None}


def test_sdk_private_key_jwt_calls_a_tool_as_the_machine() -> None:
    from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters

    signer = MachineClient("signer", jwks={"keys": [SIGNER_KEY.as_dict(private=False)]}, scopes=("notes:read",))
    with serve(machine_clients=[signer]) as server:
        params = SignedJWTParameters(issuer="signer", subject="signer", signing_key=SIGNER_KEY.as_pem(private=True).decode())
        provider = PrivateKeyJWTOAuthProvider(
            server_url=server.mcp, storage=MemoryStorage(), client_id="signer",
            assertion_provider=params.create_assertion_provider(), scope="notes:read", issuer=server.shim.issuer,
        )
        (result,) = anyio.run(call_tools, server.mcp, provider, ("whoami", {}))
    assert seen(result)["subject"] == "signer"


def test_machine_token_without_the_tools_scope_is_refused_the_tool() -> None:
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    with serve(machine_clients=[READER]) as server:
        provider = ClientCredentialsOAuthProvider(
            server_url=server.mcp, storage=MemoryStorage(), client_id="nightly-report", client_secret=SECRET,
            scope="notes:read", issuer=server.shim.issuer,
        )
        token = anyio.run(_token_of, server, provider)
        # The same token, at the MCP endpoint, for the tool needing notes:write.
        response = httpx.post(
            server.mcp,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "write_note", "arguments": {}}},
            headers={
                "authorization": f"Bearer {token}",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2025-11-25",
            },
        )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "requires scope notes:write" in response.headers["www-authenticate"]


async def _token_of(server: Server, provider: Any) -> str:
    """Runs one tools/call with the SDK client so that it obtains (and stores) its token."""
    await call_tools(server.mcp, provider, ("whoami", {}))
    tokens = await provider.context.storage.get_tokens()
    return str(tokens.access_token)


AGENT = MachineClient(
    "desk-agent", client_secret=SECRET, grant_types=frozenset({JWT_BEARER_GRANT_TYPE}), scopes=("notes:read", "notes:write")
)


def exchange_for_id_jag(idp: IdJagIssuer, id_token: str) -> Any:
    """The client's half of §4: an RFC 8693 token exchange at the enterprise IdP, over HTTP."""

    async def assertion_provider(audience: str, resource: str) -> str:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
            response = await http.post(
                f"{idp.issuer}/token",
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "requested_token_type": ID_JAG_TOKEN_TYPE,
                    "audience": audience,
                    "resource": resource,
                    "scope": "notes:read",
                    "subject_token": id_token,
                    "subject_token_type": ID_TOKEN_TYPE,
                    "client_id": "desk-agent",
                    "client_secret": "secret-at-the-enterprise-idp",
                },
            )
        response.raise_for_status()
        body = response.json()
        assert body["issued_token_type"] == ID_JAG_TOKEN_TYPE
        return str(body["access_token"])

    return assertion_provider


def test_sdk_identity_assertion_calls_a_tool_as_the_enterprise_user() -> None:
    from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider

    with running_id_jag_issuer(
        clients={"desk-agent": "secret-at-the-enterprise-idp"}, policy={"desk-agent": ("notes:read",)}
    ) as idp, serve(machine_clients=[AGENT], enterprise_idps=[EnterpriseIdP(issuer=idp.issuer)]) as server:
        provider = IdentityAssertionOAuthProvider(
            server_url=server.mcp, storage=MemoryStorage(), client_id="desk-agent", client_secret=SECRET,
            issuer=server.shim.issuer, assertion_provider=exchange_for_id_jag(idp, idp.id_token("alice", "desk-agent")),
        )
        (result,) = anyio.run(call_tools, server.mcp, provider, ("whoami", {}))
    # The IdP's policy granted notes:read only, though the operator allows the client more.
    assert seen(result) == {"subject": "alice", "client_id": "desk-agent", "scopes": ["notes:read"], "email": None}
