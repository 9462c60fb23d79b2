"""Fetching a trusted signer's keys: the JSON fetcher's refusals (fault injection through a mock
transport) and where discovery looks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mcp_oauth_shim.remote_keys import JsonFetchError, KeysUnavailable, RemoteKeys, discovery_urls, httpx_json_fetcher

pytestmark = pytest.mark.anyio


def fetcher(response: httpx.Response | Exception) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    return httpx_json_fetcher(httpx.AsyncClient(transport=httpx.MockTransport(handler)), max_bytes=1000)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(404, json={}), id="not-found"),
        pytest.param(httpx.Response(302, headers={"Location": "http://169.254.169.254/"}), id="redirect-not-followed"),
        pytest.param(httpx.Response(200, content=b"x" * 2000), id="too-large"),
        pytest.param(httpx.Response(200, content=b"not json"), id="not-json"),
        pytest.param(httpx.Response(200, content=b"[" * 900), id="unclosed-nesting"),
        pytest.param(httpx.Response(200, json=[1, 2]), id="array"),
        pytest.param(httpx.ConnectError("refused"), id="connection-refused"),
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
    ],
)
async def test_unusable_answer_is_a_fetch_error(response: Any) -> None:
    with pytest.raises(JsonFetchError):
        await fetcher(response)("https://idp.example/jwks")


async def test_json_object_is_returned() -> None:
    assert await fetcher(httpx.Response(200, json={"keys": []}))("https://idp.example/jwks") == {"keys": []}


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        ("https://idp.example", ("https://idp.example/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server")),
        ("https://idp.example/tenant/", ("https://idp.example/tenant/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server/tenant")),
    ],
)
def test_discovery_looks_where_oidc_and_rfc8414_say(issuer: str, expected: tuple[str, ...]) -> None:
    assert discovery_urls(issuer) == expected


async def test_unusable_key_set_is_keys_unavailable() -> None:
    keys = RemoteKeys(fetcher(httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})), jwks_uri="https://idp.example/jwks")
    with pytest.raises(KeysUnavailable):
        await keys.keys()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"jwks_uri": "https://idp.example/jwks", "issuer": "https://idp.example"},
        {"jwks_uri": "http://idp.example/jwks"},
        {"issuer": "https://idp.example?x=1"},
    ],
)
def test_remote_keys_refuses_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RemoteKeys(fetcher(httpx.Response(200, json={})), **kwargs)
