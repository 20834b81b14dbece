import pytest

from l2sm_testing.controller_server import FakeController


@pytest.fixture
def controller():
    fake = FakeController().start()
    yield fake
    fake.stop()
