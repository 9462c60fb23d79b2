"""JSON and text log output: the fields, one line per record, and redaction kept."""

import io
import json
import logging
import logging.config

import pytest

from mcp_oauth_shim.log_context import LogContextFilter, bind_login, current_login_id, login_correlation_id, login_challenge_var, request_id_var
from mcp_oauth_shim.log_format import JsonFormatter, TextFormatter, configure_logging
from mcp_oauth_shim.logs import uvicorn_log_config


def record(msg="hello %s", args=("world",), **extra):
    rec = logging.LogRecord("mcp_oauth_shim.x", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    LogContextFilter().filter(rec)
    return rec


def test_json_lines_carry_time_level_logger_message_and_request_id():
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(record())
    finally:
        request_id_var.reset(token)
    document = json.loads(line)
    assert document["level"] == "INFO"
    assert document["logger"] == "mcp_oauth_shim.x"
    assert document["message"] == "hello world"
    assert document["request_id"] == "req-1"
    assert document["time"].endswith("Z")


def test_json_has_a_null_request_id_outside_a_request():
    assert json.loads(JsonFormatter().format(record()))["request_id"] is None


def test_json_carries_event_fields_given_as_extra():
    document = json.loads(JsonFormatter().format(record(event="login.callback", result="ok")))
    assert (document["event"], document["result"]) == ("login.callback", "ok")


def test_json_keeps_a_multiline_message_and_traceback_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record("two\nlines", ())
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "two\nlines"
    assert "ValueError: boom" in document["exception"]


def test_text_names_the_request_and_login_ids_when_set():
    tokens = request_id_var.set("req-9"), login_challenge_var.set("challenge")
    try:
        line = TextFormatter().format(record())
    finally:
        request_id_var.reset(tokens[0])
        login_challenge_var.reset(tokens[1])
    assert line.endswith(f"mcp_oauth_shim.x: hello world request_id=req-9 login_id={login_correlation_id('challenge')}")


def test_login_correlation_id_is_short_stable_and_not_the_challenge():
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    first = login_correlation_id(challenge)
    assert first == login_correlation_id(challenge)
    assert len(first) == 12 and challenge not in first and first not in challenge
    assert first != login_correlation_id(challenge[:-1] + "N")


def test_bind_login_sets_the_login_id_of_the_current_context():
    token = login_challenge_var.set(None)
    try:
        bind_login("challenge")
        assert current_login_id() == login_correlation_id("challenge")
        bind_login(None)
        assert current_login_id() == login_correlation_id("challenge")
    finally:
        login_challenge_var.reset(token)


@pytest.mark.parametrize("format", ["json", "text"])
def test_configure_logging_replaces_its_own_handler_and_keeps_others(format):
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    level = root.level
    try:
        first = configure_logging(format, stream=io.StringIO())
        second = configure_logging(format, stream=io.StringIO())
        assert first not in root.handlers and second in root.handlers and other in root.handlers
    finally:
        root.removeHandler(second)
        root.removeHandler(other)
        root.setLevel(level)


def test_configure_logging_prints_one_json_object_per_record():
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging("json", stream=stream)
    try:
        logging.getLogger("mcp_oauth_shim.test").info("one")
        logging.getLogger("app").warning("two")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["one", "two"]


def test_configure_logging_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="json, text"):
        configure_logging("xml")  # type: ignore[arg-type]


@pytest.mark.parametrize("format", [None, "json", "text"])
def test_uvicorn_config_redacts_access_queries_in_every_format(format, capsys):
    logging.config.dictConfig(uvicorn_log_config(format))
    try:
        access = logging.getLogger("uvicorn.access")
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/oauth/callback?code=SECRETCODE&state=SEALED", "1.1", 302)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "WARNING"}})
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "/oauth/callback?[redacted]" in printed
    assert "SECRETCODE" not in printed and "SEALED" not in printed
    if format == "json":
        assert json.loads(printed.strip().splitlines()[-1])["logger"] == "uvicorn.access"
