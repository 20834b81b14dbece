"""Relation, trust, leadership, removal, the show-topology action and charmcraft.yaml."""

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import (
    APP,
    CONTROLLER_DATA,
    NAMESPACE,
    controller_relation,
    integrate_hint,
    knf_pod,
    make_state,
    replica_set,
)
from ops import testing

from l2sm_core import naming


def test_needs_the_controller(ctx, kube, juju_version):
    out = ctx.run(ctx.on.config_changed(), make_state(relation=False))
    assert out.unit_status == testing.BlockedStatus(integrate_hint(juju_version))
    assert kube.writes == []


def test_takes_a_kubernetes_secret_reference_from_a_juju_29_controller(ctx, kube):
    # Juju 2.9 has no Juju secrets: the controller names its Kubernetes Secret instead (and
    # keeps doing so after an upgrade until it moves them). The switch never reads the
    # credentials: either form serves.
    data = CONTROLLER_DATA | {"credentials-secret": "kubernetes:l2sm/l2sm-controller-secrets"}
    out = ctx.run(ctx.on.config_changed(), make_state(data=data))
    assert kube.find("Overlay", APP, NAMESPACE) is not None
    assert out.unit_status == testing.WaitingStatus("0/3 switches ready; waiting on node-a, node-b, node-c")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({}, testing.WaitingStatus("waiting for the controller to publish its address")),
        (CONTROLLER_DATA | {"ready": False}, testing.WaitingStatus("waiting for the controller to be ready")),
    ],
)
def test_waits_for_the_controller(ctx, kube, data, status):
    out = ctx.run(ctx.on.config_changed(), make_state(data=data))
    assert out.unit_status == status
    assert kube.writes == []


def test_bad_relation_data_names_the_field(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state(data=CONTROLLER_DATA | {"cluster-ip": "nowhere"}))
    assert out.unit_status.name == "blocked"
    assert "controller relation data: field 'cluster-ip'" in out.unit_status.message
    assert kube.writes == []


def test_waits_for_the_crds(ctx, kube):
    del kube.objects[("CustomResourceDefinition", "", "overlays.l2sm.l2sm.k8s.local")]
    out = ctx.run(ctx.on.config_changed(), make_state())
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the L2S-M CRDs (l2sm-controller installs them)"
    )
    assert kube.writes == []


def test_no_usable_node(ctx, kube):
    for key in [k for k in kube.objects if k[0] == "Node"]:
        del kube.objects[key]
    out = ctx.run(ctx.on.config_changed(), make_state())
    assert out.unit_status == testing.WaitingStatus("no schedulable Linux node in the cluster")


def test_forbidden(ctx, kube):
    kube.forbidden = True
    out = ctx.run(ctx.on.config_changed(), make_state())
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")


def test_standby_unit_does_nothing(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state(leader=False))
    assert out.unit_status == testing.ActiveStatus("standby: the leader manages the fabric")
    assert kube.writes == []


@pytest.mark.parametrize("event", ["upgrade_charm", "leader_elected", "update_status", "relation_changed"])
def test_events_of_interest_reconcile(ctx, kube, event):
    state = make_state()
    trigger = (
        ctx.on.relation_changed(next(iter(state.relations)))
        if event == "relation_changed"
        else getattr(ctx.on, event)()
    )
    ctx.run(trigger, state)
    assert kube.find("Overlay", APP, NAMESPACE) is not None


def test_relation_broken_keeps_the_fabric(ctx, kube, juju_version):
    ctx.run(ctx.on.config_changed(), make_state())
    relation = controller_relation()
    out = ctx.run(ctx.on.relation_broken(relation), make_state(relation=False, relations={relation}))
    # With fail_mode=secure the switches keep their flows: nothing is torn down.
    assert kube.find("Overlay", APP, NAMESPACE) is not None
    assert out.unit_status == testing.BlockedStatus(integrate_hint(juju_version))


def test_remove_deletes_the_overlay_after_the_relation_is_gone(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state())
    # Juju breaks the relation before `remove`: the charm remembers where its Overlay is.
    state = testing.State(
        leader=True, model=out.model, relations=set(), stored_states=out.stored_states, planned_units=0
    )
    ctx.run(ctx.on.remove(), state)
    assert kube.find("Overlay", APP, NAMESPACE) is None


def test_moving_to_another_controller_namespace_removes_the_old_overlay(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state())
    moved = CONTROLLER_DATA | {"namespace": "l2sm-b"}
    state = testing.State(
        leader=True, model=out.model, relations={controller_relation(moved)}, stored_states=out.stored_states
    )
    ctx.run(ctx.on.config_changed(), state)
    assert kube.find("Overlay", APP, NAMESPACE) is None
    assert kube.find("Overlay", APP, "l2sm-b") is not None


def test_scale_down_keeps_the_overlay(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    ctx.run(ctx.on.remove(), make_state(planned_units=1))
    assert kube.find("Overlay", APP, NAMESPACE) is not None


def test_remove_without_trust(ctx, kube, caplog):
    out = ctx.run(ctx.on.config_changed(), make_state())
    kube.forbidden = True
    ctx.run(ctx.on.remove(), testing.State(model=out.model, stored_states=out.stored_states, planned_units=0))
    assert "delete it by hand" in caplog.text


def test_show_topology(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state(config={"topology": "node-a:node-b,node-b:node-c"}))
    uid = kube.find("Overlay", APP, NAMESPACE)["metadata"]["uid"]
    kube.add(replica_set(APP, "node-a", owner_uid=uid))
    kube.add(knf_pod("cache-0", "node-a", [1, 3]))
    ctx.run(ctx.on.action("show-topology", params={"application-name": APP}), out)
    results = ctx.action_results
    assert results["overlay"] == APP and results["namespace"] == NAMESPACE
    assert json.loads(results["links"]) == [["node-a", "node-b"], ["node-b", "node-c"]]
    first = json.loads(results["nodes"])[0]
    assert first == {
        "name": "node-a",
        "switch": first["switch"],
        "bridge": naming.bridge_name_for("node-a"),
        "datapath-id": naming.datapath_id("node-a"),
        "device-id": naming.device_id("node-a"),
        "ready": True,
        "ports-in-use": [1, 3],
    }
    assert results["last-change"].startswith(f"overlay {APP}: 3 node(s), 2 link(s)")


def test_show_topology_refusals(ctx, kube):
    with pytest.raises(testing.ActionFailed, match="not configured yet: integrate with l2sm-controller"):
        ctx.run(ctx.on.action("show-topology"), make_state(relation=False))
    kube.forbidden = True
    with pytest.raises(testing.ActionFailed, match="deploy with --trust"):
        ctx.run(ctx.on.action("show-topology"), make_state())


def test_metadata_promises():
    meta = yaml.safe_load((Path(__file__).resolve().parents[2] / "charmcraft.yaml").read_text())
    assert meta["requires"]["controller"]["interface"] == "l2sm_controller"
    for spec in meta["actions"].values():
        assert "application-name" in spec["params"] and spec["additionalProperties"] is False
    assert meta["config"]["options"]["switch-image"]["default"] == "alexdecb/talpa:1.3.8"
    # Only what Juju 2.9 (OSM's controller) reads too: its option types, its action names.
    assert {o["type"] for o in meta["config"]["options"].values()} <= {"string", "int", "float", "boolean"}
    assert all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", name) for name in meta["actions"])
