"""Talking to the IdP: discovery once, issuer exactness, bounded time, clear failures."""

import asyncio

import httpx
import pytest

from mcp_oauth_shim import ConfigurationError, Upstream
from mcp_oauth_shim.upstream import default_http_client, UpstreamClient, UpstreamError

ISSUER = "https://idp.example"
DOC = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/authorize",
    "token_endpoint": ISSUER + "/token",
    "jwks_uri": ISSUER + "/jwks",
}


def _client(handler, **kwargs) -> UpstreamClient:
    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s", **kwargs)
    return UpstreamClient(upstream, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def test_discovery_runs_once_for_concurrent_callers():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return httpx.Response(200, json=DOC)

    client = _client(handler)

    async def main():
        return await asyncio.gather(*(client.metadata() for _ in range(20)))

    results = asyncio.run(main())
    assert calls == ["/.well-known/openid-configuration"]
    assert all(r.token_endpoint == ISSUER + "/token" for r in results)


def test_discovered_issuer_must_match_the_configured_one():
    client = _client(lambda r: httpx.Response(200, json={**DOC, "issuer": "https://evil.example"}))
    with pytest.raises(UpstreamError) as exc:
        asyncio.run(client.metadata())
    assert exc.value.status_code == 502
    assert "issuer" in exc.value.description


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        (lambda r: (_ for _ in ()).throw(httpx.ConnectTimeout("slow")), 504),
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")), 502),
        (lambda r: httpx.Response(404), 502),
        (lambda r: httpx.Response(200, content=b"<html>"), 502),
        (lambda r: httpx.Response(200, json={"issuer": ISSUER}), 502),
        (lambda r: httpx.Response(200, json={**DOC, "token_endpoint": 7}), 502),
        (lambda r: httpx.Response(200, content=b"{" + b" " * (2 * 1024 * 1024) + b"}"), 502),
    ],
)
def test_discovery_failures_become_upstream_errors(handler, status):
    with pytest.raises(UpstreamError) as exc:
        asyncio.run(_client(handler).metadata())
    assert exc.value.status_code == status


def test_a_failed_discovery_is_retried_on_the_next_call():
    answers = iter([httpx.ConnectError("down"), None])

    def handler(request):
        failure = next(answers)
        if failure:
            raise failure
        return httpx.Response(200, json=DOC)

    client = _client(handler)
    with pytest.raises(UpstreamError):
        asyncio.run(client.metadata())
    assert asyncio.run(client.metadata()).issuer == ISSUER


def test_explicit_endpoints_need_no_discovery():
    upstream = Upstream.oidc(
        client_id="c", client_secret="s", authorization_endpoint=ISSUER + "/a", token_endpoint=ISSUER + "/t"
    )
    client = UpstreamClient(upstream, http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: 1 / 0)))
    assert asyncio.run(client.metadata()).token_endpoint == ISSUER + "/t"


def test_the_default_transport_is_the_pool_bounded_by_the_upstream_timeout():
    from mcp_oauth_shim.upstream.pool import ConnectionPool

    client = UpstreamClient(Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s", timeout=3))
    assert isinstance(client.transport, ConnectionPool)
    assert client.transport.timeout == 3


def test_default_http_client_has_bounded_timeouts_and_no_redirects():
    http = default_http_client(3)
    assert http.timeout.read == 3
    assert http.timeout.connect == 3
    assert http.follow_redirects is False


BAD_CONFIG = [
    ({"client_id": ""}, "client_id"),
    ({"client_secret": ""}, "client_secret"),
    ({"issuer": None}, "issuer"),
    ({"issuer": "http://idp.example"}, "https"),
    ({"issuer": "ftp://idp.example"}, "http(s)"),
    ({"audience_param": "aud"}, "audience_param"),
    ({"token_auth_method": "private_key_jwt"}, "token_auth_method"),
    ({"extra_authorize_params": {"redirect_uri": "https://evil.example"}}, "redirect_uri"),
    ({"extra_authorize_params": {"client_id": "x"}}, "client_id"),
]


@pytest.mark.parametrize(("changes", "mentions"), BAD_CONFIG)
def test_bad_upstream_configuration_says_what_to_fix(changes, mentions):
    args = {"issuer": ISSUER, "client_id": "c", "client_secret": "s", **changes}
    with pytest.raises(ConfigurationError) as exc:
        Upstream.oidc(**args)
    assert mentions in str(exc.value)


def test_shim_refuses_short_or_missing_secret_keys():
    from mcp_oauth_shim import OAuthShim

    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s")
    with pytest.raises(ConfigurationError):
        OAuthShim(public_url="https://api.example.com", upstream=upstream)
    with pytest.raises(ConfigurationError):
        OAuthShim(public_url="https://api.example.com", upstream=upstream, secret_keys=["short"])


@pytest.mark.parametrize("url", ["http://api.example.com", "https://api.example.com/?x=1", "api.example.com", "https://api.example.com/#f"])
def test_shim_refuses_unsafe_public_urls(url):
    from mcp_oauth_shim import OAuthShim

    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s")
    with pytest.raises(ConfigurationError):
        OAuthShim(public_url=url, upstream=upstream, secret_keys=["k" * 40])


def test_key_rotation_accepts_values_signed_with_an_older_key():
    from mcp_oauth_shim.sealing import CODE, Sealer, SealError

    old, new = "o" * 40, "n" * 40
    sealed = Sealer([old]).seal(CODE, {"u": 1})
    assert Sealer([new, old]).unseal(CODE, sealed, max_age=60) == {"u": 1}
    with pytest.raises(SealError):
        Sealer([new]).unseal(CODE, sealed, max_age=60)


def test_a_value_sealed_for_one_purpose_is_refused_for_another():
    from mcp_oauth_shim.sealing import CLIENT, CODE, REFRESH, STATE, Sealer, SealError

    sealer = Sealer(["k" * 40])
    sealed = sealer.seal(CLIENT, {"r": ["x"]})
    for purpose in (CODE, REFRESH, STATE):
        with pytest.raises(SealError):
            sealer.unseal(purpose, sealed, max_age=60)
