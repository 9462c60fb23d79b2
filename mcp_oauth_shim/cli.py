"""Command line: ``mcp-oauth-shim serve`` and ``mcp-oauth-shim doctor``.

Every option has a flag and an environment variable (``MCP_OAUTH_SHIM_<NAME>``); a flag wins
over the variable, the variable over the default. Secrets are best given as variables: flags
are visible to every user of the machine in the process list. ``serve`` prints the effective
configuration at start with the secrets redacted.

This module reads and checks the options; :mod:`mcp_oauth_shim.app_factory` builds the app
from them. Its names (``create_app`` above all, the documented ``uvicorn --factory
mcp_oauth_shim.cli:create_app``) stay reachable from here, loaded on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from .config import AUDIENCE_PARAMS, TOKEN_AUTH_METHODS, ConfigurationError
from .logs import without_password
from .urls import is_loopback_host

if TYPE_CHECKING:
    import httpx

    from .doctor import DoctorInput

ENV_PREFIX = "MCP_OAUTH_SHIM_"
REDACTED = "<redacted>"
REDIS_SCHEMES = ("redis", "rediss", "unix")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

class UsageError(Exception):
    """A flag or variable is missing or malformed; exit status 2."""


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its variable, how to read it."""

    name: str  # dest; the variable is ENV_PREFIX + name.upper() unless ``variable`` says otherwise
    help: str
    kind: str = "str"  # "str", or one of the kinds _read knows
    default: Any = None
    secret: bool = False  # redacted in the configuration shown, never echoed in an error
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    variable: str | None = None
    argument: str | None = None  # the keyword it becomes in Upstream.oidc / DoctorInput, when not ``name``

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return self.variable or ENV_PREFIX + self.name.upper()

    @property
    def keyword(self) -> str:
        return self.argument or self.name


# One row per setting: flag and variable from the name, then how it is read.
UPSTREAM_OPTIONS = (
    Option("upstream_issuer", "the IdP's issuer URL, exactly as in its discovery document", kind="url", metavar="URL", argument="issuer"),
    Option(
        "upstream_metadata_url", "the IdP's discovery document URL (default: issuer + /.well-known/openid-configuration)",
        kind="url", metavar="URL", argument="metadata_url",
    ),
    Option("client_id", "the client registered at the IdP for the shim"),
    Option("client_secret", "that client's secret (prefer the variable: flags show in `ps`)", secret=True),
    Option(
        "token_auth_method", "how the shim authenticates at the IdP's token endpoint",
        default="client_secret_post", choices=TOKEN_AUTH_METHODS,
    ),
    Option("audience", "what the IdP puts in the access tokens' aud (default: the resource URL)", metavar="AUD"),
    Option(
        "audience_param", "how to ask the IdP for that audience: RFC 8707 resource=, Auth0-style audience=, or not at all",
        default="resource", choices=AUDIENCE_PARAMS,
    ),
    Option(
        "scopes", "scopes requested at the IdP when a client asks for none (comma or space separated)",
        kind="words", default=("openid",), argument="default_scopes",
    ),
    Option("extra_scopes", "scopes always added, e.g. offline_access for refresh tokens", kind="words", default=()),
)

