"""The shared charm plumbing, through a minimal charm defined here."""

import json

import ops
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube.resources.core_v1 import Pod
from ops import testing

from l2sm_charmlib import l2sm_controller, reconcile
from l2sm_controlplane.objects import action_network
from l2sm_knf.kube import KubeForbidden, KubeForeign, KubeNotFound
from l2sm_testing import bad_input
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import CONTROLLER_APP_DATA

META = {
    "name": "probe",
    "requires": {"controller": {"interface": "l2sm_controller"}},
}
ACTIONS = {
    "measure": {"params": {"depth": {"type": "integer"}}},
    "look": {"params": {"depth": {"type": "integer"}}},
}
CONFIG = {"options": {"size": {"type": "int", "default": 3}}}


class Size(pydantic.BaseModel):
    size: int = pydantic.Field(3, ge=1, le=5)


class Depth(pydantic.BaseModel):
    depth: int = pydantic.Field(ge=0)


# Another owner's object under a name the probe uses.
FOREIGN = {"kind": "L2Network", "metadata": {"name": "net-a", "namespace": "m", "labels": {"owner": "them"}}}


def foreign() -> KubeForeign:
    return KubeForeign(FOREIGN, {"owner": "probe"}, "rename ours or hand theirs over")


class Probe(reconcile.ReconcilingCharm):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._reconcile)
        framework.observe(self.on.measure_action, self._on_measure)
        framework.observe(self.on.look_action, self._on_look)
        self.assessed = 0
        self.stopped_by = ""

    def _on_measure(self, event):
        self.run_action(event, Depth, self._measure)

    def _on_look(self, event):
        # An action on the unit's own state: every unit answers.
        self.run_action(event, Depth, lambda params: {"depth": params.depth}, leader_only=False)

    def _measure(self, params: Depth) -> dict:
        if params.depth == 7:
            raise reconcile.Refused("parameter 'depth': seven is unlucky")
        if params.depth == 4:
            self.kube.apply(action_network(self.app.name, "m", "net-a", None))
        if params.depth == 9:
            raise foreign()
        return {"pods": len(self.kube.list(Pod)), "depth": params.depth}

    def assess(self):
        # Blocked and Waiting raised here become the status (the base class maps them).
        self.assessed += 1
        size = self.typed_config(Size)
        data = l2sm_controller.controller_data(self, "controller")
        if size.size == 2:
            self.kube.list(Pod)
        return ops.ActiveStatus(f"{size.size} via {data.cluster_ip}")

    def _reconcile(self, _):
        try:
            size = self.config.get("size")
            if size == 4:
                raise reconcile.Blocked("four is refused while acting")
            if size == 5:
                raise reconcile.Waiting("five waits")
            if size == 2:
                self.kube.list(Pod)
            if size == 1:
                raise reconcile.Blocked("one is refused first")
            if size == 6:
                raise foreign()
        except (reconcile.Blocked, reconcile.Waiting, KubeNotFound, KubeForbidden, KubeForeign) as exc:
            self.record_stop(exc)
            self.stopped_by = type(exc).__name__
            if size == 1:  # a later refusal in the same dispatch: the first one stays
                self.record_stop(reconcile.Blocked("one is refused again"))


def run(config=None, data=None, related=True):
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    relations = set()
    if related:
        raw = {k: json.dumps(v) for k, v in (data if data is not None else CONTROLLER_APP_DATA).items()}
        relations = {testing.Relation("controller", remote_app_data=raw)}
    return ctx.run(
        ctx.on.config_changed(), testing.State(config=config or {}, relations=relations)
    ).unit_status


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, testing.ActiveStatus("3 via 10.152.183.20")),
        (
            {"config": {"size": 9}},
            testing.BlockedStatus("option 'size': Input should be less than or equal to 5"),
        ),
        ({"config": {"size": 4}}, testing.BlockedStatus("four is refused while acting")),
        (
            {"related": False},
            testing.BlockedStatus(
                "integrate with l2sm-controller: juju integrate probe:controller l2sm-controller"
            ),
        ),
        ({"data": {}}, testing.WaitingStatus("waiting for the controller to publish its address")),
        (
            {"data": CONTROLLER_APP_DATA | {"ready": False}},
            testing.WaitingStatus("waiting for the controller to be ready"),
        ),
    ],
)
def test_statuses(kwargs, status):
    assert run(**kwargs) == status


