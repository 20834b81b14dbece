"""The controller loses its state on restart; the charm restores it without anyone acting."""

import datetime
import json
import logging

import pytest
import workload
from conftest import APP, controller_container, endpoint, l2network, l2sm_pod, make_state
from ops import pebble, testing

pytestmark = pytest.mark.usefixtures("crds_installed")


def _recovered(ctx, state):
    """What wakes the charm once the controller is back: its check recovering on Juju 3.6+,
    the next update-status on Juju 2.9 (no check events there)."""
    if not ctx.has_check_events:
        return ctx.on.update_status()
    container = next(c for c in state.containers if c.name == "controller")
    info = testing.CheckInfo(workload.CONTROLLER_CHECK, level=pebble.CheckLevel.UNSET)
    return ctx.on.pebble_check_recovered(container, info)


def _state_with_running_controller(oar_dir):
    layers = {"controller": pebble.Layer(workload.controller_layer())}
    container = controller_container(oar_dir, layers=layers)
    check = testing.CheckInfo(workload.CONTROLLER_CHECK, level=pebble.CheckLevel.UNSET, successes=5)
    container = testing.Container(
        "controller", can_connect=True, mounts=container.mounts, layers=layers, check_infos={check}
    )
    state = make_state(oar_dir)
    return testing.State(
        leader=True,
        model=state.model,
        containers={container, next(c for c in state.containers if c.name == "manager")},
    )


def test_restart_restores_networks_and_ports(ctx, kube, controller, oar_dir, caplog):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2network("net-b", namespace="other"))
    kube.add(l2network("net-old", deleting=True))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    kube.add(l2sm_pod("router-0", "node-b", ["net-a", "net-b"], [1, 2]))
    kube.add(l2sm_pod("gone-0", "node-b", ["net-b"], [5], deleting=True))
    kube.add(l2sm_pod("no-node", "", ["net-b"], [6]))
    controller.restart()  # ONOS came back empty
    caplog.set_level(logging.INFO)

    state = _state_with_running_controller(oar_dir)
    out = ctx.run(_recovered(ctx, state), state)

    assert {n: set(p) for n, p in controller.networks.items()} == {
        "net-a": {endpoint("node-a", 3), endpoint("node-b", 1)},
        "net-b": {endpoint("node-b", 2)},
    }
    assert "resync repaired the controller: 2 network(s) recreated" in caplog.text
    stored = next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm")
    assert "2 network(s) recreated with 3 port(s)" in stored.content["last_repair_summary"]
    assert out.unit_status.name == "active"

    # controller-status reports it, and a later resync with nothing to do does not hide it.
    out = ctx.run(ctx.on.update_status(), out)
    ctx.run(ctx.on.action("controller-status"), out)
    assert ctx.action_results["last-resync-summary"].startswith("0 network(s) recreated")
    assert "2 network(s) recreated with 3 port(s)" in ctx.action_results["last-repair-summary"]


