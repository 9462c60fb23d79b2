"""Text logs keep one record per line whatever a client sends: a value that reaches a log
message (a registration's token_endpoint_auth_method, say) cannot start a forged line or
send terminal escapes to the operator's console."""

from __future__ import annotations

import io
import logging

import pytest

from mcp_oauth_shim.log_format import TextFormatter, configure_logging

from ..shim.kit import CLIENT_REDIRECT, make_kit

# Short: the shim quotes at most 40 characters of the method.
FORGED = "2026-12-05 01:00:00,000 CRITICAL x: y"


@pytest.fixture
def text_log():
    """The process's logs in the text format, at INFO, into a string."""
    stream = io.StringIO()
    handler = configure_logging("text", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


def test_a_registration_cannot_forge_a_text_log_line(text_log: io.StringIO) -> None:
    kit = make_kit()
    answer = kit.client.post(
        "/oauth/register",
        json={"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "x\n" + FORGED},
    )
    assert answer.status_code == 201, answer.text
    lines = text_log.getvalue().splitlines()
    registration = [line for line in lines if "registration asked for" in line]
    assert registration, lines
    assert not any(line.startswith(FORGED) for line in lines), lines
    assert all("\n" + FORGED not in line for line in registration)


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),  # an ANSI escape: would clear the operator's terminal
        ("a\x85b", "a\\x85b"),  # NEL: a line break to str.splitlines and some log shippers
        ("a\u2028b", "a\\u2028b"),
        ("a\x00b", "a\\x00b"),
        ("tab\tkept", "tab\tkept"),
        ("ünïcödé kept", "ünïcödé kept"),
    ],
    ids=["lf", "cr", "ansi", "nel", "line-separator", "nul", "tab", "unicode"],
)
def test_text_lines_escape_control_characters_in_messages_and_fields(given: str, printed: str) -> None:
    rec = logging.LogRecord("mcp_oauth_shim.x", logging.INFO, __file__, 1, "got %s", (given,), None)
    rec.event = given
    line = TextFormatter().format(rec)
    assert len(line.splitlines()) == 1
    assert line.split(": ", 1)[1] == f"got {printed} event={printed}"


def test_a_text_traceback_still_follows_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("mcp_oauth_shim.x", logging.ERROR, __file__, 1, "failed\nhere", (), sys.exc_info())
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith("failed\\nhere")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
