import pytest

from mcp_oauth_shim import metrics, tracing


@pytest.fixture
def prometheus():
    """Metrics on for the test (the process-wide collectors), off again after it."""
    collectors = metrics.enable_metrics()
    yield collectors
    metrics.disable_metrics()


def sample(collectors, name: str, **labels: str) -> float:
    return collectors.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def spans():
    """Tracing on with the SDK's in-memory exporter; the finished spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable_tracing(provider)
    yield exporter
    tracing.disable_tracing()
