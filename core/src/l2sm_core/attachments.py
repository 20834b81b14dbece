"""Which switch port a pod holds on which network, read from the pod's annotations.

The webhook writes the Multus list in the order of the pod's `l2sm/networks` entries (the
i-th network takes the i-th veth attachment) and the operator adds port N of the node's
switch, N being the number at the end of the attachment's name (`<overlay>-veth3` -> 3).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from l2sm_core.naming import port_endpoint

L2SM_NETWORKS_ANNOTATION = "l2sm/networks"
L2SM_ERROR_ANNOTATION = "l2sm/error"
MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
MULTUS_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
L2SM_POD_LABEL = "l2sm"

_VETH_NAD = re.compile(r"-veth([1-9][0-9]*)$")


@dataclass(frozen=True)
class NetworkRequest:
    """One entry of a pod's `l2sm/networks`."""

    name: str
    ips: tuple[str, ...] = ()


def parse_l2sm_networks(text: str) -> list[NetworkRequest]:
    """Both forms upstream accepts: a JSON list of {name, ips} or `net-a, net-b`."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{L2SM_NETWORKS_ANNOTATION} is not valid JSON: {exc}") from None
        result = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError(f"{L2SM_NETWORKS_ANNOTATION}: every entry needs a string 'name'")
            ips = entry.get("ips") or []
            result.append(NetworkRequest(entry["name"], tuple(str(ip) for ip in ips)))
        return result
    return [NetworkRequest(part.strip()) for part in text.split(",") if part.strip()]


def render_l2sm_networks(requests: list[NetworkRequest]) -> str:
    """The JSON form, in the given order (the order is the interface mapping)."""
    return json.dumps(
        [{"name": r.name, **({"ips": list(r.ips)} if r.ips else {})} for r in requests],
        separators=(",", ":"),
    )


def multus_attachment_names(text: str) -> list[str]:
    """NAD names of a Multus networks annotation (JSON list or `ns/name@if, ...`)."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{MULTUS_NETWORKS_ANNOTATION} is not valid JSON: {exc}") from None
        return [str(e["name"]) for e in entries if isinstance(e, dict) and "name" in e]
    names = []
    for part in text.split(","):
        part = part.strip()
        if part:
            names.append(part.split("/")[-1].split("@")[0])
    return names


def veth_port_number(nad_name: str) -> int | None:
    match = _VETH_NAD.search(nad_name)
    return int(match.group(1)) if match else None


def pod_endpoints(node: str, l2sm_networks: str, multus_networks: str) -> dict[str, list[str]]:
    """Network name -> the switch ports this pod holds on it (a pod may join a network twice)."""
    requests = parse_l2sm_networks(l2sm_networks)
    ports = [n for n in (veth_port_number(a) for a in multus_attachment_names(multus_networks)) if n]
    result: dict[str, list[str]] = {}
    for request, port in zip(requests, ports, strict=False):
        result.setdefault(request.name, []).append(port_endpoint(node, port))
    return result


def ports_in_use(overlay: str, pods: list[tuple[str, str]]) -> dict[str, set[int]]:
    """Switch ports held per node, from (node, Multus annotation) of each live L2S-M pod.

    Only this overlay's attachments (`<overlay>-vethN`) count.
    """
    usage: dict[str, set[int]] = {}
    prefix = f"{overlay}-veth"
    for node, multus in pods:
        if not node:
            continue
        for name in multus_attachment_names(multus):
            port = veth_port_number(name)
            if port and name == f"{prefix}{port}":
                usage.setdefault(node, set()).add(port)
    return usage
