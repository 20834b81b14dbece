"""The KNF-side library: a KNF charm joins L2S-M networks through one `l2sm_network` relation.

    from l2sm_charmlib.networks import L2smNetworks

    class MyKnf(ops.CharmBase):
        def __init__(self, framework):
            super().__init__(framework)
            self.networks = L2smNetworks(self, "networks", addresses=self._addresses)
            framework.observe(self.networks.on.ready, self._on_network_ready)
            framework.observe(self.on.collect_unit_status, self._on_collect_status)

        def _addresses(self) -> str:
            return str(self.config.get("addresses", ""))

        def _on_collect_status(self, event):
            event.add_status(self.networks.status())

What it does, on every event of interest: publishes each unit's address request (static,
unit N taking the N-th address after the given one, or from the pool) and, for a router,
the prefixes it forwards to; patches the application's StatefulSet pod template (label,
`l2sm/networks` annotation for the networks that exist, NET_ADMIN for the charm container);
then, once the pod has its interfaces, configures each one's address, MTU and routes with
netlink from the charm container, which shares the pod's network namespace. Pod recreated
by Kubernetes: same unit, same addresses (they live in the network's databag).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import ops
import pydantic
from lightkube import Client

from l2sm_charmlib.kube import Kube, KubeForbidden, Pod, StatefulSet
from l2sm_charmlib.reconcile import trust_message
from l2sm_core import knf
from l2sm_core.attachments import (
    L2SM_ERROR_ANNOTATION,
    L2SM_NETWORKS_ANNOTATION,
    MULTUS_NETWORKS_ANNOTATION,
    MULTUS_STATUS_ANNOTATION,
    parse_l2sm_networks,
)
from l2sm_core.interfaces import NetworkProviderAppData, NetworkRequirerUnitData
from l2sm_core.manifests.knf import pod_template_patch, template_satisfies

logger = logging.getLogger(__name__)

Applier = Callable[[list[knf.InterfacePlan]], list[str]]


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
    ):
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self._addresses = addresses or (lambda: "")
        self._forwards = forwards
        # The charm container configures the interfaces; a workload that sets up networking
        # itself (a router's nftables) gets NET_ADMIN too when asked.
        self._container = container
        self._net_admin_containers = ("charm", container) if container and workload_net_admin else ("charm",)
        self._applier = applier or _default_applier
        self._kube: Kube | None = None
        self._blocked: str | None = None
        self._waiting: str | None = None
        self._maintenance: str | None = None
        self._memberships: list[knf.Membership] = []
        self._reconciled = False
        self._unmatched: list[str] = []
        self._stored.set_default(applied="{}", last_status='["waiting", "not configured yet"]')
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
            self._kube = Kube(Client(field_manager=f"{app}-l2sm"), field_manager=f"{app}-l2sm")
        return self._kube

    @property
    def memberships(self) -> list[knf.Membership]:
        return list(self._memberships)

    # -- the work -------------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        self._reconciled = True
        self._blocked = self._waiting = self._maintenance = None
        # ops already leaves out a relation being broken.
        relations = [r for r in self.model.relations[self._relation_name] if r.app]
        try:
            requests = knf.parse_addresses(self._addresses())
        except ValueError as exc:
            self._blocked = f"option 'addresses': {exc}"
            return
        self._unmatched = sorted(set(requests) - {r.app.name for r in relations if r.app})
        provided = {r.id: self._provided(r) for r in relations}
        try:
            self._publish(relations, provided, requests)
        except ValueError as exc:
            self._blocked = f"option 'addresses': {exc}"
            return
        try:
            pod = self._patch_template_and_read_pod(provided)
        except KubeForbidden:
            self._blocked = trust_message(self._charm.app.name)
            return
        self._memberships = self._read_memberships(relations, provided, pod)
        self._configure(pod)

    def _provided(self, relation: ops.Relation) -> NetworkProviderAppData | None:
        assert relation.app is not None
        if not relation.data[relation.app].get("network"):
            return None
        try:
            return relation.load(NetworkProviderAppData, relation.app)
        except (pydantic.ValidationError, json.JSONDecodeError) as exc:
            logger.error("network %s published bad data: %s", relation.app.name, exc)
            return None

    def _unit_number(self) -> int:
        return int(self.model.unit.name.rpartition("/")[2])

    def _publish(
        self,
        relations: list[ops.Relation],
        provided: dict[int, NetworkProviderAppData | None],
        requests: dict[str, str],
    ) -> None:
        forwards = self._forwards() if callable(self._forwards) else self._forwards
        # Work out every request before writing any: a bad one changes nothing anywhere.
        outgoing = []
        for relation in relations:
            assert relation.app is not None
            info = provided[relation.id]
            if info is None:
                # Ask only once the network has said its name: `addresses` is keyed by it, and
                # a premature pool request could take an address a peer is about to ask for.
                continue
            base = requests.get(info.network.name) or requests.get(relation.app.name)
            address = knf.address_for_unit(base, self._unit_number()) if base else ""
            offered: list[str] = []
            if forwards:
                offered = sorted(
                    {
                        p.network.cidr
                        for rid, p in provided.items()
                        if rid != relation.id and p and p.network.cidr
                    }
                )
            data = NetworkRequirerUnitData.model_validate({"address": address, "offered-prefixes": offered})
            outgoing.append((relation, data))
        for relation, data in outgoing:
            relation.save(data, self.model.unit)

    def _patch_template_and_read_pod(
        self, provided: dict[int, NetworkProviderAppData | None]
    ) -> dict[str, Any]:
        app, namespace = self._charm.app.name, self.model.name
        # Only networks that exist: the upstream webhook does not wait for a missing one.
        networks = sorted(p.network.name for p in provided.values() if p)
        if self.model.unit.is_leader():
            live = self.kube.get(StatefulSet, app, namespace) or {}
            have = {
                c["name"]
                for c in ((live.get("spec") or {}).get("template") or {})
                .get("spec", {})
                .get("containers", [])
            }
            patch = pod_template_patch(
                app, namespace, networks, tuple(c for c in self._net_admin_containers if c in have)
            )
            # No network yet and none to detach: leave the pod alone (a patch restarts it).
            wanted = bool(networks) or _carries_l2sm(live)
            if live and wanted and not template_satisfies(live, patch):
                self.kube.apply_patch(StatefulSet, app, namespace, patch)
                self._maintenance = "restarting pods to change their L2S-M networks"
                logger.info("patched the pod template for networks: %s", ", ".join(networks) or "none")
        pod = self.kube.get(Pod, self.model.unit.name.replace("/", "-"), namespace) or {}
        annotated = [r.name for r in parse_l2sm_networks(_annotations(pod).get(L2SM_NETWORKS_ANNOTATION, ""))]
        if sorted(annotated) != networks and not self._maintenance:
            self._maintenance = "waiting for the pod to restart with its L2S-M networks"
        return pod

    def _read_memberships(
        self,
        relations: list[ops.Relation],
        provided: dict[int, NetworkProviderAppData | None],
        pod: dict[str, Any],
    ) -> list[knf.Membership]:
        interfaces = _pod_interfaces(pod)
        unit = self.model.unit.name
        result = []
        for relation in relations:
            info = provided[relation.id]
            if info is None:
                continue
            name = info.network.name
            routes = tuple((r.prefix, r.via) for r in info.routes)
            result.append(
                knf.Membership(
                    network=name,
                    interface=interfaces.get(name),
                    address=info.assignments.get(unit),
                    rejection=info.rejections.get(unit),
                    mtu=info.network.mtu,
                    routes=routes,
                    cidr=info.network.cidr,
                )
            )
        return sorted(result, key=lambda m: m.network)

    def _configure(self, pod: dict[str, Any]) -> None:
        error = _annotations(pod).get(L2SM_ERROR_ANNOTATION)
        if error:
            self._blocked = f"L2S-M could not attach this pod: {error}"
        connected = tuple(m.cidr for m in self._memberships if m.cidr)
        plans = [p for p in (m.plan(connected) for m in self._memberships) if p]
        # Networks still on the pod but no longer joined: nothing of ours may stay on them.
        on_pod = _pod_interfaces(pod)
        joined = {m.network for m in self._memberships}
        plans += [knf.InterfacePlan(ifname) for name, ifname in sorted(on_pod.items()) if name not in joined]
        if plans:
            try:
                for change in self._applier(plans):
                    logger.info("netlink: %s", change)
            except Exception as exc:  # the interface may not be there yet; the next event retries
                self._waiting = f"configuring interfaces: {exc}"
                return
        self._emit_changes()

    def _emit_changes(self) -> None:
        before: dict[str, list] = json.loads(self._stored.applied)
        now = {
            m.network: [m.interface, m.address, m.mtu, [list(r) for r in m.routes]]
            for m in self._memberships
            if m.interface and not m.waiting_for_address and not m.rejection
        }
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
        if self._blocked:
            return ops.BlockedStatus(self._blocked)
        refused = [m for m in self._memberships if m.rejection]
        if refused:
            return ops.BlockedStatus("; ".join(m.status_line() for m in refused))
        if self._maintenance:
            return ops.MaintenanceStatus(self._maintenance)
        if self._waiting:
            return ops.WaitingStatus(self._waiting)
        if not self.model.relations[self._relation_name]:
            return ops.ActiveStatus("no L2S-M network")
        if not self._memberships:
            return ops.WaitingStatus("waiting for the networks to answer")
        if any(not m.interface or m.waiting_for_address for m in self._memberships):
            return ops.WaitingStatus("; ".join(m.status_line() for m in self._memberships))
        message = "; ".join(m.status_line() for m in self._memberships)
        joined = {m.network for m in self._memberships}
        unmatched = [name for name in self._unmatched if name not in joined]
        if unmatched:
            # Likely a typo, or a network not integrated yet: say so rather than ignore it.
            message += f"; 'addresses' names no joined network: {', '.join(unmatched)}"
        return ops.ActiveStatus(message)


def _pod_interfaces(pod: dict[str, Any]) -> dict[str, str]:
    """Network name -> interface, as the pod's own annotations tell it."""
    notes = _annotations(pod)
    try:
        return knf.attachment_interfaces(
            notes.get(L2SM_NETWORKS_ANNOTATION, ""),
            notes.get(MULTUS_NETWORKS_ANNOTATION, ""),
            notes.get(MULTUS_STATUS_ANNOTATION, ""),
        )
    except ValueError as exc:
        logger.warning("cannot read the pod's attachments: %s", exc)
        return {}


def _annotations(pod: dict[str, Any]) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def _carries_l2sm(statefulset: dict[str, Any]) -> bool:
    meta = ((statefulset.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return "l2sm" in (meta.get("labels") or {}) or L2SM_NETWORKS_ANNOTATION in (meta.get("annotations") or {})
