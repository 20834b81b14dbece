"""The KNF library through a small KNF charm kept in the tests (tests/knf_charm)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import kubernetes_validate
import ops
import pytest
from ops import testing

from l2sm_core.knf import InterfacePlan
from l2sm_core.manifests.knf import merge_into, pod_template_patch
from l2sm_knf import l2sm_network as library
from l2sm_knf.l2sm_network import INTERFACE, NetworkRequirerUnitData
from l2sm_testing.fake_kube import FakeKube

_spec = importlib.util.spec_from_file_location(
    "test_knf_charm", Path(__file__).parent / "knf_charm/src/charm.py"
)
assert _spec and _spec.loader
knf_charm = importlib.util.module_from_spec(_spec)
sys.modules["test_knf_charm"] = knf_charm  # ops.testing finds charmcraft.yaml from the module's file
_spec.loader.exec_module(knf_charm)

APP = "test-knf"
MODEL = "cdn"


def juju_statefulset():
    """Shaped like the StatefulSet Juju makes for a sidecar charm."""
    labels = {"app.kubernetes.io/name": APP}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": APP, "namespace": MODEL, "labels": labels},
        "spec": {
            "replicas": 1,
            "serviceName": f"{APP}-endpoints",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {"juju.is/version": "3.6.1"}},
                "spec": {
                    "serviceAccountName": APP,
                    "containers": [
                        {"name": "charm", "image": "jujusolutions/charm-base:ubuntu-24.04"},
                        {"name": "workload", "image": "nginx:1.27"},
                    ],
                },
            },
        },
    }


def pod(unit=0, networks=(), interfaces=(), error=None):
    notes = {}
    if networks:
        notes["l2sm/networks"] = json.dumps([{"name": n} for n in networks])
        notes["k8s.v1.cni.cncf.io/networks"] = json.dumps(
            [{"name": f"fabric-veth{i + 3}", "namespace": "l2sm"} for i in range(len(networks))]
        )
        notes["k8s.v1.cni.cncf.io/network-status"] = json.dumps(
            [{"name": "k8s-pod-network", "interface": "eth0"}]
            + [
                {"name": f"l2sm/fabric-veth{i + 3}", "interface": ifname}
                for i, ifname in enumerate(interfaces)
            ]
        )
    if error:
        notes["l2sm/error"] = error
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{APP}-{unit}", "namespace": MODEL, "annotations": notes},
        "spec": {"containers": [{"name": "charm", "image": "x"}]},
    }


@pytest.fixture
def kube(monkeypatch):
    fake = FakeKube(default_namespace=MODEL)
    fake.add(juju_statefulset())
    fake.add(pod())
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
    return fake


@pytest.fixture
def applied(monkeypatch):
    """The netlink boundary: plans recorded here; tests/test_netlink.py applies them for real."""
    plans: list[list[InterfacePlan]] = []

    def record(batch):
        plans.append(list(batch))
        return [f"applied {p.ifname}" for p in batch]

    monkeypatch.setattr(library, "_default_applier", record)
    return plans


# OSM's controller (the oldest Juju the library must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")
JUJU_VERSION = JUJU_VERSIONS[-1]  # what ctx() builds for; each test here runs under both


@pytest.fixture(autouse=True, params=JUJU_VERSIONS)
def juju_version(request, monkeypatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "JUJU_VERSION", request.param)
    return request.param


def ctx(unit_id=0, juju_version: str | None = None):
    return testing.Context(knf_charm.TestKnfCharm, unit_id=unit_id, juju_version=juju_version or JUJU_VERSION)


def network(name, cidr, assignments=None, rejections=None, routes=None, relation_id=None):
    data = {
        "network": {"name": name, "cidr": cidr, "mtu": 1400, "type": "vnet"},
        "assignments": assignments or {},
        "rejections": rejections or {},
        "routes": routes or [],
    }
    kwargs = {"id": relation_id} if relation_id else {}
    return testing.Relation(
        "networks",
        remote_app_name=name,
        remote_app_data={k: json.dumps(v) for k, v in data.items()},
        **kwargs,
    )


def state(relations, leader=True, config=None):
    return testing.State(
        leader=leader, model=testing.Model(name=MODEL), relations=set(relations), config=config or {}
    )


def published(out, relation, unit_id=0) -> NetworkRequirerUnitData:
    raw = out.get_relation(relation.id).local_unit_data
    return NetworkRequirerUnitData.model_validate(
        {
            k: json.loads(v)
            for k, v in raw.items()
            if k != "egress-subnets" and k != "ingress-address" and k != "private-address"
        }
    )


NET_A = dict(name="net-a", cidr="10.0.1.0/24")
NET_B = dict(name="net-b", cidr="10.0.2.0/24")


def test_two_networks_static_and_pool_then_configured(kube, applied):
    a = network(
        **NET_A,
        assignments={"test-knf/0": "10.0.1.10/24"},
        routes=[{"prefix": "10.0.9.0/24", "via": "10.0.1.1"}],
    )
    b = network(**NET_B, assignments={"test-knf/0": "10.0.2.1/24"})
    c = ctx()
    out = c.run(c.on.config_changed(), state([a, b], config={"addresses": "net-a=10.0.1.10/24"}))

    assert published(out, a).address == "10.0.1.10/24"
    assert published(out, b).address == ""  # from the pool
    assert published(out, b).address_from == ""
    assert published(out, a).offered_prefixes == []  # not a router: never a next hop

    sts = kube.find("StatefulSet", APP, MODEL)
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"]["l2sm"] == "true"
    assert json.loads(template["metadata"]["annotations"]["l2sm/networks"]) == [
        {"name": "net-a"},
        {"name": "net-b"},
    ]
    charm_container = next(x for x in template["spec"]["containers"] if x["name"] == "charm")
    assert charm_container["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    # The pod restarts to get its interfaces: the status says so.
    assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")

    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    out = c.run(c.on.update_status(), out)
    assert applied[-1] == [
        InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"),)),
        InterfacePlan("net2", 1400, ("10.0.2.1/24",), ()),
    ]
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1; net-b 10.0.2.1/24 on net2")
    kinds = [type(e).__name__ for e in c.emitted_events]
    assert kinds.count("NetworkReadyEvent") == 2
    # The charm reads its own addresses through `memberships`.
    assert out.workload_version == "net-a=10.0.1.10/24 net-b=10.0.2.1/24"


def test_template_patch_validates_merged_into_a_juju_statefulset():
    merged = merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-b", "net-a"], ("charm",)))
    kubernetes_validate.validate(merged, "1.31", strict=True)
    assert json.loads(merged["spec"]["template"]["metadata"]["annotations"]["l2sm/networks"])[0] == {
        "name": "net-a"
    }


def test_unit_n_asks_from_the_given_address_and_for_the_nth_next_from_an_older_network(kube, applied):
    a = network(**NET_A)
    c = ctx(unit_id=3)
    kube.add(pod(unit=3))
    out = c.run(c.on.config_changed(), state([a], leader=False, config={"addresses": "net-a=10.0.1.10/24"}))
    # The first free address from .10 (a unit back after a scale to 0 gets .10 again)...
    assert published(out, a).address_from == "10.0.1.10/24"
    # ...and, for a network that does not know address-from, the 3rd after it, as before.
    assert published(out, a).address == "10.0.1.13/24"
    assert kube.writes == []  # only the leader patches the shared template


def test_router_offers_its_other_networks(kube, applied):
    a, b = network(**NET_A), network(**NET_B)
    c = ctx()
    out = c.run(c.on.config_changed(), state([a, b], config={"forwards": True}))
    assert published(out, a).offered_prefixes == ["10.0.2.0/24"]
    assert published(out, b).offered_prefixes == ["10.0.1.0/24"]


def _sysctls(kube) -> list:
    spec = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["spec"]
    return (spec.get("securityContext") or {}).get("sysctls") or []


def test_a_router_pod_gets_ip_forwarding_and_loses_it_when_it_stops_forwarding(kube, applied):
    a, b = network(**NET_A), network(**NET_B)
    c = ctx()
    out = c.run(c.on.config_changed(), state([a, b], config={"forwards": True}))
    assert _sysctls(kube) == [{"name": "net.ipv4.ip_forward", "value": "1"}]
    merged = kube.find("StatefulSet", APP, MODEL)
    kubernetes_validate.validate(merged, "1.31", strict=True)
    kube.writes.clear()
    out = c.run(c.on.update_status(), out)
    assert kube.writes == []  # satisfied: not applied again
    out = c.run(c.on.config_changed(), dataclasses.replace(out, config={"forwards": False}))
    assert _sysctls(kube) == []  # left out of the apply: removed


def test_a_forwards_flag_that_is_no_boolean_leaves_the_template_alone(kube, applied):
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.writes.clear()
    c = ctx()
    with c(c.on.config_changed(), state([network(**NET_A)])) as mgr:
        mgr.charm.networks._forwards = "maybe"  # what a charm passing its raw option might
        out = mgr.run()
    assert kube.writes == []
    assert out.unit_status == testing.BlockedStatus(
        "option 'forwards': 'maybe' is not a boolean: use true or false"
    )


@pytest.mark.parametrize(
    ("asked", "sysctls"), [(False, []), (True, [{"name": "net.ipv4.ip_forward", "value": "1"}])]
)
def test_a_router_may_make_the_sysctl_an_option(kube, applied, asked, sysctls):
    # A kubelet that forbids the sysctl refuses the pod: the router asks only when told to.
    c = ctx()
    with c(
        c.on.config_changed(), state([network(**NET_A), network(**NET_B)], config={"forwards": True})
    ) as mgr:
        mgr.charm.networks._ip_forward_sysctl = lambda: asked
        mgr.run()
    assert _sysctls(kube) == sysctls


def test_a_sysctl_option_that_is_no_boolean_is_named_and_leaves_the_template_alone(kube, applied):
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.writes.clear()
    c = ctx()
    with c(c.on.config_changed(), state([network(**NET_A)], config={"forwards": True})) as mgr:
        mgr.charm.networks._ip_forward_sysctl = lambda: "yes"
        out = mgr.run()
    assert kube.writes == []
    assert out.unit_status == testing.BlockedStatus(
        "option 'ip-forward-sysctl': 'yes' is not a boolean: use true or false"
    )


@pytest.mark.parametrize(("content", "enabled"), [("1\n", True), ("0\n", False), (None, False), ("x", False)])
def test_forwarding_enabled_reads_the_pods_ip_forward(tmp_path, monkeypatch, kube, applied, content, enabled):
    path = tmp_path / "ip_forward"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(library, "IP_FORWARD_PATH", str(path))
    c = ctx()
    with c(c.on.update_status(), state([])) as mgr:
        assert mgr.charm.networks.forwarding_enabled() is enabled
    # A path of the charm's own choosing.
    monkeypatch.setattr(library, "IP_FORWARD_PATH", str(tmp_path / "not-read"))
    _OwnPathCharm.path = path
    own = testing.Context(
        _OwnPathCharm, meta={"name": "fwd", "requires": {"networks": {"interface": INTERFACE}}}
    )
    with own(own.on.update_status(), testing.State()) as mgr:
        assert mgr.charm.networks.forwarding_enabled() is enabled


class _OwnPathCharm(ops.CharmBase):
    path: Path = Path("/nonexistent")

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.networks = library.L2smNetworks(self, "networks", ip_forward_path=self.path)


def test_rejection_blocks_with_the_reason(kube, applied):
    a = network(**NET_A, rejections={"test-knf/0": "10.0.1.10 is held by cdn-cache/0"})
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([a], config={"addresses": "net-a=10.0.1.10/24"}))
    assert out.unit_status == testing.BlockedStatus("net-a: refused: 10.0.1.10 is held by cdn-cache/0")
    assert applied[-1] == [InterfacePlan("net1", 1400, (), ())]  # nothing of ours on it


def test_l2sm_error_annotation_blocks(kube, applied):
    kube.add(pod(networks=["net-a"], error="No interfaces available for node node-a"))
    c = ctx()
    out = c.run(c.on.update_status(), state([network(**NET_A)]))
    assert out.unit_status == testing.BlockedStatus(
        "L2S-M could not attach this pod: No interfaces available for node node-a"
    )


@pytest.mark.parametrize(
    ("addresses", "unit_id", "message"),
    [
        ("net-a", 0, "option 'addresses': 'net-a' is not network=address/prefix (e.g. net-a=10.0.1.1/24)"),
        (
            "net-a=10.0.1.10",
            0,
            "option 'addresses': 'net-a=10.0.1.10': give the prefix length, e.g. net-a=10.0.1.10/24",
        ),
        (
            "net-b=10.0.2.1/24,net-a=10.0.5.10/24",
            2,
            "option 'addresses': 10.0.5.10/24 is outside net-a's cidr 10.0.1.0/24",
        ),
    ],
)
def test_malformed_addresses_block_and_change_nothing(kube, applied, addresses, unit_id, message):
    a = network(**NET_A, assignments={f"test-knf/{unit_id}": f"10.0.1.{10 + unit_id}/24"})
    b = network(**NET_B, assignments={f"test-knf/{unit_id}": "10.0.2.7/24"})
    c = ctx(unit_id=unit_id)
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a", "net-b"], ("charm",))))
    kube.add(pod(unit=unit_id, networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    good = c.run(c.on.config_changed(), state([a, b], config={"addresses": "net-a=10.0.1.10/24"}))
    assert good.unit_status.name == "active"
    kube.writes.clear()
    c.emitted_events.clear()
    plans = list(applied[-1])
    out = c.run(c.on.config_changed(), dataclasses.replace(good, config={"addresses": addresses}))
    assert out.unit_status == testing.BlockedStatus(message)
    # The unit keeps asking for what it asked before, on every network (net-b's was fine too).
    for rel in (a, b):
        assert out.get_relation(rel.id).local_unit_data == good.get_relation(rel.id).local_unit_data
    assert kube.writes == []
    assert applied[-1] == plans  # the same plan again: nothing moved on the interfaces
    assert not [e for e in c.emitted_events if isinstance(e, library.NetworkEvent)]


def test_a_refused_option_still_lets_a_removed_network_go(kube, applied):
    a = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"})
    b = network(**NET_B, assignments={"test-knf/0": "10.0.2.7/24"})
    c = ctx()
    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    good = c.run(c.on.config_changed(), state([a, b], config={"addresses": "net-a=10.0.1.10/24"}))
    bad = c.run(c.on.config_changed(), dataclasses.replace(good, config={"addresses": "junk"}))
    out = c.run(c.on.relation_broken(bad.get_relation(b.id)), bad)
    # Still Blocked on the option, but net-b is detached: a refused option must not pin it.
    assert out.unit_status.name == "blocked" and "option 'addresses'" in out.unit_status.message
    annotation = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotation["l2sm/networks"]) == [{"name": "net-a"}]
    assert applied[-1] == [InterfacePlan("net1", 1400, ("10.0.1.10/24",), ()), InterfacePlan("net2")]
    assert [e.network for e in c.emitted_events if isinstance(e, library.NetworkLostEvent)] == ["net-b"]


def test_detach_on_relation_broken(kube, applied):
    a, b = (
        network(**NET_A, assignments={"test-knf/0": "10.0.1.2/24"}),
        network(**NET_B, assignments={"test-knf/0": "10.0.2.2/24"}),
    )
    c = ctx()
    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    first = c.run(c.on.config_changed(), state([a, b]))
    kube.writes.clear()
    out = c.run(c.on.relation_broken(first.get_relation(b.id)), first)
    annotation = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["metadata"]["annotations"][
        "l2sm/networks"
    ]
    assert json.loads(annotation) == [{"name": "net-a"}]
    # Until the pod restarts, net-b's interface is still there: it is emptied; net-a keeps its own.
    assert applied[-1] == [InterfacePlan("net1", 1400, ("10.0.1.2/24",), ()), InterfacePlan("net2")]
    assert "NetworkLostEvent" in [type(e).__name__ for e in c.emitted_events]
    assert out.unit_status.name == "maintenance"


def test_last_network_gone_removes_label_and_annotation(kube, applied):
    a = network(**NET_A)
    c = ctx()
    first = c.run(c.on.config_changed(), state([a]))
    c.run(c.on.relation_broken(first.get_relation(a.id)), first)
    meta = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["metadata"]
    assert "l2sm" not in meta.get("labels", {}) and "l2sm/networks" not in meta.get("annotations", {})


def test_patched_again_after_upgrade_rewrites_the_template(kube, applied):
    a = network(**NET_A)
    c = ctx()
    out = c.run(c.on.config_changed(), state([a]))
    kube.objects[("StatefulSet", MODEL, APP)] = juju_statefulset() | {
        "metadata": juju_statefulset()["metadata"]
    }
    kube.writes.clear()
    c.run(c.on.upgrade_charm(), out)
    assert kube.writes == [("apply", "StatefulSet", MODEL, APP)]
    assert kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["metadata"]["labels"]["l2sm"] == "true"


def test_unchanged_template_is_not_applied_again(kube, applied):
    a = network(**NET_A)
    c = ctx()
    out = c.run(c.on.config_changed(), state([a]))
    kube.writes.clear()
    c.run(c.on.update_status(), out)
    assert kube.writes == []


def test_network_not_answering_yet_is_not_annotated(kube, applied):
    silent = testing.Relation("networks", remote_app_name="net-c")
    c = ctx()
    out = c.run(c.on.relation_joined(silent), state([silent]))
    assert kube.writes == []  # the webhook would not wait for a missing network
    assert out.unit_status == testing.WaitingStatus("waiting for the networks to answer")


def test_changed_event_when_the_address_moves(kube, applied):
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([network(**NET_A, assignments={"test-knf/0": "10.0.1.2/24"})]))
    moved = network(**NET_A, assignments={"test-knf/0": "10.0.1.3/24"})
    out2 = c.run(
        c.on.update_status(),
        testing.State(leader=True, model=out.model, relations={moved}, stored_states=out.stored_states),
    )
    assert "NetworkChangedEvent" in [type(e).__name__ for e in c.emitted_events]
    assert out2.unit_status == testing.ActiveStatus("net-a 10.0.1.3/24 on net1")


def test_without_trust(kube, applied):
    kube.forbidden = True
    c = ctx()
    out = c.run(c.on.config_changed(), state([network(**NET_A)]))
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")


def test_interfaces_not_there_yet(kube, applied, monkeypatch):
    from l2sm_core.netlink import InterfaceMissing

    def missing(plans):
        raise InterfaceMissing("net1")

    monkeypatch.setattr(library, "_default_applier", missing)
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([network(**NET_A, assignments={"test-knf/0": "10.0.1.2/24"})]))
    assert out.unit_status == testing.WaitingStatus("configuring interfaces: net1")


def test_recreated_pod_gets_the_same_addresses_back(kube, applied):
    # Kubernetes recreates the pod: same unit, empty interfaces; the address lives in the
    # network's databag, so the start hook configures the same one again.
    a = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"})
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([a], config={"addresses": "net-a=10.0.1.10/24"}))
    applied.clear()
    c.run(c.on.start(), out)
    assert applied == [[InterfacePlan("net1", 1400, ("10.0.1.10/24",), ())]]


def test_a_new_pod_without_the_stored_state_configures_the_same_addresses(kube, applied):
    # The library's stored state lives in the charm container (ops' local storage, on Juju 2.9
    # as on 3.x), so the pod restart its own template patch causes loses it. The addresses
    # live in the network's databag: the new pod gets the same ones, and `ready` again.
    a = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"})
    c = ctx()
    first = c.run(c.on.config_changed(), state([a], config={"addresses": "net-a=10.0.1.10/24"}))
    assert first.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    applied.clear()
    c.emitted_events.clear()
    out = c.run(c.on.start(), dataclasses.replace(first, stored_states=frozenset()))
    assert applied == [[InterfacePlan("net1", 1400, ("10.0.1.10/24",), ())]]
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")
    assert [e.network for e in c.emitted_events if isinstance(e, library.NetworkReadyEvent)] == ["net-a"]
    assert out.get_relation(a.id).local_unit_data == first.get_relation(a.id).local_unit_data


def test_pure_l2_network_is_ready_too(kube, applied):
    l2 = network(name="net-l2", cidr="")
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-l2"], ("charm",))))
    kube.add(pod(networks=["net-l2"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([l2]))
    assert out.unit_status == testing.ActiveStatus("net-l2 (L2 only) on net1")
    assert [e.network for e in c.emitted_events if isinstance(e, library.NetworkReadyEvent)] == ["net-l2"]


def test_cidr_network_without_an_address_yet_is_waiting(kube, applied):
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([network(**NET_A)]))
    assert out.unit_status == testing.WaitingStatus("net-a waiting for an address")
    assert not [e for e in c.emitted_events if type(e).__name__ == "NetworkReadyEvent"]


def test_status_in_a_dispatch_that_did_not_reconcile_is_the_last_one(kube, applied):
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    out = c.run(c.on.config_changed(), state([network(**NET_A, assignments={"test-knf/0": "10.0.1.2/24"})]))
    assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")
    applied.clear()
    kube.forbidden = True  # nothing is read in such a dispatch, so an API problem cannot fail it
    again = c.run(c.on.collect_unit_status(), out)
    assert again.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")
    assert applied == []


def test_nothing_asked_before_the_network_says_its_name(kube, applied):
    # The app is called net-app but the network is net-a: the address for net-a must not be
    # preceded by a pool request that could take what a peer asks for.
    silent = testing.Relation("networks", remote_app_name="net-app")
    c = ctx()
    out = c.run(c.on.relation_joined(silent), state([silent], config={"addresses": "net-a=10.0.1.10/24"}))
    assert "address" not in out.get_relation(silent.id).local_unit_data
    answered = network(**NET_A)
    answered = testing.Relation(
        "networks", remote_app_name="net-app", remote_app_data=answered.remote_app_data, id=silent.id
    )
    out = c.run(
        c.on.relation_changed(answered), state([answered], config={"addresses": "net-a=10.0.1.10/24"})
    )
    assert published(out, answered).address == "10.0.1.10/24"


def test_a_router_workload_gets_net_admin_too(kube, applied):
    c = ctx()
    c.run(c.on.config_changed(), state([network(**NET_A)], config={"forwards": True}))
    containers = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["spec"]["containers"]
    caps = {x["name"]: x.get("securityContext", {}).get("capabilities", {}).get("add") for x in containers}
    assert caps == {"charm": ["NET_ADMIN"], "workload": ["NET_ADMIN"]}


def test_an_address_for_a_network_not_joined_is_pointed_out(kube, applied):
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    config = {"addresses": "net-a=10.0.1.2/24,net-z=10.0.9.1/24"}
    out = c.run(
        c.on.config_changed(),
        state([network(**NET_A, assignments={"test-knf/0": "10.0.1.2/24"})], config=config),
    )
    assert out.unit_status == testing.ActiveStatus(
        "net-a 10.0.1.2/24 on net1; 'addresses' names no joined network: net-z"
    )


# -- issue 8: what the network, the operator or a pod editor gets wrong changes nothing ------


GOOD_ROUTE = {"prefix": "10.0.9.0/24", "via": "10.0.1.1"}
GOOD_PLAN = [InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"),))]


def steady(kube, config=None, routes=(GOOD_ROUTE,)):
    """A unit on net-a with its address, a route and its interface: the state every bad
    input below starts from. Returns the context and the state after."""
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    a = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"}, routes=list(routes))
    c = ctx()
    out = c.run(c.on.config_changed(), state([a], config=config or {"addresses": "net-a=10.0.1.10/24"}))
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1"), out.unit_status
    kube.writes.clear()
    c.emitted_events.clear()
    return c, out


def with_remote(before, **raw):
    """`before` with net-a's app databag fields replaced by these raw (already encoded) values."""
    (relation,) = before.relations
    data = {**relation.remote_app_data, **raw}
    return dataclasses.replace(before, relations={dataclasses.replace(relation, remote_app_data=data)})