def test_bad_controller_data_names_the_field():
    status = run(data=CONTROLLER_APP_DATA | {"openflow-port": 0})
    assert status.name == "blocked"
    assert status.message.startswith("controller relation data: field 'openflow-port'")


def run_raw(raw):
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    state = testing.State(relations={testing.Relation("controller", remote_app_data=raw)})
    return ctx.run(ctx.on.config_changed(), state).unit_status


def test_controller_data_that_is_not_json_is_named_not_raised():
    raw = {k: json.dumps(v) for k, v in CONTROLLER_APP_DATA.items()}
    # A value written by hand (juju-exec relation-set) without JSON quoting.
    status = run_raw(raw | {"host": "l2sm-controller-sdn.l2sm.svc.cluster.local"})
    assert status == testing.BlockedStatus("controller relation data: field 'host': not JSON")


def test_unknown_plain_keys_are_not_read():
    # Keys outside the schema (Juju's own, a newer provider's) are not ours to judge.
    raw = {k: json.dumps(v) for k, v in CONTROLLER_APP_DATA.items()}
    assert run_raw(raw | {"egress-subnets": "10.1.0.0/16"}).name == "active"


@given(key=st.sampled_from(sorted(CONTROLLER_APP_DATA)), value=bad_input.databag_value())
@settings(max_examples=60, deadline=None)
def test_any_controller_value_is_read_or_named(key, value):
    raw = {k: json.dumps(v) for k, v in CONTROLLER_APP_DATA.items()} | {key: value}
    status = run_raw(raw)
    if status.name == "blocked":
        assert f"field '{key}'" in status.message
        assert len(status.message) < 400
    else:
        # Accepted only when it still means a controller that is ready.
        assert status.name in ("active", "waiting"), status


@pytest.fixture
def kube(monkeypatch):
    fake = FakeKube()
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
    return fake


def act(params, leader=True):
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    ctx.run(ctx.on.action("measure", params=params), testing.State(leader=leader))
    return ctx.action_results


def test_action_runs_on_the_leader(kube):
    assert act({"depth": 3}) == {"pods": 0, "depth": 3}


class Route(pydantic.BaseModel):
    source: str = pydantic.Field(alias="from")


def test_a_parameter_python_cannot_spell_is_known_by_its_alias(kube):
    class Router(Probe):
        def _on_look(self, event):
            self.run_action(event, Route, lambda params: {"from": params.source}, leader_only=False)

    actions = {"look": {"params": {"from": {"type": "string"}}}}
    ctx = testing.Context(Router, meta=META, config=CONFIG, actions={**ACTIONS, **actions})
    ctx.run(ctx.on.action("look", params={"from": "net-a"}), testing.State())
    assert ctx.action_results == {"from": "net-a"}


def test_a_unit_level_action_runs_on_any_unit(kube):
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    ctx.run(ctx.on.action("look", params={"depth": 2}), testing.State(leader=False))
    assert ctx.action_results == {"depth": 2}
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action("look", params={"depth": -2}), testing.State(leader=False))
    assert info.value.message.startswith("parameter 'depth': ")


@pytest.mark.parametrize(
    ("params", "leader", "message"),
    [
        ({"depth": -1}, True, "parameter 'depth': Input should be greater than or equal to 0"),
        ({"depth": 7}, True, "parameter 'depth': seven is unlucky"),
        ({"depth": 1}, False, "run this on the leader unit: juju run probe/leader measure"),
    ],
)
def test_action_refusals(kube, params, leader, message):
    with pytest.raises(testing.ActionFailed) as info:
        act(params, leader=leader)
    assert info.value.message == message


def test_unknown_parameters_are_refused_not_dropped(kube, monkeypatch):
    # ops would drop a parameter the model does not name: a typo would silently do the default.
    # (Juju refuses it first; ops.testing too, unless told to let it through as a bug might.)
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    with pytest.raises(testing.ActionFailed) as info:
        act({"depth": 1, "dpeth": 2})
    assert info.value.message == "parameter 'dpeth': unknown parameter (this action takes depth)"


