"""The whole login in a real browser: Debian's Chromium opens the URL a real MCP client (the
`mcp` SDK's OAuthClientProvider) hands it, the person clicks Allow on the shim's consent page,
signs in on the IdP's HTML form (oidc-provider) and approves there, the browser lands on the
client's loopback redirect URI, and the client calls a tool.

Also what a person meets on the way: Deny, keyboard-only use with a visible focus, a phone-wide
screen, page titles and text contrast (WCAG 2.2 SC 1.4.3, 2.4.2, 2.4.7/2.4.13, 1.4.10).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from mcp.types import CallToolResult, TextContent
from playwright.sync_api import Page

from tests.peers.idp import LOGIN_USERNAME, IdP
from tests.peers.mcp_under_test import ShimServer

from .mcp_client import AuthorizationRefused, McpClientRun
from .redirect_receiver import RedirectReceiver

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PHONE_WIDTH = 360
# WCAG 2.2 SC 1.4.3: normal text needs a contrast ratio of at least 4.5:1 with its background.
MIN_TEXT_CONTRAST = 4.5
# WCAG 2.2 SC 2.4.13: a focus indicator at least 2 CSS pixels thick.
MIN_FOCUS_OUTLINE_PX = 2.0
CONSENT_TITLE = "Allow access?"
LONG_CLIENT_NAME = "EnterpriseKnowledgeAssistantForInternalDocumentationSearch"


def keep_screenshot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_consent_page(page: Page, client: McpClientRun, shim: ShimServer) -> None:
    """Open the client's authorization URL, as the client asks the system browser to."""
    page.goto(client.next_authorize_url())
    assert urlsplit(page.url).path.startswith("/oauth/"), page.url
    assert page.url.startswith(shim.public_url)


def sign_in_at_the_idp(page: Page, idp: IdP, receiver: RedirectReceiver) -> None:
    """Fill in the IdP's sign-in form, approve there if asked, and arrive at the client."""
    page.wait_for_url(f"{idp.issuer}/interaction/**")
    assert idp.login_password is not None
    page.get_by_label("Username").fill(LOGIN_USERNAME)
    page.get_by_label("Password").fill(idp.login_password)
    page.get_by_role("button", name="Sign in").click()
    approve = page.get_by_role("button", name="Continue")
    arrived = page.get_by_text("You can close this tab")
    approve.or_(arrived).wait_for()
    if approve.is_visible():
        approve.click()
    page.wait_for_url(f"{receiver.redirect_uri}?**")
    arrived.wait_for()


def caller_of(result: CallToolResult) -> dict:
    """What the `whoami` tool says about the caller's access token."""
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return json.loads(content.text)


def authorization_server_issuer(shim: ShimServer) -> str:
    return httpx.get(shim.public_url + "/.well-known/oauth-authorization-server", timeout=10).json()["issuer"]


def errors_in(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception grouped in it or chained to it."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        todo.extend(getattr(current, "exceptions", ()))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return found


def test_user_allows_signs_in_at_the_idp_and_the_client_calls_a_tool(
    page: Page, shim_server: ShimServer, receiver: RedirectReceiver, screenshots: Path
) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    open_consent_page(page, client, shim_server)
    keep_screenshot(page, screenshots, "consent")

    page.get_by_role("button", name="Allow").click()
    sign_in_at_the_idp(page, shim_server.idp, receiver)

    result = client.finish()
    assert not result.is_error, result
    assert caller_of(result)["subject"] == shim_server.idp.subject


def test_user_denies_and_the_client_receives_access_denied(
    page: Page, shim_server: ShimServer, receiver: RedirectReceiver
) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    authorize_url = client.next_authorize_url()
    page.goto(authorize_url)

    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"{receiver.redirect_uri}?**")

    response = receiver.wait(0)
    sent_state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    assert (response.error, response.code, response.state) == ("access_denied", None, sent_state)
    assert response.iss == authorization_server_issuer(shim_server)  # RFC 9207 §2, errors included
    with pytest.raises(BaseException) as failure:
        client.finish()
    refusals = [e for e in errors_in(failure.value) if isinstance(e, AuthorizationRefused)]
    assert [r.error for r in refusals][:1] == ["access_denied"], failure.value


def test_keyboard_user_tabs_to_allow_sees_the_focus_and_presses_enter(
    page: Page, shim_server: ShimServer, receiver: RedirectReceiver, screenshots: Path
) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    open_consent_page(page, client, shim_server)

    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.value") == "approve":
            break
    else:
        pytest.fail("Tab never reached the Allow button")
    focus = page.evaluate(
        """() => {
            const e = document.activeElement, s = getComputedStyle(e);
            return {visible: e.matches(':focus-visible'), style: s.outlineStyle,
                    width: parseFloat(s.outlineWidth), text: e.textContent.trim()};
        }"""
    )
    keep_screenshot(page, screenshots, "consent-keyboard-focus")
    assert focus["text"] == "Allow"
    assert focus["visible"] and focus["style"] not in ("none", "hidden"), focus
    assert focus["width"] >= MIN_FOCUS_OUTLINE_PX, focus

    page.keyboard.press("Enter")
    sign_in_at_the_idp(page, shim_server.idp, receiver)
    assert not client.finish().is_error


