"""Property-based: IPAM while leadership moves between the network's units at any point.

Three units of one network application share what Juju shares (each relation's app
databag, the members' unit data, the config); every change in the world queues its hook on
every unit, hooks run in any order, and leadership moves between any two of them
(leader-elected on the new leader, the old one seeing leader=False from then on). After
every step, what the members read from their relations never gives one address to two
members, never one outside the cidr, reserved, or the network's or broadcast address, and a
member keeps its address while it stays, unless it asked for another that it then got.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

import charm
import pytest
from conftest import APP, MODEL, controller_relation
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ops import testing

from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_knf.l2sm_network import NetworkRequirerUnitData
from l2sm_testing.fake_kube import FakeKube

CIDR = "10.0.1.0/28"  # 14 hosts: small enough that members run out and contend
NET = ipaddress.IPv4Network(CIDR)
NETWORK_UNITS = (0, 1, 2)
KNF_APPS = ("alpha", "beta", "gamma")
# Addresses members may ask for: in the cidr (hosts, network, broadcast) and just outside.
ASKABLE = [str(ip) for ip in ipaddress.IPv4Network("10.0.1.0/27")][:20]
RESERVABLE = [str(ip) for ip in NET.hosts()][:6]

requests = st.one_of(
    st.just(("pool", "")),
    st.tuples(st.just("exact"), st.sampled_from(ASKABLE)),
    st.tuples(st.just("from"), st.sampled_from(ASKABLE)),
)


@dataclass
class Link:
    """One `network` relation: a KNF application's units and what each asks (None: not yet)."""

    id: int
    app: str
    units: dict[int, tuple[str, str] | None] = field(default_factory=dict)
    app_data: dict[str, str] = field(default_factory=dict)  # the network's own databag
    next_unit: int = 0


def unit_data(request: tuple[str, str] | None) -> dict[str, str]:
    if request is None:
        return {}
    kind, address = request
    fields = {"address": f"{address}/{NET.prefixlen}" if kind == "exact" else ""}
    if kind == "from":
        fields["address-from"] = f"{address}/{NET.prefixlen}"
    data = NetworkRequirerUnitData.model_validate(fields).model_dump(by_alias=True)
    return {k: json.dumps(v) for k, v in data.items()}


def satisfies(request: tuple[str, str] | None, address: str) -> bool:
    ip = ipaddress.IPv4Interface(address).ip
    if request is None or request[0] == "pool":
        return True
    if request[0] == "exact":
        return ip == ipaddress.IPv4Address(request[1])
    return ip >= ipaddress.IPv4Address(request[1])


