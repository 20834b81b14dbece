"""The l2sm_network testing helpers: what they build is what the real sides write, and what
the real sides could not write they refuse."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path

import ops
import pydantic
import pytest
from lightkube.resources.core_v1 import Service
from ops import testing

from l2sm_core.knf import InterfacePlan
from l2sm_knf import l2sm_network
from l2sm_knf.databag import InvalidDatabag, canonical_json, decode, encode
from l2sm_knf.kube import Kube
from l2sm_knf.l2sm_network import (
    JUJU_UNIT_KEYS,
    FakeCluster,
    NetworkProviderAppData,
    NetworkRequirerUnitData,
    members_relation,
    network_relation,
    published_answer,
    published_request,
)

CHARM_PY = Path(__file__).parent / "knf_charm" / "src" / "charm.py"
APP = "test-knf"
NETWORK_META = {"name": "net-a", "provides": {"network": {"interface": "l2sm_network"}}}


def _test_knf_charm() -> type[ops.CharmBase]:
    name = "l2sm_network_testing_knf_charm"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CHARM_PY)
        assert spec and spec.loader
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name].TestKnfCharm


class NetworkCharm(ops.CharmBase):
    """The provider's side of the interface as the network charm uses it."""

    answer: NetworkProviderAppData | None = None
    requests: dict[str, NetworkRequirerUnitData | str] = {}

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._on_config_changed)

    def _on_config_changed(self, _: ops.EventBase) -> None:
        for relation in self.model.relations["network"]:
            for unit in sorted(relation.units, key=lambda u: u.name):
                try:
                    NetworkCharm.requests[unit.name] = l2sm_network.read_request(relation, unit)
                except InvalidDatabag as exc:
                    NetworkCharm.requests[unit.name] = str(exc)
            if self.answer is not None:
                l2sm_network.publish(relation, self.app, self.answer)


@pytest.fixture
def network_charm(monkeypatch):
    monkeypatch.setattr(NetworkCharm, "requests", {})
    monkeypatch.setattr(NetworkCharm, "answer", None)
    return NetworkCharm


ANSWER = {
    "network": {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1380, "type": "vnet"},
    "assignments": {"test-knf/0": "10.0.1.10/24", "test-knf/1": "10.0.1.2/24"},
    "rejections": {"test-knf/2": "10.0.1.10 is held by test-knf/0"},
    "routes": [{"prefix": "10.0.9.0/24", "via": "10.0.1.1"}],
}


def test_network_relation_holds_what_publish_writes(network_charm):
    network_charm.answer = NetworkProviderAppData.model_validate(ANSWER)
    ctx = testing.Context(network_charm, meta=NETWORK_META)
    relation = testing.Relation("network", remote_app_name=APP)
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={relation}))
    written = out.get_relation(relation.id).local_app_data

    built = network_relation(
        "net-a",
        "10.0.1.0/24",
        mtu=1380,
        assignments=ANSWER["assignments"],
        rejections=ANSWER["rejections"],
        routes=[("10.0.9.0/24", "10.0.1.1")],
    )
    assert built.remote_app_data == written
    assert built.endpoint == "networks" and built.remote_app_name == "net-a"
    assert published_answer(out.get_relation(relation.id)) == network_charm.answer


def test_network_relation_defaults_and_relation_arguments():
    pure = network_relation("net-l2", endpoint="lan", remote_app_name="my-net", id=7)
    assert (pure.endpoint, pure.remote_app_name, pure.id) == ("lan", "my-net", 7)
    assert json.loads(pure.remote_app_data["network"]) == {
        "name": "net-l2",
        "cidr": "",
        "mtu": 1400,
        "type": "vnet",
    }
    assert json.loads(pure.remote_app_data["routes"]) == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"assignments": {"test-knf/0": "10.0.2.10/24"}}, "not a host address of 10.0.1.0/24"),
        ({"mtu": 1500}, "less than or equal to 1400"),
        ({"routes": [("0.0.0.0/0", "10.0.1.1")]}, "the default route"),
        ({"network_type": "bridge"}, "not an L2S-M network type"),
        ({"name": "Net_A"}, "DNS-1123"),
    ],
)
def test_network_relation_refuses_what_no_network_sends(kwargs, fragment):
    args = {"name": "net-a", "cidr": "10.0.1.0/24"} | kwargs
    with pytest.raises(pydantic.ValidationError, match=fragment):
        network_relation(**args)