SERVE_OPTIONS = (
    Option("public_url", "where clients reach the shim (default: http://HOST:PORT on loopback)", kind="url", metavar="URL"),
    Option("resource", "the protected MCP endpoint URL (default: PUBLIC_URL/mcp)", kind="url", metavar="URL"),
    *UPSTREAM_OPTIONS,
    Option(
        "secret_keys",
        "comma-separated signing keys, newest first (generate: python -c "
        "'import secrets; print(secrets.token_urlsafe(48))')",
        kind="list", secret=True,
    ),
    Option("required_scopes", "scopes every access token must carry at the MCP endpoint", kind="words", default=()),
    Option(
        "registration", "signed: a client_id per client; static: every client gets the IdP client_id",
        default="signed", choices=("signed", "static"),
    ),
    Option("allowed_redirect_uris", "comma-separated redirect URIs accepted beyond the default policy", kind="list", default=()),
    Option("client_metadata_documents", "accept URL client_ids (client ID metadata documents)", kind="bool", default=True),
    Option("mcp_upstream", "reverse-proxy the resource path to this MCP server URL, behind the shim's login", kind="url", metavar="URL"),
    Option("forward_authorization", "with --mcp-upstream: pass the user's access token on to the MCP server", kind="bool", default=False),
    Option(
        "issue_tokens",
        "the shim issues its own access tokens (RFC 9068, keys derived from the secret keys) after "
        "learning the user from the IdP's ID token or userinfo; for IdPs whose tokens are opaque",
        kind="bool", default=False,
    ),
    Option(
        "redis_url",
        "strict mode on this Redis, shared by every replica: codes and consent used once, refresh-token "
        "reuse detection, rate limits (redis://, rediss:// or unix://; needs the redis extra)",
        kind="redis_url", secret=True, metavar="URL",
    ),
    Option(
        "strict_on_unavailable",
        "strict mode, when Redis cannot answer: refuse (503 temporarily_unavailable) or allow (as without strict mode)",
        default="refuse", choices=("refuse", "allow"),
    ),
    Option("host", "interface to listen on", default="127.0.0.1"),
    Option("port", "port to listen on (1-65535)", kind="port", default=8000),
    Option("log_level", "uvicorn log level", default="info", choices=("critical", "error", "warning", "info", "debug")),
    Option(
        "log_format", "log lines as one JSON object each (with request_id and login_id), or text; default: uvicorn's own",
        choices=("json", "text"),
    ),
    Option(
        "metrics_port", "serve Prometheus metrics on this port of HOST (keep it internal; needs mcp-oauth-shim[metrics])",
        kind="port",
    ),
    Option(
        "body_timeout",
        "seconds a client has to send a request body; a slower one gets 408 and its connection closed",
        kind="seconds", default=30.0, metavar="SECONDS",
    ),
    Option(
        "header_timeout",
        "seconds a client has to send a request's line and header fields, from connecting or from the end of the "
        "previous response on a kept-alive connection; a slower one gets 408 and its connection closed",
        kind="seconds", default=10.0, metavar="SECONDS",
    ),
    Option(
        "shutdown_timeout",
        "seconds a stopping server (SIGTERM) lets requests in flight finish before it cancels them; an MCP event "
        "stream never finishes by itself (keep it below the orchestrator's grace period)",
        kind="seconds", default=20.0, metavar="SECONDS",
    ),
)

DOCTOR_OPTIONS = (
    # doctor reads the same variables as serve, so `doctor` checks what `serve` would use.
    Option(
        "issuer", "the IdP's issuer URL (variable fallback: MCP_OAUTH_SHIM_UPSTREAM_ISSUER)",
        kind="url", metavar="URL", variable=ENV_PREFIX + "UPSTREAM_ISSUER",
    ),
    *(o for o in UPSTREAM_OPTIONS if o.name != "upstream_issuer"),
    Option("public_url", "the shim's public URL, to check its callback PUBLIC_URL/oauth/callback", kind="url", metavar="URL"),
    Option("issue_tokens", "check for issued-token mode (the shim issues its own tokens; the IdP's userinfo is used)", kind="bool", default=False),
    Option(
        "sample_token",
        "an access token the IdP issued in a login, to tell which token mode it needs (read, never printed or verified)",
        secret=True, metavar="TOKEN",
    ),
)


