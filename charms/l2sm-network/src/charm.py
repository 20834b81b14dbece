#!/usr/bin/env python3
"""One L2S-M virtual network as a Juju application: the L2Network, IPAM and routes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import ops
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from models import NetworkConfig, ShowParams

from l2sm_charmlib.kube import L2Network
from l2sm_charmlib.l2sm_controller import controller_data
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Waiting
from l2sm_controlplane.crds import crd_name
from l2sm_core.ipam import (
    Allocation,
    Member,
    RouteTable,
    allocate,
    compute_routes,
    offers_routed_via,
    renumbered,
    reserved_held,
    unit_order,
)
from l2sm_core.manifests import OWNER, OWNER_KIND, OWNER_KIND_APPLICATION, foreign_refusal, lacking
from l2sm_core.manifests.network import l2network
from l2sm_core.validation import clip
from l2sm_knf import l2sm_network
from l2sm_knf.databag import InvalidDatabag
from l2sm_knf.kube import KubeForbidden, KubeForeign, KubeNotFound
from l2sm_knf.l2sm_network import NetworkInfo, NetworkProviderAppData, Route, interface_address

logger = logging.getLogger(__name__)

CONTROLLER = "controller"
NETWORK = "network"
REJECTION_MAX = 300  # a refusal is read in a status line: long enough to name the fields


@dataclass(frozen=True)
class Membership:
    """The whole network's view: who asked for what, what they got, which routes follow."""

    members: list[Member]
    relation_of: dict[str, int]  # unit -> relation id
    allocation: Allocation
    routes: RouteTable