def with_pod_notes(kube, **notes):
    live = kube.find("Pod", f"{APP}-0", MODEL)
    assert live is not None
    live["metadata"]["annotations"].update(notes)


def library_events(c):
    return [type(e).__name__ for e in c.emitted_events if isinstance(e, library.NetworkEvent)]


def assert_nothing_changed(kube, applied, before, out, c):
    (relation,) = before.relations
    assert out.get_relation(relation.id).local_unit_data == before.get_relation(relation.id).local_unit_data
    assert kube.writes == []  # no StatefulSet patch: no pod restarts
    assert applied[-1] == GOOD_PLAN  # nothing flushed, nothing new on the interface
    assert library_events(c) == []  # no lost, no changed
    assert library_stored(out) == library_stored(before)


def library_stored(out):
    """The library's stored state but the last status line (which is what changes)."""
    (stored,) = [s for s in out.stored_states if s.owner_path and "L2smNetworks" in s.owner_path]
    return {k: v for k, v in stored.content.items() if k != "last_status"}


@pytest.mark.parametrize(
    ("key", "raw", "fragment"),
    [
        ("routes", "[{oops", "not JSON"),
        ("routes", json.dumps({"prefix": "10.0.9.0/24"}), "must be a JSON list"),
        ("network", json.dumps({"name": "NET A", "cidr": "10.0.1.0/24", "mtu": 1400}), "DNS-1123"),
        ("network", "", "missing"),
        ("network", json.dumps([1, 2]), "valid dictionary"),
        ("assignments", json.dumps({"test-knf/0": "banana"}), "'banana' needs its prefix length"),
        ("assignments", json.dumps(["10.0.1.10/24"]), "must be a JSON object"),
        ("rejections", json.dumps({"test-knf/0": ["not", "a", "string"]}), "valid string"),
        ("rejections", "7", "must be a JSON object"),
    ],
)
def test_a_bad_field_from_the_network_is_named_and_the_last_good_kept(kube, applied, key, raw, fragment):
    c, before = steady(kube)
    after = with_remote(before, **{key: raw})
    out = c.run(c.on.relation_changed(next(iter(after.relations))), after)
    assert out.unit_status.name == "blocked"
    message = out.unit_status.message
    assert message.startswith(f"net-a sent bad data (field '{key}'): ")
    assert fragment in message and message.endswith("; keeping the last good configuration")
    assert len(message) <= library.STATUS_MAX
    assert_nothing_changed(kube, applied, before, out, c)