def test_released_ports_removed(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    kube.add(l2sm_pod("old-0", "node-a", ["net-a"], [4], phase="Failed"))
    controller.hold("net-a", endpoint("node-a", 3), endpoint("node-a", 4))

    state = _state_with_running_controller(oar_dir)
    out = ctx.run(ctx.on.update_status(), state)
    assert controller.networks == {"net-a": [endpoint("node-a", 3)]}
    stored = next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm")
    assert stored.content["last_repair"] == ""
    assert "1 stale port(s) removed" in stored.content["last_resync_summary"]


def test_no_resync_on_other_events(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    controller.restart()
    ctx.run(ctx.on.config_changed(), _state_with_running_controller(oar_dir))
    assert controller.networks == {}


def test_bad_pod_annotation_is_skipped(ctx, kube, controller, oar_dir, caplog):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    pod = l2sm_pod("odd-0", "node-a", ["net-a"], [3])
    pod["metadata"]["annotations"]["l2sm/networks"] = "[broken"
    kube.add(pod)
    kube.add(l2sm_pod("ok-0", "node-a", ["net-a"], [2]))
    ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert controller.networks == {"net-a": [endpoint("node-a", 2)]}
    assert "odd-0" in caplog.text


def test_networks_of_every_namespace_count(ctx, kube, controller, oar_dir):
    # Networks of every namespace count: names are cluster-wide in L2S-M.
    controller.vnets_installed = True
    kube.add(l2network("net-x", namespace="elsewhere"))
    ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert "net-x" in controller.networks


def test_network_deleted_during_resync_is_not_left_in_the_controller(
    ctx, kube, controller, oar_dir, monkeypatch
):
    import l2sm_controlplane.resync as resync_module

    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2network("net-b"))
    controller.restart()
    real = resync_module.apply_resync

    def racing(client, plan):
        report = real(client, plan)
        kube.objects.pop(("L2Network", "l2sm", "net-b"))  # deleted by its owner meanwhile
        return report

    monkeypatch.setattr(resync_module, "apply_resync", racing)
    state = _state_with_running_controller(oar_dir)
    out = ctx.run(ctx.on.update_status(), state)
    assert set(controller.networks) == {"net-a"}
    stored = next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm")
    assert stored.content["last_repair_summary"].startswith("1 network(s) recreated")


# -- what a pod holds is what it was attached with --------------------------------------------


def _stored_charm(out):
    return next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm").content


def _annotate(kube, pod, networks):
    """`kubectl annotate --overwrite l2sm/networks=...` on a running pod."""
    kube.objects[("Pod", "knfs", pod)]["metadata"]["annotations"]["l2sm/networks"] = networks


def test_an_edited_annotation_moves_no_port(ctx, kube, controller, oar_dir, caplog):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2network("net-b"))
    kube.add(l2sm_pod("router-0", "node-a", ["net-a", "net-b"], [1, 2]))
    attached = {"net-a": [endpoint("node-a", 1)], "net-b": [endpoint("node-a", 2)]}
    controller.hold("net-a", *attached["net-a"])
    controller.hold("net-b", *attached["net-b"])
    out = ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert controller.networks == attached

    # Swapped while it runs: the webhook never sees it, so its interfaces stay as they are.
    _annotate(kube, "router-0", "net-b, net-a")
    caplog.clear()
    caplog.set_level(logging.WARNING)
    out = ctx.run(ctx.on.update_status(), out)
    assert controller.networks == attached
    edited = [r.getMessage() for r in caplog.records if "l2sm/networks changed" in r.getMessage()]
    assert edited == [
        "pod knfs/router-0: l2sm/networks changed while it runs; its ports stay where they were attached"
    ]

    # A controller restart restores each port where it was attached, not where the edit says.
    controller.restart()
    out = ctx.run(ctx.on.update_status(), out)
    assert controller.networks == attached
    assert out.unit_status.name == "active"


