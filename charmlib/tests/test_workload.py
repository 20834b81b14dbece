"""The CDN charms' workload plumbing, through a minimal charm with one container."""

import json

import ops
import pytest
from ops import testing

from l2sm_charmlib import workload
from l2sm_charmlib.reconcile import Blocked

META = {"name": "probe", "containers": {"work": {}}}
LAYER = ops.pebble.Layer({"services": {"w": {"override": "replace", "command": "sleep 1"}}})


class Probe(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.work_pebble_ready, self._on_ready)
        self.seen: dict = {}

    def _on_ready(self, _):
        container = self.unit.get_container("work")
        self.seen["pushed"] = [
            workload.push_if_changed(container, "/etc/w.conf", "a"),
            workload.push_if_changed(container, "/etc/w.conf", "a"),
            workload.push_if_changed(container, "/etc/w.conf", "b", 0o600),
        ]
        self.seen["differs"] = workload.plan_differs(container, LAYER)
        container.add_layer("w", LAYER, combine=True)
        self.seen["differs after"] = workload.plan_differs(container, LAYER)
        try:
            workload.run_or_blocked(container, ["false"], "it failed")
        except Blocked as exc:
            self.seen["blocked"] = str(exc)
        try:
            workload.test_or_forget(container, ["false"], "refused", "/etc/w.conf")
        except Blocked as exc:
            self.seen["forgotten"] = (str(exc), container.exists("/etc/w.conf"))
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            # The job ends while the charm waits: its status file appears.
            sleeps.append(seconds)
            container.push("/run/jobs/fetch.json", json.dumps({"state": "done", "bytes": 5}), make_dirs=True)

        jobs = workload.Jobs(container, "/run/jobs", "probe", poll=0.01, sleep=sleep)
        container.push("/run/jobs/fetch.json", json.dumps({"state": "done", "bytes": 1}), make_dirs=True)
        self.seen["started"] = jobs.start("fetch", "python3 jobs.py fetch", wait=5)
        self.seen["sleeps"] = sleeps
        self.seen["service"] = container.get_plan().services["fetch"].to_dict()
        container.push("/run/jobs/bad.json", "[1, 2]")
        self.seen["not a mapping"] = jobs.status("bad")
        self.seen["absent"] = jobs.status("none")
        self.seen["no wait"] = jobs.start("slow", "python3 jobs.py sync", wait=0)


@pytest.fixture
def seen():
    ctx = testing.Context(Probe, meta=META)
    container = testing.Container(
        "work", can_connect=True, execs={testing.Exec(["false"], return_code=1, stderr="no\n")}
    )
    with ctx(ctx.on.pebble_ready(container), testing.State(containers={container})) as manager:
        manager.run()
        return manager.charm.seen


def test_files_are_pushed_only_when_they_change(seen):
    assert seen["pushed"] == [True, False, True]


def test_a_layer_differs_until_the_plan_holds_it(seen):
    assert (seen["differs"], seen["differs after"]) == (True, False)


def test_a_failing_command_is_blocked_with_its_stderr(seen):
    assert seen["blocked"] == "it failed: no"


def test_a_refused_config_is_removed_so_the_next_hook_tests_it_again(seen):
    assert seen["forgotten"] == ("refused: no", False)


def test_a_job_is_a_one_shot_service_and_its_old_status_does_not_count(seen):
    # The stale "bytes 1" status was removed before the start; the new one ends the wait.
    assert seen["started"] == {"state": "done", "bytes": 5}
    assert seen["sleeps"] == [0.01]
    assert seen["service"]["on-success"] == "ignore" and seen["service"]["startup"] == "disabled"
    assert seen["service"]["summary"] == "probe fetch (started by an action)"


def test_unreadable_or_absent_status_is_none_and_no_wait_returns_at_once(seen):
    assert seen["not a mapping"] is None and seen["absent"] is None
    assert seen["no wait"] == {}


def test_result_text_writes_values_as_the_juju_cli_does():
    assert [workload.result_text(v) for v in (None, True, False, 3, "x")] == ["", "true", "false", "3", "x"]
    assert workload.status_path("/run/jobs", "sync") == "/run/jobs/sync.json"
