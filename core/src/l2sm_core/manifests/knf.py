"""The pod-template patch a KNF's StatefulSet gets to join L2S-M networks."""

from __future__ import annotations

import copy
from typing import Any

from l2sm_core.attachments import (
    L2SM_NETWORKS_ANNOTATION,
    L2SM_POD_LABEL,
    NetworkRequest,
    render_l2sm_networks,
)
from l2sm_core.validation import dns1123_label

# A router forwards between its interfaces: the pod's network namespace needs
# net.ipv4.ip_forward=1, and /proc/sys is read-only in its containers. Kubernetes counts it
# unsafe: the kubelet must run with --allowed-unsafe-sysctls=net.ipv4.ip_forward, or the pod
# is refused (SysctlForbidden).
IP_FORWARD_SYSCTL = {"name": "net.ipv4.ip_forward", "value": "1"}


def pod_template_patch(
    statefulset: str,
    namespace: str,
    networks: list[str],
    net_admin_containers: tuple[str, ...],
    *,
    forwarding: bool = False,
) -> dict[str, Any]:
    """A partial StatefulSet for server-side apply: the L2S-M label and annotation (networks in
    a stable order: the order is the interface mapping), NET_ADMIN where networking is set
    up and, for a router (`forwarding`), the pod-level sysctl net.ipv4.ip_forward=1. With no
    networks the label and annotation are left out, which removes them (so does leaving out
    the sysctl). A name that is not a DNS-1123 label is a ValueError."""
    # Names come from the networks' own answers: checked here too, as they become the
    # annotation the webhook reads (one entry per network: the order maps interfaces).
    networks = sorted({dns1123_label(n) for n in networks})
    template_meta: dict[str, Any] = {}
    if networks:
        template_meta = {
            "labels": {L2SM_POD_LABEL: "true"},
            "annotations": {
                L2SM_NETWORKS_ANNOTATION: render_l2sm_networks([NetworkRequest(n) for n in networks])
            },
        }
    containers = [
        {"name": name, "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
        for name in net_admin_containers
    ]
    pod_spec: dict[str, Any] = {"containers": containers}
    if forwarding:
        pod_spec["securityContext"] = {"sysctls": [dict(IP_FORWARD_SYSCTL)]}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": statefulset, "namespace": namespace},
        "spec": {"template": {"metadata": template_meta, "spec": pod_spec}},
    }


def _sysctls(pod_spec: dict[str, Any]) -> list[Any]:
    return list((pod_spec.get("securityContext") or {}).get("sysctls") or [])


def template_satisfies(statefulset: dict[str, Any], patch: dict[str, Any]) -> bool:
    """True when the live StatefulSet's pod template already carries everything the patch sets
    (and no L2S-M label or annotation the patch leaves out). Juju rewrites the template on
    upgrade, so this looks at the template itself, never at a hash of what we sent."""
    template = (statefulset.get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    want = patch["spec"]["template"]["metadata"]
    for section in ("labels", "annotations"):
        have = meta.get(section) or {}
        wanted = want.get(section) or {}
        if any(have.get(k) != v for k, v in wanted.items()):
            return False
        ours = {L2SM_POD_LABEL} if section == "labels" else {L2SM_NETWORKS_ANNOTATION}
        if any(k in have for k in ours - set(wanted)):
            return False
    live = {c["name"]: c for c in (template.get("spec") or {}).get("containers") or []}
    for container in patch["spec"]["template"]["spec"]["containers"]:
        caps = ((live.get(container["name"]) or {}).get("securityContext") or {}).get("capabilities") or {}
        if "NET_ADMIN" not in (caps.get("add") or []):
            return False
    # The sysctl when the patch sets it, and not ours when it leaves it out (forwarding off).
    have = _sysctls(template.get("spec") or {})
    wanted = _sysctls(patch["spec"]["template"]["spec"])
    if any(s not in have for s in wanted):
        return False
    return bool(wanted) or IP_FORWARD_SYSCTL not in have


def merge_into(statefulset: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """What the API server makes of the patch applied to a StatefulSet (containers merge by
    name, as their list-map key says). For tests and for showing the result."""
    result = copy.deepcopy(statefulset)
    template = result.setdefault("spec", {}).setdefault("template", {})
    meta = template.setdefault("metadata", {})
    for section, values in patch["spec"]["template"]["metadata"].items():
        meta.setdefault(section, {}).update(values)
    live = {c["name"]: c for c in template.setdefault("spec", {}).setdefault("containers", [])}
    for container in patch["spec"]["template"]["spec"]["containers"]:
        target = live.get(container["name"])
        if target is None:
            continue  # SSA would add a nameless-image container: the charm never names one
        # capabilities.add is an atomic list: the applied one replaces what was there.
        caps = target.setdefault("securityContext", {}).setdefault("capabilities", {})
        caps["add"] = list(container["securityContext"]["capabilities"]["add"])
    sysctls = _sysctls(patch["spec"]["template"]["spec"])
    if sysctls:
        # sysctls is an atomic list, too.
        template["spec"].setdefault("securityContext", {})["sysctls"] = sysctls
    return result