def test_one_bad_route_does_not_cost_the_good_ones(kube, applied):
    c, before = steady(kube)
    routes = [
        GOOD_ROUTE,
        {"prefix": "10.0.8.0/24", "via": "not-an-ip"},
        {"prefix": "10.0.7.0/24", "via": "10.0.1.2"},
    ]
    out = c.run(c.on.update_status(), with_remote(before, routes=json.dumps(routes)))
    assert applied[-1] == [
        InterfacePlan(
            "net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"), ("10.0.7.0/24", "10.0.1.2"))
        )
    ]
    assert "(field 'routes'): entry 1: " in out.unit_status.message
    assert library_events(c) == ["NetworkChangedEvent"]  # the new good route is news


def test_a_route_turned_bad_keeps_its_last_good_gateway(kube, applied):
    c, before = steady(kube)
    c.run(
        c.on.update_status(), with_remote(before, routes=json.dumps([{"prefix": "10.0.9.0/24", "via": 42}]))
    )
    assert applied[-1] == GOOD_PLAN


def test_a_network_that_never_sent_valid_data_is_not_joined(kube, applied):
    bad = testing.Relation(
        "networks", remote_app_name="net-a", remote_app_data={"network": json.dumps({"name": "net-a"})}
    )
    c = ctx()
    out = c.run(c.on.relation_changed(bad), state([bad]))
    assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): ")
    assert out.unit_status.message.endswith("not joined until it sends valid data")
    assert kube.writes == [] and "address" not in out.get_relation(bad.id).local_unit_data


