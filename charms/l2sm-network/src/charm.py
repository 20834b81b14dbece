#!/usr/bin/env python3
"""One L2S-M virtual network as a Juju application: the L2Network, IPAM and routes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import ops
import pydantic
from models import NetworkConfig, ShowParams

from l2sm_charmlib.kube import CustomResourceDefinition, KubeForbidden, L2Network
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Waiting, controller_data, load_config
from l2sm_core.interfaces import (
    NetworkInfo,
    NetworkProviderAppData,
    NetworkRequirerUnitData,
    Route,
)
from l2sm_core.ipam import Allocation, Member, RouteTable, allocate, compute_routes, unit_order
from l2sm_core.manifests import OWNER, OWNER_KIND, OWNER_KIND_APPLICATION
from l2sm_core.manifests.crds import crd_name
from l2sm_core.manifests.network import l2network
from l2sm_core.validation import describe_validation_error

logger = logging.getLogger(__name__)

CONTROLLER = "controller"
NETWORK = "network"


@dataclass(frozen=True)
class Membership:
    """The whole network's view: who asked for what, what they got, which routes follow."""

    members: list[Member]
    relation_of: dict[str, int]  # unit -> relation id
    allocation: Allocation
    routes: RouteTable


class L2smNetworkCharm(ReconcilingCharm):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework, self._assess)
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
        return load_config(self, NetworkConfig)

    def _network_name(self, config: NetworkConfig) -> str:
        return config.network_name or self.app.name

    def _require_controller(self) -> None:
        controller_data(self, CONTROLLER, missing=Waiting)
        if self.kube.get(CustomResourceDefinition, crd_name("L2Network")) is None:
            raise Waiting("waiting for the L2S-M CRDs (l2sm-controller installs them)")

    def _membership(self, config: NetworkConfig, event: ops.EventBase | None = None) -> Membership:
        """Members of every `network` relation (ops already leaves out a relation being broken;
        a departing unit counts out here)."""
        leaving_unit = event.departing_unit if isinstance(event, ops.RelationDepartedEvent) else None
        members: list[Member] = []
        relation_of: dict[str, int] = {}
        existing: dict[str, str] = {}
        invalid: dict[str, str] = {}
        for relation in self.model.relations[NETWORK]:
            existing.update(_stored_assignments(relation, self.app))
        for relation in self.model.relations[NETWORK]:
            for unit in relation.units:
                if unit == leaving_unit:
                    continue
                relation_of[unit.name] = relation.id
                held = existing.get(unit.name, "")
                if "address" not in relation.data[unit]:
                    # Not asked yet: no pool grant that would take an address a peer is about
                    # to ask for; what it holds stays held.
                    if held:
                        members.append(Member(unit.name, held))
                    continue
                try:
                    data = relation.load(NetworkRequirerUnitData, unit)
                except (pydantic.ValidationError, json.JSONDecodeError) as exc:
                    invalid[unit.name] = _describe_bad_databag(exc)
                    if held:
                        members.append(Member(unit.name, held))  # bad data once loses nothing
                    continue
                members.append(Member(unit.name, data.address, tuple(data.offered_prefixes)))
        allocation = allocate(config.cidr, config.reserved_addresses, members, existing)
        allocation.rejections.update(invalid)
        routes = compute_routes(config.cidr, members, allocation.assignments)
        return Membership(members, relation_of, allocation, routes)

    # -- reconcile ----------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        if not self.unit.is_leader():
            return
        if isinstance(event, ops.RelationDepartedEvent) and event.departing_unit == self.unit:
            return  # this unit is leaving: the next leader answers, from the databags as they are
        with self.acting():
            config = self._config()
            self._require_controller()
            self._ensure_l2network(config)
            self._publish(config, self._membership(config, event))

    def _own_or_absent(self, name: str) -> dict[str, Any] | None:
        """Our L2Network of that name, or None; Blocked if another owner holds the name."""
        existing = self._find(name)
        if existing is not None and not self._owns(existing):
            raise Blocked(
                f"network name {name!r} is taken by {_owner(existing)} in namespace "
                f"{existing['metadata'].get('namespace')!r}: set option 'network-name'"
            )
        return existing

    def _find(self, name: str) -> dict[str, Any] | None:
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
                self.kube.delete(L2Network, stale["metadata"]["name"], self.model.name)

    def _owns(self, network: dict[str, Any]) -> bool:
        labels = network["metadata"].get("labels") or {}
        return (
            labels.get(OWNER_KIND) == OWNER_KIND_APPLICATION
            and labels.get(OWNER) == self.app.name
            and network["metadata"].get("namespace") == self.model.name
        )

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
            relation.save(data, self.app)
        for unit, reason in sorted(membership.allocation.rejections.items()):
            logger.warning("refused %s: %s", unit, reason)

    # -- removal ------------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        if self.app.planned_units() > 0:
            return
        try:
            for network in self.kube.list(L2Network, namespace=self.model.name):
                if self._owns(network):
                    self.kube.delete(L2Network, network["metadata"]["name"], self.model.name)
                    logger.warning("deleted L2Network %s: attached pods lose it", network["metadata"]["name"])
        except KubeForbidden:
            logger.error("cannot delete the L2Network without --trust: delete it by hand")

    # -- status -------------------------------------------------------------------------------

    def _assess(self) -> ops.StatusBase:
        if not self.unit.is_leader():
            return ops.ActiveStatus("standby: the leader manages the network")
        config = self._config()
        self._require_controller()
        name = self._network_name(config)
        existing = self._own_or_absent(name)
        if existing is None:
            return ops.MaintenanceStatus(f"creating L2Network {name}")
        membership = self._membership(config)
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
        network = self._find(self._network_name(config))
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


def _stored_assignments(relation: ops.Relation, app: ops.Application) -> dict[str, str]:
    """What this network assigned before, from its own databag: the state lives in Juju."""
    raw = relation.data[app].get("assignments")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _describe_bad_databag(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return f"bad relation data: {describe_validation_error(exc, 'field')}"
    return f"bad relation data: not JSON ({exc})"


def _owner(obj: dict[str, Any]) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    kind = labels.get(OWNER_KIND)
    return f"{kind} {labels.get(OWNER, '?')!r}" if kind else "a network made outside Juju"


if __name__ == "__main__":  # pragma: nocover
    ops.main(L2smNetworkCharm)
