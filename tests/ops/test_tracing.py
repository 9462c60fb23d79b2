"""OpenTelemetry spans, read back with the SDK's in-memory exporter."""

import pytest

from mcp_oauth_shim import telemetry, tracing


def test_an_idp_call_makes_a_span_named_after_its_operation(spans):
    with telemetry.idp_call("token"):
        pass
    [span] = spans.get_finished_spans()
    assert span.name == "idp.token"
    assert dict(span.attributes) == {"idp.operation": "token", "outcome": "ok"}
    assert span.status.is_ok


def test_a_failed_idp_call_marks_its_span_as_an_error_without_the_message(spans):
    with pytest.raises(TimeoutError), telemetry.idp_call("discovery"):
        raise TimeoutError("https://idp.example/secret-path?token=abc")
    [span] = spans.get_finished_spans()
    assert span.attributes["outcome"] == "timeout"
    assert not span.status.is_ok
    assert len(span.events) == 0  # no exception event: its message may quote a URL


def test_a_tool_call_makes_a_span_with_the_tool_name(spans):
    with telemetry.tool_call("get_item") as call:
        call.outcome = "tool_error"
    [span] = spans.get_finished_spans()
    assert span.name == "mcp.tool_call"
    assert dict(span.attributes) == {"mcp.tool.name": "get_item", "outcome": "tool_error"}


def test_no_span_is_made_when_tracing_is_off(spans):
    tracing.disable_tracing()
    with telemetry.idp_call("token"):
        pass
    assert spans.get_finished_spans() == ()
