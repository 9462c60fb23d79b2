"""Strict mode from the command line and the environment: ``--redis-url`` /
``MCP_OAUTH_SHIM_REDIS_URL`` and ``--strict-on-unavailable``; the URL (which may hold a
password) is never printed."""

from __future__ import annotations

import io

import pytest

from mcp_oauth_shim import cli
from mcp_oauth_shim.app_factory import build_shim

BASE_ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example",
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": "an-upstream-secret",
    "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
}
REDIS_URL = "redis://:a-redis-password@127.0.0.1:6390/0"


def settings(argv: list[str], env: dict[str, str]) -> cli.Settings:
    return cli.serve_settings(cli.parser().parse_args(["serve", *argv]), {**BASE_ENV, **env})


@pytest.mark.parametrize(
    ("argv", "env", "on_unavailable"),
    [
        (["--redis-url", REDIS_URL], {}, "refuse"),
        ([], {"MCP_OAUTH_SHIM_REDIS_URL": REDIS_URL, "MCP_OAUTH_SHIM_STRICT_ON_UNAVAILABLE": "allow"}, "allow"),
        (["--redis-url", REDIS_URL, "--strict-on-unavailable", "allow"], {}, "allow"),
    ],
)
def test_a_redis_url_turns_strict_mode_on(argv: list[str], env: dict[str, str], on_unavailable: str) -> None:
    shim = build_shim(settings(argv, env))
    assert shim.strict is not None
    assert shim.strict.covers_replicas
    assert shim.strict.on_unavailable == on_unavailable


def test_without_a_redis_url_strict_mode_is_off() -> None:
    assert build_shim(settings([], {})).strict is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "memcached://:a-redis-password@host"])
def test_a_redis_url_of_another_scheme_is_refused_without_echoing_it(url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["serve", "--check", "--redis-url", url], environ=BASE_ENV, out=out, err=err)
    assert code == 2
    assert "--redis-url / MCP_OAUTH_SHIM_REDIS_URL" in err.getvalue()
    assert url not in err.getvalue() and "a-redis-password" not in err.getvalue()


def test_the_effective_configuration_redacts_the_redis_url() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["serve", "--check", "--redis-url", REDIS_URL], environ=BASE_ENV, out=out, err=err)
    assert code == 0, err.getvalue()
    assert "a-redis-password" not in out.getvalue()
    assert "redis-url" in out.getvalue() and "strict-on-unavailable" in out.getvalue()


@pytest.mark.parametrize(
    "url",
    [
        "rediss://:a-redis-password@127.0.0.1:6390/0?ssl_cert_reqs=sometimes",
        "rediss://:a-redis-password@127.0.0.1:6390/0?ssl_min_version=TLSv9",
    ],
)
def test_a_redis_url_with_a_setting_redis_refuses_is_refused_at_start_without_echoing_it(url: str) -> None:
    """Not at the first request, where every strict endpoint would answer it with a 500."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["serve", "--check"], environ={**BASE_ENV, "MCP_OAUTH_SHIM_REDIS_URL": url}, out=out, err=err)
    assert code == 2
    assert "--redis-url is not a usable Redis URL" in err.getvalue()
    assert "a-redis-password" not in out.getvalue() + err.getvalue()
