"""Issue 8: behave as upstream really behaves (port lists, readiness, OpenFlow app,
finalizers) and keep serving through bad input."""

import json
import logging

import pytest
import workload
from conftest import (
    APP,
    NAMESPACE,
    controller_container,
    endpoint,
    l2network,
    l2sm_pod,
    make_state,
    manager_container,
)
from ops import pebble, testing

from l2sm_controlplane.crds import crd_name

FINALIZER = "l2sm.operator.io/finalizer"


def _running_controller(oar_dir, check_successes=5, check_status=pebble.CheckStatus.UP):
    layers = {"controller": pebble.Layer(workload.controller_layer())}
    check = testing.CheckInfo(
        workload.CONTROLLER_CHECK,
        level=pebble.CheckLevel.UNSET,
        successes=check_successes,
        status=check_status,
        failures=0 if check_status == pebble.CheckStatus.UP else 3,
    )
    return testing.Container(
        "controller",
        can_connect=True,
        mounts=controller_container(oar_dir).mounts,
        layers=layers,
        check_infos={check},
    )


def _state(oar_dir, manager=None, **kw):
    return make_state(
        oar_dir, containers={_running_controller(oar_dir), manager or manager_container()}, **kw
    )


def _stored(out):
    return next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm").content


# -- 1. resync: never post a held port again ---------------------------------------------------


