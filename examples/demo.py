"""Quick-start demo: a development IdP, the OAuth shim and an MCP server, all on 127.0.0.1.

    python examples/demo.py                 # serve; connect any MCP client to the printed URL
    python examples/demo.py --self-check    # log in with the real `mcp` SDK client, call a tool, exit

Two listeners in one process, like a real deployment with Auth0 on another origin:

    http://127.0.0.1:8000   a FastAPI app (examples/demo_api.py) whose routes are MCP tools at /mcp
                            through mcp_bridge, behind the shim's OAuth endpoints
    http://127.0.0.1:9000   the development IdP (demo / demo)                    NOT FOR PRODUCTION

Nothing here is specific to the development IdP except where the upstream comes from: swap it
for your IdP (examples/bridge_oauth.py, or examples/mcp_server.py for the mcp SDK's MCPServer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import logging.config
import secrets
import socket
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import httpx2
import uvicorn
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import mcp_server` however we are run

from demo_api import build_demo_api

from mcp_oauth_shim.logs import RedactQueryStrings

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.dev_idp import DEMO_PASSWORD, DEMO_USERNAME, DevIdP

SELF_CHECK_TIMEOUT = 90.0
# The self-check client's redirect URI. Nothing listens there: the headless browser below stops
# when it is redirected to it, exactly where a real browser would hand over to the client.
SELF_CHECK_REDIRECT = "http://127.0.0.1:33418/callback"
APPROVE_WORDS = ("approve", "allow", "accept", "consent", "continue", "sign in", "login", "yes")
REFUSE_WORDS = ("deny", "cancel", "reject", "don't", "do not", "no thanks")


def bind(port: int) -> socket.socket:
    """A loopback listening socket; port 0 picks a free one (bound before anything is configured,
    because the issuer and public URL must carry the real port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


# -- the headless browser of the self-check ------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page: action, method, inputs and submit buttons (name, value, label)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "inputs": [], "buttons": []})
        elif not self.forms:
            return
        elif tag == "input" and a.get("type", "text").lower() == "submit":
            self.forms[-1]["buttons"].append({"name": a.get("name", ""), "value": a.get("value", ""), "label": ""})
        elif tag == "input" and a.get("name") and a.get("type", "text").lower() not in ("checkbox", "radio", "file"):
            self.forms[-1]["inputs"].append((a["name"], a.get("value", "")))
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "label": ""}
            self.forms[-1]["buttons"].append(self._button)

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["label"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None


def _submission(page: str, base_url: str) -> tuple[str, dict[str, str], str]:
    """The request a user approving/signing in on ``page`` would send: URL, form fields, what it was."""
    parser = _Forms()
    parser.feed(page)
    if len(parser.forms) != 1 or parser.forms[0]["method"] != "post":
        raise SelfCheckError(f"expected one POST form on {urlsplit(base_url).path}, found {len(parser.forms)}")
    form = parser.forms[0]
    fields = dict(form["inputs"])
    if "password" in fields:  # the development IdP's login page
        fields.update(username=DEMO_USERNAME, password=DEMO_PASSWORD)
    buttons = form["buttons"]

    def says(button: dict[str, str], words: tuple[str, ...]) -> bool:
        return any(w in f"{button['value']} {button['label']}".lower() for w in words)

    chosen = next((b for b in buttons if says(b, APPROVE_WORDS) and not says(b, REFUSE_WORDS)),
                  buttons[0] if len(buttons) == 1 else None)
    if chosen is None:
        raise SelfCheckError(f"no approve button on {urlsplit(base_url).path}")
    if chosen["name"]:
        fields[chosen["name"]] = chosen["value"]
    what = "login" if "password" in fields else f"form ({chosen['label'].strip() or chosen['value']})"
    return urljoin(base_url, form["action"] or base_url), fields, what


class SelfCheckError(Exception):
    """The self-check found something that a real client and user would have run into."""


class HeadlessBrowser:
    """Plays the user's browser for the SDK client: follows redirects with a cookie jar, approves
    the shim's consent page, signs in at the IdP, and stops at the client's redirect URI."""

    def __init__(self, redirect_uri: str) -> None:
        self.redirect_uri = redirect_uri
        self.result: Any = None
        self.steps: list[str] = []

    async def open(self, url: str) -> None:
        """The SDK's ``redirect_handler``."""
        method, data = "GET", None
        async with httpx.AsyncClient(follow_redirects=False, timeout=15.0) as browser:
            for _ in range(20):
                if url.startswith(self.redirect_uri + "?"):
                    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                    if "code" not in params:
                        raise SelfCheckError(f"authorization failed: {params.get('error')} "
                                             f"{params.get('error_description', '')}".strip())
                    self.steps.append("back at the client with a code")
                    self.result = AuthorizationCodeResult(code=params["code"], state=params.get("state"),
                                                          iss=params.get("iss"))
                    return
                response = await browser.request(method, url, data=data)
                # Paths only: query strings carry state and codes, which are not to be printed.
                where = f"{urlsplit(url).netloc}{urlsplit(url).path}"
                if response.is_redirect:
                    self.steps.append(f"{method} {where} -> {response.status_code}")
                    url, method, data = urljoin(url, response.headers["location"]), "GET", None
                elif response.status_code == 200 and "html" in response.headers.get("content-type", ""):
                    url, data, what = _submission(response.text, url)
                    self.steps.append(f"{method} {where} -> page, submit {what}")
                    method = "POST"
                else:
                    raise SelfCheckError(f"{method} {where} answered {response.status_code}: {response.text[:300]}")
        raise SelfCheckError("too many redirects")

    async def callback(self) -> Any:
        """The SDK's ``callback_handler``."""
        if self.result is None:
            raise SelfCheckError("the browser never reached the redirect URI")
        return self.result


class _MemoryStorage:
    """The SDK client's token storage; a real client keeps these on disk."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


async def _whoami(client: Any) -> dict[str, Any]:
    result = await client.call_tool("whoami", {})
    if result.is_error:
        raise SelfCheckError(f"whoami failed: {result.content}")
    me = result.structured_content or {}
    if me.get("subject") != DEMO_USERNAME:
        raise SelfCheckError(f"whoami returned subject {me.get('subject')!r}, expected {DEMO_USERNAME!r}")
    return me


async def self_check(mcp_url: str) -> str:
    """Log in with the `mcp` SDK's OAuth client, list tools, call them, refresh; return a summary."""
    browser = HeadlessBrowser(SELF_CHECK_REDIRECT)
    storage = _MemoryStorage()
    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-oauth-shim demo self-check",
            redirect_uris=[SELF_CHECK_REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30.0) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            for step in browser.steps:
                print(f"  browser: {step}")
            if browser.result is None:
                raise SelfCheckError("connected without logging in: is /mcp protected?")
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            print(f"  tools/list: {', '.join(tools)}")
            me = await _whoami(client)
            print(f"  tools/call whoami: subject={me['subject']!r} scopes={me.get('scopes')}")
            now = await client.call_tool("current_time", {"timezone": "UTC"})
            if now.is_error:
                raise SelfCheckError(f"current_time failed: {now.content}")

        # Refresh: pretend the access token expired; the SDK must renew it through the shim's
        # token endpoint with the refresh token, without sending the user to the browser again.
        first = storage.tokens
        if not first or not first.refresh_token:
            raise SelfCheckError("no refresh token was issued (offline_access)")
        browser.result, auth.context.token_expiry_time = None, time.time() - 1
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            await _whoami(client)
        if browser.result is not None or storage.tokens.access_token == first.access_token:
            raise SelfCheckError("refreshing failed: the client had to log in again")
        if storage.tokens.refresh_token == first.refresh_token:
            raise SelfCheckError("the refresh token was not rotated")
        print("  refresh: new access token through the shim, no new login, whoami again ok")
    return f"logged in as {DEMO_USERNAME!r} through the shim, listed {len(tools)} tools, called whoami, refreshed"


def _first_leaf(error: BaseException) -> BaseException:
    """The exception that actually failed, out of the task groups the SDK client runs in."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


# -- logs: every line says which server wrote it ----------------------------------------------

SERVER = contextvars.ContextVar("demo_server", default="demo")


class ServerLabel(logging.Filter):
    """Adds ``server`` (``idp`` or ``mcp``) to every record: each server runs in its own task
    (:func:`serve_labelled`), and the tasks serving its requests inherit that task's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.server = SERVER.get()
        return True


async def serve_labelled(server: uvicorn.Server, sock: socket.socket, label: str) -> None:
    SERVER.set(label)
    await server.serve(sockets=[sock])


def log_config(*, verbose: bool) -> dict[str, Any]:
    """One handler for both servers, labelled, query strings (codes, state) redacted.

    The shim's own lines (consent approved, code relayed: one or two per login) always show;
    the servers' access logs with ``--verbose``.
    """
    level = "INFO" if verbose else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"label": {"()": ServerLabel}, "redact": {"()": RedactQueryStrings}},
        "formatters": {"labelled": {"format": "[%(server)s] %(levelname)s: %(message)s"}},
        "handlers": {
            "labelled": {
                "class": "logging.StreamHandler",
                "formatter": "labelled",
                "filters": ["label", "redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["labelled"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["labelled"], "level": level, "propagate": False},
            "mcp_oauth_shim": {"handlers": ["labelled"], "level": "INFO", "propagate": False},
            "mcp_bridge": {"handlers": ["labelled"], "level": "INFO", "propagate": False},
        },
    }


# -- wiring --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    def port(given: int | None, usual: int) -> int:
        # --self-check defaults to free ports so that it never collides with a running demo.
        return given if given is not None else (0 if args.self_check else usual)

    try:
        shim_sock, idp_sock = bind(port(args.port, 8000)), bind(port(args.idp_port, 9000))
    except OSError as error:
        print(f"Cannot listen: {error.strerror}. Is a demo already running? Use --port / --idp-port.",
              file=sys.stderr)
        return 2
    logs = log_config(verbose=args.verbose)
    logging.config.dictConfig(logs)
    public_url = f"http://127.0.0.1:{shim_sock.getsockname()[1]}"
    issuer = f"http://127.0.0.1:{idp_sock.getsockname()[1]}"
    resource = f"{public_url}/mcp"

    idp = DevIdP(
        issuer=issuer,
        client_id="mcp-oauth-shim-demo",
        redirect_uris=[f"{public_url}/oauth/callback"],  # the shim's one callback, exactly
        audiences=[resource],
        auto_approve=args.auto_approve,
    )
    shim = OAuthShim(
        public_url=public_url,
        resource=resource,
        upstream=Upstream.oidc(
            issuer=issuer,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            audience=resource,
            audience_param="audience",  # Auth0's way; "resource" (RFC 8707) works with this IdP too
            default_scopes=("openid", "profile"),
            extra_scopes=("offline_access",),
        ),
        secret_keys=[secrets.token_urlsafe(32)],
    )
    app = build_demo_api(shim)

    log_level = "info" if args.verbose else "warning"
    servers = [
        (uvicorn.Server(uvicorn.Config(idp.app, log_config=logs, log_level=log_level, lifespan="off",
                                       timeout_graceful_shutdown=5)), idp_sock, "idp"),
        (uvicorn.Server(uvicorn.Config(app, log_config=logs, log_level=log_level, timeout_graceful_shutdown=5)),
         shim_sock, "mcp"),
    ]
    tasks = [asyncio.create_task(serve_labelled(server, sock, label)) for server, sock, label in servers]
    try:
        deadline = time.monotonic() + 15
        while not all(server.started for server, _, _ in servers):
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                print("FAIL: the servers did not start", file=sys.stderr)
                return 1
            await asyncio.sleep(0.05)

        print(f"Development IdP (NOT FOR PRODUCTION): {issuer}   user {DEMO_USERNAME} / password {DEMO_PASSWORD}")
        print(f"MCP server behind the OAuth shim:     {resource}")
        print(f"Connect a client, e.g.:  npx -y mcp-remote@0.15.1 {resource}")
        sys.stdout.flush()

        if not args.self_check:
            await asyncio.gather(*tasks)
            return 0
        print("Self-check: the mcp SDK's OAuth client logs in and calls a tool ...")
        try:
            summary = await asyncio.wait_for(self_check(resource), SELF_CHECK_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - any failure, a timeout included, is a FAIL with exit 1
            cause = _first_leaf(error)
            print(f"SELF-CHECK FAIL: {type(cause).__name__}: {cause}")
            return 1
        print(f"SELF-CHECK PASS: {summary}")
        return 0
    finally:
        for server, _, _ in servers:
            server.should_exit = True
        await asyncio.wait(tasks, timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="port of the MCP server and shim (default 8000; free port with --self-check)")
    parser.add_argument("--idp-port", type=int, help="port of the development IdP (default 9000; free port with --self-check)")
    parser.add_argument("--self-check", action="store_true", help="log in with the mcp SDK client, call a tool, exit 0 on success")
    parser.add_argument("--auto-approve", action="store_true", help="the IdP signs the demo user in without its login form")
    parser.add_argument("--verbose", action="store_true", help="show the servers' access logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
