"""Objects that hold a secret never show it in their ``repr``: a ``repr`` ends up in
tracebacks, debug logs and test output, where nobody redacts it."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.cli import Settings
from mcp_oauth_shim.doctor import DoctorInput
from mcp_oauth_shim.upstream import client_authentication

SECRET = "s3cret-value-that-must-not-show"
SAMPLE_TOKEN = "eyJ-sample-access-token-that-must-not-show"
HOLDERS: dict[str, Callable[[], object]] = {
    "client_secret_basic": lambda: client_authentication("client_secret_basic", "shim", SECRET),
    "client_secret_post": lambda: client_authentication("client_secret_post", "shim", SECRET),
    "DoctorInput": lambda: DoctorInput(issuer="https://idp.example", client_id="shim", client_secret=SECRET, sample_token=SAMPLE_TOKEN),
    "Settings": lambda: Settings(values={"client_secret": SECRET, "secret_keys": [SECRET]}),
    "Upstream": lambda: Upstream.oidc(
        issuer="https://idp.example", client_id="shim", client_secret=SECRET, audience="https://api.example/mcp"
    ),
}


@pytest.mark.parametrize("make", HOLDERS.values(), ids=HOLDERS.keys())
def test_the_repr_of_an_object_holding_a_secret_does_not_show_it(make: Callable[[], object]) -> None:
    shown = repr(make())
    basic = base64.b64encode(f"shim:{SECRET}".encode()).decode()
    assert SECRET not in shown
    assert basic not in shown
    assert SAMPLE_TOKEN not in shown
