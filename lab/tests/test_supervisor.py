"""The supervisor's decisions (restart backoff, when to resync), the desired state it reads from
the lab's record, its lock, and its resync against the controller's REST double."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from l2sm_controlplane.vnets import VnetsClient
from l2sm_lab.supervisor import Backoff, ResyncSchedule, desired_state, operator_lock, resync
from l2sm_testing.controller_server import FakeController

A1, A2, B1, C1 = (
    "of:00000000000000a1/1",
    "of:00000000000000a1/2",
    "of:00000000000000b1/1",
    "of:00000000000000c1/1",
)


def test_backoff_doubles_up_to_the_limit_and_restarts_the_count_after_a_healthy_run():
    backoff = Backoff(initial=0.5, factor=2.0, limit=30.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff.delay(10) == 30.0
    assert backoff.failures_after(3, ran_for=2.0) == 4  # a crash loop keeps growing
    assert backoff.failures_after(3, ran_for=31.0) == 1  # it ran well: a new failure
    with pytest.raises(ValueError):
        backoff.delay(0)


def test_resync_once_answering_after_a_start_then_every_interval():
    schedule = ResyncSchedule(interval=10.0, retry=1.0)
    assert not schedule.due(0.0, answering=False)  # nothing to talk to yet
    assert schedule.due(0.5, answering=True)  # the check recovered
    schedule.done(0.5, ok=True)
    assert not schedule.due(5.0, answering=True)
    assert schedule.due(10.5, answering=True)  # update-status
    schedule.done(10.5, ok=True)
    schedule.started()  # a restart: due as soon as it answers, not after the interval
    assert not schedule.due(11.0, answering=False)
    assert schedule.due(11.2, answering=True)
    schedule.done(11.2, ok=False)  # failed: tried again after `retry`, not `interval`
    assert not schedule.due(11.5, answering=True)
    assert schedule.due(12.3, answering=True)


def _record() -> dict:
    return {
        "networks": ["net-a", "net-b"],
        "units": {
            "x/0": {"ns": "l-u0", "node": "n1", "ports": {"net-a": {"port": 1, "endpoint": A1}}},
            "y/0": {"ns": "l-u1", "node": "n1", "ports": {"net-b": {"port": 2, "endpoint": A2}}},
            # A pod left Terminating: its ports are released.
            "z/0": {
                "ns": "",
                "node": "n2",
                "gone": "Terminating",
                "ports": {"net-a": {"port": 1, "endpoint": B1}},
            },
            # A unit its node had no interface for: no port anywhere.
            "w/0": {"ns": "", "node": "n2", "ports": {}, "problem": "n2 has no free switch interface"},
        },
    }


def test_desired_state_is_what_the_api_shows():
    desired = desired_state(_record())
    assert desired.networks == {"net-a", "net-b"}
    assert desired.ports == {"net-a": {A1}, "net-b": {A2}}
    assert desired.released == {"net-a": {B1}}


@pytest.fixture
def controller():
    fake = FakeController().start()
    yield fake
    fake.stop()


def test_a_lost_controller_gets_networks_and_ports_back(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    report = resync(client, _record())
    assert sorted(report.networks_recreated) == ["net-a", "net-b"] and report.ports_restored == 2
    assert controller.learned("net-a") == [A1] and controller.learned("net-b") == [A2]
    again = resync(client, _record())
    assert not again.repaired and again.ports_confirmed == 2


def test_released_ports_go_and_a_port_no_pod_explains_is_reported_not_removed(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    # B1: its pod is Terminating (released). C1: its pod left no trace (a missed delete).
    controller.hold("net-a", A1, B1, C1)
    controller.hold("net-b", A2)
    report = resync(client, _record())
    assert report.ports_removed == 1
    assert report.unexplained == {"net-a": [C1]}
    assert "no pod explains" in report.summary() and C1 in report.summary()
    assert sorted(controller.networks["net-a"]) == [A1, C1]


def test_a_stale_port_another_network_now_wants_leaves_the_old_network(controller):
    """The missed delete, then a later pod on the same switch port in another network."""
    client = VnetsClient(controller.url, "karaf", "karaf")
    controller.hold("net-a", A1, A2)  # A2: the old pod's port, never removed
    controller.hold("net-b", A2)  # the new pod's, posted by the operator
    report = resync(client, _record())
    assert not report.failures, report.summary()
    assert controller.networks["net-a"] == [A1]
    assert controller.learned("net-b") == [A2]


def test_the_lock_excludes_other_processes_and_is_reentrant_here(tmp_path):
    holder = (
        "import sys, time; from pathlib import Path; from l2sm_lab.supervisor import operator_lock\n"
        "with operator_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(1.5)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError), operator_lock(tmp_path, timeout=0.3):
            pass
        started = time.monotonic()
        with operator_lock(tmp_path, timeout=10), operator_lock(tmp_path, timeout=0):
            assert time.monotonic() - started > 0.5  # it waited for the other process
    finally:
        other.wait(10)
