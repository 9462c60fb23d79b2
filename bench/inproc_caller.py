"""In-process cost of asking for the caller in a route: `bearer_token`, `verified_caller`,
`upstream_token`, for a token the verifier has already seen (a tool call through the bridge:
the MCP endpoint verified it first).

``python bench/inproc_caller.py [--number 5000] [--repeat 5]``

Per call of the dependency (awaited directly on a request scope, no HTTP), CPU time
(``time.process_time``), best of ``--repeat`` runs, in µs; passthrough (the IdP's JWT, the
shim's ``BearerVerifier``) and issued-token mode (the shim's own token, ``upstream_token``
decrypting the carried IdP token each call).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi.security import SecurityScopes  # noqa: E402
from starlette.requests import Request  # noqa: E402

from mcp_bridge import bearer_token, upstream_token, verified_caller  # noqa: E402
from mcp_oauth_shim import OAuthShim  # noqa: E402
from tests.bridge.token_issuer import TokenIssuer  # noqa: E402

URL = "http://127.0.0.1:8000"


def request_with(token: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/me",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {token}".encode())],
            "query_string": b"",
        }
    )


async def per_call(dependency: Callable[[SecurityScopes, Request], Awaitable[Any]], request: Request, number: int, repeat: int) -> float:
    scopes = SecurityScopes(["notes:read"])
    await dependency(scopes, request)  # the MCP endpoint's verification: fills the cache
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            await dependency(scopes, request)
        best = min(best, time.process_time() - start)
    return best / number * 1e6


def token_of(shim: OAuthShim, idp: TokenIssuer) -> str:
    issued = shim.context.issued
    if issued is None:
        return idp.token(audience=URL + "/mcp", scopes=("notes:read",), extra_claims={"name": "Ada", "email": "ada@example.test"})
    return issued.tokens.access_token(
        client_id="mcp-client",
        subject="user-1",
        scopes="notes:read",
        identity_claims={"name": "Ada", "email": "ada@example.test"},
        upstream_access_token="gho_" + "x" * 36,
    )


async def main(number: int, repeat: int) -> None:
    idp = TokenIssuer()
    for mode, issue_tokens in (("passthrough", False), ("issued", True)):
        shim = idp.shim(URL, issue_tokens=issue_tokens)
        request = request_with(token_of(shim, idp))
        for name, make in (("bearer_token", bearer_token), ("verified_caller", verified_caller), ("upstream_token", upstream_token)):
            cost = await per_call(make(shim), request, number, repeat)
            print(f"{mode:12} {name:16} {cost:8.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.number, arguments.repeat))
