"""Config, name ownership, controller, trust, leadership, removal, the show action."""

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import (
    APP,
    CONTROLLER_DATA,
    MODEL,
    controller_relation,
    integrate_hint,
    make_state,
    members,
    run_hint,
)
from ops import testing

from l2sm_core.manifests import OWNER, OWNER_KIND

CIDR = {"cidr": "10.0.1.0/24"}


def _l2network(name, namespace, labels):
    return {
        "apiVersion": "l2sm.l2sm.k8s.local/v1",
        "kind": "L2Network",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"type": "vnet"},
        "status": {"internalConnectivity": "Available", "connectedPodCount": 2},
    }


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"cidr": "10.0.1.7/24"}, "option 'cidr': '10.0.1.7/24' has host bits set"),
        ({"cidr": "fd00::/64"}, "option 'cidr'"),
        ({"mtu": 1500}, "option 'mtu'"),
        ({"mtu": 500}, "option 'mtu'"),
        ({"reserved": "10.0.1.1"}, "option 'reserved' needs option 'cidr'"),
        (CIDR | {"reserved": "10.0.9.1"}, "option 'reserved': 10.0.9.1 not in 10.0.1.0/24"),
        (CIDR | {"reserved": "ten"}, "option 'reserved': 'ten' is not an IPv4 address"),
        ({"type": "vlink"}, "'vlink' networks are not supported yet: use vnet"),
        ({"type": "bridge"}, "not an L2S-M network type"),
        ({"network-name": "Net_A"}, "option 'network-name'"),
    ],
)
def test_bad_config_blocks_and_changes_nothing(ctx, kube, config, fragment):
    cache = members("cdn-cache", {0: ("", [])})
    out = ctx.run(ctx.on.config_changed(), make_state([cache], config=config))
    assert out.unit_status.name == "blocked"
    assert fragment in out.unit_status.message
    assert kube.writes == []
    assert out.get_relation(cache.id).local_app_data == {}


def test_name_taken_by_another_owner(ctx, kube):
    kube.add(_l2network(APP, "other", {OWNER_KIND: "action", OWNER: "l2sm-controller"}))
    out = ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    assert out.unit_status == testing.BlockedStatus(
        f"network name {APP!r} is taken: L2Network 'other/{APP}' is not ours "
        "(it lacks label l2sm-charms.juju.is/owner-kind=application; "
        "owner: create-network action of 'l2sm-controller'), so it is left untouched: "
        "L2S-M names are cluster-wide: set option 'network-name' to another name"
    )
    assert kube.writes == []
    kube.add(_l2network("helm-net", "helm", {}))
    out = ctx.run(ctx.on.config_changed(), make_state(config=CIDR | {"network-name": "helm-net"}))
    assert "owner: none in Juju, made with helm or kubectl?" in out.unit_status.message


def test_rename_moves_the_network(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR | {"network-name": "net-b"}))
    assert kube.find("L2Network", APP, MODEL) is None
    assert kube.find("L2Network", "net-b", MODEL)["metadata"]["labels"][OWNER] == APP


