"""`doctor` against an IdP that answers the login request at once with a code (auto-approve,
an existing single sign-on session): that is an accepted request, not a failure."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_oauth_shim import cli
from mcp_oauth_shim.dev_idp import DevIdP

ISSUER = "http://127.0.0.1:9000"
PUBLIC_URL = "https://api.example.com"
SECRET = "the-right-secret-" + "x" * 20


def levels(output: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in output.splitlines():
        level, _, rest = line.partition(" ")
        if level in ("OK", "INFO", "WARN", "FAIL"):
            found.setdefault(rest.strip().split(":", 1)[0], set()).add(level)
    return found


class RecordingIdP:
    """The development IdP behind an in-process transport, remembering its redirects."""

    def __init__(self, *, auto_approve: bool, callback: str = PUBLIC_URL + "/oauth/callback") -> None:
        self.idp = DevIdP(issuer=ISSUER, client_secret=SECRET, redirect_uris=[callback], auto_approve=auto_approve)
        self.locations: list[str] = []
        transport = httpx.ASGITransport(app=self.idp.app)

        async def record(request: httpx.Request) -> httpx.Response:
            response = await transport.handle_async_request(request)
            if "location" in response.headers:
                self.locations.append(response.headers["location"])
            return response

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(record), base_url=ISSUER)

    def doctor(self, *argv: str) -> tuple[int, str]:
        args = cli.parser().parse_args(
            ["doctor", "--issuer", ISSUER, "--client-id", self.idp.client_id, "--public-url", PUBLIC_URL, *argv]
        )
        out = io.StringIO()
        code = cli.doctor(args, {"MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET}, out, http=self.http)
        return code, out.getvalue()


def test_an_idp_that_answers_at_once_with_a_code_passes_the_authorization_check() -> None:
    idp = RecordingIdP(auto_approve=True)
    code, out = idp.doctor("--extra-scopes", "offline_access")
    codes = [parse_qs(urlsplit(location).query).get("code", [""])[0] for location in idp.locations]
    assert any(codes), "the IdP did not answer with a code: the test shows nothing"
    assert levels(out)["authorization request"] == {"OK"}
    assert "answered at once with a code" in out
    assert code == 0, out
    assert not any(c and c in out for c in codes)  # the code is never printed


@pytest.mark.parametrize("auto_approve", [True, False], ids=["auto-approve", "login-page"])
def test_an_unregistered_callback_still_fails_the_authorization_check(auto_approve: bool) -> None:
    idp = RecordingIdP(auto_approve=auto_approve, callback="https://elsewhere.example.com/oauth/callback")
    code, out = idp.doctor()
    assert levels(out)["authorization request"] == {"FAIL"}
    assert code == 1


@pytest.mark.parametrize("issuer", ["127.0.0.1:8820", "idp.example.com/realms/x", "http://[::1"])
def test_doctor_from_python_reports_a_scheme_less_issuer_instead_of_garbling_it(issuer: str) -> None:
    import asyncio

    from mcp_oauth_shim.doctor import DoctorInput, diagnose, failed, render

    def unexpected(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"doctor sent a request to {request.url}")

    findings = asyncio.run(
        diagnose(DoctorInput(issuer=issuer), http=httpx.AsyncClient(transport=httpx.MockTransport(unexpected)))
    )
    report = render(findings)
    assert failed(findings)
    assert f"absolute http:// or https:// URL, got {issuer!r}" in report
    assert "://.well-known" not in report
