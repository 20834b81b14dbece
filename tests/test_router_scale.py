"""A router scaled to 0 and back to 1 (`juju scale-application cdn-router 0`, then `1`, the
seed's own cut-off) comes back at its addresses: across the network charm and the KNF
library, each in its own ops.testing Context, the databags carried from one to the other.

The KNF side is the test KNF charm (knf/tests/knf_charm) as a router; the network side is
charms/l2sm-network, one application per network. Both have a module named `charm`: each
is loaded by path under a name of its own."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from ops import testing

from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_knf.l2sm_network import FakeCluster, NetworkProviderAppData, published_request
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import CONTROLLER_APP_DATA

ROOT = Path(__file__).resolve().parent.parent
ROUTER = "cdn-router"
MODEL = "cdn"
# The seed's router addresses: the members' routes go via these.
NETWORKS = {"net-a": "10.0.1.0/24", "net-b": "10.0.2.0/24"}
ADDRESSES = "net-a=10.0.1.1/24,net-b=10.0.2.1/24"


def _load(name: str, path: Path, models: Path | None = None) -> ModuleType:
    """A charm module under `name`; its `models` (imported as `models`) only while it loads."""
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.modules.pop("models", None)
    try:
        if models is not None:
            sys.modules["models"] = _exec(f"{name}_models", models)
        module = _exec(name, path)  # registered first: ops.testing finds charmcraft.yaml from it
    finally:
        sys.modules.pop("models", None)
        if saved is not None:
            sys.modules["models"] = saved
    return module


def _exec(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


network_charm = _load(
    "router_scale_network_charm",
    ROOT / "charms/l2sm-network/src/charm.py",
    models=ROOT / "charms/l2sm-network/src/models.py",
)
knf_charm = _load("router_scale_knf_charm", ROOT / "knf/tests/knf_charm/src/charm.py")


@pytest.fixture
def kube(monkeypatch):
    """The network charm's cluster: the L2S-M CRDs, nothing else."""
    fake = FakeKube(default_namespace=MODEL)
    for crd in custom_resource_definitions("l2sm-controller", "l2sm"):
        fake.add(crd)
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
    return fake


class Network:
    """One l2sm-network application and its relation with the router, hook by hook."""

    def __init__(self, name: str):
        self.name = name
        self.ctx = testing.Context(network_charm.L2smNetworkCharm, app_name=name)
        controller = testing.Relation(
            "controller",
            remote_app_name="l2sm-controller",
            remote_app_data={k: json.dumps(v) for k, v in CONTROLLER_APP_DATA.items()},
        )
        self.relation = testing.Relation("network", remote_app_name=ROUTER, remote_units_data={})
        self.state = testing.State(
            leader=True,
            model=testing.Model(name=MODEL),
            config={"cidr": NETWORKS[name]},
            relations={controller, self.relation},
        )

    def _relation(self) -> testing.Relation:
        return self.state.get_relation(self.relation.id)

    def _with_units(self, units: dict[int, dict[str, str]]) -> testing.State:
        relation = testing.Relation(
            "network",
            id=self.relation.id,
            remote_app_name=ROUTER,
            remote_units_data=units,
            local_app_data=self._relation().local_app_data,
        )
        others = {r for r in self.state.relations if r.id != self.relation.id}
        return testing.State(
            leader=True, model=self.state.model, config=self.state.config, relations=others | {relation}
        )

    def configured(self) -> None:
        self.state = self.ctx.run(self.ctx.on.config_changed(), self.state)

    def joins(self, unit: int, data: dict[str, str]) -> None:
        units = dict(self._relation().remote_units_data) | {unit: data}
        state = self._with_units(units)
        relation = state.get_relation(self.relation.id)
        state = self.ctx.run(self.ctx.on.relation_joined(relation, remote_unit=unit), state)
        relation = state.get_relation(self.relation.id)
        self.state = self.ctx.run(self.ctx.on.relation_changed(relation, remote_unit=unit), state)

    def departs(self, unit: int) -> None:
        relation = self._relation()
        self.state = self.ctx.run(
            self.ctx.on.relation_departed(relation, remote_unit=unit, departing_unit=unit), self.state
        )
        # After the hook, Juju no longer lists the unit.
        units = {n: d for n, d in self._relation().remote_units_data.items() if n != unit}
        self.state = self._with_units(units)

    def answer(self) -> dict[str, str]:
        """The app databag the router reads."""
        return dict(self._relation().local_app_data)

    def assignments(self) -> dict[str, str]:
        raw = self.answer()
        return NetworkProviderAppData.model_validate({k: json.loads(v) for k, v in raw.items()}).assignments