def test_needs_the_controller(ctx, kube, juju_version):
    # Only an operator can add the relation: Blocked, naming the command (OSM waits on
    # Waiting units until its timeout; a Blocked one it reports).
    out = ctx.run(ctx.on.config_changed(), make_state(controller=False))
    assert out.unit_status == testing.BlockedStatus(integrate_hint(juju_version))
    state = testing.State(
        leader=True,
        model=testing.Model(name=MODEL),
        relations={controller_relation(CONTROLLER_DATA | {"ready": False})},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for the controller to be ready")
    state = testing.State(
        leader=True,
        model=testing.Model(name=MODEL),
        relations={controller_relation(CONTROLLER_DATA | {"rest-url": "x"})},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert "controller relation data: field 'rest-url'" in out.unit_status.message
    assert kube.writes == []


def test_takes_a_kubernetes_secret_reference_from_a_juju_29_controller(ctx, kube):
    # Juju 2.9 has no Juju secrets: the controller names its Kubernetes Secret instead (and
    # keeps doing so after an upgrade until it moves them). The network never reads the
    # credentials: either form serves.
    data = CONTROLLER_DATA | {"credentials-secret": "kubernetes:l2sm/l2sm-controller-secrets"}
    state = testing.State(
        leader=True, model=testing.Model(name=MODEL), config=CIDR, relations={controller_relation(data)}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.ActiveStatus(f"{APP} 10.0.1.0/24: 0 members")
    assert kube.find("L2Network", APP, MODEL) is not None


def test_waits_for_the_crds(ctx, kube):
    del kube.objects[("CustomResourceDefinition", "", "l2networks.l2sm.l2sm.k8s.local")]
    out = ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the L2S-M CRDs (l2sm-controller installs them)"
    )


def test_forbidden(ctx, kube):
    kube.forbidden = True
    out = ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")


def test_standby_unit(ctx, kube):
    cache = members("cdn-cache", {0: ("", [])})
    out = ctx.run(ctx.on.config_changed(), make_state([cache], leader=False, config=CIDR))
    assert out.unit_status == testing.ActiveStatus("standby: the leader manages the network")
    assert out.get_relation(cache.id).local_app_data == {}
    assert kube.writes == []


def test_remove_deletes_only_its_own(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    kube.add(_l2network("other-net", MODEL, {OWNER_KIND: "application", OWNER: "other-app"}))
    ctx.run(ctx.on.remove(), testing.State(leader=True, model=testing.Model(name=MODEL), planned_units=0))
    assert kube.find("L2Network", APP, MODEL) is None
    assert kube.find("L2Network", "other-net", MODEL) is not None


def test_scale_down_keeps_the_network(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    ctx.run(ctx.on.remove(), testing.State(leader=False, model=testing.Model(name=MODEL), planned_units=1))
    assert kube.find("L2Network", APP, MODEL) is not None


def test_remove_without_trust(ctx, kube, caplog):
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    kube.forbidden = True
    ctx.run(ctx.on.remove(), testing.State(leader=True, model=testing.Model(name=MODEL), planned_units=0))
    assert "delete it by hand" in caplog.text


def test_show(ctx, kube):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    backup = members("backup", {0: ("", ["10.0.2.0/24"])})
    clash = members("alpha", {0: ("10.0.1.1/24", [])})
    state = make_state([router, backup, clash], config=CIDR)
    out = ctx.run(ctx.on.config_changed(), state)
    ctx.run(ctx.on.action("show", params={"application-name": APP}), out)
    results = ctx.action_results
    assert results["network"] == APP and results["cidr"] == "10.0.1.0/24"
    assert json.loads(results["members"]) == {
        "alpha/0": {"address": "10.0.1.1/24", "refused": ""},  # alpha sorts before cdn-router
        "backup/0": {"address": "10.0.1.2/24", "refused": ""},
        "cdn-router/0": {"address": "", "refused": "10.0.1.1 is held by alpha/0"},
    }
    # The router has no address, so backup/0 carries 10.0.2.0/24; the router's offer is reported.
    assert json.loads(results["routes"]) == [{"prefix": "10.0.2.0/24", "via": "10.0.1.2"}]
    assert json.loads(results["shadowed-routes"]) == {"10.0.2.0/24": ["cdn-router/0"]}
    assert results["l2network"] == "{}"


def test_show_refusals(ctx, kube):
    with pytest.raises(testing.ActionFailed, match="option 'mtu'"):
        ctx.run(ctx.on.action("show"), make_state(config={"mtu": 99999}))
    kube.forbidden = True
    with pytest.raises(testing.ActionFailed, match="deploy with --trust"):
        ctx.run(ctx.on.action("show"), make_state(config=CIDR))


def test_metadata_promises():
    meta = yaml.safe_load((Path(__file__).resolve().parents[2] / "charmcraft.yaml").read_text())
    assert meta["provides"]["network"]["interface"] == "l2sm_network"
    assert meta["requires"]["controller"]["interface"] == "l2sm_controller"
    for spec in meta["actions"].values():
        assert "application-name" in spec["params"] and spec["additionalProperties"] is False
    # Only what Juju 2.9 (OSM's controller) reads too: its option types, its action names.
    assert {o["type"] for o in meta["config"]["options"].values()} <= {"string", "int", "float", "boolean"}
    assert all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", name) for name in meta["actions"])


def test_show_only_on_the_leader(ctx, kube, juju_version):
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action("show"), make_state(leader=False, config=CIDR))
    assert info.value.message == f"run this on the leader unit: {run_hint(juju_version, 'show')}"


def test_foreign_copy_anywhere_blocks_even_if_ours_exists(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config=CIDR))
    kube.add(_l2network(APP, "zz-later", {}))  # sorts after our namespace
    out = ctx.run(ctx.on.update_status(), make_state(config=CIDR))
    assert out.unit_status.name == "blocked"
    assert f"L2Network 'zz-later/{APP}' is not ours" in out.unit_status.message
