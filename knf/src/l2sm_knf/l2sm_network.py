"""The `l2sm_network` interface, v0, in one module: its schema, the provider's side (the
l2sm-network charm reading requests and publishing answers), the requirer's side (the KNF
library: any KNF charm joins L2S-M networks through one relation) and testing helpers for
either side's unit tests.

    import logging

    import ops

    from l2sm_knf import L2smNetworks, NetworkEvent

    logger = logging.getLogger(__name__)


    class MyKnfCharm(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            self.networks = L2smNetworks(self, "networks", addresses=lambda: str(self.config["addresses"]))
            framework.observe(self.networks.on.ready, self._on_network)
            framework.observe(self.networks.on.changed, self._on_network)
            framework.observe(self.on.collect_unit_status, self._on_collect_status)

        def _on_network(self, event: NetworkEvent) -> None:
            for m in self.networks.memberships:  # e.g. render the workload's listen addresses
                logger.info("%s: %s on %s", m.network, m.address, m.interface)

        def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
            event.add_status(self.networks.status())  # "net-a 10.0.1.10/24 on net1; ..."


    if __name__ == "__main__":
        ops.main(MyKnfCharm)

What it does, on every event of interest: publishes each unit's address request and, for
a router, the prefixes it forwards to; patches the application's StatefulSet pod template
(label, `l2sm/networks` annotation for the networks that exist, NET_ADMIN for the charm
container and, for a router, the sysctl net.ipv4.ip_forward=1);
then, once the pod has its interfaces, configures each one's address, MTU and routes with
netlink from the charm container, which shares the pod's network namespace. Pod recreated
by Kubernetes: same unit, same addresses (they live in the network's databag).

What it refuses, always naming what and why in the unit's status (Blocked), and always
changing nothing: an `addresses` value it cannot read or that the network would refuse
(outside the cidr the network published, another prefix length, a pure-L2 network) keeps
the unit asking for what it asked before; a network field that is not valid (`network`,
`assignments`, `rejections`, `routes`, checked one by one, a bad route not costing the
good ones) keeps that field's last good value, with no pod restart, no flush and no `lost`
(only a removed relation is lost); a network never read well is neither added to nor
dropped from the pod template (it keeps what the template carries) while others come and
go; what cannot be configured (an own address off the cidr, an MTU outside 576-1400, an
off-link gateway, a route to a special range) keeps the last applied value; pod annotations
that cannot be read, or were edited on the running pod, keep the last good interfaces of
that pod.

Addresses: an `addresses` entry `net-a=10.0.1.1/24` asks, for every unit, for the first
free address from 10.0.1.1 (`address-from`): unit 0 of a fresh application gets .1, unit 1
the next free one, and a unit that comes back after a scale to 0 (router/1 after router/0)
gets .1 again, so the routes other members have via it stay valid. A unit that holds an
address at or after .1 keeps it. `address` carries what unit N asked before `address-from`
existed (the N-th address after .1, or "" when that is off the network), which a network
charm that does not know `address-from` grants as it always did. Networks not named in
`addresses` hand out pool addresses.

Routers (`forwards=True`; or as `ip_forward_sysctl` says, e.g. a router's option): the pod
template gets the pod-level sysctl net.ipv4.ip_forward=1
(/proc/sys is read-only in the containers). Kubernetes counts it unsafe: each kubelet that
may run the pod needs `--allowed-unsafe-sysctls=net.ipv4.ip_forward` (kubelet config
`allowedUnsafeSysctls`), or the pod fails with SysctlForbidden. `forwarding_enabled()`
tells the charm whether the pod forwards, e.g. to set Blocked while it does not.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import ops
import pydantic
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Pod

from l2sm_core import knf
from l2sm_core.attachments import (
    L2SM_ERROR_ANNOTATION,
    L2SM_NETWORKS_ANNOTATION,
    L2SM_POD_LABEL,
    MULTUS_NETWORKS_ANNOTATION,
    MULTUS_STATUS_ANNOTATION,
    NetworkRequest,
    parse_l2sm_networks,
    read_pod,
    render_l2sm_networks,
)
from l2sm_core.knf import ATTACHMENT_MTU, MIN_MTU
from l2sm_core.manifests.knf import merge_into, pod_template_patch, template_satisfies
from l2sm_core.validation import (
    IPV4_WITH_LENGTH,
    Flag,
    clip,
    describe_validation_error,
    dns1123_label,
    ipv4_prefix,
    route_prefix,
    shown,
    unicast_ipv4,
)
from l2sm_knf.databag import Databag, canonical_json, decode, encode, load_databag
from l2sm_knf.kube import Kube, KubeForbidden, KubeNotFound, trust_message

if TYPE_CHECKING:
    from ops import testing as ops_testing

logger = logging.getLogger(__name__)

INTERFACE = "l2sm_network"
MAX_OFFERED_PREFIXES = knf.MAX_OFFERED_PREFIXES
# Bounds on what a network may send, so a broken or hostile provider cannot flood a member.
MAX_REJECTION = 1024
MAX_ROUTES = 1024
IP_FORWARD_PATH = "/proc/sys/net/ipv4/ip_forward"  # per network namespace: the pod's
NETWORK_TYPES = ("vnet", "ext-vnet", "vlink")  # upstream's L2Network types
# A JSON number only: an MTU sent as "1400" or true is a mistake on the other side.
Mtu = Annotated[int, pydantic.Field(strict=True, ge=MIN_MTU, le=ATTACHMENT_MTU)]


# -- schema (v0) ---------------------------------------------------------------------------
# Field names in the databag are the aliases (dashed); every value is JSON. The schemas refuse
# what would do harm on the other side (an address no host can have, a route that takes over
# every member's traffic, an MTU the attachments cannot carry), so each side can trust what it
# loads. Messages echo values clipped (`shown`): they end up in status lines.


def interface_address(value: str) -> ipaddress.IPv4Interface:
    """An IPv4 address with its prefix length, e.g. 10.0.1.10/24 (no netmask forms)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{shown(value)} needs its prefix length (a.b.c.d/len), e.g. 10.0.1.10/24")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        iface = None
    if iface is None or not IPV4_WITH_LENGTH.fullmatch(value):
        raise ValueError(f"{shown(value)} is not an IPv4 address with prefix length (a.b.c.d/len)")
    # The rules of a network's CIDR (/8-/30) and of a host address on it.
    if not 8 <= iface.network.prefixlen <= 30:
        raise ValueError(f"{shown(value)}: the prefix length must be /8 to /30, as a network's cidr")
    unicast_ipv4(str(iface.ip))
    return iface