def test_a_departing_network_unit_is_not_a_lost_network(kube, applied):
    c, before = steady(kube)
    (relation,) = before.relations
    out = c.run(c.on.relation_departed(relation, remote_unit=0), before)
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")
    assert library_events(c) == [] and applied[-1] == GOOD_PLAN


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (
            "net-a=10.0.5.10/24",
            "option 'addresses': 10.0.5.10/24 is outside net-a's cidr 10.0.1.0/24",
        ),
        (
            "net-a=10.0.1.10/16",
            "option 'addresses': 10.0.1.10/16 has prefix length /16, but net-a's cidr is "
            "10.0.1.0/24: write /24",
        ),
        ("net-a=10.0.1.10/24\n", "option 'addresses': 'net-a=10.0.1.10/24\\n' contains a newline"),
        (
            "net-a=10.0.1.10/24,net-a=10.0.1.11/24",
            "option 'addresses': 'net-a=10.0.1.11/24': network 'net-a'",
        ),
        ("Net-A=10.0.1.10/24", "option 'addresses': 'Net-A=10.0.1.10/24': network name 'Net-A' is not a DNS"),
    ],
)
def test_an_address_the_network_would_refuse_is_not_asked_for(kube, applied, addresses, message):
    c, before = steady(kube)
    out = c.run(c.on.config_changed(), dataclasses.replace(before, config={"addresses": addresses}))
    assert out.unit_status.name == "blocked" and out.unit_status.message.startswith(message)
    assert_nothing_changed(kube, applied, before, out, c)


