"""Issued-token mode's wiring: configuration, the JWKS endpoint, the nonce of ID-token logins."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream
from mcp_oauth_shim.payloads import AuthorizationCode
from mcp_oauth_shim.signing_keys import SigningKeys
from tests.shim.kit import PUBLIC_URL, SECRET_KEY, make_kit, pkce_pair

UPSTREAM = Upstream.oidc(issuer="https://idp.example.test", client_id="c", client_secret="s")


@pytest.mark.parametrize(
    ("upstream", "argument", "expected"),
    [
        pytest.param(UPSTREAM, None, False, id="oidc-default-passthrough"),
        pytest.param(UPSTREAM, True, True, id="oidc-opt-in"),
        pytest.param(Upstream.google("c", "s"), None, True, id="google-preset"),
        pytest.param(Upstream.google("c", "s"), False, False, id="google-opt-out"),
        pytest.param(Upstream.github("c", "s"), None, True, id="github-preset"),
    ],
)
def test_token_mode_follows_the_argument_else_the_preset(upstream: Upstream, argument: bool | None, expected: bool) -> None:
    shim = OAuthShim(public_url=PUBLIC_URL, upstream=upstream, secret_keys=[SECRET_KEY], issue_tokens=argument)
    assert shim.issue_tokens is expected
    assert (shim.context.issued is not None) is expected


def test_signing_keys_without_issued_tokens_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="issue_tokens"):
        OAuthShim(public_url=PUBLIC_URL, upstream=UPSTREAM, secret_keys=[SECRET_KEY], signing_keys=[SECRET_KEY])


def test_operator_signing_keys_sign_and_are_published() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kit = make_kit(issue_tokens=True, signing_keys=[pem])
    expected = SigningKeys.from_keys([pem]).current.kid
    assert [k["kid"] for k in kit.client.get("/oauth/jwks").json()["keys"]] == [expected]


def test_jwks_endpoint_serves_public_keys_as_json_with_cors_and_caching() -> None:
    kit = make_kit(issue_tokens=True)
    answer = kit.client.get("/oauth/jwks", headers={"Origin": "https://inspector.example"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert "max-age" in answer.headers["cache-control"]
    assert answer.headers.get("access-control-allow-origin") == "*"
    keys = answer.json()["keys"]
    assert keys and all("d" not in key for key in keys)


def test_passthrough_mode_serves_no_jwks() -> None:
    assert make_kit().client.get("/oauth/jwks").status_code == 404


def idp_authorization_query(kit: Any) -> dict[str, list[str]]:
    client_id = kit.register()["client_id"]
    _, challenge = pkce_pair()
    consent = kit.approve(kit.authorize_params(client_id, challenge))
    assert consent.status_code == 303
    return parse_qs(urlsplit(consent.headers["location"]).query)


def test_id_token_logins_send_a_nonce_to_the_idp() -> None:
    query = idp_authorization_query(make_kit(issue_tokens=True))
    assert len(query["nonce"][0]) >= 16


def test_passthrough_logins_send_no_nonce() -> None:
    assert "nonce" not in idp_authorization_query(make_kit())


def test_an_id_token_for_another_login_is_invalid_grant() -> None:
    """The code is re-sealed with another nonce: the IdP's ID token (with the login's nonce)
    no longer matches, as for a code injected from another login."""
    kit = make_kit(issue_tokens=True)
    login = kit.login()
    code = AuthorizationCode.open(kit.shim.context.sealer, login["code"], max_age=300)
    assert code.nonce is not None
    code.nonce = "another-login-nonce-0123456789"
    answer = kit.exchange({**login, "code": code.seal(kit.shim.context.sealer)})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