def _interface_address(value: str) -> str:
    return str(interface_address(value))


class NetworkRequirerUnitData(Databag):
    """What each KNF unit asks of a network."""

    # The address wanted, with prefix length; "" takes one from the pool.
    address: str = ""
    # Added in v0 without a version change: the first free address at or after this one
    # (with prefix length), superseding `address`; "" (or absent: an older member) for none.
    # Networks that do not know it ignore it (unknown keys are ignored) and grant `address`.
    address_from: str = pydantic.Field("", alias="address-from")
    # Prefixes this unit routes to (a router offers its other networks); others offer none.
    offered_prefixes: list[str] = pydantic.Field(
        default_factory=list, alias="offered-prefixes", max_length=MAX_OFFERED_PREFIXES
    )

    @pydantic.field_validator("address", "address_from")
    @classmethod
    def _address(cls, value: str) -> str:
        return _interface_address(value) if value else ""

    @pydantic.field_validator("offered_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [str(route_prefix(prefix)) for prefix in value]


class NetworkInfo(Databag):
    name: str
    cidr: str = ""  # "" = pure L2: no addresses handed out
    mtu: Mtu
    type: str = "vnet"

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return str(ipv4_prefix(value)) if value else ""

    @pydantic.field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in NETWORK_TYPES:
            raise ValueError(f"{shown(value)} is not an L2S-M network type ({', '.join(NETWORK_TYPES)})")
        return value


class Route(Databag):
    prefix: str
    via: str

    @pydantic.field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return str(route_prefix(value))

    @pydantic.field_validator("via")
    @classmethod
    def _via(cls, value: str) -> str:
        return str(unicast_ipv4(value))


class NetworkProviderAppData(Databag):
    """What the network answers, per relation."""

    network: NetworkInfo
    # unit name -> address with prefix length, for the units of this relation
    assignments: dict[str, str] = pydantic.Field(default_factory=dict)
    # unit name -> why its request was refused (bounded: it ends up in a status line)
    rejections: dict[str, Annotated[str, pydantic.Field(max_length=MAX_REJECTION)]] = pydantic.Field(
        default_factory=dict
    )
    # every member's offered prefix (but this network's own), via that member, across relations
    routes: list[Route] = pydantic.Field(default_factory=list, max_length=MAX_ROUTES)

    @pydantic.field_validator("assignments")
    @classmethod
    def _assignments(cls, value: dict[str, str]) -> dict[str, str]:
        return {unit: _interface_address(address) for unit, address in value.items()}

    @pydantic.model_validator(mode="after")
    def _assignments_on_the_network(self) -> NetworkProviderAppData:
        cidr = self.network.cidr
        if self.assignments and not cidr:
            raise ValueError("assignments: a pure L2 network (no cidr) hands out no addresses")
        if not cidr:
            return self
        net = ipaddress.IPv4Network(cidr)
        for unit, address in sorted(self.assignments.items()):
            iface = ipaddress.IPv4Interface(address)
            if iface.network != net or iface.ip in (net.network_address, net.broadcast_address):
                raise ValueError(f"assignments: {shown(unit)} {address} is not a host address of {cidr}")
        return self


# -- provider side (the l2sm-network charm) -------------------------------------------------


def read_request(relation: ops.Relation, unit: ops.Unit) -> NetworkRequirerUnitData:
    """What a member unit asks; InvalidDatabag names each field it got wrong."""
    return load_databag(relation, NetworkRequirerUnitData, unit)


def publish(relation: ops.Relation, app: ops.Application, data: NetworkProviderAppData) -> None:
    """The network's answer on one relation, in the one encoding (same content, same bytes)."""
    relation.save(data, app, encoder=canonical_json)


# -- requirer side (any KNF charm) ---------------------------------------------------------


Applier = Callable[[list[knf.InterfacePlan]], list[str]]
STATUS_MAX = 480  # characters: a status line, not a log
_FLAG: pydantic.TypeAdapter[bool] = pydantic.TypeAdapter(Flag)
_KEPT = "keeping the last good configuration"
_MAPPING_ANNOTATIONS = (L2SM_NETWORKS_ANNOTATION, MULTUS_NETWORKS_ANNOTATION, MULTUS_STATUS_ANNOTATION)


def _default_applier(plans: list[knf.InterfacePlan]) -> list[str]:
    from l2sm_core.netlink import apply_plans  # pyroute2 only where netlink is really used

    return apply_plans(plans)


class NetworkEvent(ops.EventBase):
    """About one network: `network` is its name."""

    def __init__(self, handle: ops.Handle, network: str):
        super().__init__(handle)
        self.network = network

    def snapshot(self) -> dict[str, Any]:
        return {"network": self.network}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.network = snapshot["network"]


class NetworkReadyEvent(NetworkEvent):
    """The network's interface carries its address and routes for the first time."""


class NetworkChangedEvent(NetworkEvent):
    """Address, MTU, interface or routes of a joined network changed."""


class NetworkLostEvent(NetworkEvent):
    """The network is gone (relation removed)."""


class L2smNetworksEvents(ops.ObjectEvents):
    ready = ops.EventSource(NetworkReadyEvent)
    changed = ops.EventSource(NetworkChangedEvent)
    lost = ops.EventSource(NetworkLostEvent)


@dataclass
class _Answer:
    """One network's answer for this unit, field by field: a field the network got wrong
    stays at its last good value, and `problems` says which and why."""

    network: NetworkInfo | None
    address: str | None = None
    rejection: str | None = None
    routes: tuple[tuple[str, str], ...] = ()
    problems: dict[str, str] = field(default_factory=dict)  # databag field -> why

    def stored(self) -> dict[str, Any]:
        assert self.network is not None
        return {
            "network": self.network.model_dump(by_alias=True),
            "address": self.address,
            "rejection": self.rejection,
            "routes": [list(r) for r in self.routes],
        }


class L2smNetworks(ops.Object):
    on = L2smNetworksEvents()  # type: ignore[reportAssignmentType]
    _stored = ops.StoredState()

    def __init__(
        self,
        charm: ops.CharmBase,
        relation_name: str = "networks",
        *,
        addresses: Callable[[], str] | None = None,
        forwards: bool | Callable[[], bool] = False,
        container: str | None = None,
        workload_net_admin: bool = False,
        applier: Applier | None = None,
        ip_forward_path: str | os.PathLike[str] | None = None,
        ip_forward_sysctl: bool | Callable[[], object] | None = None,
    ):
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self._addresses = addresses or (lambda: "")
        self._forwards = forwards
        # The charm container configures the interfaces; a workload that sets up networking
        # itself (a router's nftables) gets NET_ADMIN too when asked.
        self._container = container
        self._workload_net_admin = workload_net_admin
        self._applier = applier or _default_applier
        self._ip_forward_path = ip_forward_path  # None: IP_FORWARD_PATH, read when asked
        # Whether the pod template asks for the ip_forward sysctl (None: when it forwards). A
        # kubelet that does not allow it refuses the pod, so a router may make it an option.
        self._ip_forward_sysctl = ip_forward_sysctl
        self._kube: Kube | None = None
        self._blocked: list[str] = []
        self._waiting: str | None = None
        self._maintenance: str | None = None
        self._memberships: list[knf.Membership] = []
        self._reconciled = False
        self._unmatched: list[str] = []
        # `received`: each relation's last good answer, field by field (relation id -> fields);
        # `interfaces`: the last readable interface mapping, for the pod (uid) it was read from;
        # `departed`: networks seen leaving while some answer is unreadable (see `_departed`).
        self._stored.set_default(
            applied="{}",
            last_status='["waiting", "not configured yet"]',
            received="{}",
            interfaces="{}",
            departed="[]",
        )
        events = charm.on[relation_name]
        for event in (
            events.relation_created,
            events.relation_joined,
            events.relation_changed,
            events.relation_departed,
            events.relation_broken,
            charm.on.upgrade_charm,
            charm.on.config_changed,
            charm.on.start,
            charm.on.update_status,
            charm.on.leader_elected,
        ):
            self.framework.observe(event, self._reconcile)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            app = self._charm.app.name
            self._kube = Kube.connect(f"{app}-l2sm")
        return self._kube

    def forwarding_enabled(self) -> bool:
        """Whether this pod forwards IPv4 (net.ipv4.ip_forward is 1), as a router must: the
        charm container shares the pod's network namespace, so it reads the workload's value.
        With `forwards` the library sets the sysctl in the pod template; it stays 0 when the
        pod has not restarted with it yet. False when it cannot be read."""
        try:
            return Path(self._ip_forward_path or IP_FORWARD_PATH).read_text().strip() == "1"
        except (OSError, UnicodeDecodeError):
            return False

    @property
    def memberships(self) -> list[knf.Membership]:
        """The networks this unit is on, as the last reconcile read them: how a KNF charm
        learns its own address, interface and MTU on each (e.g. to render listen addresses in
        a ready, changed or lost handler)."""
        return list(self._memberships)

    # -- the work -------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        self._reconciled = True
        self._blocked, self._waiting, self._maintenance, self._unmatched = [], None, None, []
        # ops already leaves out a relation being broken: only that one is lost.
        relations = [r for r in self.model.relations[self._relation_name] if r.app]
        # A refused option changes nothing the unit publishes (it keeps asking for what it
        # asked before); the rest goes on, so a network that leaves is still detached.
        # Options first: what the operator can fix leads the status.
        requests = self._requests()
        forwards = self._forwards_value()
        known = _known_names(self._stored.received)
        answers = self._read_answers(relations)
        departed = self._departed(known, answers)
        if requests is not None and forwards is not None:
            self._unmatched = sorted(set(requests) - {r.app.name for r in relations if r.app})
            self._publish(relations, answers, requests, forwards)
        try:
            pod = self._patch_template_and_read_pod(
                answers, departed, self._net_admin_containers(), self._sysctl_value(forwards)
            )
        except KubeForbidden:
            self._blocked.append(trust_message(self._charm.app.name))
            return
        except KubeNotFound as exc:  # the application is being removed
            self._waiting = str(exc)
            return
        interfaces = self._interfaces(pod)
        self._memberships = self._read_memberships(relations, answers, interfaces)
        self._configure(pod, interfaces, departed if _unreadable(answers) else None)

    def _requests(self) -> dict[str, str] | None:
        try:
            return knf.parse_addresses(self._addresses())
        except ValueError as exc:
            self._blocked.append(f"option 'addresses': {exc}")
            return None

    def _forwards_value(self) -> bool | None:
        value = self._forwards() if callable(self._forwards) else self._forwards
        return self._flag("forwards", value)

    def _net_admin_containers(self) -> tuple[str, ...] | None:
        """Where NET_ADMIN goes; None (the template is left alone) for a value that is no boolean."""
        wanted = self._flag("workload_net_admin", self._workload_net_admin)
        if wanted is None:
            return None
        return ("charm", self._container) if self._container and wanted else ("charm",)

    def _sysctl_value(self, forwards: bool | None) -> bool | None:
        if self._ip_forward_sysctl is None:
            return forwards
        wanted = self._ip_forward_sysctl
        return self._flag("ip-forward-sysctl", wanted() if callable(wanted) else wanted)

    def _flag(self, option: str, value: Any) -> bool | None:
        try:
            return _FLAG.validate_python(value)
        except pydantic.ValidationError:
            self._blocked.append(f"option '{option}': {shown(value)} is not a boolean: use true or false")
            return None

    # -- what the networks say --------------------------------------------------------------

    def _read_answers(self, relations: list[ops.Relation]) -> dict[int, _Answer | None]:
        """Each relation's answer (None: not answered yet). A bad field keeps its last good
        value: a network that publishes a bad route must not cost the unit its address, its
        interface or a pod restart."""
        received: dict[str, Any] = json.loads(self._stored.received)
        answers: dict[int, _Answer | None] = {}
        names: dict[str, str] = {}
        for relation in sorted(relations, key=lambda r: r.id):
            assert relation.app is not None
            answer = self._read_answer(relation, received.get(str(relation.id)))
            if answer is not None and answer.network is not None:
                other = names.setdefault(answer.network.name, relation.app.name)
                if other != relation.app.name:
                    # Two applications claiming one L2S-M network would share one interface.
                    self._blocked.append(
                        f"{relation.app.name} and {other} both say they are network "
                        f"{answer.network.name!r}: {relation.app.name} is ignored"
                    )
                    answer = None
            answers[relation.id] = answer
            for name, why in (answer.problems if answer else {}).items():
                logger.error("network %s sent bad data (field %r): %s", relation.app.name, name, why)
        self._blocked += [
            self._bad_data_line(r, answers[r.id]) for r in relations if _has_problems(answers[r.id])
        ]
        self._stored.received = json.dumps(
            {str(rid): a.stored() for rid, a in sorted(answers.items()) if a and a.network}, sort_keys=True
        )
        return answers

    def _departed(self, known: dict[int, str], answers: dict[int, _Answer | None]) -> set[str]:
        """Networks this unit saw go (relation removed, or renamed) and not back since. Only
        needed while some answer is unreadable: a name on the pod that no readable answer
        explains is then that network's unless it is known gone. Kept across dispatches, so
        a unit that saw a network go as a follower still knows once it leads."""
        if not _unreadable(answers):
            self._stored.departed = "[]"
            return set()
        gone = set(json.loads(self._stored.departed))
        for rid, name in known.items():
            answer = answers.get(rid)
            if not (answer is not None and answer.network is None):
                gone.add(name)  # an unreadable relation's own last name is not known gone
        gone -= _readable_names(answers)
        self._stored.departed = json.dumps(sorted(gone))
        return gone

    def _bad_data_line(self, relation: ops.Relation, answer: _Answer | None) -> str:
        assert relation.app is not None and answer is not None
        fields = ", ".join(f"'{f}'" for f in answer.problems)
        why = "; ".join(answer.problems.values())
        kept = _KEPT if answer.network else "not joined until it sends valid data"
        plural = "s" if len(answer.problems) > 1 else ""
        return f"{relation.app.name} sent bad data (field{plural} {fields}): {clip(why, 200)}; {kept}"

    def _read_answer(self, relation: ops.Relation, last: dict[str, Any] | None) -> _Answer | None:
        assert relation.app is not None
        bag = relation.data[relation.app]
        unit = self.model.unit.name
        try:
            last_network = NetworkInfo.model_validate(last["network"]) if last else None
        except (pydantic.ValidationError, KeyError, TypeError):
            last, last_network = None, None  # kept by an older version, under older rules
        answer = _Answer(network=None)
        raw = bag.get("network")
        if not raw:
            if last is None:
                return None  # not answered yet
            answer.problems["network"] = "missing"
        else:
            try:
                answer.network = NetworkInfo.model_validate(_json(raw))
            except ValueError as exc:
                answer.problems["network"] = _why(exc)
        if answer.network is None:
            if last_network is None:
                return answer  # never good: not joined until it is
            answer.network = last_network
        last = last or {"address": None, "rejection": None, "routes": []}
        answer.address = self._own_entry(bag, "assignments", unit, answer, last["address"])
        answer.rejection = self._own_entry(bag, "rejections", unit, answer, last["rejection"])
        answer.routes = self._routes(bag, answer, [tuple(r) for r in last["routes"]])
        return answer

    def _check(self, answer: _Answer, key: str, value: Any) -> NetworkProviderAppData:
        """`value` as field `key` through the interface's own schema, beside the network it
        belongs to (a schema rule may look at both)."""
        assert answer.network is not None
        return NetworkProviderAppData.model_validate(
            {"network": answer.network.model_dump(by_alias=True), key: value}
        )

    def _own_entry(self, bag: Any, key: str, unit: str, answer: _Answer, last: str | None) -> str | None:
        """This unit's entry of `assignments` or `rejections` (the others are not ours to judge)."""
        raw = bag.get(key)
        if raw is None:
            return None
        try:
            value = _json(raw)
            if not isinstance(value, dict):
                raise ValueError(f"must be a JSON object of unit name -> value, got {shown(value)}")
            if unit not in value:
                return None
            return getattr(self._check(answer, key, {unit: value[unit]}), key)[unit]
        except ValueError as exc:
            answer.problems[key] = _why(exc, depth=2)
            return last

    def _routes(self, bag: Any, answer: _Answer, last: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Good routes are taken, bad ones named; a bad one for a prefix routed before keeps
        its last good gateway."""
        raw = bag.get("routes")
        if raw is None:
            return ()
        try:
            value = _json(raw)
            if not isinstance(value, list):
                raise ValueError(f"must be a JSON list of {{prefix, via}}, got {shown(value)}")
        except ValueError as exc:
            answer.problems["routes"] = _why(exc)
            return tuple(last)
        previous = dict(last)
        routes: list[tuple[str, str]] = []
        bad = []
        for index, entry in enumerate(value):
            try:
                route = self._check(answer, "routes", [entry]).routes[0]
                routes.append((route.prefix, route.via))
            except ValueError as exc:
                bad.append(f"entry {index}: {_why(exc, depth=2)}")
                prefix = entry.get("prefix") if isinstance(entry, dict) else None
                if isinstance(prefix, str) and prefix in previous:
                    routes.append((prefix, previous[prefix]))
        if bad:
            answer.problems["routes"] = "; ".join(bad)
        return tuple(dict.fromkeys(routes))

    # -- what the unit asks -----------------------------------------------------------------

    def _unit_number(self) -> int:
        return int(self.model.unit.name.rpartition("/")[2])

    def _publish(
        self,
        relations: list[ops.Relation],
        answers: dict[int, _Answer | None],
        requests: dict[str, str],
        forwards: bool,
    ) -> None:
        # Work out every request before writing any: a bad one changes nothing anywhere.
        outgoing = []
        try:
            for relation in relations:
                assert relation.app is not None
                answer = answers[relation.id]
                if answer is None or answer.network is None:
                    # Ask only once the network has said its name: `addresses` is keyed by it, and
                    # a premature pool request could take an address a peer is about to ask for.
                    continue
                info = answer.network
                base = requests.get(info.name) or requests.get(relation.app.name)
                # Every unit asks from `base` (a unit back after a scale to 0 gets its
                # predecessor's address); `address` keeps an older network granting as before.
                address, start = (
                    knf.unit_request(info.name, base, self._unit_number(), info.cidr) if base else ("", "")
                )
                offered: list[str] = []
                if forwards:
                    others = [
                        a.network.cidr for rid, a in answers.items() if rid != relation.id and a and a.network
                    ]
                    try:
                        offered = knf.offered_prefixes(others)
                    except ValueError as exc:
                        # Not the operator's option: the router sits on more networks than a
                        # network takes prefixes from one member.
                        self._blocked.append(str(exc))
                        return
                data = NetworkRequirerUnitData.model_validate(
                    {"address": address, "address-from": start, "offered-prefixes": offered}
                )
                outgoing.append((relation, data))
        except ValueError as exc:
            detail = (
                describe_validation_error(exc, "field") if isinstance(exc, pydantic.ValidationError) else exc
            )
            self._blocked.append(f"option 'addresses': {detail}")
            return
        for relation, data in outgoing:
            relation.save(data, self.model.unit, encoder=canonical_json)

    # -- the pod ------------------------------------------------------------------------------

    def _patch_template_and_read_pod(
        self,
        answers: dict[int, _Answer | None],
        departed: set[str],
        net_admin: tuple[str, ...] | None,
        forwards: bool | None,
    ) -> dict[str, Any]:
        app, namespace = self._charm.app.name, self.model.name
        # A flag that is no boolean leaves the template alone (the status says why).
        if self.model.unit.is_leader() and net_admin is not None and forwards is not None:
            live = self.kube.get(StatefulSet, app, namespace) or {}
            have = {
                c["name"]
                for c in ((live.get("spec") or {}).get("template") or {})
                .get("spec", {})
                .get("containers", [])
            }
            networks = self._template_networks(answers, departed, live)
            if networks is not None:
                patch = pod_template_patch(
                    app, namespace, networks, tuple(c for c in net_admin if c in have), forwarding=forwards
                )
                # No network yet and none to detach: leave the pod alone (a patch restarts it).
                wanted = bool(networks) or _carries_l2sm(live)
                if live and wanted and not template_satisfies(live, patch):
                    self.kube.apply_patch(StatefulSet, app, namespace, patch)
                    self._maintenance = "restarting pods to change their L2S-M networks"
                    logger.info("patched the pod template for networks: %s", ", ".join(networks) or "none")
        pod = self.kube.get(Pod, self.model.unit.name.replace("/", "-"), namespace) or {}
        attachments = read_pod(pod)
        annotated = sorted(r.name for r in attachments.requests)
        readable = not any(p.startswith(L2SM_NETWORKS_ANNOTATION) for p in attachments.problems)
        expected = _readable_names(answers)
        if _unreadable(answers):
            expected |= set(annotated) - departed  # what the pod carries for the unknown one
        if readable and annotated != sorted(expected) and not self._maintenance:
            self._maintenance = "waiting for the pod to restart with its L2S-M networks"
        return pod

    def _template_networks(
        self, answers: dict[int, _Answer | None], departed: set[str], statefulset: dict[str, Any]
    ) -> list[str] | None:
        """The networks the pod template should name: those that exist (the upstream webhook
        does not wait for a missing one). While some answer is unreadable, which network it is
        is unknown: a name the template carries that no readable answer explains, and that is
        not known gone, stays, so that network is neither added nor dropped while the others
        come and go. None (leave the template alone) when the template's annotation cannot be
        read: what it carries for that network cannot be told."""
        networks = _readable_names(answers)
        if not _unreadable(answers):
            return sorted(networks)
        meta = ((statefulset.get("spec") or {}).get("template") or {}).get("metadata") or {}
        try:
            carried = parse_l2sm_networks((meta.get("annotations") or {}).get(L2SM_NETWORKS_ANNOTATION, ""))
            kept = {r.name for r in carried} - networks - departed
            for name in kept:
                dns1123_label(name)  # the patch takes label names only: a dotted one is not ours
        except ValueError as exc:
            logger.error("pod template left alone while a network's answer is unreadable: %s", exc)
            return None
        if kept:
            logger.info(
                "kept in the pod template while a network's answer is unreadable: %s", ", ".join(sorted(kept))
            )
        return sorted(networks | kept)

    def _interfaces(self, pod: dict[str, Any]) -> dict[str, str]:
        """Network name -> interface, from the pod's annotations. The webhook and Multus write
        them once, when the pod is made: on a running pod (same uid) an interface once known
        never moves or goes. So annotations that cannot be read, or that were edited to say
        otherwise (anyone who may edit the pod may), keep the last good mapping of this pod."""
        notes = _annotations(pod)
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        raw = {key: notes.get(key, "") for key in _MAPPING_ANNOTATIONS}
        interfaces, problems = knf.read_interfaces(*raw.values())
        last = json.loads(self._stored.interfaces)
        same_pod = bool(uid) and last.get("pod") == uid
        known: dict[str, str] = last.get("interfaces", {}) if same_pod else {}
        moved = sorted(n for n, ifname in known.items() if interfaces.get(n) != ifname)
        if not problems and not moved:
            self._stored.interfaces = json.dumps(
                {"pod": uid, "interfaces": interfaces, "annotations": raw}, sort_keys=True
            )
            return interfaces
        if problems:
            why = f"unreadable pod annotation: {clip('; '.join(problems), 200)}"
        else:
            edited = [k for k in _MAPPING_ANNOTATIONS if raw[k] != last.get("annotations", {}).get(k)]
            why = (
                f"pod annotation {', '.join(edited) or '?'} edited on the running pod: it no longer "
                f"gives {clip(', '.join(moved), 100)} the interface {'they' if len(moved) > 1 else 'it'} had"
            )
        logger.error("%s", why)
        kept = "keeping the last good interfaces" if same_pod else "its interfaces are left alone"
        self._blocked.append(f"{why}; {kept}")
        # What is known stays; what is new is taken only where it claims nothing known.
        result = dict(known)
        for name, ifname in interfaces.items():
            if name not in result and ifname not in result.values():
                result[name] = ifname
        return result

    def _read_memberships(
        self,
        relations: list[ops.Relation],
        answers: dict[int, _Answer | None],
        interfaces: dict[str, str],
    ) -> list[knf.Membership]:
        result = []
        for relation in relations:
            answer = answers[relation.id]
            if answer is None or answer.network is None:
                continue
            name = answer.network.name
            result.append(
                knf.Membership(
                    network=name,
                    interface=interfaces.get(name),
                    address=answer.address,
                    rejection=answer.rejection,
                    mtu=answer.network.mtu,
                    routes=answer.routes,
                    cidr=answer.network.cidr,
                )
            )
        return sorted(result, key=lambda m: m.network)

    def _configure(self, pod: dict[str, Any], interfaces: dict[str, str], departed: set[str] | None) -> None:
        """`departed` None: every answer was read, so whatever is not joined goes; else only
        what is known gone (the rest may be the unreadable network's)."""
        error = _annotations(pod).get(L2SM_ERROR_ANNOTATION)
        if error and str(error).strip():
            self._blocked.append(
                f"L2S-M could not attach this pod: {clip(' '.join(str(error).split()), 200)}"
            )
        applied: dict[str, list] = json.loads(self._stored.applied)
        connected = tuple(m.cidr for m in self._memberships if m.cidr)
        plans: list[knf.InterfacePlan] = []
        effective: dict[str, knf.InterfacePlan] = {}
        for m in self._memberships:
            checked = m.checked_plan(connected, _last_plan(m, applied.get(m.network)))
            for refused in checked.refused:
                self._blocked.append(
                    f"{m.network}: cannot apply {refused}; keeping the last applied configuration"
                )
                logger.error("network %s: cannot apply %s", m.network, refused)
            if checked.plan:
                plans.append(checked.plan)
                effective[m.network] = checked.plan
        # Networks still on the pod but no longer joined: nothing of ours may stay on them
        # (unless a network's answer is unreadable: the interface may be that network's).
        joined = {m.network for m in self._memberships}
        plans += [
            knf.InterfacePlan(i)
            for name, i in sorted(interfaces.items())
            if name not in joined and (departed is None or name in departed)
        ]
        if plans:
            try:
                for change in self._applier(plans):
                    logger.info("netlink: %s", change)
            except Exception as exc:  # the interface may not be there yet; the next event retries
                self._waiting = f"configuring interfaces: {clip(str(exc), 200)}"
                return
        self._emit_changes(effective, departed)

    def _emit_changes(self, effective: dict[str, knf.InterfacePlan], departed: set[str] | None) -> None:
        before: dict[str, list] = json.loads(self._stored.applied)
        now = {
            m.network: _applied_entry(effective[m.network])
            for m in self._memberships
            # A refused new request with an address still held keeps that address (the network
            # never takes one back): not lost.
            if m.interface
            and not m.waiting_for_address
            and (m.address or not m.rejection)
            and m.network in effective
        }
        if departed is not None:
            # An unreadable answer may be one of these networks: not lost while it is unknown.
            joined = {m.network for m in self._memberships}
            now |= {n: entry for n, entry in before.items() if n not in joined and n not in departed}
        self._stored.applied = json.dumps(now, sort_keys=True)
        for network in sorted(now):
            if network not in before:
                self.on.ready.emit(network)
            elif before[network] != now[network]:
                self.on.changed.emit(network)
        for network in sorted(set(before) - set(now)):
            if not any(m.network == network for m in self._memberships):
                self.on.lost.emit(network)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> ops.StatusBase:
        """One line for collect-status. In a dispatch that did not reconcile (an action, a
        workload's pebble-ready) it is the last reconcile's, not a partial fresh look."""
        if not self._reconciled:
            name, message = json.loads(self._stored.last_status)
            return ops.StatusBase.from_name(name, message)
        status = self._assess()
        self._stored.last_status = json.dumps([status.name, status.message])
        return status

    def _assess(self) -> ops.StatusBase:
        blocked = self._blocked + [m.status_line() for m in self._memberships if m.rejection]
        if blocked:
            return ops.BlockedStatus(clip("; ".join(dict.fromkeys(blocked)), STATUS_MAX))
        if self._maintenance:
            return ops.MaintenanceStatus(self._maintenance)
        if self._waiting:
            return ops.WaitingStatus(self._waiting)
        if not self.model.relations[self._relation_name]:
            return ops.ActiveStatus("no L2S-M network")
        if not self._memberships:
            return ops.WaitingStatus("waiting for the networks to answer")
        if any(not m.interface or m.waiting_for_address for m in self._memberships):
            return ops.WaitingStatus(clip("; ".join(m.status_line() for m in self._memberships), STATUS_MAX))
        message = "; ".join(m.status_line() for m in self._memberships)
        joined = {m.network for m in self._memberships}
        unmatched = [name for name in self._unmatched if name not in joined]
        if unmatched:
            # Likely a typo, or a network not integrated yet: say so rather than ignore it.
            message += f"; 'addresses' names no joined network: {', '.join(unmatched)}"
        return ops.ActiveStatus(clip(message, STATUS_MAX))


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError(f"not JSON: {shown(raw)}") from None


def _why(exc: ValueError, depth: int = 0) -> str:
    """What is wrong, naming what lies below the field (`depth` location parts, the field and
    the unit or list index, are left out: the caller names those)."""
    if not isinstance(exc, pydantic.ValidationError):
        return clip(str(exc), 200)
    lines = []
    for error in exc.errors():
        msg = error["msg"].removeprefix("Value error, ")
        inner = ".".join(str(part) for part in error["loc"][depth:])
        lines.append(f"'{clip(inner, 40)}': {clip(msg, 160)}" if inner else clip(msg, 160))
    return clip("; ".join(lines), 200)


def _unreadable(answers: dict[int, _Answer | None]) -> bool:
    """Some network answered, but never readably for this unit: which network it is, is unknown."""
    return any(a is not None and a.network is None for a in answers.values())


def _readable_names(answers: dict[int, _Answer | None]) -> set[str]:
    return {a.network.name for a in answers.values() if a and a.network}


def _known_names(received: str) -> dict[int, str]:
    """Relation id -> network name, of the last good answers stored (read defensively: an
    older version may have stored them)."""
    result = {}
    for rid, entry in json.loads(received).items():
        network = entry.get("network") if isinstance(entry, dict) else None
        name = network.get("name") if isinstance(network, dict) else None
        if isinstance(name, str) and rid.isdigit():
            result[int(rid)] = name
    return result


def _has_problems(answer: _Answer | None) -> bool:
    return bool(answer and answer.problems)


def _last_plan(m: knf.Membership, entry: list | None) -> knf.InterfacePlan | None:
    """The plan applied last for this network (stored as [interface, address, mtu, routes])."""
    if not entry or not m.interface:
        return None
    _interface, address, mtu, routes = entry
    return knf.InterfacePlan(m.interface, mtu, (address,) if address else (), tuple(tuple(r) for r in routes))


def _applied_entry(plan: knf.InterfacePlan) -> list:
    return [
        plan.ifname,
        plan.addresses[0] if plan.addresses else None,
        plan.mtu,
        [list(r) for r in plan.routes],
    ]


def _annotations(pod: dict[str, Any]) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def _carries_l2sm(statefulset: dict[str, Any]) -> bool:
    meta = ((statefulset.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return "l2sm" in (meta.get("labels") or {}) or L2SM_NETWORKS_ANNOTATION in (meta.get("annotations") or {})


# -- testing (for KNF and network charms' unit tests) ---------------------------------------
# Relation data goes in through the schema and is encoded as the other side writes it, so a
# test cannot build what a real network or member could not send (build a testing.Relation
# by hand for bad input). ops.testing is imported only when these are called: a charm runs
# without ops[testing].

# Keys Juju itself writes into every unit databag.
JUJU_UNIT_KEYS = ("egress-subnets", "ingress-address", "private-address")
_FABRIC = "l2sm"  # namespace and overlay of the attachments FakeCluster makes


def network_relation(
    name: str,
    cidr: str = "",
    *,
    mtu: int = ATTACHMENT_MTU,
    network_type: str = "vnet",
    assignments: Mapping[str, str] | None = None,
    rejections: Mapping[str, str] | None = None,
    routes: Iterable[tuple[str, str]] = (),
    endpoint: str = "networks",
    remote_app_name: str | None = None,
    **relation: Any,
) -> ops_testing.Relation:
    """A network as a KNF charm's test sees it: the relation on `endpoint`, with the app data
    l2sm-network publishes for network `name` (`assignments` and `rejections` by unit name,
    `routes` as (prefix, via)). The remote application is named after the network unless
    `remote_app_name` says otherwise; other keyword arguments (id, local_unit_data, ...) go to
    ops.testing.Relation. A pure L2 network has no cidr."""
    from ops import testing

    answer = NetworkProviderAppData.model_validate(
        {
            "network": {"name": name, "cidr": cidr, "mtu": mtu, "type": network_type},
            "assignments": dict(assignments or {}),
            "rejections": dict(rejections or {}),
            "routes": [{"prefix": prefix, "via": via} for prefix, via in routes],
        }
    )
    return testing.Relation(
        endpoint, remote_app_name=remote_app_name or name, remote_app_data=encode(answer), **relation
    )


def members_relation(
    app: str,
    requests: Mapping[int, NetworkRequirerUnitData | Mapping[str, Any] | None],
    *,
    endpoint: str = "network",
    **relation: Any,
) -> ops_testing.Relation:
    """KNF members as a network charm's test sees them: application `app`, and per unit
    number the request its KNF library published, a NetworkRequirerUnitData or its fields by
    alias (`{"address": "10.0.1.10/24", "offered-prefixes": [...]}`; `{}` asks the pool), or
    None for a unit that has written nothing yet. Other keyword arguments go to
    ops.testing.Relation."""
    from ops import testing

    units = {}
    for number, request in requests.items():
        bag = {key: f"192.0.2.{number % 250 + 1}" for key in JUJU_UNIT_KEYS}
        if request is not None:
            bag |= encode(NetworkRequirerUnitData.model_validate(request))
        units[number] = bag
    return testing.Relation(endpoint, remote_app_name=app, remote_units_data=units, **relation)


def published_request(relation: ops_testing.Relation) -> NetworkRequirerUnitData:
    """What this KNF unit asks on `relation` (from a test's output state), read strictly:
    InvalidDatabag for a key outside the schema, a value not JSON or not valid."""
    return decode(relation.local_unit_data, NetworkRequirerUnitData, ignore=JUJU_UNIT_KEYS)


def published_answer(relation: ops_testing.Relation) -> NetworkProviderAppData:
    """What the network charm answered on `relation` (from a test's output state), read
    strictly as `published_request` reads."""
    return decode(relation.local_app_data, NetworkProviderAppData)


class FakeCluster:
    """Kubernetes and netlink as L2smNetworks meets them, for a KNF charm's unit tests (no
    cluster, no root): the application's StatefulSet, whose pod template the leader patches;
    each unit's pod, read for the interfaces L2S-M attached to it; and `applied`, every batch
    of interface plans the library configured.

        cluster = FakeCluster("my-knf", containers=("charm", "workload"))
        with cluster.installed():
            out = ctx.run(ctx.on.config_changed(), state)  # the leader patches the template
            cluster.restart_pods()  # the pods come back with their L2S-M interfaces
            out = ctx.run(ctx.on.start(), out)  # and the library configures them
        assert cluster.applied[-1][0].addresses == ("10.0.1.10/24",)
    """

    def __init__(self, app: str, *, containers: Iterable[str] = ("charm",)):
        self.app = app
        self.forbidden = False  # True: the API server refuses the charm, as without --trust
        labels = {"app.kubernetes.io/name": app}
        # Shaped as Juju makes a sidecar charm's StatefulSet.
        self.statefulset: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": app, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": c, "image": f"{c}:test"} for c in containers]},
                },
            },
        }
        self.pods: dict[int, dict[str, Any]] = {}  # unit number -> its pod, made when first read
        self.patches: list[dict[str, Any]] = []  # StatefulSet patches, in order
        self.applied: list[list[knf.InterfacePlan]] = []
        self._uids = itertools.count(1)

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeCluster]:
        """While inside, every L2smNetworks talks to this cluster and applies plans here."""
        from unittest import mock

        with (
            mock.patch.object(Kube, "connect", lambda field_manager: self),
            mock.patch(f"{__name__}._default_applier", self._apply),
        ):
            yield self

    def networks(self) -> list[str]:
        """The networks the pod template names, in the order interfaces are attached."""
        meta = self.statefulset["spec"]["template"]["metadata"]
        return [
            r.name
            for r in parse_l2sm_networks((meta.get("annotations") or {}).get(L2SM_NETWORKS_ANNOTATION, ""))
        ]

    def net_admin(self) -> list[str]:
        """The containers the pod template gives NET_ADMIN."""
        return [
            c["name"]
            for c in self.statefulset["spec"]["template"]["spec"]["containers"]
            if "NET_ADMIN" in ((c.get("securityContext") or {}).get("capabilities") or {}).get("add", [])
        ]

    def sysctls(self) -> dict[str, str]:
        """The pod template's sysctls, name -> value (a router's: net.ipv4.ip_forward=1)."""
        context = self.statefulset["spec"]["template"]["spec"].get("securityContext") or {}
        return {s["name"]: s["value"] for s in context.get("sysctls") or []}

    def restart_pods(self) -> None:
        """What Kubernetes and L2S-M do after a template change: each pod read so far is made
        anew (a new uid) and gets an interface per network the template names, net1, net2, ...
        in its order, annotated as the webhook and Multus annotate it."""
        networks = self.networks()
        for unit in self.pods:
            self.pods[unit] = self._pod(unit, networks)

    # The two calls of the Kube adapter the library makes.

    def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._guard()
        if kind is StatefulSet:
            return copy.deepcopy(self.statefulset) if name == self.app else None
        if kind is Pod:
            app, _, number = name.rpartition("-")
            if app != self.app or not number.isdigit():
                return None
            unit = int(number)
            if unit not in self.pods:
                self.pods[unit] = self._pod(unit, [])
            return copy.deepcopy(self.pods[unit])
        raise NotImplementedError(f"FakeCluster holds no {kind.__name__}")

    def apply_patch(self, kind: Any, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        self._guard()
        if kind is not StatefulSet or name != self.app:
            raise KubeNotFound(f"cannot patch {kind.__name__} {name}: not in FakeCluster")
        self.patches.append(copy.deepcopy(patch))
        merged = merge_into(self.statefulset, patch)
        # Server-side apply drops what this manager applied before and leaves out now.
        meta = merged["spec"]["template"]["metadata"]
        wanted = patch["spec"]["template"]["metadata"]
        for section, key in (("labels", L2SM_POD_LABEL), ("annotations", L2SM_NETWORKS_ANNOTATION)):
            if key not in (wanted.get(section) or {}):
                (meta.get(section) or {}).pop(key, None)
        if "securityContext" not in patch["spec"]["template"]["spec"]:
            context = merged["spec"]["template"]["spec"].get("securityContext") or {}
            context.pop("sysctls", None)
        self.statefulset = merged

    def _guard(self) -> None:
        if self.forbidden:
            raise KubeForbidden("forbidden: the service account cannot do this")

    def _apply(self, plans: list[knf.InterfacePlan]) -> list[str]:
        self.applied.append(list(plans))
        return [f"configured {plan.ifname}" for plan in plans]

    def _pod(self, unit: int, networks: list[str]) -> dict[str, Any]:
        notes = {}
        if networks:
            ports = range(1, len(networks) + 1)
            notes = {
                L2SM_NETWORKS_ANNOTATION: render_l2sm_networks([NetworkRequest(n) for n in networks]),
                MULTUS_NETWORKS_ANNOTATION: json.dumps(
                    [{"name": f"{_FABRIC}-veth{port}", "namespace": _FABRIC} for port in ports]
                ),
                MULTUS_STATUS_ANNOTATION: json.dumps(
                    [{"name": "k8s-pod-network", "interface": "eth0", "default": True}]
                    + [
                        {"name": f"{_FABRIC}/{_FABRIC}-veth{port}", "interface": f"net{port}"}
                        for port in ports
                    ]
                ),
            }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{self.app}-{unit}",
                "uid": f"pod-uid-{next(self._uids)}",
                "annotations": notes,
            },
        }
