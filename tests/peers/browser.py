"""A headless browser for OAuth logins: follows redirects with a cookie jar, submits the
approval form it meets (the shim's consent page), and stops at the client's redirect URI.

It does what a user's browser does in the authorization code flow (RFC 6749 §4.1.1-§4.1.2):
the IdP's login and consent are scripted on the IdP side (they answer with redirects), the
shim's consent page is an HTML form that is parsed generically (every hidden input, the CSRF
token included, plus the submit control whose value is "approve").
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from urllib.parse import parse_qs, urljoin, urlsplit
from urllib.request import Request

import httpx

APPROVE = "approve"
_MAX_STEPS = 40
_REQUEST_TIMEOUT_S = 15.0


class BrowserError(RuntimeError):
    """The login did not reach the client's redirect URI."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _LoopbackIsSecurePolicy(DefaultCookiePolicy):
    """Browsers treat http://localhost and http://127.0.0.1 as secure contexts and send
    `Secure` cookies there; the stdlib jar does not. Behave like the browsers."""

    def return_ok_secure(self, cookie: Cookie, request: Request) -> bool:
        if cookie.secure and _is_loopback(urlsplit(request.get_full_url()).hostname or ""):
            return True
        return super().return_ok_secure(cookie, request)


def new_browser_client() -> httpx.Client:
    """An HTTP client that keeps cookies like a browser and never follows redirects by itself."""
    return httpx.Client(
        cookies=CookieJar(policy=_LoopbackIsSecurePolicy()),
        follow_redirects=False,
        timeout=_REQUEST_TIMEOUT_S,
        headers={"User-Agent": "mcp-oauth-shim-test-browser/1", "Accept": "text/html,application/json"},
    )


@dataclass
class Form:
    """One HTML form: where it goes and the fields a browser would send for it."""

    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    submits: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """Collects every <form> with its named <input>s, <button>s and <select> defaults."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(action=attributes.get("action", ""), method=attributes.get("method", "get").lower())
            self.forms.append(self._current)
            return
        if self._current is None or "name" not in attributes or "disabled" in attributes:
            return
        name = attributes["name"]
        if tag == "input":
            kind = attributes.get("type", "text").lower()
            if kind in ("submit", "image"):
                self._current.submits.append((name, attributes.get("value", "")))
            elif kind in ("checkbox", "radio"):
                if "checked" in attributes:
                    self._current.fields.append((name, attributes.get("value", "on")))
            elif kind not in ("button", "reset", "file"):
                self._current.fields.append((name, attributes.get("value", "")))
        elif tag == "button" and attributes.get("type", "submit").lower() == "submit":
            self._current.submits.append((name, attributes.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def approval_submission(html: str, page_url: str) -> tuple[str, list[tuple[str, str]]]:
    """The URL and body a user's click on "approve" sends: the form holding an approve
    control, all its fields (hidden CSRF token included) and that control's name/value."""
    for form in parse_forms(html):
        for name, value in form.submits:
            if APPROVE in (value.lower(), name.lower()):
                if form.method != "post":
                    raise BrowserError(f"the approval form at {_redact(page_url)} uses {form.method.upper()}")
                return urljoin(page_url, form.action or page_url), [*form.fields, (name, value)]
    raise BrowserError(f"no form with an {APPROVE!r} control at {_redact(page_url)}")


def _redact(url: str) -> str:
    """A URL without its query: queries in this flow carry codes, state and challenges."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


@dataclass
class LoginTrace:
    """What happened on the way, without queries (safe to print on failure)."""

    steps: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.steps)


def follow_login(
    start_url: str,
    redirect_uri: str | None = None,
    *,
    client: httpx.Client | None = None,
    trace: LoginTrace | None = None,
    deadline_s: float = 60.0,
) -> str:
    """Follow an authorization request to the client's redirect URI and return that final
    URL (with `code`, `state`, `iss`) without requesting it.

    `redirect_uri` defaults to the one in the authorization request itself (RFC 6749 §4.1.1).
    """
    if redirect_uri is None:
        values = parse_qs(urlsplit(start_url).query).get("redirect_uri")
        if not values:
            raise BrowserError("the authorization URL names no redirect_uri and none was given")
        redirect_uri = values[0]
    trace = trace if trace is not None else LoginTrace()
    own_client = client is None
    http = client or new_browser_client()
    deadline = time.monotonic() + deadline_s
    try:
        method, url, body = "GET", start_url, None
        for _ in range(_MAX_STEPS):
            if time.monotonic() > deadline:
                raise BrowserError(f"login took longer than {deadline_s}s:\n{trace}")
            if _same_endpoint(url, redirect_uri):
                return url
            headers = {"Origin": _origin(url)} if method == "POST" else {}
            response = http.request(method, url, data=_form_body(body), headers=headers)
            trace.steps.append(f"{method} {_redact(url)} -> {response.status_code}")
            if response.is_redirect:
                method, url, body = "GET", urljoin(url, response.headers["location"]), None
                continue
            if response.status_code == 200 and "html" in response.headers.get("content-type", ""):
                action, fields = approval_submission(response.text, url)
                method, url, body = "POST", action, fields
                continue
            raise BrowserError(
                f"unexpected {response.status_code} at {_redact(url)}: {response.text[:500]}\nsteps:\n{trace}"
            )
        raise BrowserError(f"more than {_MAX_STEPS} steps:\n{trace}")
    finally:
        if own_client:
            http.close()


def _form_body(fields: list[tuple[str, str]] | None) -> dict[str, list[str]] | None:
    """httpx takes form data as a mapping; repeated names become lists, order per name kept."""
    if fields is None:
        return None
    body: dict[str, list[str]] = {}
    for name, value in fields:
        body.setdefault(name, []).append(value)
    return body


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class AuthorizationResponse:
    """The query of the redirect to the client (RFC 6749 §4.1.2, RFC 9207 §2)."""

    code: str | None
    state: str | None
    iss: str | None
    error: str | None

    @classmethod
    def from_url(cls, url: str) -> AuthorizationResponse:
        query = parse_qs(urlsplit(url).query)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        return cls(code=one("code"), state=one("state"), iss=one("iss"), error=one("error"))
