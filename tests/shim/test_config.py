"""Configuration values check themselves: however an ``Upstream`` is made (``Upstream.oidc``, a
preset, the constructor, ``replace()``, custom metadata), it meets one URL policy, and the
error names the setting to change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import mcp_oauth_shim
from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream
from mcp_oauth_shim import config as config_module

ISSUER = "https://idp.example"
KEYS = ["k" * 48]


def _constructor(**changes: Any) -> Upstream:
    return Upstream(**{"client_id": "c", "client_secret": "s", "issuer": ISSUER, **changes})


def _replaced(**changes: Any) -> Upstream:
    return Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s").replace(**changes)


def _custom_metadata(**changes: Any) -> Upstream:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/token",
        **changes,
    }
    return OAuthShim(public_url="https://api.example.com", custom_metadata=document).upstream


MAKERS: list[Callable[..., Upstream]] = [_constructor, _replaced, _custom_metadata]


@pytest.mark.parametrize("make", MAKERS, ids=["constructor", "replace", "custom-metadata"])
@pytest.mark.parametrize(
    ("setting", "url", "problem"),
    [
        pytest.param("issuer", "http://idp.example", "use https", id="issuer-plain-http"),
        pytest.param("token_endpoint", "ftp://idp.example/token", "absolute http(s) URL", id="token-endpoint-ftp"),
        pytest.param("authorization_endpoint", "https://idp.example/a#x", "fragment", id="authorize-fragment"),
        pytest.param("jwks_uri", "https://idp.example:99999/jwks", "valid absolute", id="jwks-bad-port"),
        pytest.param("revocation_endpoint", 42, "string", id="revocation-not-a-string"),
    ],
)
def test_every_way_to_make_an_upstream_refuses_an_unusable_url_naming_the_setting(
    make: Callable[..., Upstream], setting: str, url: object, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as exc:
        make(**{setting: url})
    assert setting in str(exc.value)
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Upstream.keycloak(base_url="http://keycloak.internal", realm="r", client_id="c", client_secret="s"), id="keycloak"),
        pytest.param(lambda: Upstream.oidc(metadata_url="http://idp.example/.well-known/openid-configuration", client_id="c", client_secret="s"), id="oidc-metadata-url"),
    ],
)
def test_a_preset_meets_the_same_url_policy(make: Callable[[], Upstream]) -> None:
    with pytest.raises(ConfigurationError, match="use https"):
        make()


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:9000"])
def test_plain_http_to_loopback_is_accepted_for_development(host: str) -> None:
    assert _constructor(issuer=f"http://{host}").issuer == f"http://{host}"


def test_an_upstream_with_neither_issuer_nor_endpoints_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="issuer"):
        Upstream(client_id="c", client_secret="s")


def test_replace_cannot_smuggle_a_reserved_authorize_parameter() -> None:
    with pytest.raises(ConfigurationError, match="redirect_uri"):
        _replaced(extra_authorize_params={"redirect_uri": "https://evil.example/cb"})


@pytest.mark.parametrize(
    ("setting", "url", "problem"),
    [
        pytest.param("public_url", "http://api.example.com", "use https", id="public-url-plain-http"),
        pytest.param("public_url", "https://api.example.com/?tenant=1", "query", id="public-url-query"),
        pytest.param("public_url", "https://api.example.com/#f", "fragment", id="public-url-fragment"),
        pytest.param("resource", "http://api.example.com/mcp", "use https", id="resource-plain-http"),
        pytest.param("resource", "https://api.example.com/mcp#f", "fragment", id="resource-fragment"),
    ],
)
def test_the_shim_refuses_an_unusable_url_naming_the_setting(setting: str, url: str, problem: str) -> None:
    settings = {"public_url": "https://api.example.com", setting: url}
    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s")
    with pytest.raises(ConfigurationError) as exc:
        OAuthShim(upstream=upstream, secret_keys=KEYS, **settings)
    assert str(exc.value).startswith(f"{setting} must ")
    assert problem in str(exc.value)


def test_the_public_url_loses_its_trailing_slash() -> None:
    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s")
    shim = OAuthShim(public_url="https://api.example.com/", upstream=upstream, secret_keys=KEYS)
    assert shim.public_url == "https://api.example.com"
    assert shim.resource == "https://api.example.com/mcp"


@pytest.mark.parametrize("name", ["Lifetimes", "Paths", "Upstream", "AccessTokenProfile", "ConfigurationError"])
def test_configuration_values_are_public_from_the_package(name: str) -> None:
    assert getattr(mcp_oauth_shim, name) is getattr(config_module, name)
