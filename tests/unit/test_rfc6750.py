"""RFC 6750 §3 challenges: exact header values, the error answers, and header-injection safety."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_oauth_shim.rfc6750 import (
    bearer_challenge,
    bearer_error_response,
    is_b64token,
    quoted_string,
    sanitize_description,
    validate_scope_token,
)

PRM = "https://api.example.com/.well-known/oauth-protected-resource/mcp"


def test_missing_token_challenge_has_metadata_and_scope_but_no_error() -> None:
    value = bearer_challenge(resource_metadata=PRM, scope=["files:read", "files:write"])
    assert value == f'Bearer resource_metadata="{PRM}", scope="files:read files:write"'


def test_invalid_token_challenge_is_exact() -> None:
    value = bearer_challenge(
        resource_metadata=PRM, error="invalid_token", error_description="The access token has expired."
    )
    assert value == (
        f'Bearer resource_metadata="{PRM}", error="invalid_token", error_description="The access token has expired."'
    )


def test_insufficient_scope_challenge_names_the_scopes() -> None:
    value = bearer_challenge(
        resource_metadata=PRM,
        error="insufficient_scope",
        error_description="needs more",
        scope=["files:read", "files:write"],
    )
    assert value == (
        f'Bearer resource_metadata="{PRM}", error="insufficient_scope", '
        'error_description="needs more", scope="files:read files:write"'
    )


def test_challenge_without_parameters_is_the_bare_scheme() -> None:
    assert bearer_challenge() == "Bearer"


def test_empty_scope_list_leaves_the_scope_parameter_out() -> None:
    assert bearer_challenge(resource_metadata=PRM, scope=[]) == f'Bearer resource_metadata="{PRM}"'


def test_duplicate_scopes_are_named_once() -> None:
    assert bearer_challenge(scope=["a", "b", "a"]) == 'Bearer scope="a b"'


def test_realm_comes_first() -> None:
    assert bearer_challenge(realm="mcp", resource_metadata=PRM) == f'Bearer realm="mcp", resource_metadata="{PRM}"'


def test_unknown_error_code_is_refused() -> None:
    with pytest.raises(ValueError):
        bearer_challenge(error="server_error")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ('say "hi"', "say 'hi'"),
        ("back\\slash", "back/slash"),
        ("line\r\nSet-Cookie: x=1", "line  Set-Cookie: x=1"),
        ("nul\x00byte", "nul byte"),
        ("tab\there", "tab here"),
        ("caf\u00e9", "caf "),
    ],
)
def test_descriptions_are_sanitised_to_the_rfc6750_charset(text: str, expected: str) -> None:
    assert sanitize_description(text) == expected


def test_sanitised_description_cannot_break_out_of_its_parameter() -> None:
    value = bearer_challenge(error="invalid_token", error_description='x", error="insufficient_scope\r\nX: y')
    assert "\r" not in value and "\n" not in value
    assert value == 'Bearer error="invalid_token", error_description="x\', error=\'insufficient_scope  X: y"'


def test_long_descriptions_are_truncated() -> None:
    assert len(sanitize_description("a" * 5000)) == 300


@pytest.mark.parametrize(
    "scope",
    ["", "two words", 'quo"te', "back\\slash", "new\nline", "caf\u00e9", "ctl\x7f"],
)
def test_scopes_outside_the_scope_token_grammar_are_refused(scope: str) -> None:
    with pytest.raises(ValueError):
        validate_scope_token(scope)
    with pytest.raises(ValueError):
        bearer_challenge(scope=[scope])


@pytest.mark.parametrize("scope", ["openid", "files:read", "api://x/.default", "https://graph.example/User.Read"])
def test_scope_tokens_in_the_grammar_are_kept(scope: str) -> None:
    assert validate_scope_token(scope) == scope


@pytest.mark.parametrize(
    "url",
    [
        'https://a.example/x"y',
        "https://a.example/x\r\nX-Injected: 1",
        "https://a.example/x y",
        "https://a.example/x\\y",
    ],
)
def test_resource_metadata_that_is_not_a_uri_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        bearer_challenge(resource_metadata=url)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", '"abc"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("", '""')],
)
def test_quoted_string_escapes_quotes_and_backslashes(value: str, expected: str) -> None:
    assert quoted_string(value) == expected


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "caf\u00e9", "a\x7fb"])
def test_quoted_string_refuses_characters_a_header_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError):
        quoted_string(value)


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, 401), ("invalid_request", 400), ("invalid_token", 401), ("insufficient_scope", 403)],
)
def test_error_response_status_follows_the_error_code(error: str | None, status: int) -> None:
    response = bearer_error_response(error=error, error_description="d", resource_metadata=PRM)
    assert response.status_code == status


def test_missing_token_response_has_a_challenge_without_error_and_a_json_body() -> None:
    response = bearer_error_response(
        error=None, error_description="Authenticate first.", resource_metadata=PRM, scope=["openid"]
    )
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{PRM}", scope="openid"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"error": "invalid_token", "error_description": "Authenticate first."}


def test_insufficient_scope_response_body_lists_the_scopes() -> None:
    response = bearer_error_response(
        error="insufficient_scope", error_description="more please", resource_metadata=PRM, scope=["a", "b"]
    )
    assert json.loads(response.body) == {
        "error": "insufficient_scope",
        "error_description": "more please",
        "scope": "a b",
    }
    assert response.headers["www-authenticate"].endswith('scope="a b"')


def test_error_response_body_carries_the_sanitised_description() -> None:
    response = bearer_error_response(error="invalid_token", error_description='bad "x"\n')
    assert json.loads(response.body)["error_description"] == "bad 'x' "


# The grammar of RFC 6750 §2.1 as a regular expression: what is_b64token must decide.
_B64TOKEN_GRAMMAR = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
# Every byte of the grammar, the bytes around its ranges, and a few that headers carry.
_TOKEN_BYTES = b"AZaz09-._~+/=@[`{ ,;:\"\\\t\x00\x7f\x80\xff"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (b"abc", True),
        (b"a.b-c_d~e+f/g", True),
        (b"abc==", True),
        (b"a=", True),
        (b"", False),
        (b"=", False),
        (b"==abc", False),
        (b"ab=c", False),
        (b"a b", False),
        (b"abc\x00", False),
        (b"abc\xff", False),
    ],
)
def test_a_bearer_credential_is_a_b64token(token: bytes, expected: bool) -> None:
    assert is_b64token(token) is expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40).map(lambda raw: bytes(_TOKEN_BYTES[b % len(_TOKEN_BYTES)] for b in raw)))
def test_is_b64token_decides_as_the_grammar(token: bytes) -> None:
    assert is_b64token(token) is (_B64TOKEN_GRAMMAR.fullmatch(token) is not None)
