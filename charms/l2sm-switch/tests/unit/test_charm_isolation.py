"""One switch fabric per cluster, found by its labels: another application's Overlay is
refused and never touched, and no unit needs to remember where its own is."""

import dataclasses

import pytest
from conftest import (
    APP,
    CONTROLLER_DATA,
    MODEL,
    NAMESPACE,
    cluster_snapshot,
    controller_relation,
    foreign_overlay,
    knf_pod,
    make_state,
)
from ops import testing

from l2sm_core.manifests import INSTANCE
from l2sm_core.manifests import MODEL as MODEL_LABEL


def _blocked_by_other(out, *fragments):
    assert out.unit_status.name == "blocked", out.unit_status
    assert "one switch fabric per cluster" in out.unit_status.message
    for fragment in fragments:
        assert fragment in out.unit_status.message


@pytest.mark.parametrize(
    ("other", "fragments"),
    [
        # A second switch application in another model, its Overlay beside ours.
        (
            foreign_overlay("fabric-b"),
            ["l2sm/fabric-b", "application 'l2sm-switch-b' in model 'other-model'"],
        ),
        # A second switch application in this very model.
        (
            foreign_overlay("fabric-b", app="l2sm-switch-b", model=MODEL),
            ["l2sm/fabric-b", f"application 'l2sm-switch-b' in model '{MODEL}'"],
        ),
        # The same application name in another model, its controller in another namespace.
        (
            foreign_overlay(APP, namespace="l2sm-b", app=APP, model="lab"),
            [f"l2sm-b/{APP}", f"application '{APP}' in model 'lab'"],
        ),
        # An Overlay made by hand (upstream's example, kubectl).
        (foreign_overlay("my-overlay", labels={}), ["l2sm/my-overlay", "no Juju application"]),
    ],
)
def test_another_fabric_is_refused_and_left_alone(ctx, kube, other, fragments):
    kube.add(other)
    before = cluster_snapshot(kube)
    out = ctx.run(ctx.on.config_changed(), make_state())
    _blocked_by_other(out, *fragments)
    assert cluster_snapshot(kube) == before  # ours not made, theirs not touched


def test_an_overlay_of_the_same_name_in_our_namespace_is_not_taken_over(ctx, kube):
    # overlay-name pointing at another application's Overlay: neither recreated nor deleted.
    kube.add(foreign_overlay("fabric"))
    before = cluster_snapshot(kube)
    out = ctx.run(ctx.on.config_changed(), make_state(config={"overlay-name": "fabric"}))
    _blocked_by_other(out, "l2sm/fabric")
    assert cluster_snapshot(kube) == before


def test_a_fabric_that_appears_later_blocks_without_touching_ours(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(foreign_overlay("fabric-b"))
    before = cluster_snapshot(kube)
    # Even a change that would recreate ours waits until one fabric is left.
    out = ctx.run(ctx.on.config_changed(), make_state(config={"interfaces-per-node": 12}))
    _blocked_by_other(out, "l2sm/fabric-b")
    assert cluster_snapshot(kube) == before
    with pytest.raises(testing.ActionFailed, match="one switch fabric per cluster"):
        ctx.run(ctx.on.action("show-topology"), make_state())


def test_the_second_takes_over_once_the_first_is_gone(ctx, kube):
    kube.add(foreign_overlay("fabric-b"))
    ctx.run(ctx.on.config_changed(), make_state())
    assert kube.find("Overlay", APP, NAMESPACE) is None
    # The other application is being removed: its Overlay waits on the operator's finalizer.
    kube.objects[("Overlay", NAMESPACE, "fabric-b")]["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    out = ctx.run(ctx.on.update_status(), make_state())
    assert out.unit_status == testing.WaitingStatus(
        "waiting for overlay l2sm/fabric-b of application 'l2sm-switch-b' in model 'other-model' "
        "to be deleted: one switch fabric per cluster"
    )
    assert kube.find("Overlay", APP, NAMESPACE) is None
    kube.finish_deletion("Overlay", "fabric-b", NAMESPACE)
    ctx.run(ctx.on.update_status(), make_state())
    assert kube.find("Overlay", APP, NAMESPACE)["metadata"]["labels"][MODEL_LABEL] == MODEL


def test_overlay_labels_name_the_application_and_its_model(ctx, kube):
    # The controller's namespace is not the switch's model: the label must say the model.
    ctx.run(ctx.on.config_changed(), make_state())
    labels = kube.find("Overlay", APP, NAMESPACE)["metadata"]["labels"]
    assert (labels[INSTANCE], labels[MODEL_LABEL]) == (APP, MODEL)


def test_remove_deletes_only_this_applications_overlay(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    # Same application name, another model, same controller namespace (another fabric's
    # leftovers the operator would see): not ours to delete.
    kube.add(foreign_overlay("lab-fabric", app=APP, model="lab"))
    ctx.run(ctx.on.remove(), make_state(relation=False, planned_units=0))
    assert kube.find("Overlay", APP, NAMESPACE) is None
    assert kube.find("Overlay", "lab-fabric", NAMESPACE) is not None


def test_removing_the_refused_application_leaves_the_other_fabric(ctx, kube):
    kube.add(foreign_overlay("fabric-b"))
    ctx.run(ctx.on.config_changed(), make_state())
    before = cluster_snapshot(kube)
    ctx.run(ctx.on.remove(), make_state(relation=False, planned_units=0))
    assert cluster_snapshot(kube) == before


# -- no leader-local memory of where the Overlay is ---------------------------------------


def test_after_a_leader_change_a_namespace_move_removes_the_old_overlay(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())  # unit 0 made the Overlay in "l2sm"
    # Unit 1 becomes leader: a unit with none of unit 0's local state.
    new_leader = make_state()
    out = ctx.run(ctx.on.leader_elected(), new_leader)
    moved = CONTROLLER_DATA | {"namespace": "l2sm-b"}
    ctx.run(ctx.on.config_changed(), dataclasses.replace(out, relations={controller_relation(moved)}))
    assert kube.find("Overlay", APP, NAMESPACE) is None
    assert kube.find("Overlay", APP, "l2sm-b") is not None


def test_a_new_leader_removes_the_overlay_on_remove(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    # The relation is gone before `remove`, and this unit never applied anything.
    ctx.run(ctx.on.remove(), make_state(relation=False, planned_units=0))
    assert kube.find("Overlay", APP, NAMESPACE) is None


def test_the_charm_keeps_no_state_of_its_own(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state())
    # Only the framework's own bookkeeping (owner_path None): nothing a new leader would lack.
    assert [s for s in out.stored_states if s.owner_path] == []


def test_a_move_with_held_ports_still_goes(ctx, kube):
    # Ports held on the old controller's fabric do not pin it: that controller is gone.
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(knf_pod("cache-0", "node-a", [2]))
    moved = CONTROLLER_DATA | {"namespace": "l2sm-b"}
    ctx.run(ctx.on.config_changed(), make_state(data=moved))
    assert kube.find("Overlay", APP, NAMESPACE) is None
    assert kube.find("Overlay", APP, "l2sm-b") is not None
