"""A loopback stand-in for GitHub's OAuth web flow and user API, for tests that cannot reach
github.com.

Every answer is shaped as GitHub documents it; where GitHub's documentation is silent, the
behaviour below is marked ASSUMED. The documents followed:

- "Authorizing OAuth apps" (web application flow) and "Generating a user access token for a
  GitHub App": ``GET /login/oauth/authorize`` takes ``client_id``, ``redirect_uri``
  (optional; host and port must match the registered callback URL, its path may be a
  subdirectory of it), ``scope`` (space-separated), ``state``, ``code_challenge`` and
  ``code_challenge_method`` (``S256``), and redirects back with ``code`` and ``state`` (no
  ``iss``: GitHub does not implement RFC 9207). ``POST /login/oauth/access_token`` takes
  ``client_id``, ``client_secret``, ``code``, ``redirect_uri``, ``code_verifier``, as query
  or form parameters, and answers JSON only with ``Accept: application/json``, else
  ``application/x-www-form-urlencoded``: ``{"access_token": "gho_...", "scope":
  "read:user,user:email", "token_type": "bearer"}`` (scopes comma-separated, no
  ``expires_in``, no refresh token for OAuth Apps).
- "Refreshing user access tokens" (GitHub Apps with expiring user tokens): the answer adds
  ``expires_in`` (always 28800), ``refresh_token`` (``ghr_...``) and
  ``refresh_token_expires_in``, with ``scope`` ``""`` and a ``ghu_`` access token;
  ``grant_type=refresh_token`` returns a new pair, after which the old refresh token and
  the old access token no longer work.
- "Troubleshooting OAuth app access token request errors": errors come with status **200**
  and ``error``, ``error_description``, ``error_uri``: ``incorrect_client_credentials``,
  ``redirect_uri_mismatch``, ``bad_verification_code`` (wrong, expired or used code).
- "Troubleshooting authorization request errors": ``redirect_uri_mismatch`` and
  ``access_denied`` are sent to the registered callback URL with ``error``,
  ``error_description``, ``error_uri`` and ``state``.
- REST "Get the authenticated user" (``GET /user``) and "List email addresses for the
  authenticated user" (``GET /user/emails``, which needs the ``user:email`` or ``user``
  scope); 401 ``{"message": "Requires authentication"}`` without a token and
  ``{"message": "Bad credentials"}`` with a bad one; the ``X-OAuth-Scopes`` header lists the
  token's scopes ("Scopes for OAuth apps").

ASSUMED: a PKCE mismatch is ``bad_verification_code`` (GitHub documents no other error for
it); a used or unknown refresh token is ``bad_refresh_token`` with status 200 (reported by
GitHub users, not on the troubleshooting page); ``/user/emails`` without the scope is 404
``Not Found`` (how GitHub answers for what a token's scopes do not reach); an unknown
``client_id`` at the authorization endpoint is a 404 page. Only JSON and form-encoded
answers are produced (GitHub also speaks XML). Users are auto-approved: a cookie-less HTTP
client that follows redirects gets the code, as with the oidc-provider peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .servers import RunningServer, serve_asgi

TOKEN_ERRORS_DOC = "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
AUTHORIZE_ERRORS_DOC = "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"
# What GitHub writes into error_description for each error (the troubleshooting pages).
ERROR_DESCRIPTIONS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
    "bad_verification_code": "The code passed is incorrect or expired.",
    "bad_refresh_token": "The refresh token passed is incorrect or expired.",
    "access_denied": "The user has denied your application access.",
}
ERROR_ANCHORS = {
    "incorrect_client_credentials": TOKEN_ERRORS_DOC + "#incorrect-client-credentials",
    "redirect_uri_mismatch": AUTHORIZE_ERRORS_DOC + "#redirect-uri-mismatch2",
    "bad_verification_code": TOKEN_ERRORS_DOC + "#bad-verification-code",
    "bad_refresh_token": TOKEN_ERRORS_DOC,
    "access_denied": AUTHORIZE_ERRORS_DOC + "#access-denied",
}
EXPIRING_ACCESS_TOKEN_S = 28800  # "The value will always be 28800 (8 hours)."
REFRESH_TOKEN_EXPIRES_IN_S = 15811200  # the documented example (about six months)
CODE_LIFETIME_S = 600  # "codes expire after 10 minutes"
REST_DOCS = "https://docs.github.com/rest"


@dataclass(frozen=True)
class GitHubEmail:
    """One entry of ``GET /user/emails``."""

    email: str
    verified: bool = True
    primary: bool = True
    visibility: str | None = "public"


@dataclass(frozen=True)
class GitHubUser:
    """The signed-in account. ``email`` is the public email of ``GET /user`` (``None`` when
    the user keeps it private, as many do); ``emails`` what ``GET /user/emails`` lists."""

    login: str = "octocat"
    id: int = 583231
    node_id: str = "MDQ6VXNlcjU4MzIzMQ=="
    name: str | None = "The Octocat"
    email: str | None = "octocat@github.com"
    emails: tuple[GitHubEmail, ...] = (GitHubEmail("octocat@github.com"),)

    def rest_representation(self, api: str) -> dict[str, Any]:
        """The "private user" shape of ``GET /user`` (the fields GitHub's schema marks required,
        plus the private ones a token with ``read:user`` sees)."""
        user_url = f"{api}/users/{self.login}"
        return {
            "login": self.login,
            "id": self.id,
            "node_id": self.node_id,
            "avatar_url": f"https://avatars.githubusercontent.com/u/{self.id}?v=4",
            "gravatar_id": "",
            "url": user_url,
            "html_url": f"https://github.com/{self.login}",
            "followers_url": user_url + "/followers",
            "following_url": user_url + "/following{/other_user}",
            "gists_url": user_url + "/gists{/gist_id}",
            "starred_url": user_url + "/starred{/owner}{/repo}",
            "subscriptions_url": user_url + "/subscriptions",
            "organizations_url": user_url + "/orgs",
            "repos_url": user_url + "/repos",
            "events_url": user_url + "/events{/privacy}",
            "received_events_url": user_url + "/received_events",
            "type": "User",
            "user_view_type": "private",
            "site_admin": False,
            "name": self.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": self.email,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "notification_email": self.email,
            "public_repos": 8,
            "public_gists": 8,
            "followers": 0,
            "following": 9,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": "2024-01-22T12:00:00Z",
            "private_gists": 0,
            "total_private_repos": 0,
            "owned_private_repos": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
        }


@dataclass
class _Code:
    redirect_uri: str | None
    scopes: tuple[str, ...]
    challenge: str | None
    expires_at: float


@dataclass
class _Token:
    scopes: tuple[str, ...]
    expires_at: float | None


@dataclass
class FakeGitHub:
    """The OAuth endpoints of github.com and the user API of api.github.com on one origin.

    ``expiring_tokens``: behave as a GitHub App with expiring user tokens (``ghu_``/``ghr_``,
    ``expires_in``, refresh grant) rather than an OAuth App (``gho_``, no expiry).
    ``deny``: the user clicks Cancel (``access_denied``).
    """

    client_id: str = "Iv1.8a61f9b3a7aba766"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20), repr=False)
    callback_url: str = "http://127.0.0.1:9/oauth/callback"
    user: GitHubUser = field(default_factory=GitHubUser)
    expiring_tokens: bool = False
    deny: bool = False
    base_url: str = "http://127.0.0.1"  # set by run_github_fake to the real address
    _codes: dict[str, _Code] = field(default_factory=dict, repr=False)
    _tokens: dict[str, _Token] = field(default_factory=dict, repr=False)
    _refresh: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict, repr=False)

    # -- the app -------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize, methods=["GET"]),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
                Route("/user", self.get_user, methods=["GET"]),
                Route("/user/emails", self.get_emails, methods=["GET"]),
            ]
        )

    @property
    def authorization_endpoint(self) -> str:
        return self.base_url + "/login/oauth/authorize"

    @property
    def token_endpoint(self) -> str:
        return self.base_url + "/login/oauth/access_token"

    @property
    def user_api(self) -> str:
        """The REST API's base URL (``https://api.github.com`` at GitHub): ``/user`` is under it."""
        return self.base_url

    def upstream_options(self) -> dict[str, str]:
        """What ``Upstream.github(client_id, client_secret, **options)`` needs to talk to this fake."""
        return {
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "user_api": self.user_api,
        }

    # -- GET /login/oauth/authorize --------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return HTMLResponse("<h1>404 Not Found</h1>", status_code=404)  # ASSUMED
        redirect_uri = q.get("redirect_uri")
        state = q.get("state")
        if redirect_uri is not None and not self._callback_accepts(redirect_uri):
            return self._redirect_error(self.callback_url, "redirect_uri_mismatch", state)
        target = redirect_uri or self.callback_url
        if self.deny:
            return self._redirect_error(target, "access_denied", state)
        challenge = q.get("code_challenge")
        if challenge is not None and q.get("code_challenge_method", "S256") != "S256":
            return self._redirect_error(target, "invalid_request", state)  # ASSUMED: S256 only
        code = secrets.token_hex(10)  # GitHub's codes are 20 hexadecimal characters
        scopes = tuple(s for s in q.get("scope", "").replace(",", " ").split() if s)
        self._codes[code] = _Code(redirect_uri, scopes, challenge, time.monotonic() + CODE_LIFETIME_S)
        answer = {"code": code} | ({"state": state} if state is not None else {})
        return RedirectResponse(_with_query(target, answer), status_code=302)

    def _callback_accepts(self, redirect_uri: str) -> bool:
        """Host and port exactly the callback URL's, path the same or below it."""
        given, registered = urlsplit(redirect_uri), urlsplit(self.callback_url)
        if (given.scheme, given.netloc) != (registered.scheme, registered.netloc):
            return False
        base = registered.path.rstrip("/")
        return given.path == registered.path or given.path.startswith(base + "/")

    def _redirect_error(self, target: str, error: str, state: str | None) -> Response:
        answer = {
            "error": error,
            "error_description": ERROR_DESCRIPTIONS.get(error, error),
            "error_uri": "https://docs.github.com" + ERROR_ANCHORS.get(error, AUTHORIZE_ERRORS_DOC),
        } | ({"state": state} if state is not None else {})
        return RedirectResponse(_with_query(target, answer), status_code=302)

    # -- POST /login/oauth/access_token ----------------------------------------------------

    async def access_token(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params |= {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        wants_json = "application/json" in request.headers.get("accept", "")
        if params.get("client_id") != self.client_id or not hmac.compare_digest(
            params.get("client_secret", "").encode(), self.client_secret.encode()
        ):
            return _token_answer(_error("incorrect_client_credentials"), wants_json)
        if params.get("grant_type") == "refresh_token":
            return _token_answer(self._refresh_grant(params.get("refresh_token", "")), wants_json)
        code = self._codes.pop(params.get("code", ""), None)  # a code works once
        if code is None or code.expires_at < time.monotonic():
            return _token_answer(_error("bad_verification_code"), wants_json)
        if params.get("redirect_uri") is not None and params["redirect_uri"] != (code.redirect_uri or self.callback_url):
            return _token_answer(_error("redirect_uri_mismatch"), wants_json)
        if code.challenge is not None and _s256(params.get("code_verifier", "")) != code.challenge:
            return _token_answer(_error("bad_verification_code"), wants_json)  # ASSUMED
        return _token_answer(self._issue(code.scopes), wants_json)

    def _issue(self, scopes: tuple[str, ...]) -> dict[str, Any]:
        if not self.expiring_tokens:
            token = "gho_" + secrets.token_urlsafe(27)[:36]
            self._tokens[token] = _Token(scopes, None)
            return {"access_token": token, "token_type": "bearer", "scope": ",".join(scopes)}
        token = "ghu_" + secrets.token_urlsafe(27)[:36]
        refresh = "ghr_" + secrets.token_urlsafe(57)[:76]
        self._tokens[token] = _Token(scopes, time.monotonic() + EXPIRING_ACCESS_TOKEN_S)
        self._refresh[refresh] = (scopes, token)
        return {
            "access_token": token,
            "expires_in": EXPIRING_ACCESS_TOKEN_S,
            "refresh_token": refresh,
            "refresh_token_expires_in": REFRESH_TOKEN_EXPIRES_IN_S,
            "scope": "",
            "token_type": "bearer",
        }

    def _refresh_grant(self, refresh_token: str) -> dict[str, Any]:
        entry = self._refresh.pop(refresh_token, None) if self.expiring_tokens else None
        if entry is None:
            return _error("bad_refresh_token")  # ASSUMED (status 200, as every token error)
        scopes, old_access_token = entry
        self._tokens.pop(old_access_token, None)
        return self._issue(scopes)

    # -- the REST API ----------------------------------------------------------------------

    async def get_user(self, request: Request) -> Response:
        token = self._token(request)
        if isinstance(token, Response):
            return token
        return _rest_json(self.user.rest_representation(self.base_url), token)

    async def get_emails(self, request: Request) -> Response:
        token = self._token(request)
        if isinstance(token, Response):
            return token
        if not {"user", "user:email"} & set(token.scopes):
            return _rest_error(404, "Not Found", REST_DOCS, token)  # ASSUMED
        emails = [
            {"email": e.email, "verified": e.verified, "primary": e.primary, "visibility": e.visibility}
            for e in self.user.emails
        ]
        return _rest_json(emails, token)

    def _token(self, request: Request) -> _Token | Response:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not value:
            return _rest_error(401, "Requires authentication", REST_DOCS + "/users/users#get-the-authenticated-user")
        token = self._tokens.get(value.strip())
        if token is None or (token.expires_at is not None and token.expires_at < time.monotonic()):
            return _rest_error(401, "Bad credentials", REST_DOCS)
        return token


def _error(error: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": ERROR_DESCRIPTIONS[error],
        "error_uri": ERROR_ANCHORS[error],
    }


def _token_answer(body: Mapping[str, Any], wants_json: bool) -> Response:
    """Status 200 whatever happened, in JSON only when asked for it."""
    if wants_json:
        return JSONResponse(dict(body))
    form = {k: str(v) for k, v in body.items()}
    return Response(urlencode(form), media_type="application/x-www-form-urlencoded; charset=utf-8")


def _rest_json(body: Any, token: _Token) -> Response:
    return JSONResponse(body, headers={"X-OAuth-Scopes": ", ".join(token.scopes)})


def _rest_error(status: int, message: str, documentation_url: str, token: _Token | None = None) -> Response:
    body = {"message": message, "documentation_url": documentation_url, "status": str(status)}
    headers = {"X-OAuth-Scopes": ", ".join(token.scopes)} if token is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


@contextmanager
def run_github_fake(github: FakeGitHub | None = None) -> Iterator[tuple[FakeGitHub, RunningServer]]:
    """Serve ``github`` (default: an OAuth App with the default user) on a free loopback port."""
    github = github or FakeGitHub()
    with serve_asgi(github.app) as running:
        github.base_url = running.url
        yield github, running