@pytest.mark.parametrize(
    ("juju", "integrate", "run"),
    [
        (
            "2.9.43",
            "juju relate probe:controller l2sm-controller",
            "juju run-action probe/leader measure --wait",
        ),
        ("3.6.4", "juju integrate probe:controller l2sm-controller", "juju run probe/leader measure"),
    ],
)
def test_hints_speak_the_running_juju_s_dialect(kube, juju, integrate, run):
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS, juju_version=juju)
    out = ctx.run(ctx.on.config_changed(), testing.State())
    assert out.unit_status == testing.BlockedStatus(f"integrate with l2sm-controller: {integrate}")
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action("measure", params={"depth": 1}), testing.State(leader=False))
    assert info.value.message == f"run this on the leader unit: {run}"


def test_action_before_the_kinds_exist(kube):
    # An action that writes an L2S-M object before l2sm-controller installed the CRDs.
    with pytest.raises(testing.ActionFailed, match="l2sm-controller installs the L2S-M kinds"):
        act({"depth": 4})


def test_action_without_trust(kube):
    kube.forbidden = True
    with pytest.raises(testing.ActionFailed, match="deploy with --trust"):
        act({"depth": 1})


def dispatch(size, leader=False):
    """A config-changed with the controller related; the charm object stays readable."""
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    raw = {k: json.dumps(v) for k, v in CONTROLLER_APP_DATA.items()}
    state = testing.State(
        leader=leader,
        config={"size": size},
        relations={testing.Relation("controller", remote_app_data=raw)},
    )
    with ctx(ctx.on.config_changed(), state) as manager:
        out = manager.run()
        return manager.charm, out


@pytest.mark.parametrize(
    ("size", "stopped_by", "status"),
    [
        (3, "", testing.ActiveStatus("3 via 10.152.183.20")),
        # Waiting stops the reconcile; the assessment still says what the inputs show.
        (5, "Waiting", testing.ActiveStatus("5 via 10.152.183.20")),
        (2, "KubeForbidden", testing.BlockedStatus("deploy with --trust (juju trust probe --scope=cluster)")),
        (4, "Blocked", testing.BlockedStatus("four is refused while acting")),
    ],
)
def test_a_reconcile_stops_on_waiting_blocked_and_a_403(kube, size, stopped_by, status):
    kube.forbidden = True
    charm, out = dispatch(size)
    assert charm.stopped_by == stopped_by
    assert out.unit_status == status
    assert charm.refusal == ("four is refused while acting" if size == 4 else None)


def test_the_first_refusal_met_while_acting_stays_the_status(kube):
    charm, out = dispatch(1)
    assert out.unit_status == testing.BlockedStatus("one is refused first")
    assert charm.refusal == "one is refused first"


def test_a_refusal_met_while_acting_wins_over_the_assessment(kube):
    charm, out = dispatch(4, leader=True)
    assert out.unit_status == out.app_status == testing.BlockedStatus("four is refused while acting")
    assert charm.assessed == 0  # nothing to look at: the refusal says it


def test_the_status_is_assessed_once_per_dispatch(kube):
    # On the leader both collect-status events fire: one look serves them both.
    charm, out = dispatch(3, leader=True)
    assert out.unit_status == out.app_status == testing.ActiveStatus("3 via 10.152.183.20")
    assert charm.assessed == 1


class Unassessed(reconcile.ReconcilingCharm):
    pass


def test_a_charm_that_does_not_override_assess_fails_loudly():
    ctx = testing.Context(Unassessed, meta={"name": "bare"})
    with pytest.raises(testing.errors.UncaughtCharmError, match="Unassessed must override assess"):
        ctx.run(ctx.on.update_status(), testing.State())


def test_a_foreign_object_met_while_acting_is_blocked_naming_it():
    status = run(config={"size": 6})
    assert status == testing.BlockedStatus(str(foreign()))
    assert "net-a" in status.message and "owner" in status.message


def test_an_action_meeting_a_foreign_object_fails_naming_it():
    ctx = testing.Context(Probe, meta=META, config=CONFIG, actions=ACTIONS)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("measure", params={"depth": 9}), testing.State(leader=True))
    assert failed.value.message == str(foreign())