def test_a_huge_addresses_value_is_refused_clipped(kube, applied):
    c, before = steady(kube)
    out = c.run(c.on.config_changed(), dataclasses.replace(before, config={"addresses": "x" * 10_000}))
    assert out.unit_status == testing.BlockedStatus(
        "option 'addresses': is 10000 characters long: at most 4096"
    )
    assert_nothing_changed(kube, applied, before, out, c)


def test_a_pure_l2_network_is_not_asked_for_an_address(kube, applied):
    l2 = network(name="net-l2", cidr="")
    c = ctx()
    out = c.run(c.on.config_changed(), state([l2], config={"addresses": "net-l2=10.0.1.10/24"}))
    assert out.unit_status.message.startswith("option 'addresses': net-l2 is pure L2 (no cidr)")
    assert "address" not in out.get_relation(l2.id).local_unit_data


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        # The schema refuses these now too; the plan check stays for data that bypasses it (the lab).
        ({"assignments": json.dumps({"test-knf/0": "10.0.5.10/24"})}, "10.0.5.10/24"),
        ({"assignments": json.dumps({"test-knf/0": "10.0.1.255/24"})}, "10.0.1.255/24"),
        ({"routes": json.dumps([{"prefix": "10.0.9.0/24", "via": "10.0.5.1"}])}, "not on-link"),
        ({"routes": json.dumps([GOOD_ROUTE, {"prefix": "127.0.0.0/8", "via": "10.0.1.1"}])}, "127.0.0.0/8"),
        ({"network": json.dumps({"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 9000})}, "mtu"),
        ({"network": json.dumps({"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1500})}, "mtu"),
    ],
)
def test_what_cannot_be_applied_is_refused_and_the_last_applied_kept(kube, applied, raw, fragment):
    c, before = steady(kube)
    out = c.run(c.on.update_status(), with_remote(before, **raw))
    message = out.unit_status.message
    assert out.unit_status.name == "blocked" and message.startswith("net-a")
    assert f"'{next(iter(raw))}'" in message and fragment in message
    assert applied[-1] == GOOD_PLAN
    assert library_events(c) == [] and kube.writes == []


def test_a_10kb_l2sm_error_is_clipped(kube, applied):
    c, before = steady(kube)
    with_pod_notes(kube, **{"l2sm/error": "no interfaces\n" + "x" * 10_000})
    out = c.run(c.on.update_status(), before)
    assert out.unit_status.message.startswith("L2S-M could not attach this pod: no interfaces xxx")
    assert len(out.unit_status.message) <= library.STATUS_MAX and "\n" not in out.unit_status.message


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("l2sm/networks", "[{oops"),
        ("l2sm/networks", "NOT_A_NAME"),
        ("l2sm/networks", "[" * 5000),
        ("k8s.v1.cni.cncf.io/networks", "[1, {"),
        ("k8s.v1.cni.cncf.io/network-status", "[" * 5000),
        (
            "k8s.v1.cni.cncf.io/network-status",
            json.dumps([{"name": "l2sm/fabric-veth3", "interface": "eth0/x"}]),
        ),
    ],
)
def test_a_spoiled_pod_annotation_is_named_and_the_last_interfaces_kept(kube, applied, annotation, value):
    c, before = steady(kube)
    with_pod_notes(kube, **{annotation: value})
    out = c.run(c.on.update_status(), before)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"unreadable pod annotation: {annotation}")
    assert out.unit_status.message.endswith("keeping the last good interfaces")
    assert applied[-1] == GOOD_PLAN and kube.writes == [] and library_events(c) == []


def test_a_new_pod_with_spoiled_annotations_configures_nothing(kube, applied):
    c, before = steady(kube)
    kube.add(pod(networks=["net-a"], interfaces=["net1"]) | {})  # a new pod: a new uid
    with_pod_notes(kube, **{"k8s.v1.cni.cncf.io/network-status": "{"})
    applied.clear()
    out = c.run(c.on.update_status(), before)
    assert out.unit_status.message.endswith("its interfaces are left alone")
    assert applied == []


def test_a_loose_forwards_value_is_refused(kube, applied, monkeypatch):
    c, before = steady(kube)
    monkeypatch.setattr(knf_charm.TestKnfCharm, "_forwards", lambda self: "yes")
    out = c.run(c.on.config_changed(), before)
    assert out.unit_status == testing.BlockedStatus(
        "option 'forwards': 'yes' is not a boolean: use true or false; "
        "option 'workload_net_admin': 'yes' is not a boolean: use true or false"
    )
    assert_nothing_changed(kube, applied, before, out, c)


def test_two_applications_claiming_one_network(kube, applied):
    a = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"}, relation_id=1)
    impostor = network(name="net-a", cidr="10.0.7.0/24", relation_id=2)
    impostor = dataclasses.replace(impostor, remote_app_name="net-z")
    c = ctx()
    out = c.run(c.on.config_changed(), state([a, impostor]))
    assert out.unit_status == testing.BlockedStatus(
        "net-z and net-a both say they are network 'net-a': net-z is ignored"
    )
    assert "address" not in out.get_relation(impostor.id).local_unit_data


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("l2sm/networks", "net-z"),  # readable, but says net1 is another network's
        ("l2sm/networks", ""),
        (
            "k8s.v1.cni.cncf.io/network-status",
            json.dumps([{"name": "l2sm/fabric-veth3", "interface": "net7"}]),
        ),
        ("k8s.v1.cni.cncf.io/networks", json.dumps([{"name": "fabric-veth9"}])),
    ],
)
def test_annotations_edited_on_a_running_pod_do_not_move_its_interfaces(kube, applied, annotation, value):
    c, before = steady(kube)
    with_pod_notes(kube, **{annotation: value})
    out = c.run(c.on.update_status(), before)
    assert out.unit_status.message.startswith(f"pod annotation {annotation} edited on the running pod: ")
    assert out.unit_status.message.endswith("net-a the interface it had; keeping the last good interfaces")
    assert applied[-1] == GOOD_PLAN and kube.writes == [] and library_events(c) == []
    assert library_stored(out) == library_stored(before)


def test_the_same_mapping_written_another_way_is_fine(kube, applied):
    c, before = steady(kube)
    with_pod_notes(kube, **{"l2sm/networks": " net-a "})
    out = c.run(c.on.update_status(), before)
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")


def test_a_new_leader_that_never_read_a_network_leaves_the_template_alone(kube, applied):
    # The template carries net-a (the old leader read it); this unit never had a good answer.
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    bad = testing.Relation("networks", remote_app_name="net-a", remote_app_data={"network": "{oops"})
    c = ctx()
    out = c.run(c.on.leader_elected(), state([bad]))
    assert kube.writes == []  # no patch without net-a: the pods keep running
    assert applied == []  # and its interface is not flushed: it may be net-a's
    assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): not JSON")


