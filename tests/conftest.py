"""Suite-wide settings. Async tests run on anyio's pytest plugin with the asyncio backend."""

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
