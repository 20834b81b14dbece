"""The test KNF charm's own suite, written against l2sm_knf and its testing helpers alone,
as a third-party KNF charm's would be: tests/test_knf_package.py runs it in a virtualenv
holding only the charm's requirements and the staged lib/ (l2sm_knf, l2sm_core)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ops import testing

# src/ first, as the charm's dispatch script puts it (the workspace's own run sets no PYTHONPATH).
SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import charm  # noqa: E402

from l2sm_knf.l2sm_network import FakeCluster  # noqa: E402

# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")


@pytest.fixture(params=JUJU_VERSIONS)
def ctx(request) -> testing.Context:
    return testing.Context(charm.TestKnfCharm, juju_version=request.param)


@pytest.fixture
def cluster():
    """The application's StatefulSet and pods, and the netlink boundary, while the test runs."""
    cluster = FakeCluster("test-knf", containers=("charm", "workload"))
    with cluster.installed():
        yield cluster