def test_a_last_good_answer_kept_under_older_rules_is_not_trusted(kube, applied):
    c, before = steady(kube)
    (stored,) = [s for s in before.stored_states if s.owner_path and "L2smNetworks" in s.owner_path]
    received = json.loads(stored.content["received"])
    (entry,) = received.values()
    entry["network"]["mtu"] = 9000  # accepted once, refused now
    old = dataclasses.replace(stored, content={**stored.content, "received": json.dumps(received)})
    others = {s for s in before.stored_states if s is not stored}
    after = with_remote(dataclasses.replace(before, stored_states={*others, old}), network="{")
    out = c.run(c.on.update_status(), after)
    assert out.unit_status.message.endswith("not joined until it sends valid data")
    # Unknown, not gone: no lost, no patch, nothing flushed.
    assert library_events(c) == [] and kube.writes == [] and applied[-1] == GOOD_PLAN


def test_the_operators_own_mistake_leads_the_status(kube, applied):
    c, before = steady(kube)
    after = dataclasses.replace(with_remote(before, routes="{"), config={"addresses": "junk"})
    out = c.run(c.on.config_changed(), after)
    first, second = out.unit_status.message.split("; ", 1)
    assert first == "option 'addresses': 'junk' is not network=address/prefix (e.g. net-a=10.0.1.1/24)"
    assert second.startswith("net-a sent bad data (field 'routes')")


