"""What each IdP preset sets, as values: endpoints, token mode, identity source, parameters."""

from __future__ import annotations

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.config import ConfigurationError

AUTH0 = Upstream.auth0(domain="tenant.eu.auth0.com", client_id="c", client_secret="s", audience="https://api.example/")
KEYCLOAK = Upstream.keycloak(base_url="https://kc.example", realm="acme", client_id="c", client_secret="s")
OKTA = Upstream.okta(domain="acme.okta.com", client_id="c", client_secret="s")
ENTRA = Upstream.entra(tenant_id="t", client_id="c", client_secret="s")
GOOGLE = Upstream.google("id.apps.googleusercontent.com", "s")
GITHUB = Upstream.github("Iv1.abc", "s")
COGNITO = Upstream.cognito(region="eu-west-1", user_pool_id="eu-west-1_AbC123", client_id="c", client_secret="s")
COGNITO_DOMAIN = Upstream.cognito(
    region="eu-west-1", user_pool_id="eu-west-1_AbC123", client_id="c", client_secret="s", domain="myapp"
)
COGNITO_CUSTOM_DOMAIN = Upstream.cognito(
    region="eu-west-1", user_pool_id="eu-west-1_AbC123", client_id="c", client_secret="s", domain="auth.example.com"
)


@pytest.mark.parametrize(
    ("upstream", "issue_tokens", "resolved"),
    [
        (AUTH0, None, False),
        (KEYCLOAK, None, False),
        (OKTA, None, False),
        (ENTRA, None, False),
        (GOOGLE, True, True),
        (GITHUB, True, True),
        (COGNITO, True, True),
    ],
    ids=["auth0", "keycloak", "okta", "entra", "google", "github", "cognito"],
)
def test_preset_prefers_its_token_mode(upstream: Upstream, issue_tokens: bool | None, resolved: bool) -> None:
    assert (upstream.issue_tokens, upstream.resolve_issue_tokens()) == (issue_tokens, resolved)


@pytest.mark.parametrize(
    ("preferred", "requested", "resolved"),
    [(None, None, False), (None, True, True), (True, None, True), (True, False, False), (False, True, True)],
)
def test_shim_argument_overrides_the_preset_preference(
    preferred: bool | None, requested: bool | None, resolved: bool
) -> None:
    upstream = Upstream.oidc(issuer="https://idp.example", client_id="c", client_secret="s", issue_tokens=preferred)
    assert upstream.resolve_issue_tokens(requested) is resolved


@pytest.mark.parametrize(
    "make",
    [
        lambda: Upstream.auth0(domain="t.auth0.com", client_id="c", client_secret="s", audience="a", issue_tokens=True),
        lambda: Upstream.keycloak(base_url="https://kc.example", realm="r", client_id="c", client_secret="s", issue_tokens=True),
        lambda: Upstream.okta(domain="o.okta.com", client_id="c", client_secret="s", issue_tokens=True),
        lambda: Upstream.entra(tenant_id="t", client_id="c", client_secret="s", issue_tokens=True),
    ],
    ids=["auth0", "keycloak", "okta", "entra"],
)
def test_passthrough_presets_can_opt_in_to_issued_tokens(make) -> None:
    assert make().resolve_issue_tokens() is True


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (
            GOOGLE,
            {
                "name": "google",
                "issuer": "https://accounts.google.com",
                "metadata_url": "https://accounts.google.com/.well-known/openid-configuration",
                "authorization_endpoint": None,
                "token_endpoint": None,
                "audience_param": "none",
                "default_scopes": ("openid", "email", "profile"),
                "extra_scopes": (),
                "extra_authorize_params": {"access_type": "offline", "prompt": "consent"},
                "identity": "id_token",
                "user_api": None,
                "userinfo_endpoint": None,
                "token_auth_method": "client_secret_post",
            },
        ),
        (
            GITHUB,
            {
                "name": "github",
                "issuer": None,
                "metadata_url": None,
                "authorization_endpoint": "https://github.com/login/oauth/authorize",
                "token_endpoint": "https://github.com/login/oauth/access_token",
                "jwks_uri": None,
                "audience_param": "none",
                "default_scopes": ("read:user", "user:email"),
                "extra_scopes": (),
                "extra_authorize_params": {},
                "identity": "github",
                "user_api": "https://api.github.com",
                "token_auth_method": "client_secret_post",
            },
        ),
        (
            COGNITO,
            {
                "name": "cognito",
                "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
                "metadata_url": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/openid-configuration",
                "authorization_endpoint": None,
                "token_endpoint": None,
                "audience_param": "none",
                "default_scopes": ("openid", "email", "profile"),
                "extra_scopes": (),
                "identity": "id_token",
                "token_auth_method": "client_secret_basic",
            },
        ),
        (
            COGNITO_DOMAIN,
            {
                "metadata_url": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/openid-configuration",
                "authorization_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
                "token_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/token",
                "revocation_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/revoke",
                "userinfo_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/userInfo",
            },
        ),
        (
            COGNITO_CUSTOM_DOMAIN,
            {
                "authorization_endpoint": "https://auth.example.com/oauth2/authorize",
                "token_endpoint": "https://auth.example.com/oauth2/token",
            },
        ),
    ],
    ids=["google", "github", "cognito", "cognito-domain-prefix", "cognito-custom-domain"],
)
def test_issued_token_preset_values(upstream: Upstream, expected: dict[str, object]) -> None:
    actual = {name: getattr(upstream, name) for name in expected}
    assert {k: dict(v) if k == "extra_authorize_params" else v for k, v in actual.items()} == expected