class RouterUnit:
    """One unit of the router (the test KNF charm with forwards), on every network."""

    def __init__(self, number: int, networks: dict[str, Network]):
        self.number = number
        self.ctx = testing.Context(knf_charm.TestKnfCharm, app_name=ROUTER, unit_id=number)
        self.cluster = FakeCluster(ROUTER, containers=("charm", "workload"))
        self.relations = {
            name: testing.Relation("networks", remote_app_name=name, remote_app_data=net.answer())
            for name, net in networks.items()
        }
        self.state = testing.State(
            leader=True,
            relations=set(self.relations.values()),
            config={"addresses": ADDRESSES, "forwards": True},
        )

    def run(self, event: str = "config_changed") -> None:
        with self.cluster.installed():
            self.state = self.ctx.run(getattr(self.ctx.on, event)(), self.state)

    def published(self, network: str) -> dict[str, str]:
        """The unit databag the network reads from this unit."""
        return dict(self.state.get_relation(self.relations[network].id).local_unit_data)

    def hears(self, networks: dict[str, Network]) -> None:
        """The networks' latest answers, as the next relation-changed brings them."""
        relations = set()
        for name, rel in self.relations.items():
            current = self.state.get_relation(rel.id)
            relations.add(
                testing.Relation(
                    "networks",
                    id=rel.id,
                    remote_app_name=name,
                    remote_app_data=networks[name].answer(),
                    local_unit_data=current.local_unit_data,
                )
            )
        self.state = testing.State(
            leader=True, relations=relations, config=self.state.config, stored_states=self.state.stored_states
        )


def test_scale_to_zero_and_back_the_new_router_unit_holds_the_old_units_addresses(kube):
    networks = {name: Network(name) for name in NETWORKS}
    for net in networks.values():
        net.configured()  # each network says its name and cidr before any member asks

    router0 = RouterUnit(0, networks)
    router0.run()
    for name, net in networks.items():
        net.joins(0, router0.published(name))
    assert networks["net-a"].assignments() == {"cdn-router/0": "10.0.1.1/24"}
    assert networks["net-b"].assignments() == {"cdn-router/0": "10.0.2.1/24"}

    # juju scale-application cdn-router 0: the unit departs each network; its address is free.
    for net in networks.values():
        net.departs(0)
        assert net.assignments() == {}

    # juju scale-application cdn-router 1: the new unit is cdn-router/1.
    router1 = RouterUnit(1, networks)
    router1.run()
    request = published_request(router1.state.get_relation(router1.relations["net-a"].id))
    # The N-th next address (what an older network grants, .2) and the first free from .1.
    assert (request.address, request.address_from) == ("10.0.1.2/24", "10.0.1.1/24")
    for name, net in networks.items():
        net.joins(1, router1.published(name))
    assert networks["net-a"].assignments() == {"cdn-router/1": "10.0.1.1/24"}
    assert networks["net-b"].assignments() == {"cdn-router/1": "10.0.2.1/24"}

    # And the new unit configures them: the members' routes via .1 stay valid.
    router1.hears(networks)
    router1.run()  # the leader patches the pod template
    router1.cluster.restart_pods()
    router1.run("start")
    plans = {p.ifname: p.addresses for p in router1.cluster.applied[-1]}
    assert sorted(plans.values()) == [("10.0.1.1/24",), ("10.0.2.1/24",)]
    assert router1.state.workload_version == "net-a=10.0.1.1/24 net-b=10.0.2.1/24"


def test_a_router_unit_asking_the_old_way_would_come_back_at_the_next_address(kube):
    # The "today": unit 1 asking for exactly the 1st address after .1 gets .2.
    net = Network("net-a")
    net.configured()
    old_way = {"address": json.dumps("10.0.1.2/24"), "offered-prefixes": json.dumps(["10.0.2.0/24"])}
    net.joins(1, old_way)
    assert net.assignments() == {"cdn-router/1": "10.0.1.2/24"}