def test_members_relation_holds_what_the_knf_library_writes(network_charm):
    # What the real requirer writes, through the test KNF charm...
    cluster = FakeCluster(APP)
    knf_ctx = testing.Context(_test_knf_charm(), app_name=APP, unit_id=1)
    net = network_relation("net-a", "10.0.1.0/24")
    with cluster.installed():
        out = knf_ctx.run(
            knf_ctx.on.config_changed(),
            testing.State(relations={net}, config={"addresses": "net-a=10.0.1.10/24", "forwards": False}),
        )
    written = out.get_relation(net.id).local_unit_data
    # ...is what members_relation builds for that unit.
    built = members_relation(
        APP, {1: {"address": "10.0.1.11/24", "address-from": "10.0.1.10/24"}, 2: {}, 3: None}
    )
    juju = set(JUJU_UNIT_KEYS)
    assert {k: v for k, v in built.remote_units_data[1].items() if k not in juju} == {
        k: v for k, v in written.items() if k not in juju
    }
    assert set(built.remote_units_data[3]) == set(JUJU_UNIT_KEYS)

    ctx = testing.Context(network_charm, meta=NETWORK_META)
    ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={built}))
    assert network_charm.requests == {
        f"{APP}/1": NetworkRequirerUnitData(address="10.0.1.11/24", address_from="10.0.1.10/24"),
        f"{APP}/2": NetworkRequirerUnitData(),
        f"{APP}/3": NetworkRequirerUnitData(),  # nothing written reads as the defaults
    }


def test_members_relation_takes_models_and_relation_arguments():
    request = NetworkRequirerUnitData.model_validate({"offered-prefixes": ["10.0.2.0/24"]})
    built = members_relation("router", {0: request}, endpoint="members", id=9)
    assert (built.endpoint, built.remote_app_name, built.id) == ("members", "router", 9)
    assert built.remote_units_data[0]["offered-prefixes"] == '["10.0.2.0/24"]'


@pytest.mark.parametrize(
    ("request_data", "fragment"),
    [
        ({"address": "10.0.1.10"}, "needs its prefix length"),
        ({"offered-prefixes": ["0.0.0.0/0"]}, "the default route"),
    ],
)
def test_members_relation_refuses_what_no_member_sends(request_data, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment):
        members_relation(APP, {0: request_data})


def _with(relation: testing.Relation, **bags: dict[str, str]) -> testing.Relation:
    return testing.Relation(relation.endpoint, remote_app_name=relation.remote_app_name, **bags)


@pytest.mark.parametrize(
    ("bag", "fragment"),
    [
        ({"address": '"10.0.1.10/24"', "colour": '"red"'}, "keys outside the schema: colour"),
        ({"address": "10.0.1.10/24"}, "field 'address': not JSON"),
        ({"offered-prefixes": '[ "10.0.2.0/24"]'}, "not written as canonical_json writes it"),
        ({"address": '"10.0.1.10"'}, "field 'address': '10.0.1.10' needs its prefix length"),
    ],
)
def test_published_request_is_read_strictly(bag, fragment):
    relation = _with(
        network_relation("net-a"), local_unit_data={k: "192.0.2.1" for k in JUJU_UNIT_KEYS} | bag
    )
    with pytest.raises(InvalidDatabag, match=fragment):
        published_request(relation)


def test_published_answer_is_read_strictly():
    good = encode(NetworkProviderAppData.model_validate(ANSWER))
    assert published_answer(_with(network_relation("net-a"), local_app_data=good)).network.mtu == 1380
    for bad in (good | {"ingress-address": '"10.1.1.1"'}, good | {"network": '{"name": "x"}'}):
        with pytest.raises(InvalidDatabag):
            published_answer(_with(network_relation("net-a"), local_app_data=bad))


def test_encode_decode_round_trip():
    data = NetworkProviderAppData.model_validate(ANSWER)
    bag = encode(data)
    assert bag["assignments"] == canonical_json(ANSWER["assignments"])
    assert decode(bag, NetworkProviderAppData) == data
    with pytest.raises(
        InvalidDatabag, match=re.escape("assignments: 'test-knf/0' 10.0.2.1/24 is not a host")
    ):
        decode(bag | {"assignments": '{"test-knf/0": "10.0.2.1/24"}'}, NetworkProviderAppData)


