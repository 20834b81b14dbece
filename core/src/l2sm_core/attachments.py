"""Which switch port a pod holds on which network, read from the pod's annotations.

The webhook writes the Multus list in the order of the pod's `l2sm/networks` entries (the
i-th network takes the i-th veth attachment) and the operator adds port N of the node's
switch, N being the number at the end of the attachment's name (`<overlay>-veth3` -> 3).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from l2sm_core.manifests import deleting
from l2sm_core.naming import port_endpoint
from l2sm_core.validation import dns1123_subdomain, shown

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


def _json_list(text: str, annotation: str) -> list[Any]:
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{annotation} is not valid JSON: {shown(str(exc), 80)}") from None
    if not isinstance(entries, list):
        raise ValueError(f"{annotation} must be a JSON list")
    return entries


def _network_name(name: Any) -> str:
    # Any L2Network name the API server takes: networks made with helm or kubectl may have dots.
    try:
        return dns1123_subdomain(name)
    except ValueError as exc:
        raise ValueError(f"{L2SM_NETWORKS_ANNOTATION}: network name {exc}") from None


def parse_l2sm_networks(text: str) -> list[NetworkRequest]:
    """Both forms upstream accepts: a JSON list of {name, ips} or `net-a, net-b`. Anything
    else (anyone in the cluster may write it) is a ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{L2SM_NETWORKS_ANNOTATION} must be a string")
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        result = []
        for entry in _json_list(text, L2SM_NETWORKS_ANNOTATION):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError(f"{L2SM_NETWORKS_ANNOTATION}: every entry needs a string 'name'")
            ips = entry.get("ips") or []
            if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
                raise ValueError(
                    f"{L2SM_NETWORKS_ANNOTATION}: 'ips' of {shown(entry['name'])} must be a list of strings"
                )
            result.append(NetworkRequest(_network_name(entry["name"]), tuple(ips)))
        return result
    return [NetworkRequest(_network_name(part.strip())) for part in text.split(",") if part.strip()]


def render_l2sm_networks(requests: list[NetworkRequest]) -> str:
    """The JSON form, in the given order (the order is the interface mapping)."""
    return json.dumps(
        [{"name": r.name, **({"ips": list(r.ips)} if r.ips else {})} for r in requests],
        separators=(",", ":"),
    )


def multus_attachment_names(text: str) -> list[str]:
    """NAD names of a Multus networks annotation (JSON list or `ns/name@if, ...`)."""
    if not isinstance(text, str):
        raise ValueError(f"{MULTUS_NETWORKS_ANNOTATION} must be a string")
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        entries = _json_list(text, MULTUS_NETWORKS_ANNOTATION)
        return [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    names = []
    for part in text.split(","):
        part = part.strip()
        if part:
            names.append(part.split("/")[-1].split("@")[0])
    return names


def veth_port_number(nad_name: str) -> int | None:
    match = _VETH_NAD.search(nad_name)
    return int(match.group(1)) if match else None


def ports_in_use(overlay: str, pods: Iterable[PodAttachments]) -> dict[str, set[int]]:
    """Switch ports held per node by the live pods. Only this overlay's attachments
    (`<overlay>-vethN`) count."""
    usage: dict[str, set[int]] = {}
    prefix = f"{overlay}-veth"
    for pod in pods:
        if not pod.node or pod.gone:
            continue
        for name in pod.attachments:
            port = veth_port_number(name)
            if port and name == f"{prefix}{port}":
                usage.setdefault(pod.node, set()).add(port)
    return usage


@dataclass(frozen=True)
class PodAttachments:
    """What one pod's annotations say it holds. A malformed annotation (any tenant can write
    one) counts as holding nothing through it, and is named in `problems`."""

    pod: str  # namespace/name
    node: str
    requests: tuple[NetworkRequest, ...]
    attachments: tuple[str, ...]  # Multus NAD names, in order
    gone: bool  # being deleted, or finished: its ports are released
    problems: tuple[str, ...] = ()
    uid: str = ""
    created: datetime.datetime | None = None  # creationTimestamp

    def endpoints(self) -> dict[str, list[str]]:
        """Network name -> the switch ports this pod holds on it."""
        if not self.node:
            return {}
        ports = [n for n in (veth_port_number(a) for a in self.attachments) if n]
        result: dict[str, list[str]] = {}
        for request, port in zip(self.requests, ports, strict=False):
            result.setdefault(request.name, []).append(port_endpoint(self.node, port))
        return result


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def read_pod(pod: Mapping[str, Any]) -> PodAttachments:
    """Never raises: every field of a pod object is read defensively."""
    meta = _mapping(pod.get("metadata"))
    notes = _mapping(meta.get("annotations"))
    node = _mapping(pod.get("spec")).get("nodeName")
    phase = _mapping(pod.get("status")).get("phase")
    problems = []
    try:
        requests = tuple(parse_l2sm_networks(notes.get(L2SM_NETWORKS_ANNOTATION, "")))
    except ValueError as exc:
        requests = ()
        problems.append(str(exc))
    try:
        nads = tuple(multus_attachment_names(notes.get(MULTUS_NETWORKS_ANNOTATION, "")))
    except ValueError as exc:
        nads = ()
        problems.append(str(exc))
    return PodAttachments(
        pod=f"{meta.get('namespace') or ''}/{meta.get('name') or '?'}",
        node=node if isinstance(node, str) else "",
        requests=requests,
        attachments=nads,
        gone=deleting(pod) or phase in ("Succeeded", "Failed"),
        problems=tuple(problems),
        uid=uid if isinstance(uid := meta.get("uid"), str) else "",
        created=_timestamp(meta.get("creationTimestamp")),
    )


def _timestamp(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None


def read_pods(pods: Iterable[Mapping[str, Any]]) -> list[PodAttachments]:
    return [read_pod(pod) for pod in pods]


@dataclass(frozen=True)
class SettledEndpoints:
    """Which switch ports each pod holds, as first seen, and what to remember for next time."""

    pods: tuple[tuple[PodAttachments, dict[str, list[str]]], ...]  # each pod, network -> ports
    memory: dict[str, dict[str, list[str]]]  # pod uid -> network -> ports, as first seen
    edited: tuple[str, ...]  # pods whose annotations now say something else


def settle_endpoints(
    pods: Iterable[PodAttachments], memory: Mapping[str, Mapping[str, list[str]]]
) -> SettledEndpoints:
    """A pod's interfaces are attached once, when it starts: upstream reads its annotations
    only then. Anyone may edit them later (`kubectl annotate`), and trusting the edit would
    move the pod's ports into other networks: an isolation breach. So what a pod (by uid)
    was first seen to hold stands for as long as it lives; memory keeps only live uids."""
    settled: list[tuple[PodAttachments, dict[str, list[str]]]] = []
    kept: dict[str, dict[str, list[str]]] = {}
    edited = []
    for pod in pods:
        now = pod.endpoints()
        first = memory.get(pod.uid) if pod.uid else None
        if first is not None:
            if {k: sorted(v) for k, v in now.items()} != {k: sorted(v) for k, v in first.items()}:
                edited.append(pod.pod)
            now = {k: list(v) for k, v in first.items()}
        if pod.uid and now:
            kept[pod.uid] = now
        settled.append((pod, now))
    return SettledEndpoints(tuple(settled), kept, tuple(edited))