@pytest.mark.parametrize(
    ("slug", "client_name"), [("short-name", "Claude"), ("long-name", LONG_CLIENT_NAME)], ids=["short-name", "long-name"]
)
def test_consent_page_fits_a_360_px_wide_screen(
    open_page: Callable[..., Page],
    shim_server: ShimServer,
    receiver: RedirectReceiver,
    screenshots: Path,
    slug: str,
    client_name: str,
) -> None:
    page = open_page(width=PHONE_WIDTH, height=780)
    client = McpClientRun(shim_server.mcp_url, receiver, client_name=client_name).start()
    open_consent_page(page, client, shim_server)
    keep_screenshot(page, screenshots, f"consent-{PHONE_WIDTH}px-{slug}")

    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE_WIDTH
    assert page.get_by_role("button", name="Allow").is_visible()


def error_page_url(shim: ShimServer) -> str:
    """An authorization request from a client the shim never heard of: there is no trusted
    redirect URI, so the person sees an error page (RFC 6749 §4.1.2.1)."""
    query = {
        "response_type": "code",
        "client_id": "unknown-client",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
    }
    return f"{shim.public_url}/oauth/authorize?{urlencode(query)}"


def test_error_page_for_an_unknown_client_is_shown_to_the_person(
    page: Page, shim_server: ShimServer, screenshots: Path
) -> None:
    response = page.goto(error_page_url(shim_server))
    keep_screenshot(page, screenshots, "error")
    assert response is not None and 400 <= response.status < 500
    assert "html" in response.headers["content-type"]
    assert page.url.startswith(shim_server.public_url)  # not sent on to the unverified redirect URI


@pytest.mark.parametrize("width", [PHONE_WIDTH, 1280], ids=["phone", "desktop"])
def test_error_page_fits_the_screen(open_page: Callable[..., Page], shim_server: ShimServer, width: int) -> None:
    page = open_page(width=width)
    page.goto(error_page_url(shim_server))
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width


def test_consent_page_title_asks_the_question(page: Page, shim_server: ShimServer, receiver: RedirectReceiver) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    open_consent_page(page, client, shim_server)
    assert page.title() == CONSENT_TITLE


def test_error_page_has_a_title_of_its_own(page: Page, shim_server: ShimServer) -> None:
    page.goto(error_page_url(shim_server))
    title = page.title().strip()
    assert title and title != page.url and "error" in title.lower(), title


# Every element that paints text, with its colour and the first opaque background behind it
# (walking up the tree), as WCAG's relative luminance sees them.
_TEXT_COLOURS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || e.offsetParent === null) continue;
    out.push({tag: e.tagName, text: e.textContent.trim().slice(0, 40),
              fg: rgb(getComputedStyle(e).color).slice(0, 3), bg: background(e)});
  }
  return out;
}"""


def _luminance(rgb: list[float]) -> float:
    """WCAG 2.2 relative luminance (sRGB)."""
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: list[float], bg: list[float]) -> float:
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_helper_matches_wcag_reference_values() -> None:
    assert contrast([0, 0, 0], [255, 255, 255]) == pytest.approx(21.0)
    assert contrast([118, 118, 118], [255, 255, 255]) == pytest.approx(4.54, abs=0.01)


def test_consent_page_text_has_enough_contrast(page: Page, shim_server: ShimServer, receiver: RedirectReceiver) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    open_consent_page(page, client, shim_server)
    texts = page.evaluate(_TEXT_COLOURS)
    assert texts, "no text found on the consent page"
    weak = [(t["tag"], t["text"], round(contrast(t["fg"], t["bg"]), 2)) for t in texts
            if contrast(t["fg"], t["bg"]) < MIN_TEXT_CONTRAST]
    assert not weak, weak



def test_idp_sign_in_form_refuses_a_wrong_password_and_stays_put(
    page: Page, shim_server: ShimServer, receiver: RedirectReceiver
) -> None:
    client = McpClientRun(shim_server.mcp_url, receiver).start()
    open_consent_page(page, client, shim_server)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{shim_server.idp.issuer}/interaction/**")

    page.get_by_label("Username").fill(LOGIN_USERNAME)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    assert page.url.startswith(f"{shim_server.idp.issuer}/interaction/")
    assert receiver.response is None