# -- FakeCluster ------------------------------------------------------------------------------


@pytest.fixture(params=("2.9.43", "3.6.4"))
def ctx(request):
    return testing.Context(_test_knf_charm(), app_name=APP, juju_version=request.param)


def test_fake_cluster_joins_restarts_and_configures(ctx):
    cluster = FakeCluster(APP, containers=("charm", "workload"))
    net = network_relation("net-a", "10.0.1.0/24", assignments={f"{APP}/0": "10.0.1.10/24"})
    state = testing.State(leader=True, relations={net}, config={"addresses": "net-a=10.0.1.10/24"})
    with cluster.installed():
        out = ctx.run(ctx.on.config_changed(), state)
        assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")
        assert cluster.networks() == ["net-a"] and cluster.net_admin() == ["charm"]
        assert cluster.applied == []  # no interface before the pod restarts
        cluster.restart_pods()
        out = ctx.run(ctx.on.start(), out)
    assert cluster.applied[-1] == [InterfacePlan("net1", 1400, ("10.0.1.10/24",), ())]
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")
    assert len(cluster.patches) == 1  # the template already says it all: not patched again
    # Outside `installed`, the real adapter and applier are back.
    assert Kube.connect.__self__ is Kube  # type: ignore[attr-defined]
    assert l2sm_network._default_applier.__module__ == "l2sm_knf.l2sm_network"


def test_fake_cluster_removes_what_the_library_no_longer_applies(ctx):
    cluster = FakeCluster(APP, containers=("charm", "workload"))
    net = network_relation("net-a", "10.0.1.0/24")
    with cluster.installed():
        out = ctx.run(
            ctx.on.config_changed(), testing.State(leader=True, relations={net}, config={"forwards": True})
        )
        assert cluster.net_admin() == ["charm", "workload"]  # a router's workload gets NET_ADMIN too
        cluster.restart_pods()
        out = ctx.run(ctx.on.update_status(), out)
        ctx.run(ctx.on.relation_broken(out.get_relation(net.id)), out)
    meta = cluster.statefulset["spec"]["template"]["metadata"]
    assert "l2sm" not in meta["labels"] and "l2sm/networks" not in meta.get("annotations", {})
    assert cluster.networks() == []
    assert cluster.applied[-1] == [InterfacePlan("net1")]  # emptied until the pod restarts


def test_fake_cluster_without_trust(ctx):
    cluster = FakeCluster(APP)
    cluster.forbidden = True
    with cluster.installed():
        out = ctx.run(
            ctx.on.config_changed(), testing.State(leader=True, relations={network_relation("net-a")})
        )
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")


def test_fake_cluster_holds_only_its_own_objects():
    from lightkube.resources.apps_v1 import StatefulSet
    from lightkube.resources.core_v1 import Pod

    from l2sm_knf.kube import KubeNotFound

    cluster = FakeCluster(APP)
    assert cluster.get(StatefulSet, "other") is None
    assert cluster.get(Pod, "other-0") is None and cluster.get(Pod, f"{APP}-x") is None
    assert cluster.get(Pod, f"{APP}-2")["metadata"]["name"] == f"{APP}-2"
    assert set(cluster.pods) == {2}
    with pytest.raises(NotImplementedError, match="no Service"):
        cluster.get(Service, APP)
    with pytest.raises(KubeNotFound):
        cluster.apply_patch(StatefulSet, "other", None, {})


def test_fake_cluster_shows_a_routers_ip_forward_sysctl_and_its_removal():
    cluster = FakeCluster(APP, containers=("charm", "workload"))
    knf_ctx = testing.Context(_test_knf_charm(), app_name=APP, unit_id=0)
    net = network_relation("net-a", "10.0.1.0/24")
    with cluster.installed():
        out = knf_ctx.run(
            knf_ctx.on.config_changed(),
            testing.State(leader=True, relations={net}, config={"forwards": True}),
        )
        assert cluster.sysctls() == {"net.ipv4.ip_forward": "1"}
        knf_ctx.run(knf_ctx.on.config_changed(), dataclasses.replace(out, config={"forwards": False}))
    assert cluster.sysctls() == {}
