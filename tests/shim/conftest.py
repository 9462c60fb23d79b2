import pytest

from .kit import Kit, make_kit


@pytest.fixture
def kit() -> Kit:
    return make_kit()


@pytest.fixture
def kit_no_iss() -> Kit:
    return make_kit(send_iss=False)