@pytest.mark.usefixtures("crds_installed")
def test_update_status_posts_nothing_when_nothing_is_missing(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    controller.hold("net-a", endpoint("node-a", 3))
    out = ctx.run(ctx.on.update_status(), _state(oar_dir))
    out = ctx.run(ctx.on.update_status(), out)
    # Before, every update-status appended another copy upstream.
    assert controller.networks == {"net-a": [endpoint("node-a", 3)]}
    assert [r for r in controller.writes() if "/onos/vnets" in r[1]] == []
    assert "1 port(s) confirmed, 0 added" in _stored(out)["last_resync_summary"]


@pytest.mark.usefixtures("crds_installed")
def test_duplicates_from_earlier_resyncs_are_mended(ctx, kube, controller, oar_dir, caplog):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    kube.add(l2sm_pod("cache-1", "node-b", ["net-a"], [1]))
    ep3, ep1 = endpoint("node-a", 3), endpoint("node-b", 1)
    controller.hold("net-a", ep3, ep1, ep3, ep1, ep3)
    out = ctx.run(ctx.on.update_status(), _state(oar_dir))
    assert sorted(controller.networks["net-a"]) == sorted([ep3, ep1])
    assert sorted(controller.learned("net-a")) == sorted([ep3, ep1])
    assert "1 network(s) rebuilt" in _stored(out)["last_repair_summary"]
    assert "resync repaired the controller" in caplog.text


@pytest.mark.usefixtures("crds_installed")
def test_an_answer_the_charm_cannot_read_changes_nothing(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    controller.hold("net-a")
    controller.garbled["net-a"] = "Network net-a: 1 port\n"
    out = ctx.run(ctx.on.update_status(), _state(oar_dir))
    assert controller.networks == {"net-a": []}
    assert [r for r in controller.writes() if "/onos/vnets" in r[1]] == []
    assert "1 failure(s): read net-a" in _stored(out)["last_resync_summary"]


# -- 2. readiness: the manager gates only the webhook --------------------------------------------


def test_only_the_manager_check_gates_readiness():
    controller = workload.controller_layer()["checks"][workload.CONTROLLER_CHECK]
    manager = workload.manager_layer(NAMESPACE)["checks"][workload.MANAGER_CHECK]
    assert "level" not in controller
    assert manager["level"] == "ready"


@pytest.mark.usefixtures("crds_installed")
def test_manager_restart_says_what_is_down(ctx, kube, controller, oar_dir):
    served = ctx.run(ctx.on.update_status(), _state(oar_dir))  # the manager answered once
    assert served.unit_status.name == "active"
    controller.manager_ready = False
    down = testing.CheckInfo(
        workload.MANAGER_CHECK,
        level=pebble.CheckLevel.READY,
        status=pebble.CheckStatus.DOWN,
        successes=12,
        failures=3,
    )
    manager = testing.Container(
        "manager",
        can_connect=True,
        check_infos={down},
        layers={"manager": pebble.Layer(workload.manager_layer(NAMESPACE))},
        service_statuses={"manager": pebble.ServiceStatus.ACTIVE},
    )
    out = ctx.run(
        ctx.on.update_status(), _state(oar_dir, manager=manager, stored_states=served.stored_states)
    )
    assert out.unit_status == testing.WaitingStatus(
        "manager restarting: new L2S-M pods wait; switches stay connected"
    )
    sdn = kube.find("Service", f"{APP}-sdn", NAMESPACE)
    assert sdn["spec"]["publishNotReadyAddresses"] is True


@pytest.mark.usefixtures("crds_installed")
def test_vnets_hiccup_says_what_is_down(ctx, kube, controller, oar_dir):
    served = ctx.run(ctx.on.update_status(), _state(oar_dir))  # the vnets app answered once
    controller.ready = False
    container = _running_controller(oar_dir, check_successes=40, check_status=pebble.CheckStatus.DOWN)
    state = make_state(
        oar_dir, containers={container, manager_container()}, stored_states=served.stored_states
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.WaitingStatus(
        "vnets app not answering: networks and ports wait; switches stay connected"
    )


# -- 3. ONOS's OpenFlow app ------------------------------------------------------------------------


def test_openflow_app_installed_but_inactive_is_activated(ctx, kube, controller, oar_dir):
    controller.openflow_state = "INSTALLED"
    out = ctx.run(ctx.on.update_status(), make_state(oar_dir))
    assert controller.openflow_state == "ACTIVE"
    assert out.unit_status.name == "active"


def test_openflow_app_missing_blocks(ctx, kube, controller, oar_dir):
    controller.openflow_state = None
    fresh = make_state(oar_dir, containers={controller_container(oar_dir), manager_container(ready=None)})
    out = ctx.run(ctx.on.update_status(), fresh)
    assert out.unit_status == testing.BlockedStatus(
        "ONOS in controller-image has no OpenFlow app (org.onosproject.openflow): switches cannot "
        "connect; attach an l2sm-controller image"
    )
    # Nothing downstream of the controller starts: no manager, no webhook.
    assert not out.get_container("manager").plan.services
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is None


def test_openflow_app_stopped_later_shows_in_status(ctx, kube, controller, oar_dir):
    out = ctx.run(ctx.on.update_status(), make_state(oar_dir))
    assert out.unit_status.name == "active"
    controller.openflow_state = "INSTALLED"
    controller.requests.clear()

    import charm

    # Seen by collect-status alone (the reconcile of the same dispatch would fix it).
    charm_cls = charm.L2smControllerCharm
    monkey = pytest.MonkeyPatch()
    monkey.setattr(charm_cls, "_reconcile", lambda self, event: None)
    try:
        out = ctx.run(ctx.on.update_status(), out)
    finally:
        monkey.undo()
    assert out.unit_status == testing.WaitingStatus("activating ONOS's OpenFlow app (it is INSTALLED)")


# -- 4. finalizers on removal ----------------------------------------------------------------------


def _with_finalizers(obj, *finalizers):
    obj["metadata"]["finalizers"] = list(finalizers)
    return obj


def test_remove_releases_the_operators_finalizer(ctx, kube, controller, oar_dir, caplog):
    state = make_state(oar_dir)
    out = ctx.run(ctx.on.pebble_ready(next(c for c in state.containers if c.name == "controller")), state)
    kube.add(
        _with_finalizers(l2network("net-going", namespace="cdn", deleting=True), FINALIZER, "other/keep")
    )
    kube.add(_with_finalizers(l2network("net-live", namespace="cdn"), FINALIZER))
    kube.add(_with_finalizers(l2sm_pod("cache-0", "node-a", ["net-live"], [3], deleting=True), FINALIZER))
    kube.add(_with_finalizers(l2sm_pod("cache-1", "node-a", ["net-live"], [4]), FINALIZER))
    stranger = _with_finalizers(l2sm_pod("web-0", "node-a", ["net-live"], [5]), FINALIZER)
    stranger["metadata"]["labels"] = {}  # not an L2S-M pod: not ours to touch
    kube.add(stranger)
    caplog.set_level(logging.WARNING)

    out = ctx.run(ctx.on.remove(), out.__class__(**{**out.__dict__, "planned_units": 0}))

    going = kube.find("L2Network", "net-going", "cdn")
    assert going["metadata"]["finalizers"] == ["other/keep"]  # only the operator's goes
    assert kube.find("L2Network", "net-live", "cdn")["metadata"]["finalizers"] == []
    assert kube.find("Pod", "cache-0", "knfs") is None  # its deletion finished once the finalizer went
    assert kube.find("Pod", "cache-1", "knfs")["metadata"]["finalizers"] == []
    assert kube.find("Pod", "web-0", "knfs")["metadata"]["finalizers"] == [FINALIZER]
    # The manager was stopped first: it would have put the finalizers back.
    assert out.get_container("manager").service_statuses["manager"] == pebble.ServiceStatus.INACTIVE
    assert "took the L2S-M operator's finalizer off 4 object(s)" in caplog.text
    assert "L2Network cdn/net-going (being deleted)" in caplog.text
    # Live networks still exist: the CRDs stay.
    assert kube.find("CustomResourceDefinition", crd_name("L2Network")) is not None


def test_remove_finishes_what_only_waited_for_the_finalizer(ctx, kube, controller, oar_dir, caplog):
    state = make_state(oar_dir)
    out = ctx.run(ctx.on.pebble_ready(next(c for c in state.containers if c.name == "controller")), state)
    kube.add(_with_finalizers(l2network("net-going", namespace="cdn", deleting=True), FINALIZER))
    ctx.run(ctx.on.remove(), out.__class__(**{**out.__dict__, "planned_units": 0}))
    # Its deletion completes once the finalizer is off; nothing else holds the CRDs.
    assert kube.find("CustomResourceDefinition", crd_name("L2Network")) is None


# -- 5. bad input keeps the last good state serving -----------------------------------------------


def test_refused_option_keeps_serving_the_last_good_config(ctx, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    published = dict(out.get_relation(relation.id).local_app_data)
    assert json.loads(published["ready"]) is True
    writes = list(kube.writes)

    bad = out.__class__(**{**out.__dict__, "config": {"webhook-renew-days": 0}})
    after = ctx.run(ctx.on.config_changed(), bad)
    assert after.get_relation(relation.id).local_app_data == published
    assert kube.writes == writes
    assert after.unit_status.name == "blocked"
    assert after.unit_status.message.startswith("option 'webhook-renew-days'")
    assert after.unit_status.message.endswith("(the last good config still serves)")
    assert after.get_container("manager").plan == out.get_container("manager").plan


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        # A rule tightened since.
        (
            '{"webhook_certificate_days": 5000, "webhook_renew_days": 30}',
            "option 'webhook-certificate-days': Input should be less than or equal to 3650",
        ),
        # An option dropped since. Stored JSON is read unfiltered (ops hands a config model only
        # the options it names), so this is where the helper's "unknown option" is met.
        (
            '{"webhook_certificate_days": 365, "webhook_renew_days": 30, "webhook_port": 9443}',
            "option 'webhook-port': unknown option",
        ),
    ],
)
def test_a_last_good_config_a_new_revision_refuses_is_no_fallback(
    ctx, kube, controller, oar_dir, caplog, stored, why
):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    # What an older revision stored as good, refused by this one.
    ours = next(s for s in out.stored_states if s.owner_path == "L2smControllerCharm")
    stale = {**ours.content, "last_good_config": stored}
    others = {s for s in out.stored_states if s is not ours}
    tampered = {*others, testing.StoredState(owner_path=ours.owner_path, content=stale)}
    bad = out.__class__(**{**out.__dict__, "config": {"webhook-renew-days": 0}, "stored_states": tampered})
    writes = list(kube.writes)

    after = ctx.run(ctx.on.config_changed(), bad)
    assert after.unit_status.name == "blocked"
    assert after.unit_status.message.startswith("option 'webhook-renew-days'")
    assert "last good" not in after.unit_status.message  # nothing serves from it
    assert kube.writes == writes
    assert f"stored last good config no longer validates, so it cannot serve: {why}" in caplog.text


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("list-networks", {}),
        ("show-network", {"name": "net-a"}),
        ("create-network", {"name": "net-a"}),
        ("delete-network", {"name": "net-a", "force": True}),
    ],
)
def test_actions_before_the_crds_exist_fail_clearly(ctx, kube, controller, oar_dir, action, params):
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action(action, params=params), make_state(oar_dir))
    assert info.value.message.startswith("the L2Network kind is not installed")
    assert f"{APP} installs it when it starts" in info.value.message
    assert kube.writes == []