@pytest.mark.parametrize(
    ("upstream", "upstream_scope"),
    [(GOOGLE, "openid email profile"), (GITHUB, "read:user user:email"), (COGNITO, "openid email profile")],
    ids=["google", "github", "cognito"],
)
def test_default_scopes_are_sent_space_separated_and_unprefixed(upstream: Upstream, upstream_scope: str) -> None:
    assert upstream.upstream_scope(" ".join(upstream.default_scopes)) == upstream_scope


def test_preset_options_override_the_issued_token_defaults() -> None:
    upstream = Upstream.google("id", "s", issue_tokens=False, extra_authorize_params={"prompt": "select_account"})
    assert (upstream.issue_tokens, dict(upstream.extra_authorize_params)) == (False, {"prompt": "select_account"})


def test_github_enterprise_server_overrides_the_endpoints() -> None:
    upstream = Upstream.github(
        "id",
        "s",
        authorization_endpoint="https://ghe.example/login/oauth/authorize",
        token_endpoint="https://ghe.example/login/oauth/access_token",
        user_api="https://ghe.example/api/v3",
    )
    assert (upstream.authorization_endpoint, upstream.token_endpoint, upstream.user_api) == (
        "https://ghe.example/login/oauth/authorize",
        "https://ghe.example/login/oauth/access_token",
        "https://ghe.example/api/v3",
    )


def test_presets_take_client_credentials_by_keyword_too() -> None:
    assert Upstream.github(client_id="id", client_secret="s") == Upstream.github("id", "s")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issue_tokens": "yes"}, "issue_tokens must be True, False or None"),
        ({"identity": "saml"}, "identity must be one of"),
        ({"identity": "github"}, "identity='github' needs user_api="),
        ({"user_api": "https://api.github.com"}, "user_api is read only with identity='github'"),
        ({"userinfo_endpoint": "http://idp.example/userinfo"}, "userinfo_endpoint must use https"),
        ({"identity": "github", "user_api": "ftp://api.example/user"}, "user_api must be an absolute http"),
    ],
    ids=["issue-tokens-not-bool", "unknown-identity", "github-without-user-api", "user-api-unused", "userinfo-http", "user-api-not-http"],
)
def test_identity_settings_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Upstream.oidc(issuer="https://idp.example", client_id="c", client_secret="s", **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("region", "user_pool_id", "message"),
    [
        ("eu-west-1", "us-east-1_AbC123", "user_pool_id must look like 'eu-west-1_AbCdEf123'"),
        ("eu-west-1", "AbC123", "user_pool_id must look like"),
        ("eu-west-1", "eu-west-1_Ab/../x", "user_pool_id must look like"),
        ("Europe", "Europe_AbC123", "region must look like 'eu-west-1'"),
    ],
    ids=["pool-of-another-region", "pool-without-region", "pool-with-path", "bad-region"],
)
def test_cognito_refuses_a_malformed_pool(region: str, user_pool_id: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Upstream.cognito(region=region, user_pool_id=user_pool_id, client_id="c", client_secret="s")


@pytest.mark.parametrize(
    ("upstream", "scope", "granted"),
    [
        (GOOGLE, "openid https://www.googleapis.com/auth/userinfo.email", ("openid", "https://www.googleapis.com/auth/userinfo.email")),
        (GITHUB, "read:user,user:email", ("read:user", "user:email")),
        (GITHUB, "", ()),
        (COGNITO, "openid email  profile", ("openid", "email", "profile")),
    ],
    ids=["google-spaces", "github-commas", "github-app-empty", "cognito-spaces"],
)
def test_granted_scopes_are_split_as_the_idp_writes_them(upstream: Upstream, scope: str, granted: tuple[str, ...]) -> None:
    assert upstream.granted_scopes(scope) == granted


def test_scope_delimiter_other_than_space_or_comma_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="granted_scope_delimiter"):
        Upstream.oidc(issuer="https://idp.example", client_id="c", client_secret="s", granted_scope_delimiter=";")


ENTRA = Upstream.entra(tenant_id="t", client_id="app", client_secret="s")


@pytest.mark.parametrize(
    ("upstream", "granted", "client_scope"),
    [
        (ENTRA, "openid profile api://app/access_as_user offline_access", "openid profile access_as_user offline_access"),
        (ENTRA, "api://other-app/read", "api://other-app/read"),
        (GOOGLE, "openid https://www.googleapis.com/auth/userinfo.email", "openid https://www.googleapis.com/auth/userinfo.email"),
    ],
    ids=["entra-own-api", "entra-other-api-kept", "no-prefix-unchanged"],
)
def test_granted_scopes_are_told_to_the_client_in_its_own_names(upstream: Upstream, granted: str, client_scope: str) -> None:
    """The inverse of upstream_scope: the IdP's granted names, without this API's prefix."""
    assert upstream.client_scope(granted) == client_scope