@dataclass
class Settings:
    """Resolved option values and where each came from (flag, env, default, derived). The
    values hold the secrets: they are not in the ``repr``, :meth:`describe` shows them redacted."""

    values: dict[str, Any] = field(repr=False)
    sources: dict[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()

    def describe(self) -> list[str]:
        """One line per setting, secrets redacted (never their length or a prefix)."""
        lines = []
        for option in self.options:
            value = self.values.get(option.name)
            if option.secret and value:
                value = f"{REDACTED} ({len(value)} keys)" if option.kind == "list" else REDACTED
            elif option.kind == "url" and value:
                value = without_password(value)
            lines.append(f"  {option.flag[2:]:<26} {_shown(value)}  [{self.sources.get(option.name, 'default')}]")
        return lines


def _shown(value: Any) -> str:
    """A setting's value as the configuration report shows it and ``--help`` names a default."""
    if isinstance(value, (tuple, list)):
        return ", ".join(value) if value else "(none)"
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# RFC 3986 §3.2: [userinfo "@"] host [":" port], the host a name or a bracketed IP literal.
_AUTHORITY = re.compile(r"(?:.*@)?(?:\[[^\]]+\]|[^\[\]@:]+)(?::[0-9]*)?")


def is_absolute_http_url(url: str) -> bool:
    """An ``http://`` or ``https://`` URL with a host and a usable port: a scheme-less value
    (``localhost:9000/mcp``) is refused, not guessed at."""
    try:
        parts = urlsplit(url)
        return (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0
            # urlsplit ignores what follows "]" up to a ":" (``http://[::1]x``); HTTP clients refuse it.
            and _AUTHORITY.fullmatch(parts.netloc) is not None
        )
    except ValueError:  # a bad port or an unclosed IPv6 bracket
        return False


def _read(kind: str, raw: str) -> Any:
    """``raw`` read as an option of ``kind``; a ValueError's message completes "must be ..."."""
    if kind == "list":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind == "words":
        return tuple(raw.replace(",", " ").split())
    if kind == "port":
        try:
            number = int(raw)
        except ValueError:
            raise ValueError("a number") from None
        if not 1 <= number <= 65535:
            raise ValueError("a port number from 1 to 65535")
        return number
    if kind == "seconds":
        try:
            seconds = float(raw)
        except ValueError:
            raise ValueError("a number of seconds") from None
        if not 0 < seconds <= 3600:  # also refuses nan and inf
            raise ValueError("a number of seconds above 0 and at most 3600")
        return seconds
    if kind == "url" and not is_absolute_http_url(raw):
        raise ValueError("an absolute http:// or https:// URL")
    if kind == "redis_url":
        try:
            scheme = urlsplit(raw).scheme
        except ValueError:
            scheme = ""
        if scheme not in REDIS_SCHEMES:
            raise ValueError("a redis://, rediss:// or unix:// URL")
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered not in (*TRUE_WORDS, *FALSE_WORDS):
            raise ValueError("true or false")
        return lowered in TRUE_WORDS
    return raw


def _parse_value(option: Option, raw: str) -> Any:
    """``raw`` read as ``option`` says; a malformed value is a :class:`UsageError` naming both
    the flag and the variable, so a wrong setting reads the same from either. A secret's value
    (a Redis URL may hold a password) is never echoed."""
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:  # a byte os.environ or argv could not decode, kept as a surrogate
            raise UsageError(
                f"{option.flag} / {option.env} is not UTF-8 text: it holds a byte that cannot be decoded "
                "(a file written in another encoding?)."
            ) from None
    try:
        if option.choices and raw not in option.choices:
            raise ValueError(f"one of {', '.join(option.choices)}")
        return _read(option.kind, raw)
    except ValueError as exc:
        got = "" if option.secret else f", got {raw!r}"
        raise UsageError(f"{option.flag} / {option.env} must be {exc}{got}.") from None


def _add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    for option in options:
        default = "" if option.default in (None, (), "") else f"; default: {_shown(option.default)}"
        choices = f" (one of: {', '.join(option.choices)})" if option.choices else ""
        # A boolean is a --flag / --no-flag pair; every other option takes a value.
        how: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}
            if option.kind == "bool"
            else {"choices": option.choices, "metavar": option.metavar or option.name.upper()}
        )
        help_text = f"{option.help}{choices} [env: {option.env}{default}]"
        parser.add_argument(option.flag, dest=option.name, default=None, help=help_text, **how)