@pytest.mark.usefixtures("crds_installed")
def test_one_bad_pod_never_stops_show_or_delete(ctx, kube, controller, oar_dir, caplog):
    from l2sm_core.manifests import OWNER, OWNER_KIND

    kube.add(l2network("net-a", labels={OWNER_KIND: "action", OWNER: APP}))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    odd = l2sm_pod("odd-0", "node-a", ["net-a"], [4])
    odd["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = '[{"name": '
    kube.add(odd)
    worse = l2sm_pod("worse-0", "node-b", ["net-a"], [1], namespace="tenant")
    worse["metadata"]["annotations"]["l2sm/networks"] = "NET_A" * 40
    kube.add(worse)
    kube.add(l2sm_pod("cache-1", "node-b", ["net-a"], [2]))

    ctx.run(ctx.on.action("show-network", params={"name": "net-a"}), make_state(oar_dir))
    # odd-0 still asks for net-a (its request is fine, its Multus list is not).
    assert json.loads(ctx.action_results["attached-pods"]) == ["knfs/cache-0", "knfs/cache-1", "knfs/odd-0"]
    assert "skipping pod tenant/worse-0" in caplog.text
    assert "skipping pod knfs/odd-0" in caplog.text
    with pytest.raises(testing.ActionFailed, match="3 pod"):
        ctx.run(ctx.on.action("delete-network", params={"name": "net-a"}), make_state(oar_dir))
    ctx.run(ctx.on.action("list-networks"), make_state(oar_dir))
    assert ctx.action_results["count"] == 1


@pytest.mark.usefixtures("crds_installed")
def test_network_deleted_while_rebuilt_is_not_left_behind(ctx, kube, controller, oar_dir, monkeypatch):
    import l2sm_controlplane.resync as resync_module

    controller.vnets_installed = True
    kube.add(l2network("net-a"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    controller.hold("net-a", endpoint("node-a", 3), endpoint("node-a", 3))
    real = resync_module.apply_resync

    def racing(client, plan):
        report = real(client, plan)
        kube.objects.pop(("L2Network", NAMESPACE, "net-a"))  # deleted by its owner meanwhile
        return report

    monkeypatch.setattr(resync_module, "apply_resync", racing)
    out = ctx.run(ctx.on.update_status(), _state(oar_dir))
    assert controller.networks == {}
    assert _stored(out)["last_repair"] == ""


@pytest.mark.usefixtures("crds_installed")
def test_a_manager_that_never_answered_is_starting_not_restarting(ctx, kube, controller, oar_dir):
    # Down after a fresh plan, whatever Pebble counts: "starting" (Juju 2.9's Pebble counts
    # no successes, so the charm goes by what it saw, and it saw nothing).
    controller.manager_ready = False
    down = testing.CheckInfo(
        workload.MANAGER_CHECK, level=pebble.CheckLevel.READY, status=pebble.CheckStatus.DOWN, failures=3
    )
    manager = testing.Container(
        "manager",
        can_connect=True,
        check_infos={down},
        layers={"manager": pebble.Layer(workload.manager_layer(NAMESPACE))},
        service_statuses={"manager": pebble.ServiceStatus.ACTIVE},
    )
    out = ctx.run(ctx.on.update_status(), _state(oar_dir, manager=manager))
    assert out.unit_status == testing.WaitingStatus("manager starting")
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is None
