"""The metadata documents (RFC 8414, OIDC Discovery, RFC 9728) at odd paths, with any method
and any ``Host``, ``Origin`` and forwarding headers.

Properties: the document (its ``issuer`` / ``resource`` the configured ones, whatever the
request's host) or 404/405; a CORS preflight answered; never a 5xx.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .properties import assert_no_server_error, assert_nothing_leaks, captured_logs
from .setups import HTTPS_PUBLIC_URL, FuzzKit, build_kit
from .strategies import FUZZ, header_values, hostile_text, wire

WELL_KNOWN = ["oauth-authorization-server", "openid-configuration", "oauth-protected-resource", "jwks.json", ""]
SEGMENTS = ["mcp", "", "..", ".", "%2e%2e", "%2F", "mcp/", "MCP", "mcp%00", "//", "oauth", "a" * 300]


@pytest.fixture(scope="module")
def kit() -> FuzzKit:
    return build_kit(public_url=HTTPS_PUBLIC_URL)


@st.composite
def odd_path(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(WELL_KNOWN))
    odd = st.lists(st.one_of(st.sampled_from(SEGMENTS), hostile_text.map(lambda s: quote(s, safe=""))), min_size=1, max_size=3)
    segments = draw(st.one_of(st.just([]), st.just(["mcp"]), odd))
    path = "/.well-known/" + name + "".join("/" + s for s in segments)
    if draw(st.integers(0, 3)) == 0:
        path = draw(st.sampled_from(["", "/mcp", "//", "/oauth"])) + path
    if draw(st.integers(0, 3)) == 0:
        path += "?" + quote(draw(hostile_text), safe="=&%")
    return path


@st.composite
def odd_headers(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(["host", "origin", "x-forwarded-host", "x-forwarded-proto", "forwarded", "accept", "mcp-protocol-version"]), unique=True, max_size=4)):
        headers[name] = draw(st.one_of(st.sampled_from(["evil.example", "https://evil.example", "127.0.0.1:1", "*/*"]), header_values))
    return headers


@FUZZ
@given(path=odd_path(), method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE"]), headers=odd_headers())
def test_metadata_paths_answer_the_configured_document_or_404(kit: FuzzKit, path: str, method: str, headers: dict[str, str]) -> None:
    kit.client.cookies.clear()
    with captured_logs(kit.public_url) as logs:
        response = kit.client.request(method, path, headers=wire(headers))
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert response.status_code in (200, 204, 400, 404, 405), (response.status_code, path)
    if response.status_code == 200 and method == "GET":
        document = response.json()
        assert isinstance(document, dict)
        if "issuer" in document:  # RFC 8414 §3.3: exactly the issuer, never a host from the request
            assert document["issuer"] == kit.shim.issuer
            assert all(
                value.startswith(kit.shim.issuer + "/")
                for key, value in document.items()
                if key.endswith("_endpoint") and isinstance(value, str)
            ), document
        else:  # RFC 9728 §3.3: resource and authorization server, as configured
            assert document["resource"] == kit.shim.resource
            assert document["authorization_servers"] == [kit.shim.issuer]
    assert_nothing_leaks(response, logs, kit.secrets)