def test_a_refused_move_keeps_the_held_address_and_is_not_lost(kube, applied):
    # The network refuses a new request but never takes back what the unit holds.
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
    kube.add(pod(networks=["net-a"], interfaces=["net1"]))
    c = ctx()
    held = network(**NET_A, assignments={"test-knf/0": "10.0.1.10/24"})
    good = c.run(c.on.config_changed(), state([held], config={"addresses": "net-a=10.0.1.10/24"}))
    assert good.unit_status.name == "active"
    c.emitted_events.clear()
    refused = network(
        **NET_A,
        assignments={"test-knf/0": "10.0.1.10/24"},
        rejections={"test-knf/0": "10.0.1.20 is held by cdn-cache/0"},
        relation_id=held.id,
    )
    rels = {refused}
    out = c.run(
        c.on.config_changed(),
        dataclasses.replace(good, relations=rels, config={"addresses": "net-a=10.0.1.20/24"}),
    )
    assert out.unit_status == testing.BlockedStatus("net-a: refused: 10.0.1.20 is held by cdn-cache/0")
    assert applied[-1] == [InterfacePlan("net1", 1400, ("10.0.1.10/24",), ())]
    assert not [e for e in c.emitted_events if isinstance(e, library.NetworkEvent)]
    # When the refusal clears, nothing was lost, so nothing is "ready" again.
    out = c.run(c.on.config_changed(), dataclasses.replace(out, relations={held}, config=good.config))
    assert out.unit_status.name == "active"
    assert not [e for e in c.emitted_events if isinstance(e, library.NetworkEvent)]


def test_a_router_on_too_many_networks_is_blocked_and_asks_nothing(kube, applied):
    count = library.MAX_OFFERED_PREFIXES + 2
    nets = [network(name=f"net-{i}", cidr=f"10.{i}.0.0/24", relation_id=100 + i) for i in range(count)]
    c = ctx()
    out = c.run(c.on.config_changed(), state(nets, config={"forwards": True}))
    assert out.unit_status.name == "blocked"
    assert f"routes {count - 1} other networks" in out.unit_status.message
    assert all(not out.get_relation(n.id).local_unit_data.get("address") for n in nets)


# -- one network that cannot be read does not freeze the others' pod template ---------------


def unreadable_a():
    """net-a as an older revision publishes it: mtu 1500, refused now."""
    info = {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1500, "type": "vnet"}
    return testing.Relation(
        "networks", remote_app_name="net-a", remote_app_data={"network": json.dumps(info)}
    )