class L2smNetworkCharm(ReconcilingCharm):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on[CONTROLLER].relation_changed,
            self.on[CONTROLLER].relation_broken,
            self.on[NETWORK].relation_joined,
            self.on[NETWORK].relation_changed,
            self.on[NETWORK].relation_departed,
            self.on[NETWORK].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.show_action, self._on_show)

    # -- inputs -------------------------------------------------------------------------------

    def _config(self) -> NetworkConfig:
        return self.typed_config(NetworkConfig)

    def _network_name(self, config: NetworkConfig) -> str:
        return config.network_name or self.app.name

    def _require_controller(self) -> None:
        # A missing relation is Blocked: only an operator can integrate it.
        controller_data(self, CONTROLLER)
        if self.kube.get(CustomResourceDefinition, crd_name("L2Network")) is None:
            raise Waiting("waiting for the L2S-M CRDs (l2sm-controller installs them)")

    def _membership(self, config: NetworkConfig, event: ops.EventBase | None = None) -> Membership:
        """Members of every `network` relation (ops already leaves out a relation being broken;
        a departing unit counts out here), and what they get. Blocked if the config would take
        an address a member holds: nothing is granted, moved or written then."""
        leaving_unit = event.departing_unit if isinstance(event, ops.RelationDepartedEvent) else None
        members: list[Member] = []
        relation_of: dict[str, int] = {}
        existing: dict[str, str] = {}
        routed: list[dict[str, str]] = []
        invalid: dict[str, str] = {}
        for relation in self.model.relations[NETWORK]:
            existing.update(_stored_assignments(relation, self.app))
            routed.extend(_stored_routes(relation, self.app))
        for relation in self.model.relations[NETWORK]:
            for unit in relation.units:
                if unit == leaving_unit:
                    continue
                relation_of[unit.name] = relation.id
                held = existing.get(unit.name, "")
                if "address" not in relation.data[unit] and "address-from" not in relation.data[unit]:
                    # Not asked yet: no pool grant that would take an address a peer is about
                    # to ask for; what it holds stays held.
                    if held:
                        members.append(Member(unit.name, held))
                    continue
                try:
                    data = l2sm_network.read_request(relation, unit)
                except InvalidDatabag as exc:
                    invalid[unit.name] = clip(f"bad relation data: {exc}", REJECTION_MAX)
                    if held:
                        # Bad data once loses nothing: the address, and the routes via it.
                        members.append(Member(unit.name, held, offers_routed_via(routed, held)))
                    continue
                # `address-from`, when sent, supersedes `address` (kept for older networks);
                # an older member sends `address` alone and is served as it always was.
                members.append(
                    Member(unit.name, data.address, tuple(data.offered_prefixes), start=data.address_from)
                )
        held_now = {u: a for u, a in existing.items() if u in relation_of}
        _refuse_taking_addresses(config, held_now)
        allocation = allocate(config.cidr, config.reserved_addresses, members, existing)
        allocation.rejections.update(invalid)
        rejections = {u: allocation.rejections[u] for u in sorted(allocation.rejections, key=unit_order)}
        allocation = Allocation(assignments=allocation.assignments, rejections=rejections)
        routes = compute_routes(config.cidr, members, allocation.assignments)
        return Membership(members, relation_of, allocation, routes)

    # -- reconcile ----------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        if not self.unit.is_leader():
            return
        if isinstance(event, ops.RelationDepartedEvent) and event.departing_unit == self.unit:
            return  # this unit is leaving: the next leader answers, from the databags as they are
        try:
            config = self._config()
            self._require_controller()
            # Worked out before any write: a config that would take an address is refused
            # with the L2Network and every databag as the last good config left them.
            membership = self._membership(config, event)
            self._ensure_l2network(config)
            self._publish(config, membership)
        except (Blocked, Waiting, KubeNotFound, KubeForbidden) as exc:
            self.record_stop(exc)
        except KubeForeign as exc:  # taken between our look and our write
            self.record_stop(Blocked(str(exc)))

    @property
    def _owner(self) -> dict[str, str]:
        """The owner labels of this application's L2Network (in this model's namespace)."""
        return {OWNER_KIND: OWNER_KIND_APPLICATION, OWNER: self.app.name}

    def _own_or_absent(self, name: str) -> dict[str, Any] | None:
        """Our L2Network of that name, or None; Blocked if another owner holds the name."""
        existing = self._network(name)
        if existing is not None and not self._owns(existing):
            namespace = existing["metadata"].get("namespace")
            refusal = foreign_refusal(
                existing,
                self._owner,
                "L2S-M names are cluster-wide: set option 'network-name' to another name",
            )
            if not lacking(existing, self._owner):
                # Our labels, another model: an application of the same name elsewhere.
                refusal = refusal.replace("its labels are not ours", f"it is in namespace {namespace!r}")
            raise Blocked(f"network name {name!r} is taken: {refusal}")
        return existing

    def _network(self, name: str) -> dict[str, Any] | None:
        """The L2Network of that name: a foreign one if any exists (L2S-M resolves names
        cluster-wide: one name, one owner), else ours."""
        same = [n for n in self.kube.list(L2Network) if n["metadata"]["name"] == name]
        foreign = [n for n in same if not self._owns(n)]
        return (foreign or same or [None])[0]

    def _ensure_l2network(self, config: NetworkConfig) -> None:
        name = self._network_name(config)
        self._own_or_absent(name)
        # Juju does the addressing: no CIDR, or the webhook would hand out its own addresses.
        self.kube.apply(l2network(self.app.name, self.model.name, name, OWNER_KIND_APPLICATION))
        for stale in self.kube.list(L2Network, namespace=self.model.name):
            if self._owns(stale) and stale["metadata"]["name"] != name:
                logger.warning("network renamed: deleting L2Network %s", stale["metadata"]["name"])
                self.kube.delete(L2Network, stale["metadata"]["name"], self.model.name, owner=self._owner)

    def _owns(self, network: dict[str, Any]) -> bool:
        return not lacking(network, self._owner) and network["metadata"].get("namespace") == self.model.name

    def _publish(self, config: NetworkConfig, membership: Membership) -> None:
        info = NetworkInfo(
            name=self._network_name(config), cidr=config.cidr, mtu=config.mtu, type=config.type
        )
        routes = [Route(**r) for r in membership.routes.routes]
        for relation in self.model.relations[NETWORK]:
            mine = {u for u, rid in membership.relation_of.items() if rid == relation.id}
            data = NetworkProviderAppData(
                network=info,
                assignments={u: a for u, a in membership.allocation.assignments.items() if u in mine},
                rejections={u: r for u, r in membership.allocation.rejections.items() if u in mine},
                routes=routes,
            )
            l2sm_network.publish(relation, self.app, data)
        for unit, reason in sorted(membership.allocation.rejections.items()):
            logger.warning("refused %s: %s", unit, reason)

    # -- removal ------------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        if self.app.planned_units() > 0:
            return
        try:
            for network in self.kube.list(L2Network, namespace=self.model.name):
                if self._owns(network):
                    name = network["metadata"]["name"]
                    if self.kube.delete(L2Network, name, self.model.name, owner=self._owner):
                        logger.warning("deleted L2Network %s: attached pods lose it", name)
        except KubeForeign as exc:  # relabelled since it was listed
            logger.warning("not deleting: %s", exc)
        except KubeForbidden:
            logger.error("cannot delete the L2Network without --trust: delete it by hand")

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        if not self.unit.is_leader():
            return ops.ActiveStatus("standby: the leader manages the network")
        config = self._config()
        self._require_controller()
        name = self._network_name(config)
        membership = self._membership(config)
        existing = self._own_or_absent(name)
        if existing is None:
            return ops.MaintenanceStatus(f"creating L2Network {name}")
        count = len(membership.relation_of)
        message = f"{name} {config.cidr or '(L2 only)'}: {count} member{'s' if count != 1 else ''}"
        if membership.allocation.rejections:
            message += f", {len(membership.allocation.rejections)} refused (see the show action)"
        return ops.ActiveStatus(message)

    # -- actions ------------------------------------------------------------------------------

    def _on_show(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ShowParams, self._show)

    def _show(self, _: ShowParams) -> dict[str, Any]:
        config = self._config()
        membership = self._membership(config)
        network = self._network(self._network_name(config))
        members = {
            unit: {
                "address": membership.allocation.assignments.get(unit, ""),
                "refused": membership.allocation.rejections.get(unit, ""),
            }
            for unit in sorted(membership.relation_of, key=unit_order)
        }
        return {
            "network": self._network_name(config),
            "cidr": config.cidr or "none (L2 only)",
            "mtu": config.mtu,
            "members": json.dumps(members),
            "routes": json.dumps(membership.routes.routes),
            "shadowed-routes": json.dumps(membership.routes.shadowed),
            "ignored-offers": json.dumps(membership.routes.ignored),
            "l2network": json.dumps((network or {}).get("status") or {}) if network else "absent",
        }


