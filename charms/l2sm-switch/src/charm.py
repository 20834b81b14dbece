#!/usr/bin/env python3
"""The L2S-M switch fabric under Juju: one Overlay, kept in step with config and cluster."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import ops
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Node, Pod
from models import ShowTopologyParams, SwitchConfig

from l2sm_charmlib.kube import NetworkAttachmentDefinition, Overlay
from l2sm_charmlib.l2sm_controller import ControllerProviderAppData, controller_data
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Refused, Waiting
from l2sm_controlplane.crds import crd_name
from l2sm_core import attachments, naming, topology
from l2sm_core.manifests import (
    INSTANCE,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    MODEL,
    SPEC_HASH,
    deleting,
    identity,
    lacking,
)
from l2sm_core.manifests import switch as switch_objects
from l2sm_core.validation import clip, shown
from l2sm_knf.kube import KubeForbidden, KubeForeign, KubeNotFound

logger = logging.getLogger(__name__)

RELATION = "controller"
# How long a hook waits for the operator to finish deleting an Overlay before recreating it.
RECREATE_WAIT_SECONDS = 60.0
RECREATE_POLL_SECONDS = 2.0
# How long a hook waits for the operator to make a new Overlay's attachments (NADs), so the
# ones running pods hold are marked before the webhook can hand them out again.
ATTACHMENT_WAIT_SECONDS = 30.0
RECREATING = "recreating the switch overlay: L2S-M traffic is interrupted"


@dataclass(frozen=True)
class Fabric:
    """Everything the Overlay is made from, checked."""

    config: SwitchConfig
    controller: ControllerProviderAppData
    name: str
    nodes: tuple[str, ...]
    links: tuple[topology.Link, ...]

    @property
    def namespace(self) -> str:
        return self.controller.namespace


class L2smSwitchCharm(ReconcilingCharm):
    """Keeps no state of its own: what it made is found in the cluster by its labels, so any
    unit that becomes leader knows where the fabric is."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on[RELATION].relation_changed,
            self.on[RELATION].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.show_topology_action, self._on_show_topology)

    # -- inputs -------------------------------------------------------------------------------

    def _fabric(self) -> Fabric:
        config = self.typed_config(SwitchConfig)
        controller = controller_data(self, RELATION)
        if self.kube.get(CustomResourceDefinition, crd_name("Overlay")) is None:
            raise Waiting("waiting for the L2S-M CRDs (l2sm-controller installs them)")
        name = config.overlay_name or self.app.name
        if not config.overlay_name:
            try:
                naming.overlay_name(name)
            except ValueError as exc:
                raise Blocked(
                    f"the application name cannot name the Overlay ({exc}): set option 'overlay-name'"
                ) from None
        self._check_alone()
        live = self.kube.get(Overlay, name, controller.namespace)
        current = tuple(((live or {}).get("spec") or {}).get("topology", {}).get("nodes") or ())
        nodes = self._nodes(config, current)
        try:
            links = topology.parse_topology(config.topology, nodes)
        except ValueError as exc:
            raise Blocked(f"option 'topology': {exc}") from None
        return Fabric(config=config, controller=controller, name=name, nodes=nodes, links=links)

    def _nodes(self, config: SwitchConfig, current: tuple[str, ...]) -> tuple[str, ...]:
        cluster = {n["metadata"]["name"]: n for n in self.kube.list(Node)}
        wanted = topology.parse_nodes(config.nodes)
        if wanted:
            absent = [n for n in wanted if n not in cluster]
            if absent:
                raise Blocked(f"option 'nodes': not in the cluster: {topology.listed(absent)}")
            return wanted
        # A cordon is maintenance, not departure: a node already in the fabric keeps its switch
        # (switch pods tolerate every taint), so cordoning never recreates the whole fabric.
        usable = tuple(
            sorted(
                name
                for name, node in cluster.items()
                if _schedulable_linux(node) or (name in current and _linux(node))
            )
        )
        if not usable:
            raise Waiting("no schedulable Linux node in the cluster")
        return usable

    @property
    def identity(self) -> dict[str, str]:
        """The labels on every Overlay this application makes."""
        return identity(self.app.name, self.model.name)

    def _ours(self, obj: dict[str, Any]) -> bool:
        return not lacking(obj, self.identity)

    def _owned_overlays(self) -> list[dict[str, Any]]:
        """The Overlays this application made, in any namespace (the controller's may have moved)."""
        return self.kube.list(Overlay, labels=self.identity)

    def _check_alone(self) -> None:
        """One switch fabric per cluster: every Overlay's attachments use the same host bridges
        (br1..brN) and the webhook takes free attachments from any Overlay in its namespace, so
        two fabrics would mix traffic. Another's Overlay is never touched; once it is gone
        (its application removed), this one takes over on its next reconcile."""
        others = sorted(
            (o for o in self.kube.list(Overlay) if not self._ours(o)),
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )
        if not others:
            return
        meta = others[0]["metadata"]
        where = clip(f"{meta.get('namespace', '')}/{meta['name']}", 120)
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY) == MANAGED_BY_VALUE and labels.get(INSTANCE):
            owner = f"application {shown(labels[INSTANCE])} in model {shown(labels.get(MODEL, '?'))}"
        else:
            owner = "no Juju application (made by hand or another tool)"
        if len(others) == 1 and deleting(others[0]):
            raise Waiting(
                f"waiting for overlay {where} of {owner} to be deleted: one switch fabric per cluster"
            )
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        key, value = next(iter(lacking(others[0], self.identity).items()))
        raise Blocked(
            f"overlay {where}{more} belongs to {owner} (it lacks label {key}={value}), so it is left "
            "untouched: one switch fabric per cluster "
            "(two would share host bridges and attachments); remove one"
        )

    def _pods(self) -> list[attachments.PodAttachments]:
        """What every L2S-M pod in the cluster holds; a pod with malformed annotations is
        named in the log and counted for what can still be read."""
        pods = attachments.read_pods(self.kube.list(Pod, labels={attachments.L2SM_POD_LABEL: "true"}))
        for pod in pods:
            for problem in pod.problems:
                logger.warning("pod %s: %s", pod.pod, problem)
        return pods

    # -- reconcile ----------------------------------------------------------------------------

    def _reconcile(self, _: ops.EventBase) -> None:
        if not self.unit.is_leader():
            return
        try:
            fabric = self._fabric()
            pods = self._pods()
            usage = attachments.ports_in_use(fabric.name, pods)
            self._check_interfaces(fabric, usage)
            self._remove_stale_overlays(fabric, pods)
            recreated = self._apply_overlay(fabric)
            self._mark_used_attachments(fabric, usage, wait=ATTACHMENT_WAIT_SECONDS if recreated else 0.0)
        except (Blocked, Waiting, KubeNotFound, KubeForbidden) as exc:
            self.record_stop(exc)
        except KubeForeign as exc:
            self.record_stop(Blocked(str(exc)))

    def _check_interfaces(self, fabric: Fabric, usage: dict[str, set[int]]) -> None:
        count = fabric.config.interfaces_per_node
        above = {node: max(ports) for node, ports in usage.items() if ports and max(ports) > count}
        if above:
            held = topology.listed([f"port {port} on {node}" for node, port in sorted(above.items())])
            raise Blocked(f"option 'interfaces-per-node': {count} is below ports in use ({held})")

    def _remove_stale_overlays(self, fabric: Fabric, pods: list[attachments.PodAttachments]) -> None:
        """An Overlay of ours under an old name, or in the namespace of a controller we left, goes."""
        for stale in self._owned_overlays():
            name, namespace = stale["metadata"]["name"], stale["metadata"].get("namespace", "")
            if (name, namespace) == (fabric.name, fabric.namespace):
                continue
            held = attachments.ports_in_use(name, pods)
            if held and namespace == fabric.namespace:
                raise Blocked(
                    f"option 'overlay-name': pods on {topology.listed(sorted(held))} hold ports of "
                    f"overlay {name!r}; move them off before renaming"
                )
            logger.warning("deleting overlay %s/%s (renamed or moved)", namespace, name)
            self.kube.delete(Overlay, name, namespace, foreground=True, owner=self.identity)

    def _desired(self, fabric: Fabric) -> dict[str, Any]:
        return switch_objects.overlay(
            self.app.name,
            self.model.name,
            fabric.namespace,
            fabric.name,
            fabric.nodes,
            fabric.links,
            fabric.config.interfaces_per_node,
            fabric.controller.cluster_ip,
            fabric.controller.openflow_port,
            fabric.config.switch_image,
        )

    def _apply_overlay(self, fabric: Fabric) -> bool:
        """Create the Overlay, or recreate it when its shape changed: the operator builds the
        switches only when none exist (docs/decisions/0004-switch-changes-recreate-overlay.md).
        True when a new Overlay was applied."""
        desired = self._desired(fabric)
        live = self.kube.get(Overlay, fabric.name, fabric.namespace)
        if live is not None:
            if _hash(live) == _hash(desired) and not deleting(live):
                return False
            if not deleting(live):
                logger.warning("%s: %s", RECREATING, _describe_change(live, desired))
                # Foreground: the Overlay goes only after its switches, Services and NADs, so
                # the operator never finds leftovers when it builds the new one.
                self.kube.delete(Overlay, fabric.name, fabric.namespace, foreground=True, owner=self.identity)
            if not self._wait_gone(fabric):
                raise Waiting(RECREATING)
        self.kube.apply(desired)
        logger.info("applied %s", _describe(desired))
        return True

    def _wait_gone(self, fabric: Fabric) -> bool:
        deadline = time.monotonic() + RECREATE_WAIT_SECONDS
        while self.kube.get(Overlay, fabric.name, fabric.namespace) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(RECREATE_POLL_SECONDS)
        return True

    def _mark_used_attachments(self, fabric: Fabric, usage: dict[str, set[int]], wait: float = 0.0) -> None:
        """A recreated Overlay comes with fresh NADs that forget which ports running pods hold;
        mark them again so the webhook does not hand a held port to a new pod. Right after a
        recreate, wait for the operator to make them."""
        users: dict[str, set[str]] = {}
        for node, ports in usage.items():
            for port in ports:
                users.setdefault(naming.attachment_name(fabric.name, port), set()).add(node)
        deadline = time.monotonic() + wait
        pending = dict(users)
        while pending:
            for name in sorted(pending):
                nad = self.kube.get(NetworkAttachmentDefinition, name, fabric.namespace)
                if nad is None:
                    continue
                have = nad["metadata"].get("labels") or {}
                missing = {
                    f"used-{node}": "true"
                    for node in sorted(pending[name])
                    if have.get(f"used-{node}") != "true"
                }
                if missing:
                    # Only the attachments the operator made for this Overlay (its labels).
                    self.kube.merge_labels(
                        NetworkAttachmentDefinition,
                        name,
                        fabric.namespace,
                        missing,
                        owner={"app": "l2sm", "overlay": fabric.name},
                    )
                del pending[name]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(RECREATE_POLL_SECONDS)
        if pending:
            logger.info("attachments not made yet: %s (marked on a later event)", ", ".join(sorted(pending)))

    # -- removal ------------------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        if self.app.planned_units() > 0:
            return
        # Juju breaks the relation before `remove`: our Overlays are found by their labels.
        try:
            for overlay in self._owned_overlays():
                meta = overlay["metadata"]
                try:
                    self.kube.delete(Overlay, meta["name"], meta.get("namespace"), owner=self.identity)
                except KubeForeign as exc:  # relabelled since it was listed
                    logger.warning("not deleting: %s", exc)
                    continue
                logger.warning(
                    "deleted overlay %s/%s: pods on L2S-M networks lose connectivity",
                    meta.get("namespace"),
                    meta["name"],
                )
        except KubeForbidden:
            logger.error("cannot delete the overlay without --trust: delete it by hand")

    # -- status -------------------------------------------------------------------------------

    def _switches(self, fabric: Fabric, overlay: dict[str, Any] | None) -> dict[str, bool]:
        """Node -> whether its switch pod is ready, from the ReplicaSets of this very Overlay
        (a previous one's, not yet collected, must not count)."""
        uid = ((overlay or {}).get("metadata") or {}).get("uid")
        sets = {
            rs["metadata"]["name"]: rs
            for rs in self.kube.list(ReplicaSet, namespace=fabric.namespace)
            if uid is None
            or any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
        }
        ready = {}
        for node in fabric.nodes:
            rs = sets.get(topology.switch_pod_name(fabric.name, node))
            ready[node] = bool(rs and int((rs.get("status") or {}).get("readyReplicas") or 0) >= 1)
        return ready

    def assess(self) -> ops.StatusBase:
        if not self.unit.is_leader():
            return ops.ActiveStatus("standby: the leader manages the fabric")
        fabric = self._fabric()
        self._check_interfaces(fabric, attachments.ports_in_use(fabric.name, self._pods()))
        live = self.kube.get(Overlay, fabric.name, fabric.namespace)
        if live is None or deleting(live) or _hash(live) != _hash(self._desired(fabric)):
            return ops.MaintenanceStatus(RECREATING if live is not None else "creating the switch overlay")
        switches = self._switches(fabric, live)
        ready = sum(switches.values())
        missing = [node for node, up in switches.items() if not up]
        if missing:
            return ops.WaitingStatus(
                f"{ready}/{len(switches)} switches ready; waiting on {', '.join(missing)}"
            )
        message = f"{ready}/{len(switches)} switches ready"
        isolated = topology.isolated_nodes(fabric.nodes, fabric.links)
        if isolated:
            message += f"; no links to {', '.join(isolated)}"
        return ops.ActiveStatus(message)

    # -- actions ------------------------------------------------------------------------------

    def _on_show_topology(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ShowTopologyParams, self._show_topology)

    def _show_topology(self, _: ShowTopologyParams) -> dict[str, Any]:
        try:
            fabric = self._fabric()
        except (Blocked, Waiting) as exc:
            raise Refused(f"the fabric is not configured yet: {exc}") from None
        live = self.kube.get(Overlay, fabric.name, fabric.namespace)
        switches = self._switches(fabric, live)
        usage = attachments.ports_in_use(fabric.name, self._pods())
        nodes = [
            {
                "name": node,
                "switch": topology.switch_pod_name(fabric.name, node),
                "bridge": naming.bridge_name_for(node),
                "datapath-id": naming.datapath_id(node),
                "device-id": naming.device_id(node),
                "ready": switches[node],
                "ports-in-use": sorted(usage.get(node, set())),
            }
            for node in fabric.nodes
        ]
        return {
            "overlay": fabric.name,
            "namespace": fabric.namespace,
            "interfaces-per-node": fabric.config.interfaces_per_node,
            "nodes": json.dumps(nodes),
            "links": json.dumps([[link.a, link.b] for link in fabric.links]),
            "last-change": _describe(live) if live is not None else "none",
        }