def test_an_edited_annotation_still_counts_for_show_and_delete(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(
        l2network(
            "net-a", labels={"l2sm-charms.juju.is/owner-kind": "action", "l2sm-charms.juju.is/owner": APP}
        )
    )
    kube.add(l2network("net-c"))
    kube.add(l2sm_pod("router-0", "node-a", ["net-a"], [1]))
    out = ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    _annotate(kube, "router-0", "net-c")

    ctx.run(ctx.on.action("show-network", params={"name": "net-a"}), out)
    assert ctx.action_results["attached-pods"] == '["knfs/router-0"]'
    ctx.run(ctx.on.action("show-network", params={"name": "net-c"}), out)
    assert ctx.action_results["attached-pods"] == "[]"
    with pytest.raises(testing.ActionFailed, match="1 pod"):
        ctx.run(ctx.on.action("delete-network", params={"name": "net-a"}), out)


def test_what_pods_were_attached_with_is_kept_for_live_pods_only(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    uid = kube.find("Pod", "cache-0", "knfs")["metadata"]["uid"]
    out = ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert json.loads(_stored_charm(out)["attached_ports"]) == {uid: {"net-a": [endpoint("node-a", 3)]}}

    kube.objects.pop(("Pod", "knfs", "cache-0"))
    out = ctx.run(ctx.on.update_status(), out)
    assert json.loads(_stored_charm(out)["attached_ports"]) == {}


def test_a_new_leader_trusts_the_annotations_it_first_sees(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2network("net-b"))
    kube.add(l2sm_pod("router-0", "node-a", ["net-b", "net-a"], [1, 2]))
    # No memory (a new leader, a new charm container): the annotation is all there is.
    ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert controller.networks == {"net-b": [endpoint("node-a", 1)], "net-a": [endpoint("node-a", 2)]}


# -- a pod the operator is attaching right now ------------------------------------------------


def _created(pod, age_seconds):
    stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age_seconds)
    pod["metadata"]["creationTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pod


def test_a_young_pods_ports_are_left_to_the_operator(ctx, kube, controller, oar_dir, monkeypatch, caplog):
    import charm as charm_module

    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(_created(l2sm_pod("old-0", "node-a", ["net-a"], [2]), age_seconds=600))
    kube.add(_created(l2sm_pod("new-0", "node-a", ["net-a"], [3]), age_seconds=1))
    controller.hold("net-a")
    out = ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    # The operator is adding new-0's port itself: posting it too would hold it twice.
    assert controller.networks == {"net-a": [endpoint("node-a", 2)]}

    controller.hold("net-a", endpoint("node-a", 3))  # the operator's post lands
    caplog.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert controller.networks == {"net-a": [endpoint("node-a", 2), endpoint("node-a", 3)]}
    assert "left alone: net-a: " + endpoint("node-a", 3) in _stored_charm(out)["last_resync_summary"]
    assert "resync repaired" not in caplog.text  # routine: no warning

    # Past its grace period the pod is like any other: its port is confirmed, and restored.
    monkeypatch.setattr(charm_module, "POD_GRACE", datetime.timedelta(0))
    out = ctx.run(ctx.on.update_status(), out)
    assert "2 port(s) confirmed" in _stored_charm(out)["last_resync_summary"]
    controller.restart()
    ctx.run(ctx.on.update_status(), out)
    assert {n: set(p) for n, p in controller.networks.items()} == {
        "net-a": {endpoint("node-a", 2), endpoint("node-a", 3)}
    }


def test_a_young_pods_held_port_is_not_taken_as_stale(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2network("net-b"))
    # old-0 left port 3 of net-a; new-0 took it on net-b before the operator removed it from
    # net-a: the young pod's claim alone does not make net-a's copy stale.
    kube.add(_created(l2sm_pod("new-0", "node-a", ["net-b"], [3]), age_seconds=1))
    controller.hold("net-a", endpoint("node-a", 3))
    controller.hold("net-b")
    ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert controller.networks == {"net-a": [endpoint("node-a", 3)], "net-b": []}


def test_a_gone_pod_releases_its_ports_however_young(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(_created(l2sm_pod("new-0", "node-a", ["net-a"], [3], deleting=True), age_seconds=1))
    controller.hold("net-a", endpoint("node-a", 3))
    ctx.run(ctx.on.update_status(), _state_with_running_controller(oar_dir))
    assert controller.networks == {"net-a": []}


@pytest.mark.parametrize("unreadable", ["{broken", "[]"])
def test_unreadable_memory_starts_afresh(ctx, kube, controller, oar_dir, unreadable):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    state = _state_with_running_controller(oar_dir)
    stored = testing.StoredState(owner_path="L2smControllerCharm", content={"attached_ports": unreadable})
    state = testing.State(**{**state.__dict__, "stored_states": {stored}})
    out = ctx.run(ctx.on.update_status(), state)
    assert controller.networks == {"net-a": [endpoint("node-a", 3)]}
    assert json.loads(_stored_charm(out)["attached_ports"]) != {}