def _own_value(relation: ops.Relation, app: ops.Application, key: str) -> Any:
    """A value of this network's own databag, or None if absent or unreadable (only the
    leader writes it, but a hand edit must not wedge the charm)."""
    raw = relation.data[app].get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _stored_assignments(relation: ops.Relation, app: ops.Application) -> dict[str, str]:
    """What this network assigned before, from its own databag: the state lives in Juju."""
    value = _own_value(relation, app, "assignments")
    if not isinstance(value, dict):
        return {}
    result = {}
    for unit, address in value.items():
        try:
            result[str(unit)] = str(interface_address(address))
        except ValueError:
            logger.warning("ignoring a stored assignment that is not an address: %s", clip(repr(address), 64))
    return result


def _stored_routes(relation: ops.Relation, app: ops.Application) -> list[dict[str, str]]:
    """The routes this network published before, as far as they read."""
    value = _own_value(relation, app, "routes")
    routes = value if isinstance(value, list) else []
    return [
        {"prefix": r["prefix"], "via": r["via"]}
        for r in routes
        if isinstance(r, dict) and isinstance(r.get("prefix"), str) and isinstance(r.get("via"), str)
    ]


def _listed(items: list[str], limit: int = 3) -> str:
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def _refuse_taking_addresses(config: NetworkConfig, held: dict[str, str]) -> None:
    """A config change never takes an address from a member that holds one: refused, naming
    the holders (the member would lose a working address, its peers their route via it)."""
    moved = renumbered(config.cidr, held)
    if moved:
        old = {str(interface_address(a).network) for a in moved.values()}
        holders = _listed([f"{u} ({a})" for u, a in moved.items()])
        wanted = config.cidr or "empty (pure L2)"
        raise Blocked(
            f"option 'cidr': {wanted} would take the addresses of {holders}: members are never "
            f"renumbered; set cidr back to {_listed(sorted(old))}, or remove their relations first"
        )
    taken = reserved_held(config.reserved_addresses, held)
    if taken:
        listed = _listed([f"{ip} (held by {u})" for ip, u in taken.items()])
        raise Blocked(
            f"option 'reserved': {listed}: an assigned address is never taken back; "
            "remove it from reserved, or remove its holder's relation first"
        )


if __name__ == "__main__":  # pragma: nocover
    ops.main(L2smNetworkCharm)