def resolve(options: Sequence[Option], args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flag, else environment variable, else default, for every option."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in options:
        flag_value = getattr(args, option.name, None)
        if flag_value is not None:
            values[option.name] = flag_value if option.kind == "bool" else _parse_value(option, flag_value)
            sources[option.name] = "flag"
        elif environ.get(option.env, "") != "":
            values[option.name] = _parse_value(option, environ[option.env])
            sources[option.name] = f"env {option.env}"
        else:
            values[option.name] = option.default
            sources[option.name] = "default"
    return Settings(values, sources, tuple(options))


# -- serve ----------------------------------------------------------------------------------


def serve_settings(args: argparse.Namespace, environ: Mapping[str, str], *, factory: bool = False) -> Settings:
    """The ``serve`` settings, checked. ``factory``: for :func:`create_app`, which cannot see the
    host and port the server listens on, so the public URL must be given."""
    settings = resolve(SERVE_OPTIONS, args, environ)
    v = settings.values
    if not v["public_url"]:
        if factory:
            raise UsageError(
                f"{ENV_PREFIX}PUBLIC_URL is required with the app factory: it cannot see the address the server "
                f"listens on (e.g. {ENV_PREFIX}PUBLIC_URL=http://127.0.0.1:8000 for uvicorn --port 8000)."
            )
        if not is_loopback_host(v["host"]):
            raise UsageError(f"--public-url / {ENV_PREFIX}PUBLIC_URL is required when listening on {v['host']}.")
        v["public_url"] = f"http://{_url_host(v['host'])}:{v['port']}"
        settings.sources["public_url"] = "derived from host and port"
    if not factory and v["metrics_port"] == v["port"]:
        # Both listen on HOST: the second to bind would fail only once the first served.
        raise UsageError(
            f"--metrics-port / {ENV_PREFIX}METRICS_PORT must differ from --port ({v['port']}): "
            "the metrics are served apart from the public endpoints."
        )
    missing = [o for o in ("client_id", "client_secret", "secret_keys") if not v[o]]
    if not (v["upstream_issuer"] or v["upstream_metadata_url"]):
        missing.insert(0, "upstream_issuer")
    if missing:
        names = ", ".join(f"--{m.replace('_', '-')} / {ENV_PREFIX}{m.upper()}" for m in missing)
        raise UsageError(f"missing: {names}. See `mcp-oauth-shim serve --help`.")
    return settings


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listener_mismatch(settings: Settings) -> str | None:
    """A warning when the public URL names this machine's loopback on another port than the one
    ``serve`` listens on: clients would be sent to an address nobody answers."""
    v = settings.values
    public = urlsplit(v["public_url"])
    if not (public.hostname and is_loopback_host(public.hostname) and is_loopback_host(v["host"])):
        return None
    port = public.port or (443 if public.scheme == "https" else 80)
    if port == v["port"]:
        return None
    return (
        f"warning: --public-url {v['public_url']} names port {port} but the shim listens on {v['port']}; "
        "clients are sent to the public URL (fine behind a local proxy, otherwise fix --port or --public-url)"
    )


def serve(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO) -> int:
    from .app_factory import build_app, build_shim

    settings = serve_settings(args, environ)
    v = settings.values
    shim = build_shim(settings)
    app = build_app(settings, shim)
    if v["resource"] is None:
        v["resource"] = shim.resource
        settings.sources["resource"] = "derived from public-url"
    paths = shim.context.paths
    lines = [
        "mcp-oauth-shim serve, effective configuration:",
        *settings.describe(),
        f"  issuer                     {shim.issuer}",
        f"  register at the IdP as the callback (redirect) URL: {shim.context.callback_url}",
        f"  MCP clients connect to: {shim.resource}",
        f"  health probes: {shim.public_url}{paths.liveness} (liveness), {shim.public_url}{paths.readiness} (IdP readiness)",
    ]
    if v["metrics_port"] is not None:
        lines.append(f"  metrics (internal): http://{_url_host(v['host'])}:{v['metrics_port']}/metrics")
    if not v["mcp_upstream"]:
        lines.append("  (no --mcp-upstream: serving the OAuth endpoints only)")
    if mismatch := listener_mismatch(settings):
        lines.append(f"  {mismatch}")
    from .header_deadline import HeaderDeadlineUnavailable, protocol_with_header_deadline

    http: type[asyncio.Protocol] | str
    try:
        http = protocol_with_header_deadline(v["header_timeout"])
    except HeaderDeadlineUnavailable as exc:
        http = "auto"
        lines.append(f"  warning: --header-timeout is not enforced: {exc}; a reverse proxy in front can bound it")
    if environ.get("WEB_CONCURRENCY"):
        lines.append(
            "  note: WEB_CONCURRENCY is not honoured, serve runs one process; for several, run "
            "uvicorn --factory mcp_oauth_shim.cli:create_app --workers N"
        )
    if settings.sources.get("client_secret") == "flag":
        lines.append(f"  warning: --client-secret is visible in the process list; prefer {ENV_PREFIX}CLIENT_SECRET")
    print(*lines, sep="\n", file=out, flush=True)
    if args.check:
        print("configuration OK (--check: not starting the server)", file=out)
        return 0
    import uvicorn

    from .logs import uvicorn_log_config

    if v["metrics_port"] is not None:
        from .metrics import start_metrics_server

        try:
            start_metrics_server(v["metrics_port"], v["host"])
        except OSError as exc:  # taken by another process, or an address this host lacks
            where = f"{_url_host(v['host'])}:{v['metrics_port']}"
            raise UsageError(f"--metrics-port / {ENV_PREFIX}METRICS_PORT: cannot listen on {where} ({exc.strerror or exc}).") from None
    # One worker, said explicitly: uvicorn would otherwise take WEB_CONCURRENCY (set by some
    # platforms) as a worker count, which it refuses for an app object, and exit.
    uvicorn.run(
        app,
        host=v["host"],
        port=v["port"],
        log_level=v["log_level"],
        log_config=uvicorn_log_config(v["log_format"]),
        workers=1,
        timeout_graceful_shutdown=v["shutdown_timeout"],
        http=http,
    )
    return 0


# -- doctor ---------------------------------------------------------------------------------


def doctor_input(args: argparse.Namespace, environ: Mapping[str, str]) -> DoctorInput:
    from .doctor import DoctorInput

    settings = resolve(DOCTOR_OPTIONS, args, environ)
    v = settings.values
    if not (v["issuer"] or v["upstream_metadata_url"]):
        raise UsageError(f"doctor needs --issuer URL (or {ENV_PREFIX}UPSTREAM_ISSUER, or --upstream-metadata-url).")
    # DoctorInput asks for every scope at once: the defaults and the extra ones.
    given = {o.keyword: v[o.name] for o in DOCTOR_OPTIONS if o.name not in ("scopes", "extra_scopes")}
    return DoctorInput(**given, scopes=tuple(dict.fromkeys([*v["scopes"], *v["extra_scopes"]])))


def doctor(
    args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, *, http: httpx.AsyncClient | None = None
) -> int:
    from .doctor import diagnose, failed, render

    findings = asyncio.run(diagnose(doctor_input(args, environ), http=http))
    print(render(findings), file=out)
    return 1 if failed(findings) else 0


# -- entry point ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mcp-oauth-shim",
        description="An OAuth 2.1 authorization server for MCP clients in front of an existing identity provider.",
    )
    from . import __version__

    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the shim (optionally in front of an MCP server) under uvicorn",
        description="Run the shim standalone. Every flag falls back to the environment variable shown.",
    )
    _add_options(serve_parser, SERVE_OPTIONS)
    serve_parser.add_argument("--check", action="store_true", help="print the configuration, build the app, and exit")
    doctor_parser = commands.add_parser(
        "doctor",
        help="check an identity provider against what MCP clients need through the shim",
        description="Read the IdP's discovery document and say what to fix. Exit status 1 on any FAIL.",
    )
    _add_options(doctor_parser, DOCTOR_OPTIONS)
    return top


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    command = serve if args.command == "serve" else doctor
    try:
        return command(args, environ, out)
    except (UsageError, ConfigurationError) as exc:
        print(f"mcp-oauth-shim {args.command}: {exc}", file=err)
        return 2


# What moved to app_factory, reachable here as before (PEP 562): the app factory is the
# documented ``mcp_oauth_shim.cli:create_app``; loading it lazily keeps ``doctor`` and ``--help``
# free of the app's imports.
_APP_FACTORY_NAMES = frozenset({"APP_BOOT_FAILURE", "build_app", "build_shim", "create_app", "warn_if_idp_unavailable"})


def __getattr__(name: str) -> Any:
    if name not in _APP_FACTORY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import app_factory

    return getattr(app_factory, name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
