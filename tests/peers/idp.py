"""Start and stop `idp.mjs`, the Auth0-like oidc-provider IdP, from Python."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import node
from .procs import read_ready_line, stop, tail

IDP_SCRIPT = node.PEERS_DIR / "idp.mjs"
READY_PREFIX = "IDP READY "
# The one account's username on the --login-form sign-in page (its password is per run).
LOGIN_USERNAME = "tester"
# The client ID of the IdP's one client unless a test names another.
DEFAULT_CLIENT_ID = "shim-upstream-client"

# The token endpoint client authentication methods the IdP's one client can be registered
# with (RFC 6749 §2.3.1), keyed by the value the shim's `Upstream` takes.
AUTH_METHODS = {"client_secret_post": "post", "client_secret_basic": "basic"}


@dataclass(frozen=True)
class IdPProfile:
    """How the upstream IdP behaves, and how the shim is told to talk to it."""

    id: str
    sends_iss: bool  # RFC 9207 `iss` on the authorization response
    audience_param: str  # Auth0's `audience=` or RFC 8707 `resource=`
    token_endpoint_auth_method: str
    # Google-like (`run_idp(google_like=True)`): opaque access tokens good only at userinfo.
    google_like: bool = False
    # The shim issues its own access tokens (RFC 9068) instead of passing the IdP's through.
    issue_tokens: bool = False


IDP_PROFILES = (
    # Auth0 as it is: no `iss` on the redirect, `audience=`, client_secret_post.
    IdPProfile("auth0-like-no-iss", False, "audience", "client_secret_post"),
    # A spec-complete OIDC provider: RFC 9207 `iss`, RFC 8707 `resource=`, client_secret_basic.
    IdPProfile("rfc9207-iss", True, "resource", "client_secret_basic"),
)

# Google as it is: opaque access tokens, no audience or resource parameter, RFC 9207 `iss`; the
# shim issues its own tokens and learns the user from the ID token.
GOOGLE_LIKE_ISSUED = IdPProfile("google-like-issued", True, "none", "client_secret_post", google_like=True, issue_tokens=True)

# Every setup the real clients are run against: the IdP's tokens passed through, and issued.
CLIENT_SETUPS = (*IDP_PROFILES, GOOGLE_LIKE_ISSUED)


@dataclass(frozen=True)
class IdP:
    """A running IdP and the static confidential client registered at it."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    token_endpoint_auth_method: str
    sends_iss: bool
    subject: str
    log: Path
    # Set when the IdP shows real HTML sign-in and approval pages (`login_form=True`).
    login_password: str | None = field(default=None, repr=False)
    # Set when the IdP behaves like Google (`google_like=True`): opaque access tokens only.
    google_like: bool = False

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)


@contextmanager
def run_idp(
    *,
    redirect_uris: Sequence[str],
    resources: Sequence[str],
    jwks_file: Path,
    log: Path,
    sends_iss: bool = True,
    token_endpoint_auth_method: str = "client_secret_post",
    client_id: str = DEFAULT_CLIENT_ID,
    subject: str = "test-user-1",
    access_token_ttl_s: int = 600,
    login_form: bool = False,
    google_like: bool = False,
    client_credentials: bool = False,
    resource_scopes: str | None = None,
    jwt_alg: str = "RS256",
    token_shape: str = "rfc9068",
    start_timeout_s: float = 30.0,
) -> Iterator[IdP]:
    """Run the IdP on a free loopback port for the duration of the block.

    `redirect_uris` are registered exactly (no wildcard, as at Auth0); `resources` are the
    APIs ("audiences") it knows, anything else is `invalid_target` (RFC 8707 §2).
    `login_form=True` replaces the scripted login with HTML pages a real browser fills in:
    username `LOGIN_USERNAME`, password `IdP.login_password`.
    `google_like=True`: no resource indicators (`resources` are ignored), so every access
    token is opaque and good only at the userinfo endpoint; no introspection; ID tokens and
    refresh tokens as Google issues them.
    `client_credentials=True`: its client may also use the client_credentials grant (RFC 6749
    §4.4), getting JWT access tokens for a `resources` entry it names. `resource_scopes`: the
    scopes every resource offers (space-separated; default the OIDC ones).
    `jwt_alg`: the access tokens' signing algorithm (RS256, PS256, ES256; a key for it is
    added to `jwks_file`). `token_shape`: what they look like, `rfc9068` (oidc-provider's),
    `keycloak` or `okta` (see idp.mjs); the last two need no resource parameter: the first of
    `resources` is the audience of every access token, as those IdPs are configured.
    """
    node.ensure_installed()
    client_secret = secrets.token_urlsafe(24)
    secrets_env = {"IDP_CLIENT_SECRET": client_secret}
    login_password = secrets.token_urlsafe(12) if login_form else None
    args = [
        str(node.node_binary()),
        str(IDP_SCRIPT),
        "--port",
        "0",
        "--client-id",
        client_id,
        "--auth-method",
        AUTH_METHODS[token_endpoint_auth_method],
        "--jwks-file",
        str(jwks_file),
        "--subject",
        subject,
        "--access-token-ttl",
        str(access_token_ttl_s),
        "--jwt-alg",
        jwt_alg,
        "--token-shape",
        token_shape,
    ]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    for resource in resources:
        args += ["--resource", resource]
    if not sends_iss:
        args.append("--no-iss")
    if google_like:
        args.append("--google-like")
    if client_credentials:
        args.append("--client-credentials")
    if resource_scopes is not None:
        args += ["--resource-scopes", resource_scopes]
    if login_password is not None:
        args.append("--login-form")
        secrets_env["IDP_USER_PASSWORD"] = login_password
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as log_file:
        # The secret travels in the environment, not argv, so `ps` does not show it.
        process = subprocess.Popen(
            args,
            cwd=node.PEERS_DIR,
            env=node.peer_env(secrets_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    try:
        issuer = read_ready_line(process, READY_PREFIX, start_timeout_s, log)
        yield IdP(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method,
            sends_iss=sends_iss,
            subject=subject,
            log=log,
            login_password=login_password,
            google_like=google_like,
        )
    finally:
        stop(process)
