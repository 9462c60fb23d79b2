"""Health probes: liveness never asks the IdP; readiness asks at most once per period."""

import asyncio

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.config import Paths
from mcp_oauth_shim.health import Readiness

from ..shim.counting_idp import CountingIdP, SHIM_URL


def upstream(idp: CountingIdP) -> Upstream:
    return Upstream.oidc(issuer=idp.issuer, client_id="shim", client_secret="shim-secret")


def test_liveness_answers_200_without_asking_the_idp():
    idp = CountingIdP()
    client = TestClient(idp.shim(upstream(idp)).app, base_url=SHIM_URL)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert sum(idp.requests.values()) == 0


def test_readiness_is_200_when_the_discovery_document_can_be_read():
    idp = CountingIdP()
    client = TestClient(idp.shim(upstream(idp)).app, base_url=SHIM_URL)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "idp": "reachable"}


def test_readiness_is_503_with_a_reason_when_the_idp_is_down():
    idp = CountingIdP()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    shim = OAuthShim(
        public_url=SHIM_URL,
        upstream=upstream(idp),
        secret_keys=["s" * 48],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
    )
    response = TestClient(shim.app, base_url=SHIM_URL).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["idp"] == "unreachable"
    assert "could not be reached" in body["reason"]
    assert "shim-secret" not in response.text


def test_readiness_asks_the_idp_at_most_once_per_period():
    idp = CountingIdP()
    client = TestClient(idp.shim(upstream(idp)).app, base_url=SHIM_URL)
    for _ in range(20):
        assert client.get("/readyz").status_code == 200
    assert idp.requests["discovery"] == 1


def test_readiness_asks_again_once_the_period_is_over():
    idp = CountingIdP()
    shim = idp.shim(upstream(idp))
    now = [0.0]
    readiness = Readiness(shim.upstream_client, ttl=5.0, clock=lambda: now[0])

    async def probes():
        await readiness.check()
        now[0] = 4.9
        await readiness.check()
        now[0] = 5.1
        await readiness.check()

    asyncio.run(probes())
    assert idp.requests["discovery"] == 2


def test_concurrent_probes_share_one_idp_request():
    idp = CountingIdP()
    readiness = Readiness(idp.shim(upstream(idp)).upstream_client)

    async def probes():
        return await asyncio.gather(*(readiness.check() for _ in range(10)))

    results = asyncio.run(probes())
    assert all(r.ready for r in results)
    assert idp.requests["discovery"] == 1


def test_readiness_of_an_upstream_without_discovery_is_not_checked():
    idp = CountingIdP()
    configured = Upstream(
        client_id="shim",
        client_secret="shim-secret",
        issuer=idp.issuer,
        authorization_endpoint=idp.issuer + "/authorize",
        token_endpoint=idp.issuer + "/token",
    )
    client = TestClient(idp.shim(configured).app, base_url=SHIM_URL)
    assert client.get("/readyz").json() == {"status": "ok", "idp": "not checked"}
    assert sum(idp.requests.values()) == 0


@pytest.mark.parametrize(
    ("public_url", "paths", "live", "ready"),
    [
        ("http://127.0.0.1:8000", Paths(), "/healthz", "/readyz"),
        ("http://127.0.0.1:8000/auth", Paths(), "/auth/healthz", "/auth/readyz"),
        ("http://127.0.0.1:8000", Paths(liveness="/live", readiness="/ready"), "/live", "/ready"),
    ],
)
def test_probe_paths_follow_the_public_url_and_paths(public_url, paths, live, ready):
    idp = CountingIdP()
    shim = OAuthShim(public_url=public_url, upstream=upstream(idp), secret_keys=["s" * 48], http_client=idp.http(), paths=paths)
    client = TestClient(shim.app, base_url="http://127.0.0.1:8000")
    assert client.get(live).status_code == 200
    assert client.get(ready).status_code == 200


def test_probes_are_not_among_the_routes_mounted_into_an_application():
    idp = CountingIdP()
    shim = idp.shim(upstream(idp))
    paths = {getattr(route, "path", None) for route in shim.routes}
    assert "/healthz" not in paths and "/readyz" not in paths
