"""Prometheus metrics: off unless asked for, bounded labels, one-line error without the package."""

import subprocess
import sys

import pytest

from mcp_oauth_shim import metrics, telemetry

from .conftest import sample


def test_nothing_imports_prometheus_client_unless_metrics_are_asked_for():
    code = (
        "import sys; from tests.shim.kit import make_kit; kit = make_kit(); kit.login(); "
        "assert 'prometheus_client' not in sys.modules, 'imported'; "
        "assert 'opentelemetry' not in sys.modules, 'imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("module", ["prometheus_client", "opentelemetry"])
def test_asking_without_the_package_is_a_one_line_configuration_error(module):
    what = "metrics=True" if module == "prometheus_client" else "tracing=True"
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from mcp_oauth_shim import OAuthShim, Upstream\n"
        "from mcp_oauth_shim.config import ConfigurationError\n"
        "up = Upstream.oidc(issuer='https://idp.example', client_id='c', client_secret='s')\n"
        "try:\n"
        f"    OAuthShim(public_url='https://mcp.example', upstream=up, secret_keys=['k' * 48], {what})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = result.stdout.splitlines()
    assert "pip install 'mcp-oauth-shim[" in line


def test_serve_with_a_metrics_port_and_no_prometheus_client_exits_2_with_one_line():
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from mcp_oauth_shim.cli import main\n"
        "env = {'MCP_OAUTH_SHIM_UPSTREAM_ISSUER': 'https://idp.example', 'MCP_OAUTH_SHIM_CLIENT_ID': 'c',\n"
        "       'MCP_OAUTH_SHIM_CLIENT_SECRET': 's', 'MCP_OAUTH_SHIM_SECRET_KEYS': 'k' * 48, 'MCP_OAUTH_SHIM_METRICS_PORT': '9464'}\n"
        "sys.exit(main(['serve', '--check'], environ=env))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mcp-oauth-shim serve: metrics need prometheus-client: pip install 'mcp-oauth-shim[metrics]'."
    ]


def test_recording_functions_do_nothing_when_metrics_are_off():
    metrics.disable_metrics()
    assert telemetry.idp_call("token") is telemetry.tool_call("anything")
    telemetry.bearer_rejected("expired")  # no collectors: returns at once


@pytest.mark.parametrize(
    ("record", "metric", "labels"),
    [
        (lambda: telemetry.bearer_rejected("expired"), "mcp_oauth_shim_bearer_rejections_total", {"reason": "expired"}),
        (lambda: telemetry.bearer_rejected("the token " + "x" * 40), "mcp_oauth_shim_bearer_rejections_total", {"reason": "other"}),
        (lambda: telemetry.login_step("authorize", "consent"), "mcp_oauth_shim_authorize_requests_total", {"result": "consent"}),
        (lambda: telemetry.login_step("consent", "deny"), "mcp_oauth_shim_consent_decisions_total", {"decision": "deny"}),
        (lambda: telemetry.login_step("callback", "made up"), "mcp_oauth_shim_callbacks_total", {"result": "other"}),
        (
            lambda: telemetry.token_result("refresh_token", "invalid_grant", kind="registered"),
            "mcp_oauth_shim_token_requests_total",
            {"grant_type": "refresh_token", "result": "invalid_grant", "client_kind": "registered"},
        ),
        (
            lambda: telemetry.token_result("urn:x:" + "y" * 50, "ok", kind="client-123"),
            "mcp_oauth_shim_token_requests_total",
            {"grant_type": "other", "result": "ok", "client_kind": "other"},
        ),
    ],
)
def test_each_event_is_counted_under_bounded_labels(prometheus, record, metric, labels):
    before = sample(prometheus, metric, **labels)
    record()
    assert sample(prometheus, metric, **labels) == before + 1


@pytest.mark.parametrize(
    ("client_id", "kind"),
    [
        (None, "none"),
        ("", "none"),
        ("https://client.example/metadata.json", "metadata_document"),
        ("idp-client", "static"),
        ("eyJhbGciOi.signed-client-id", "registered"),
    ],
)
def test_client_kind_is_decided_from_the_shape_of_the_client_id(client_id, kind):
    assert telemetry.client_kind(client_id, static_client_id="idp-client") == kind


@pytest.mark.parametrize(
    ("exit_with", "status", "outcome"),
    [(None, None, "ok"), (None, 404, "http_4xx"), (None, 503, "http_5xx"), (TimeoutError(), None, "timeout"), (ValueError(), None, "error")],
)
def test_idp_calls_are_timed_by_operation_and_outcome(prometheus, exit_with, status, outcome):
    name = "mcp_oauth_shim_idp_request_duration_seconds_count"
    before = sample(prometheus, name, operation="jwks", outcome=outcome)
    try:
        with telemetry.idp_call("jwks") as call:
            if status is not None:
                call.status(status)
            if exit_with is not None:
                raise exit_with
    except (TimeoutError, ValueError):
        pass
    assert sample(prometheus, name, operation="jwks", outcome=outcome) == before + 1


def test_tool_names_beyond_the_cap_share_one_label(prometheus, monkeypatch):
    monkeypatch.setattr(telemetry, "_tool_names", {f"tool{i}" for i in range(metrics.MAX_TOOL_LABELS)})
    before = sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool="other", outcome="ok")
    with telemetry.tool_call("one-more-tool"):
        pass
    assert sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool="other", outcome="ok") == before + 1
    assert sample(prometheus, "mcp_oauth_shim_tool_calls_total", tool="one-more-tool", outcome="ok") == 0


def test_the_metrics_app_serves_the_exposition(prometheus):
    from starlette.testclient import TestClient

    telemetry.bearer_rejected("missing")
    response = TestClient(metrics.metrics_app()).get("/metrics")
    assert response.status_code == 200
    assert 'mcp_oauth_shim_bearer_rejections_total{reason="missing"}' in response.text


def test_enabling_twice_keeps_the_first_collectors(prometheus):
    assert metrics.enable_metrics() is prometheus


def test_the_metrics_server_serves_on_its_own_port(prometheus):
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.start_metrics_server(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert b"# TYPE mcp_oauth_shim_token_requests_total counter" in answer.read()
