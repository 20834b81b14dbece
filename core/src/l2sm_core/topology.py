"""The switch fabric's shape: which nodes get a switch and which switches are linked."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from l2sm_core.validation import clip, shown

FULL_MESH = "full-mesh"
# Kubernetes node names are DNS-1123 subdomains.
# fullmatch: `$` would let a trailing newline through.
_NODE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Names listed in one message at most: a status line must stay readable.
_LISTED = 120


@dataclass(frozen=True, order=True)
class Link:
    """An undirected VXLAN link between two nodes' switches (endpoints kept sorted)."""

    a: str
    b: str

    @classmethod
    def between(cls, one: str, other: str) -> Link:
        if one == other:
            raise ValueError(f"a link needs two different nodes, got {shown(f'{one}:{other}')}")
        return cls(*sorted((one, other)))


def node_name(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 253 or not _NODE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a Kubernetes node name (lowercase DNS subdomain)")
    return value


def parse_nodes(text: str) -> tuple[str, ...]:
    """A comma list of node names; empty means every schedulable Linux node (decided by the
    caller). Commas without any name are a mistake, not "every node"."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names and text.strip():
        raise ValueError(f"{shown(text)} names no node: give node names, or leave it empty for every node")
    return tuple(sorted({node_name(n) for n in names}))


def listed(names: tuple[str, ...] | list[str]) -> str:
    """Names for a message, comma separated and clipped."""
    return clip(", ".join(names), _LISTED)


def parse_topology(text: str, nodes: tuple[str, ...]) -> tuple[Link, ...]:
    """`full-mesh`, or links `node-a:node-b, node-b:node-c` between the given nodes."""
    text = text.strip()
    if text == FULL_MESH:
        return tuple(Link.between(x, y) for x, y in itertools.combinations(sorted(nodes), 2))
    links = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ends = [e.strip() for e in part.split(":")]
        if len(ends) != 2 or not all(ends):
            raise ValueError(f"{shown(part)} is not a link: write node-a:node-b, or use {FULL_MESH}")
        for end in ends:
            if end not in nodes:
                raise ValueError(
                    f"link {shown(part)} names {shown(end)}, which is not a switch node ({listed(nodes)})"
                )
        links.add(Link.between(*ends))
    if not links and len(nodes) > 1:
        raise ValueError(f"no links given: write node-a:node-b pairs or {FULL_MESH}")
    return tuple(sorted(links))


def isolated_nodes(nodes: tuple[str, ...], links: tuple[Link, ...]) -> tuple[str, ...]:
    """Nodes no link reaches: their pods can only talk to pods on the same node."""
    if len(nodes) < 2:
        return ()
    linked = {end for link in links for end in (link.a, link.b)}
    return tuple(n for n in nodes if n not in linked)


def fnv1_32(data: bytes) -> int:
    """FNV-1 (not 1a), 32 bits: what Go's hash/fnv New32 computes."""
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def switch_pod_name(overlay: str, node: str) -> str:
    """The operator's name for a node's switch ReplicaSet and pod label (`sps-` + FNV-1 hex)."""
    return f"sps-{fnv1_32((overlay + node).encode()):04x}"
