"""The supervisor's decisions (restart backoff, when to resync), the desired state it reads from
the lab's record, its lock, and its resync against the controller's REST double."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from l2sm_controlplane.resync import ResyncReport
from l2sm_controlplane.vnets import VnetsClient
from l2sm_lab.supervisor import (
    Abandoned,
    Backoff,
    ResyncSchedule,
    Supervisor,
    desired_state,
    operator_lock,
    read_status,
    resync,
)
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
    report = resync(client, _record)
    assert sorted(report.networks_recreated) == ["net-a", "net-b"] and report.ports_restored == 2
    assert controller.learned("net-a") == [A1] and controller.learned("net-b") == [A2]
    again = resync(client, _record)
    assert not again.repaired and again.ports_confirmed == 2


def test_released_ports_go_and_a_port_no_pod_explains_is_reported_not_removed(controller):
    client = VnetsClient(controller.url, "karaf", "karaf")
    # B1: its pod is Terminating (released). C1: its pod left no trace (a missed delete).
    controller.hold("net-a", A1, B1, C1)
    controller.hold("net-b", A2)
    report = resync(client, _record)
    assert report.ports_removed == 1
    assert report.unexplained == {"net-a": [C1]}
    assert "no pod explains" in report.summary() and C1 in report.summary()
    assert sorted(controller.networks["net-a"]) == [A1, C1]


def test_a_stale_port_another_network_now_wants_leaves_the_old_network(controller):
    """The missed delete, then a later pod on the same switch port in another network."""
    client = VnetsClient(controller.url, "karaf", "karaf")
    controller.hold("net-a", A1, A2)  # A2: the old pod's port, never removed
    controller.hold("net-b", A2)  # the new pod's, posted by the operator
    report = resync(client, _record)
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


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _until(test, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _running(supervisor: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def test_an_unexpected_error_in_a_resync_or_probe_is_recorded_and_the_loop_goes_on(
    controller, tmp_path, monkeypatch
):
    """A bug in one poll must not end the supervisor: its death would take the controller
    with it (PDEATHSIG) and nothing would restart either."""
    calls: list[int] = []

    def flaky(client, root) -> ResyncReport:
        calls.append(len(calls))
        if len(calls) == 1:
            raise TypeError("a bug in the resync")
        return ResyncReport()

    children: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        children.append(_sleeper())
        return children[-1]

    client = VnetsClient(controller.url, "karaf", "karaf", timeout=1.0)
    supervisor = Supervisor(tmp_path, client, start, interval=0.1, resync=flaky)
    supervisor.schedule.retry = 0.1
    probes = {"n": 0}
    real_probe = client.is_ready

    def probe() -> bool:
        probes["n"] += 1
        if probes["n"] == 3:
            raise RuntimeError("a bug in the probe")
        return real_probe()

    monkeypatch.setattr(client, "is_ready", probe)
    thread = _running(supervisor)
    try:
        _until(lambda: len(calls) >= 3 and probes["n"] > 3)
    finally:
        supervisor.stop.set()
        thread.join(15)
    assert not thread.is_alive()
    status = read_status(tmp_path)
    assert status is not None
    assert "resync: TypeError: a bug in the resync" in status["failures"]
    assert "readiness probe: RuntimeError: a bug in the probe" in status["failures"]
    assert status["resyncs"] >= 2  # resyncs went on after the failure
    assert len(children) == 1 and status["restarts"] == 0  # the controller was never touched
    assert children[0].poll() is not None  # and ended with the supervisor's stop


def test_a_child_that_cannot_start_is_retried_with_backoff(controller, tmp_path):
    attempts: list[float] = []
    children: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise OSError("fork refused")
        children.append(_sleeper())
        return children[-1]

    client = VnetsClient(controller.url, "karaf", "karaf", timeout=1.0)
    supervisor = Supervisor(
        tmp_path, client, start, interval=10.0, resync=lambda c, r: ResyncReport(), backoff=Backoff(0.1)
    )
    thread = _running(supervisor)
    try:
        _until(lambda: bool(children) and (read_status(tmp_path) or {}).get("resyncs", 0) >= 1)
    finally:
        supervisor.stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert attempts[2] - attempts[1] >= 0.2 - 0.01  # the second failure waits twice as long
    status = read_status(tmp_path) or {}
    assert status["restarts"] == 2 and "could not start: fork refused" in status["last_exit"]
    assert children[0].poll() is not None


def test_a_lock_wait_gives_up_when_told_to_stop(tmp_path):
    holder = (
        "import sys, time; from pathlib import Path; from l2sm_lab.supervisor import operator_lock\n"
        "with operator_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(5)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Abandoned), operator_lock(tmp_path, timeout=30, give_up=stop):
            pass
        assert time.monotonic() - started < 2
    finally:
        other.kill()
        other.wait(10)


def test_the_record_is_read_as_the_charm_lists_the_api(controller):
    """Networks, then the controller, then the pods; after (re)making a network, the networks
    again: one gone from the record meanwhile is taken out of the controller."""
    reads: list[int] = []

    def read() -> dict:
        reads.append(len(controller.requests))
        record = _record()
        if len(reads) > 2:
            record["networks"] = ["net-a"]  # net-b deleted while the resync made it
        return record

    report = resync(VnetsClient(controller.url, "karaf", "karaf"), read)
    assert reads[:2] == [0, 2]  # the pods are read after one GET per network
    assert len(reads) == 3 and report.deleted_meanwhile == ["net-b"]
    assert set(controller.networks) == {"net-a"} and controller.learned("net-a") == [A1]
