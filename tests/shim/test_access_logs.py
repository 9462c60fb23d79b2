"""Codes and states stay out of a real uvicorn's access log wherever the shim is mounted.

The application (tests/shim/access_log_app.py) mounts ``shim.routes`` in a plain Starlette app,
never runs the shim's lifespan and configures no logging: whatever uvicorn's own logging
configuration, the shim's redaction must hold. uvicorn runs in a subprocess on 127.0.0.1 with
an ephemeral port, started the ways people start it: the CLI (logging configured, then the app
imported), ``uvicorn.run(app)`` (app built, then logging configured) and the CLI with a
``--log-config`` file of the operator's own.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mcp_oauth_shim.logs import RedactQueryStrings

from .kit import make_kit

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.shim.access_log_app:app"
SECRETS = ("SECRETCODE", "SECRETSTATE", "SECRETCLIENTSTATE")
REQUESTS = (
    "/oauth/callback?code=SECRETCODE&state=SECRETSTATE",
    "/oauth/authorize?response_type=code&client_id=some-client&state=SECRETCLIENTSTATE",
)
OWN_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s %(message)s"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}},
    "loggers": {
        "uvicorn.error": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
    },
}


def _command(start: str, tmp_path: Path) -> list[str]:
    serve = ["--host", "127.0.0.1", "--port", "0"]
    if start == "uvicorn CLI":
        return [sys.executable, "-m", "uvicorn", APP, *serve]
    if start == "uvicorn CLI with its own --log-config":
        config = tmp_path / "logging.json"
        config.write_text(json.dumps(OWN_LOG_CONFIG))
        return [sys.executable, "-m", "uvicorn", APP, *serve, "--log-config", str(config)]
    return [
        sys.executable,
        "-c",
        "import uvicorn\nfrom tests.shim.access_log_app import app\nuvicorn.run(app, host='127.0.0.1', port=0)",
    ]


def _access_log(start: str, tmp_path: Path, *, redact: bool) -> str:
    """Start uvicorn, make the requests, stop it; everything it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCESS_LOG_TEST_REDACT": "1" if redact else "0"}
    process = subprocess.Popen(
        _command(start, tmp_path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    printed: queue.Queue[str] = queue.Queue()
    readers = [threading.Thread(target=lambda s=s: [printed.put(line) for line in s], daemon=True)
               for s in (process.stdout, process.stderr)]
    for reader in readers:
        reader.start()
    lines: list[str] = []
    try:
        port = None
        while port is None:
            try:
                line = printed.get(timeout=60)
            except queue.Empty:
                raise AssertionError("uvicorn did not start:\n" + "".join(lines)) from None
            lines.append(line)
            started = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            port = started and int(started.group(1))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for path in REQUESTS:
                assert client.get(path).status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
    while not printed.empty():
        lines.append(printed.get())
    return "".join(lines)


STARTS = ["uvicorn CLI", "uvicorn.run(app)", "uvicorn CLI with its own --log-config"]


@pytest.mark.parametrize("start", STARTS)
def test_uvicorn_access_log_hides_codes_and_states_by_default(start, tmp_path):
    log = _access_log(start, tmp_path, redact=True)
    assert '"GET /oauth/callback?[redacted] HTTP/1.1" 400' in log, log
    assert '"GET /oauth/authorize?[redacted] HTTP/1.1" 400' in log, log
    for secret in SECRETS:
        assert secret not in log


@pytest.mark.parametrize("start", STARTS)
def test_uvicorn_access_log_shows_query_strings_when_redaction_is_off(start, tmp_path):
    log = _access_log(start, tmp_path, redact=False)
    for secret in SECRETS:
        assert secret in log, log


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    """``uvicorn.access`` without any filter for the test, as it was afterwards."""
    logger = logging.getLogger("uvicorn.access")
    saved = list(logger.filters)
    logger.filters.clear()
    yield logger
    logger.filters[:] = saved


def test_several_shims_install_one_filter(access_logger):
    make_kit()
    make_kit()
    assert sum(isinstance(f, RedactQueryStrings) for f in access_logger.filters) == 1


def test_a_shim_with_redaction_off_installs_no_filter(access_logger):
    make_kit(redact_access_logs=False)
    assert not any(isinstance(f, RedactQueryStrings) for f in access_logger.filters)


def test_redaction_leaves_mapping_arguments_alone():
    """hypercorn logs its access line with a mapping of atoms; the filter must not break it."""
    atoms = {"r": "GET /oauth/callback HTTP/1.1", "s": 200}
    record = logging.LogRecord("hypercorn.access", logging.INFO, __file__, 1, "%(r)s %(s)s", (atoms,), None)
    assert RedactQueryStrings().filter(record)
    assert record.getMessage() == "GET /oauth/callback HTTP/1.1 200"


@pytest.mark.parametrize(
    "request_line",
    [
        '"GET /oauth/callback?code=SECRET&state=STATE HTTP/1.1" 302',
        "\"GET /oauth/callback?x='&code=SECRET&state=STATE HTTP/1.1\" 302",
        '"GET /oauth/callback?x="&code=SECRET&state=STATE HTTP/1.1" 302',
    ],
    ids=["plain", "single quote before the code", "double quote before the code"],
)
def test_redaction_covers_the_whole_query_whatever_it_holds(request_line: str) -> None:
    from mcp_oauth_shim.logs import redact

    redacted = redact(request_line)
    assert "SECRET" not in redacted and "STATE" not in redacted
    assert redacted.endswith(" HTTP/1.1\" 302")
