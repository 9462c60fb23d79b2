"""`doctor` says which token mode an IdP needs and, in issued-token mode, whether its UserInfo
endpoint answers."""

from __future__ import annotations

import base64
import json

import pytest

from tests.test_doctor_feedback import PUBLIC_URL, RecordingIdP, levels


def fake_jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'at+jwt'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("sample", "issue_tokens", "level", "phrase"),
    [
        pytest.param("ya29.opaque-token-value", False, "WARN", "opaque", id="opaque-passthrough"),
        pytest.param("ya29.opaque-token-value", True, "OK", "opaque", id="opaque-issued"),
        pytest.param(fake_jwt({"aud": PUBLIC_URL + "/mcp"}), False, "OK", "passthrough works", id="jwt-for-resource"),
        pytest.param(fake_jwt({"aud": "https://graph.example.com"}), False, "WARN", "issued-token mode", id="jwt-for-another-api"),
    ],
)
def test_a_sample_token_tells_the_token_mode(sample: str, issue_tokens: bool, level: str, phrase: str) -> None:
    idp = RecordingIdP(auto_approve=True)
    _, out = idp.doctor("--sample-token", sample, *(["--issue-tokens"] if issue_tokens else []))
    assert levels(out)["token mode"] == {level}
    line = next(line for line in out.splitlines() if "token mode" in line)
    assert phrase in line
    assert sample not in out  # never printed


def test_without_a_sample_token_the_doctor_says_what_discovery_cannot_show() -> None:
    idp = RecordingIdP(auto_approve=True)
    _, out = idp.doctor()
    assert levels(out)["token mode"] == {"INFO"}
    assert "--sample-token" in out


def test_issued_mode_checks_that_userinfo_answers() -> None:
    idp = RecordingIdP(auto_approve=True)
    _, out = idp.doctor("--issue-tokens")
    assert levels(out)["userinfo_endpoint"] == {"OK"}


def test_passthrough_mode_does_not_probe_userinfo() -> None:
    idp = RecordingIdP(auto_approve=True)
    _, out = idp.doctor()
    assert "userinfo_endpoint" not in levels(out)