class Network(RuleBasedStateMachine):
    juju_version = "3.6.4"
    current_kube: FakeKube | None = None  # the running example's cluster, for the Client patch

    def __init__(self):
        super().__init__()
        self.kube = FakeKube(default_namespace=MODEL)
        for crd in custom_resource_definitions("l2sm-controller", "l2sm"):
            self.kube.add(crd)
        Network.current_kube = self.kube
        self.contexts = {
            n: testing.Context(
                charm.L2smNetworkCharm, app_name=APP, unit_id=n, juju_version=self.juju_version
            )
            for n in NETWORK_UNITS
        }
        self.controller = controller_relation()
        self.links: dict[int, Link] = {}
        self.broken: dict[int, Link] = {}  # broken, until every unit has run relation-broken
        self.next_id = 100_000  # clear of the ids ops.testing hands out itself
        self.reserved: tuple[str, ...] = ()
        self.leader = 0
        self.queues: dict[int, list[tuple]] = {n: [] for n in NETWORK_UNITS}
        self.seen: dict[str, str] = {}  # member -> the address it read last step

    # -- the world ------------------------------------------------------------------------

    def _queue(self, *event) -> None:
        for queue in self.queues.values():
            queue.append(event)

    def _member(self, link: Link, n: int) -> str:
        return f"{link.app}/{n}"

    @initialize()
    def settle_first_leader(self):
        self._queue("leader_elected")
        self._queue("config_changed")
        self._add_link(KNF_APPS[0])

    def _add_link(self, app: str) -> None:
        self.next_id += 1
        self.links[self.next_id] = Link(self.next_id, app)
        self._queue("relation_created", self.next_id)

    @precondition(lambda self: len(self.links) < len(KNF_APPS))
    @rule(data=st.data())
    def integrate(self, data):
        free = [a for a in KNF_APPS if a not in {link.app for link in self.links.values()}]
        self._add_link(data.draw(st.sampled_from(free)))

    @precondition(lambda self: bool(self.links))
    @rule(data=st.data(), request=st.none() | requests)
    def member_joins(self, data, request):
        """A new unit joins; most ask at once, in the databag they join with."""
        link = self.links[data.draw(st.sampled_from(sorted(self.links)))]
        n = link.next_unit  # Juju never reuses a unit number
        link.next_unit += 1
        link.units[n] = request
        self._queue("relation_joined", link.id, n)
        self._queue("relation_changed", link.id, n)

    @precondition(lambda self: any(link.units for link in self.links.values()))
    @rule(data=st.data(), request=requests)
    def member_asks(self, data, request):
        link = self.links[data.draw(st.sampled_from(sorted(i for i, k in self.links.items() if k.units)))]
        n = data.draw(st.sampled_from(sorted(link.units)))
        link.units[n] = request
        self._queue("relation_changed", link.id, n)

    @precondition(lambda self: any(link.units for link in self.links.values()))
    @rule(data=st.data())
    def member_leaves(self, data):
        link = self.links[data.draw(st.sampled_from(sorted(i for i, k in self.links.items() if k.units)))]
        n = data.draw(st.sampled_from(sorted(link.units)))
        del link.units[n]
        self.seen.pop(self._member(link, n), None)
        self._queue("relation_departed", link.id, n)

    @precondition(lambda self: len(self.links) > 1)
    @rule(data=st.data())
    def remove_relation(self, data):
        link = self.links.pop(data.draw(st.sampled_from(sorted(self.links))))
        for n in link.units:
            self.seen.pop(self._member(link, n), None)
        self.broken[link.id] = link
        self._queue("relation_broken", link.id)

    @rule(reserved=st.lists(st.sampled_from(RESERVABLE), max_size=3, unique=True))
    def reserve(self, reserved):
        self.reserved = tuple(sorted(reserved, key=ipaddress.IPv4Address))
        self._queue("config_changed")

    @rule(unit=st.sampled_from(NETWORK_UNITS))
    def leadership_moves(self, unit):
        if unit != self.leader:
            self.leader = unit
            self.queues[unit].append(("leader_elected",))

    @precondition(lambda self: any(self.queues.values()))
    @rule(data=st.data())
    def hook_runs(self, data):
        unit = data.draw(st.sampled_from([n for n, q in self.queues.items() if q]))
        event = self.queues[unit].pop(0)
        self._run(unit, event)

    @precondition(lambda self: any(self.queues.values()))
    @rule(data=st.data())
    def unit_catches_up(self, data):
        """A unit runs every hook it has queued (Juju runs them back to back)."""
        unit = data.draw(st.sampled_from([n for n, q in self.queues.items() if q]))
        while self.queues[unit]:
            self._run(unit, self.queues[unit].pop(0))

    @rule(unit=st.sampled_from(NETWORK_UNITS))
    def update_status(self, unit):
        self._run(unit, ("update_status",))

    # -- running a hook -------------------------------------------------------------------

    def _relation(self, link: Link) -> testing.Relation:
        return testing.Relation(
            "network",
            id=link.id,
            remote_app_name=link.app,
            remote_units_data={n: unit_data(r) for n, r in link.units.items()},
            local_app_data=dict(link.app_data),
        )

    def _run(self, unit: int, event: tuple) -> None:
        kind, *args = event
        relations = {i: self._relation(link) for i, link in self.links.items()}
        if kind == "relation_broken":
            link = self.broken[args[0]]
            relations[link.id] = self._relation(link)
        config = {"cidr": CIDR, "reserved": ",".join(self.reserved)}
        state = testing.State(
            leader=unit == self.leader,
            model=testing.Model(name=MODEL),
            config=config,
            relations=set(relations.values()) | {self.controller},
        )
        ctx = self.contexts[unit]
        if kind in ("relation_created", "relation_joined", "relation_changed", "relation_departed"):
            relation = relations.get(args[0])
            if relation is None:
                return  # broken meanwhile: Juju runs no more of its hooks but relation-broken
            if kind == "relation_created":
                trigger = ctx.on.relation_created(relation)
            elif kind == "relation_departed":
                trigger = ctx.on.relation_departed(relation, remote_unit=args[1], departing_unit=args[1])
            elif args[1] not in relation.remote_units_data:
                return  # left meanwhile: its departed hook follows
            elif kind == "relation_joined":
                trigger = ctx.on.relation_joined(relation, remote_unit=args[1])
            else:
                trigger = ctx.on.relation_changed(relation, remote_unit=args[1])
        elif kind == "relation_broken":
            trigger = ctx.on.relation_broken(relations[args[0]])
        else:
            trigger = getattr(ctx.on, kind)()
        out = ctx.run(trigger, state)
        for i, link in self.links.items():
            written = out.get_relation(i).local_app_data
            if unit != self.leader:
                assert written == link.app_data, f"unit {unit} is no leader, yet wrote relation {i}"
            link.app_data = dict(written)
        if kind == "relation_broken" and not any(e == event for q in self.queues.values() for e in q):
            del self.broken[args[0]]

    # -- what members read ----------------------------------------------------------------

    def _published(self) -> dict[str, str]:
        """unit -> address, from every live relation's databag, each relation read alone."""
        held: dict[str, str] = {}
        for link in self.links.values():
            raw = link.app_data.get("assignments")
            for member, address in (json.loads(raw) if raw else {}).items():
                assert member.startswith(f"{link.app}/"), f"{member} published on {link.app}'s relation"
                held[member] = address
        return held

    @invariant()
    def one_address_one_member(self):
        published = self._published()
        owners: dict[str, str] = {}
        for member, address in published.items():
            ip = ipaddress.IPv4Interface(address)
            assert ip.network == NET, f"{member}: {address} outside {CIDR}"
            assert ip.ip not in (NET.network_address, NET.broadcast_address), f"{member}: {address}"
            other = owners.setdefault(str(ip.ip), member)
            assert other == member, f"{ip.ip} given to both {other} and {member}"

    @invariant()
    def members_keep_their_addresses(self):
        published = self._published()
        live = {
            self._member(link, n): request
            for link in self.links.values()
            for n, request in link.units.items()
        }
        for member, address in self.seen.items():
            now = published.get(member)
            if member not in live:
                continue
            assert now is not None, f"{member} lost {address} while it stays"
            if now != address:
                # Only for a request its address no longer meets, and to one that meets it.
                assert not satisfies(live[member], address), f"{member} moved from {address} to {now} unasked"
                assert satisfies(live[member], now), f"{member} moved to {now}, not what it asks"
        for member, address in published.items():
            if member in live and self.seen.get(member) != address:
                ip = str(ipaddress.IPv4Interface(address).ip)
                assert ip not in self.reserved, f"{member} granted reserved {ip}"
                assert satisfies(live[member], address), f"{member} granted {address}, not what it asks"
                self.seen[member] = address


PROPERTY = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def routed_kube(monkeypatch):
    """Every charm run reaches the current example's fake cluster."""
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: Network.current_kube)


def test_no_address_twice_whoever_leads(juju_version, routed_kube):
    machine = type(f"Network_{juju_version.replace('.', '_')}", (Network,), {"juju_version": juju_version})
    run_state_machine_as_test(machine, settings=PROPERTY)