def template_networks(kube) -> list[str]:
    notes = kube.find("StatefulSet", APP, MODEL)["spec"]["template"]["metadata"].get("annotations") or {}
    return [e["name"] for e in json.loads(notes.get("l2sm/networks", "[]"))]


def with_unreadable_a(kube, applied, carried=("net-a",), leader=True):
    """The template and the pod carry `carried` (an older leader read net-a when its mtu was
    still taken); this unit never read net-a well. Nothing is changed for it."""
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, list(carried), ("charm",))))
    kube.add(pod(networks=list(carried), interfaces=[f"net{i + 1}" for i in range(len(carried))]))
    a = unreadable_a()
    c = ctx()
    out = c.run(c.on.update_status(), state([a], leader=leader))
    assert kube.writes == [] and applied == []
    assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): ")
    return c, out, a


def joined_b(kube, applied):
    """net-b integrated beside an unreadable net-a, and the pod restarted with both."""
    c, out, a = with_unreadable_a(kube, applied)
    b = network(**NET_B, assignments={"test-knf/0": "10.0.2.2/24"})
    out = c.run(c.on.relation_joined(b), dataclasses.replace(out, relations={a, b}))
    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    return c, c.run(c.on.update_status(), out), a, b


def test_a_good_network_joins_beside_one_that_cannot_be_read(kube, applied):
    c, out, a = with_unreadable_a(kube, applied)
    b = network(**NET_B, assignments={"test-knf/0": "10.0.2.2/24"})
    out = c.run(c.on.relation_joined(b), dataclasses.replace(out, relations={a, b}))
    assert kube.writes == [("apply", "StatefulSet", MODEL, APP)]
    assert template_networks(kube) == ["net-a", "net-b"]  # net-a kept as it was, net-b added
    assert published(out, b).address == ""
    assert "net-a sent bad data (field 'network')" in out.unit_status.message
    # Once the pod has restarted, net-b is configured; net-a's interface is left alone.
    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    c.emitted_events.clear()
    out = c.run(c.on.update_status(), out)
    assert applied[-1] == [InterfacePlan("net2", 1400, ("10.0.2.2/24",), ())]
    assert library_events(c) == ["NetworkReadyEvent"]
    assert out.workload_version == "net-b=10.0.2.2/24"


def test_a_good_network_leaves_beside_one_that_cannot_be_read(kube, applied):
    c, out, a, b = joined_b(kube, applied)
    kube.writes.clear()
    c.emitted_events.clear()
    out = c.run(c.on.relation_broken(out.get_relation(b.id)), out)
    assert kube.writes == [("apply", "StatefulSet", MODEL, APP)]
    assert template_networks(kube) == ["net-a"]
    # net-b is known gone: its interface is emptied and it is lost; net-a's is not touched.
    assert applied[-1] == [InterfacePlan("net2")]
    assert [e.network for e in c.emitted_events if isinstance(e, library.NetworkLostEvent)] == ["net-b"]
    assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): ")
    # Gone for good: later dispatches change nothing more.
    kube.writes.clear()
    c.emitted_events.clear()
    c.run(c.on.update_status(), dataclasses.replace(out, relations={a}))
    assert kube.writes == [] and library_events(c) == []


def test_nothing_changes_while_only_that_networks_data_stays_unreadable(kube, applied):
    c, out, a, b = joined_b(kube, applied)
    kube.writes.clear()
    c.emitted_events.clear()
    plans = len(applied)
    for raw in ("{oops", json.dumps({"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 9000, "type": "vnet"})):
        spoiled = dataclasses.replace(a, remote_app_data={"network": raw})
        out = c.run(c.on.relation_changed(spoiled), dataclasses.replace(out, relations={spoiled, b}))
        assert kube.writes == []  # no patch: no pod restart
        assert applied[plans:] == [[InterfacePlan("net2", 1400, ("10.0.2.2/24",), ())]] * len(applied[plans:])
        assert library_events(c) == []
        assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): ")
    out = c.run(c.on.update_status(), out)
    assert kube.writes == [] and library_events(c) == []


def test_a_new_leader_cannot_tell_a_network_gone_before_it_read_it(kube, applied):
    # net-b left before this unit ever read it: it cannot be told apart from net-a.
    with_unreadable_a(kube, applied, carried=("net-a", "net-b"))
    assert template_networks(kube) == ["net-a", "net-b"]


@pytest.mark.parametrize("carried", ['[{"name": "net-a"', "net-a, helm.net"])
def test_a_template_that_cannot_be_read_is_left_alone_beside_an_unreadable_network(kube, applied, carried):
    # What the template carries for net-a cannot be told: a patch could drop or mangle it.
    sts = merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",)))
    sts["spec"]["template"]["metadata"]["annotations"]["l2sm/networks"] = carried
    kube.add(sts)
    c = ctx()
    b = network(**NET_B, assignments={"test-knf/0": "10.0.2.2/24"})
    out = c.run(c.on.relation_joined(b), state([unreadable_a(), b]))
    assert kube.writes == []
    assert out.unit_status.message.startswith("net-a sent bad data (field 'network'): ")


def test_a_network_seen_leaving_as_a_follower_is_dropped_once_leading(kube, applied):
    kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a", "net-b"], ("charm",))))
    kube.add(pod(networks=["net-a", "net-b"], interfaces=["net1", "net2"]))
    a, b = unreadable_a(), network(**NET_B, assignments={"test-knf/1": "10.0.2.3/24"})
    c = ctx(unit_id=1)
    out = c.run(c.on.update_status(), state([a, b], leader=False))
    out = c.run(c.on.relation_broken(out.get_relation(b.id)), out)
    assert kube.writes == []  # a follower never patches
    out = c.run(c.on.leader_elected(), dataclasses.replace(out, leader=True, relations={a}))
    assert template_networks(kube) == ["net-a"]
