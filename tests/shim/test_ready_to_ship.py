"""What a new user meets first: the README snippet pasted unchanged, a key given as a string,
an IdP that is down, a shim used again after its app stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream
from mcp_oauth_shim.dev_idp import DevIdP
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError
from tests.peers.servers import bind_loopback, serve_asgi

from .kit import PUBLIC_URL, SECRET_KEY, Kit, make_kit, pkce_pair

README_KEY = "<48 random bytes, see docs/configuration.md>"


def auth0(**overrides: str) -> Upstream:
    values = {"client_id": "abc123", "client_secret": "a-real-looking-secret", **overrides}
    return Upstream.auth0(domain="tenant.eu.auth0.com", audience="https://api.example.com/mcp", **values)


@pytest.mark.parametrize(
    ("upstream_overrides", "secret_keys", "named"),
    [
        pytest.param({"client_id": "..."}, [SECRET_KEY], "client_id", id="client_id-dots"),
        pytest.param({"client_secret": "..."}, [SECRET_KEY], "client_secret", id="client_secret-dots"),
        pytest.param({"client_id": "\u2026"}, [SECRET_KEY], "client_id", id="client_id-ellipsis"),
        pytest.param({"client_secret": "<your client secret>"}, [SECRET_KEY], "client_secret", id="client_secret-angle"),
        pytest.param({}, [README_KEY], "secret_keys", id="readme-key"),
        pytest.param({}, [SECRET_KEY, README_KEY], "secret_keys", id="readme-key-second"),
    ],
)
def test_documentation_placeholders_are_refused(
    upstream_overrides: dict[str, str], secret_keys: list[str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match="placeholder") as exc:
        OAuthShim(public_url="https://api.example.com", upstream=auth0(**upstream_overrides), secret_keys=secret_keys)
    assert named in str(exc.value)


def test_the_readme_snippet_pasted_as_is_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="placeholder"):
        OAuthShim(
            public_url="https://api.example.com",
            resource="https://api.example.com/mcp",
            upstream=Upstream.auth0(
                domain="tenant.eu.auth0.com",
                client_id="...",
                client_secret="...",
                audience="https://api.example.com/mcp",
            ),
            secret_keys=[README_KEY],
        )


@pytest.mark.parametrize("value", ["abc123", "my.client...id", "<abc", "a" * 40])
def test_values_that_merely_contain_dots_or_brackets_are_accepted(value: str) -> None:
    shim = OAuthShim(public_url="https://api.example.com", upstream=auth0(client_id=value), secret_keys=[SECRET_KEY])
    assert shim.upstream.client_id == value


@pytest.mark.parametrize("keys", [SECRET_KEY, SECRET_KEY.encode()], ids=["str", "bytes"])
def test_secret_keys_given_as_one_string_asks_for_a_list(keys: Any) -> None:
    with pytest.raises(ConfigurationError, match="a list of keys"):
        OAuthShim(public_url="https://api.example.com", upstream=auth0(), secret_keys=keys)


# -- the IdP is down -------------------------------------------------------------------------


def _refuse_connections(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_an_idp_outage_at_consent_is_temporarily_unavailable_not_invalid_request() -> None:
    kit = make_kit()
    client_id = kit.register()["client_id"]
    form = kit.consent_form(kit.authorize_params(client_id, pkce_pair()[1]))
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(_refuse_connections))
    response = kit.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    assert response.status_code == 502
    assert "temporarily_unavailable" in response.text
    assert "invalid_request" not in response.text
    assert "could not be reached" in response.text


def test_an_unreachable_idp_names_the_discovery_document_it_could_not_read() -> None:
    upstream = Upstream.oidc(issuer="https://idp.example", client_id="c", client_secret="s")
    client = UpstreamClient(upstream, http=httpx.AsyncClient(transport=httpx.MockTransport(_refuse_connections)))
    with pytest.raises(UpstreamError) as exc:
        asyncio.run(client.metadata())
    assert (exc.value.status_code, exc.value.error) == (502, "temporarily_unavailable")
    assert "https://idp.example/.well-known/openid-configuration" in exc.value.description


# -- a shim used again after its lifespan -----------------------------------------------------


@contextlib.contextmanager
def shim_with_its_own_connections() -> Iterator[OAuthShim]:
    """A shim that opens its own connections (no http_client given) to an IdP on loopback."""
    idp_sock = bind_loopback()
    idp_url = f"http://127.0.0.1:{idp_sock.getsockname()[1]}"
    idp = DevIdP(issuer=idp_url, redirect_uris=[PUBLIC_URL + "/oauth/callback"], auto_approve=True)
    with serve_asgi(idp.app, idp_sock):
        yield OAuthShim(
            public_url=PUBLIC_URL,
            upstream=Upstream.oidc(issuer=idp_url, client_id=idp.client_id, client_secret=idp.client_secret),
            secret_keys=[SECRET_KEY],
        )


def approve_a_login(shim: OAuthShim, client: TestClient) -> httpx.Response:
    """Register, authorize, approve: the approval reads the IdP's metadata to send the user there."""
    kit = Kit(idp=None, shim=shim, client=client, idp_client=None)  # type: ignore[arg-type]
    return kit.approve(kit.authorize_params(kit.register()["client_id"], pkce_pair()[1]))


def test_a_shim_answers_again_in_a_second_lifespan() -> None:
    with shim_with_its_own_connections() as shim:
        with TestClient(shim.app, base_url=PUBLIC_URL):
            pass  # an app that started and stopped (a first test, a restart in the same process)
        with TestClient(shim.app, base_url=PUBLIC_URL) as client:
            response = approve_a_login(shim, client)
        assert response.status_code == 303, response.text


def test_a_shim_answers_again_without_a_lifespan_after_one_ended() -> None:
    with shim_with_its_own_connections() as shim:
        with TestClient(shim.app, base_url=PUBLIC_URL):
            pass
        response = approve_a_login(shim, TestClient(shim.app, base_url=PUBLIC_URL))
        assert response.status_code == 303, response.text
