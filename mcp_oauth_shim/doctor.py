"""``mcp-oauth-shim doctor``: does this identity provider have what the shim needs?

Reads the IdP's discovery document (OpenID Connect Discovery 1.0 §4, else RFC 8414 §3) and
checks it against what the shim relies on to serve MCP clients: an exact issuer (RFC 8414
§3.3), the authorization code grant with PKCE S256 (RFC 7636, OAuth 2.1), a JWKS to verify
access tokens, refresh tokens, revocation (RFC 7009) and a client authentication method the
shim speaks (RFC 6749 §2.3.1). With a client id (and secret) it also probes the IdP's
authorization and token endpoints the way the shim will call them.

It also says which token mode the IdP needs. Passthrough works only when the IdP's access
tokens are JWTs whose ``aud`` names the MCP resource (RFC 9068, RFC 8707); otherwise the shim
must issue its own (``issue_tokens``). Discovery cannot show what a token looks like: the
doctor says what it knows (the IdP's host, whether it offers introspection or UserInfo), and
with ``--sample-token`` (an access token from a login; decoded, never verified or printed) it
reads the token's shape and audience. With ``--issue-tokens`` it checks that the UserInfo
endpoint the shim would ask answers.

Every finding is OK, INFO, WARN or FAIL with what to change; any FAIL means the shim cannot
work with this configuration.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from . import jsonsafe
from .cli import is_absolute_http_url
from .config import TOKEN_AUTH_METHODS
from .forms import append_query
from .remote_keys import discovery_urls
from .upstream import HttpxTransport, Transport, UpstreamError, client_authentication, default_http_client, exchange, get_json
from .urls import service_url_problem

Level = Literal["OK", "INFO", "WARN", "FAIL"]
#: What one check found: its level and the message saying what to change.
Verdict = tuple[Level, str]


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.level:<4}  {self.check}: {self.message}"


@dataclass(frozen=True)
class DoctorInput:
    issuer: str | None = None
    metadata_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_auth_method: str = "client_secret_post"
    public_url: str | None = None
    audience: str | None = None
    audience_param: str = "resource"
    scopes: tuple[str, ...] = ("openid",)
    issue_tokens: bool = False
    sample_token: str | None = field(default=None, repr=False)


def render(findings: list[Finding]) -> str:
    counts = {level: sum(1 for f in findings if f.level == level) for level in ("OK", "INFO", "WARN", "FAIL")}
    summary = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    verdict = "the shim cannot work with this IdP as configured" if counts["FAIL"] else "no blocking problems"
    return "\n".join([*map(str, findings), "", f"{summary}: {verdict}."])


def failed(findings: list[Finding]) -> bool:
    return any(f.level == "FAIL" for f in findings)


async def diagnose(given: DoctorInput, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0) -> list[Finding]:
    """Run every check; network problems become findings, never exceptions."""
    async with default_http_client(timeout) if http is None else nullcontext(http) as client:
        return await _Doctor(given, client, timeout).run()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Doctor:
    """One run of the checks; it asks the IdP the way the shim does (:mod:`.upstream`: the
    same JSON document policy and client authentication).

    Most checks return their :data:`Verdict` and :meth:`run` files it under the check's name;
    the two that name different settings by their outcome (the code flow, PKCE) add findings."""

    def __init__(self, given: DoctorInput, http: httpx.AsyncClient, timeout: float) -> None:
        self.given = given
        # ``timeout`` bounds each request in all, as the shim's own deadline does: httpx's
        # timeouts bound each read, and a body dripped a byte at a time never trips them.
        self.transport: Transport = HttpxTransport(http, deadline=timeout)
        self.findings: list[Finding] = []

    def add(self, level: Level, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))

    def report(self, check: str, *verdicts: Verdict) -> None:
        for level, message in verdicts:
            self.add(level, check, message)

    def unless_issued(self) -> Level:
        """What a finding that calls for issued-token mode weighs: fine when it is already on."""
        return "OK" if self.given.issue_tokens else "WARN"

    async def run(self) -> list[Finding]:
        for name, url in (("issuer", self.given.issuer), ("metadata URL", self.given.metadata_url)):
            if url is not None and not is_absolute_http_url(url):
                # Discovery URLs built from a scheme-less value would only confuse the report.
                self.add("FAIL", "discovery", f"the {name} must be an absolute http:// or https:// URL, got {url!r}.")
                return self.findings
        doc = await self.discover()
        if doc is None:
            return self.findings
        self.report("issuer", *self.check_issuer(doc))
        endpoints = {key: self.check_endpoint(doc, key) for key in ("authorization_endpoint", "token_endpoint")}
        for key, verdict in endpoints.items():
            self.report(key, verdict)
        self.check_code_flow(doc)
        self.check_pkce(doc)
        self.report("jwks_uri", await self.check_jwks(doc))
        self.report("refresh tokens", self.check_refresh(doc))
        self.report("revocation_endpoint", self.check_revocation(doc))
        self.report("client authentication", self.check_client_auth(doc))
        self.report("audience", self.check_audience(doc))
        self.report("token mode", self.check_token_mode(doc))
        if self.given.issue_tokens:
            self.report("userinfo_endpoint", await self.check_userinfo(doc))
        if all(level == "OK" for level, _ in endpoints.values()):
            self.report("authorization request", await self.probe_authorize(doc))
            self.report("client credentials", await self.probe_token(doc))
        return self.findings

    # -- discovery --------------------------------------------------------------------------

    async def discover(self) -> dict[str, Any] | None:
        problems: list[str] = []
        urls = (self.given.metadata_url,) if self.given.metadata_url else discovery_urls(self.given.issuer or "")
        for url in urls:
            doc, problem = await self.get_json(url)
            if doc is not None:
                self.add("OK", "discovery", f"read {url}")
                if url != urls[0]:  # only the issuer gives a second URL to try
                    message = "the IdP has no OpenID Connect discovery document; start the shim with --upstream-metadata-url "
                    self.add("WARN", "discovery", message + url)
                return doc
            problems.append(f"{url}: {problem}")
        self.add(
            "FAIL",
            "discovery",
            "no discovery document found (" + "; ".join(problems) + "). Check --issuer: it must be the "
            "IdP's issuer URL exactly (e.g. https://tenant.eu.auth0.com/ or "
            "https://keycloak.example.com/realms/myrealm), or pass --upstream-metadata-url.",
        )
        return None

    async def get_json(self, url: str) -> tuple[dict[str, Any] | None, str]:
        """The JSON object at ``url``, or ``None`` and what was wrong (for the report)."""
        try:
            return await get_json(self.transport, url, what="document"), ""
        except UpstreamError as exc:
            return None, exc.reason

    # -- the document -------------------------------------------------------------------------

    def check_issuer(self, doc: Mapping[str, Any]) -> list[Verdict]:
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            return [("FAIL", "the discovery document has no issuer.")]
        if self.given.issuer is None:
            verdicts: list[Verdict] = [("OK", f"{issuer} (use --upstream-issuer {issuer} to have the shim check it)")]
        elif issuer == self.given.issuer:
            verdicts = [("OK", f"{issuer} matches exactly")]
        else:
            verdicts = [(
                "FAIL",
                f"the document says {issuer!r} but you gave {self.given.issuer!r}; they must be identical, "
                f"character for character (RFC 8414 section 3.3). Use {issuer} (serve --upstream-issuer, doctor --issuer).",
            )]
        problem = service_url_problem(issuer)
        return verdicts if problem is None else [*verdicts, ("FAIL", f"the issuer must {problem}.")]

    def check_endpoint(self, doc: Mapping[str, Any], key: str) -> Verdict:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            return "FAIL", "missing from the discovery document; the shim cannot log anyone in."
        if (problem := service_url_problem(value)) is not None:
            return "FAIL", f"{value} does not work as an endpoint: it must {problem}."
        return "OK", value

    def check_code_flow(self, doc: Mapping[str, Any]) -> None:
        response_types = doc.get("response_types_supported")
        if isinstance(response_types, list) and "code" not in response_types:
            self.add("FAIL", "response_types_supported", "does not include code; the shim needs the authorization code flow.")
        grants = doc.get("grant_types_supported")
        if isinstance(grants, list) and "authorization_code" not in grants:
            self.add("FAIL", "grant_types_supported", "does not include authorization_code.")
        elif grants is None or isinstance(grants, list):
            self.add("OK", "authorization code flow", "supported")

    def check_pkce(self, doc: Mapping[str, Any]) -> None:
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" in methods:
            self.add("OK", "PKCE", "S256 supported")
            return
        message = (
            "not advertised. The shim passes each MCP client's PKCE S256 challenge on to the IdP; "
            "most IdPs support it without saying so, but check that yours does."
            if methods is None
            else f"{methods!r} lacks S256; MCP clients must use PKCE S256 and the shim relays it. Enable PKCE S256 at the IdP."
        )
        self.add("WARN" if methods is None else "FAIL", "code_challenge_methods_supported", message)

    async def check_jwks(self, doc: Mapping[str, Any]) -> Verdict:
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri:
            return "FAIL", "missing; the shim verifies access tokens as JWTs against the IdP's published keys."
        keys_doc, problem = await self.get_json(uri)
        if keys_doc is None:
            return "FAIL", f"{uri}: {problem}; the shim could not verify any access token."
        keys = keys_doc.get("keys")
        if not isinstance(keys, list) or not keys:
            return "FAIL", f"{uri} publishes no keys."
        asymmetric = [k for k in keys if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")]
        if not asymmetric:
            return "FAIL", f"{uri} has no RSA/EC/OKP public keys to verify signatures with."
        return "OK", f"{len(asymmetric)} signing key(s) at {uri}"

    def check_refresh(self, doc: Mapping[str, Any]) -> Verdict:
        grants = doc.get("grant_types_supported")
        scopes = doc.get("scopes_supported")
        if isinstance(grants, list) and "refresh_token" not in grants:
            return "WARN", "grant_types_supported lacks refresh_token: users must log in again whenever an access token expires."
        if not (isinstance(scopes, list) and "offline_access" in scopes):
            return "OK", "refresh_token grant available"
        if "offline_access" in self.given.scopes:
            return "OK", "the IdP issues refresh tokens for the offline_access scope."
        return "WARN", "the IdP issues refresh tokens for the offline_access scope; add --extra-scopes offline_access."

    def check_revocation(self, doc: Mapping[str, Any]) -> Verdict:
        uri = doc.get("revocation_endpoint")
        if isinstance(uri, str) and uri:
            return "OK", f"{uri} (the shim offers RFC 7009 revocation)"
        return "WARN", "none: the shim will not offer token revocation to clients."

    def check_client_auth(self, doc: Mapping[str, Any]) -> Verdict:
        methods = doc.get("token_endpoint_auth_methods_supported")
        wanted = self.given.token_auth_method
        if methods is None and wanted == "client_secret_basic":
            # RFC 8414 section 2: the default is client_secret_basic.
            return "OK", "client_secret_basic (the RFC 8414 default)"
        if methods is None:
            return "WARN", (
                "not advertised; the RFC 8414 default is client_secret_basic. If token requests fail with "
                "invalid_client, use --token-auth-method client_secret_basic."
            )
        if not isinstance(methods, list):
            return "WARN", "token_endpoint_auth_methods_supported is not a list."
        usable = [m for m in TOKEN_AUTH_METHODS if m in methods]
        if wanted in methods:
            return "OK", f"{wanted} supported"
        if usable:
            return "FAIL", f"{wanted} is not supported; use --token-auth-method {usable[0]}."
        return "FAIL", (
            f"the IdP supports only {methods!r}; the shim authenticates with a client secret "
            "(client_secret_post or client_secret_basic)."
        )

    def issuer_host(self, doc: Mapping[str, Any]) -> str:
        return (urlsplit(str(doc.get("issuer") or self.given.issuer or "")).hostname or "").lower()

    def check_audience(self, doc: Mapping[str, Any]) -> Verdict:
        host = self.issuer_host(doc)
        given = self.given
        if host.endswith(".auth0.com") and given.audience_param != "audience":
            return "WARN", (
                "Auth0 takes the API identifier as audience=, not RFC 8707 resource=: use "
                "--audience <API identifier> --audience-param audience."
            )
        if host in ("login.microsoftonline.com", "sts.windows.net") and given.audience_param != "none":
            return "WARN", (
                "Entra ID derives the audience from the scope (api://<app-id>/<scope>): use --audience-param none "
                "and put that scope in --scopes."
            )
        if given.audience:
            return "INFO", (
                f"the shim will ask for {given.audience} via {given.audience_param}=; access tokens must "
                "carry it in aud. Discovery cannot show whether the IdP honours that: try a login."
            )
        return "INFO", (
            "no --audience given: access tokens must carry the MCP resource URL in aud (RFC 8707), or "
            "the shim refuses them. Set --audience to what the IdP puts in aud."
        )

    def check_token_mode(self, doc: Mapping[str, Any]) -> Verdict:
        """Which token mode this IdP needs: passthrough only for JWT access tokens naming the
        resource in ``aud``; issued otherwise."""
        host = self.issuer_host(doc)
        if self.given.sample_token:
            return self.check_sample_token(self.given.sample_token)
        known = _ISSUED_TOKEN_HOSTS.get(host) or next(
            (name for suffix, name in _ISSUED_TOKEN_SUFFIXES.items() if host.endswith(suffix)), None
        )
        if known is not None:
            return self.unless_issued(), (
                f"{known}'s access tokens are not addressed to your MCP resource: the shim must issue its own "
                "tokens (issue_tokens=True; the Upstream presets do this)."
                + ("" if self.given.issue_tokens else " Re-run with --issue-tokens.")
            )
        hints = []
        if isinstance(doc.get("introspection_endpoint"), str):
            hints.append("it offers introspection, so opaque access tokens can be checked in passthrough mode")
        if isinstance(doc.get("userinfo_endpoint"), str):
            hints.append("it has a UserInfo endpoint, so issued-token mode can learn the user")
        return "INFO", (
            "passthrough needs JWT access tokens with the MCP resource (or --audience) in aud; discovery cannot "
            "show that. Pass --sample-token with an access token from a login to check"
            + ("; " + "; ".join(hints) if hints else "")
            + "."
        )

    def check_sample_token(self, token: str) -> Verdict:
        """Reads a sample access token's shape (never verified, never printed)."""
        claims = _unverified_claims(token)
        if claims is None:
            return self.unless_issued(), (
                "the sample token is opaque (not a JWT): use issued-token mode (issue_tokens=True), or passthrough "
                "only if the IdP offers introspection."
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
        wanted = self.given.audience or ((self.given.public_url or "").rstrip("/") + "/mcp" if self.given.public_url else None)
        if wanted is not None and wanted in audiences:
            return "OK", f"the sample token is a JWT for {wanted}: passthrough works (issued tokens too)."
        if wanted is None:
            return "INFO", f"the sample token is a JWT with aud {audiences!r}; pass --audience or --public-url to compare."
        message = f"the sample token is a JWT for {audiences!r}, not {wanted}: use issued-token mode (issue_tokens=True)."
        return self.unless_issued(), message

    async def check_userinfo(self, doc: Mapping[str, Any]) -> Verdict:
        """Issued-token mode learns the user from the ID token or UserInfo: is UserInfo there?"""
        url = doc.get("userinfo_endpoint")
        if not isinstance(url, str) or not url:
            return "WARN", "none: issued-token mode then needs an ID token in every token response (request the openid scope)."
        try:
            response = await exchange(self.transport, "GET", url)
        except UpstreamError as exc:
            return "FAIL", f"could not reach {url}: {exc.reason}."
        if response.status in (400, 401, 403):
            # RFC 6750 §3.1: without a token, a protected resource answers 401.
            return "OK", f"{url} answers (HTTP {response.status} without a token, as expected)."
        return "WARN", f"{url} answered HTTP {response.status} without a token; expected 401."

    # -- probes with the shim's own client --------------------------------------------------

    def callback_url(self) -> str:
        public = (self.given.public_url or "http://127.0.0.1:8000").rstrip("/")
        return public + "/oauth/callback"

    async def probe_authorize(self, doc: Mapping[str, Any]) -> Verdict:
        """Ask the IdP to start a login as the shim would; an error now is an error for every user."""
        given = self.given
        if not given.client_id:
            return "INFO", "pass --client-id to check the client and its callback URL."
        callback = self.callback_url()
        params = {
            "response_type": "code",
            "client_id": given.client_id,
            "redirect_uri": callback,
            "scope": " ".join(given.scopes),
            "state": secrets.token_urlsafe(16),
            "code_challenge": create_s256_code_challenge(secrets.token_urlsafe(48)),
            "code_challenge_method": "S256",
        }
        if given.audience and given.audience_param in ("resource", "audience"):
            params[given.audience_param] = given.audience
        endpoint = str(doc["authorization_endpoint"])
        try:
            response = await exchange(self.transport, "GET", append_query(endpoint, params))
        except UpstreamError as exc:
            return "WARN", f"could not reach {endpoint}: {exc.reason}."
        location = response.headers.get("location", "")
        is_redirect = response.status in _REDIRECTS and bool(location)
        accepted = f"the IdP accepted client {given.client_id} with callback {callback}"
        if is_redirect and location.startswith(callback):
            query = parse_qs(urlsplit(location).query)
            if "code" in query and "error" not in query:
                # RFC 6749 §4.1.2: no login page, straight back with a code (auto-approve, an SSO
                # session): the request was accepted. The code is left unused and never printed.
                return "OK", accepted + " (it answered at once with a code: auto-approve or an existing session)."
            error = (query.get("error") or ["?"])[0]
            detail = (query.get("error_description") or [""])[0]
            return "FAIL", f"the IdP answered {error}: {detail}".rstrip(": ")
        if is_redirect or response.status == 200:
            return "OK", accepted + " (it went on to its login page)."
        return "FAIL", (
            f"the IdP refused it with HTTP {response.status}. Check that client {given.client_id} "
            f"exists and that {callback} is registered as its callback (redirect) URL."
        )

    async def probe_token(self, doc: Mapping[str, Any]) -> Verdict:
        """Redeem a made-up code: invalid_grant proves the client credentials are accepted."""
        given = self.given
        if not (given.client_id and given.client_secret):
            return "INFO", "pass --client-id and --client-secret to check them."
        form = {
            "grant_type": "authorization_code",
            "code": "mcp-oauth-shim-doctor-" + secrets.token_urlsafe(8),
            "redirect_uri": self.callback_url(),
        }
        auth = client_authentication(given.token_auth_method, given.client_id, given.client_secret)
        endpoint = str(doc["token_endpoint"])
        try:
            response = await exchange(self.transport, "POST", endpoint, body=auth.body(form), headers=auth.headers)
        except UpstreamError as exc:
            return "WARN", f"could not reach {endpoint}: {exc.reason}."
        try:
            answer = jsonsafe.loads(response.body)
        except ValueError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if error == "invalid_grant":
            return "OK", f"accepted by the token endpoint ({given.token_auth_method})."
        if error == "invalid_client" or response.status == 401:
            return "FAIL", (
                f"the token endpoint refused the client id/secret with {given.token_auth_method}. Check them, "
                "or try the other --token-auth-method."
            )
        if error == "unauthorized_client":
            return "FAIL", "the client may not use the authorization_code grant; allow it at the IdP."
        return "WARN", f"unexpected answer (HTTP {response.status}, error={error!r}); could not confirm the credentials."


# IdPs whose access tokens are opaque or addressed to the IdP's own APIs, never to an MCP
# resource (their guides in docs/idp/).
_ISSUED_TOKEN_HOSTS = {"accounts.google.com": "Google", "github.com": "GitHub", "api.github.com": "GitHub"}
_ISSUED_TOKEN_SUFFIXES = {".amazonaws.com": "Amazon Cognito", ".amazoncognito.com": "Amazon Cognito"}


def _unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWS compact token (RFC 7515 §7.1), unverified; ``None`` if ``token`` is not one."""
    try:
        claims = jsonsafe.loads(extract_compact(token.strip().encode()).payload)
    except (JoseError, ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None