def _linux(node: dict[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return labels.get("kubernetes.io/os", "linux") == "linux"


def _schedulable_linux(node: dict[str, Any]) -> bool:
    return _linux(node) and not (node.get("spec") or {}).get("unschedulable")


def _hash(obj: dict[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH)


def _describe(overlay: dict[str, Any]) -> str:
    """What an Overlay is; every change recreates it, so its creation is the last change."""
    meta, spec = overlay.get("metadata") or {}, overlay.get("spec") or {}
    topo = spec.get("topology") or {}
    nodes, links = topo.get("nodes") or [], topo.get("links") or []
    text = f"overlay {meta.get('name')}: {len(nodes)} node(s), {len(links)} link(s)"
    created = meta.get("creationTimestamp")
    return f"{text}, created {created}" if created else text


def _describe_change(live: dict[str, Any], desired: dict[str, Any]) -> str:
    before, after = live.get("spec") or {}, desired["spec"]
    changes = []
    old_nodes = set((before.get("topology") or {}).get("nodes") or [])
    new_nodes = set(after["topology"]["nodes"])
    if new_nodes - old_nodes:
        changes.append(f"nodes added: {', '.join(sorted(new_nodes - old_nodes))}")
    if old_nodes - new_nodes:
        changes.append(f"nodes removed: {', '.join(sorted(old_nodes - new_nodes))}")
    if (before.get("topology") or {}).get("links") != after["topology"]["links"]:
        changes.append("links changed")
    if before.get("interfaceNumber") != after["interfaceNumber"]:
        changes.append(f"interfaces {before.get('interfaceNumber')} -> {after['interfaceNumber']}")
    if before.get("switchTemplate") != after["switchTemplate"]:
        changes.append("switch template changed")
    if before.get("provider") != after["provider"]:
        changes.append("controller address changed")
    return "; ".join(changes) or "spec changed"


if __name__ == "__main__":  # pragma: nocover
    ops.main(L2smSwitchCharm)
