from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--build-dir", default=str(ROOT / "build"), help="where `make stage` put the charms")


@pytest.fixture(scope="session")
def build_dir(request) -> Path:
    path = Path(request.config.getoption("--build-dir")).resolve()
    if not path.is_dir():
        pytest.fail(f"{path} does not exist: run `make stage` first")
    return path
