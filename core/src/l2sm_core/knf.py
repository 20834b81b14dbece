"""The KNF side of a network membership, as plain data: which address to ask for, which
interface a network arrived on, and what that interface must carry. Shared by the KNF
library (charm container) and the lab (pod namespaces)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from l2sm_core.attachments import (
    multus_attachment_names,
    parse_l2sm_networks,
    veth_port_number,
)


def parse_addresses(text: str) -> dict[str, str]:
    """`net-a=10.0.1.1/24,net-b=10.0.2.1/24` -> {network: a.b.c.d/len}; errors name the entry."""
    result: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, address = (piece.strip() for piece in entry.partition("="))
        if not sep or not name or not address:
            raise ValueError(f"{entry!r} is not network=address/prefix (e.g. net-a=10.0.1.1/24)")
        if "/" not in address:
            raise ValueError(f"{entry!r}: give the prefix length, e.g. {name}={address}/24")
        try:
            iface = ipaddress.IPv4Interface(address)
        except ValueError:
            raise ValueError(f"{entry!r}: {address!r} is not an IPv4 address with prefix length") from None
        if name in result:
            raise ValueError(f"{entry!r}: network {name!r} is given twice")
        result[name] = str(iface)
    return result


def address_for_unit(base: str, unit_number: int) -> str:
    """Unit 0 asks for `base`, unit N for the N-th address after it, in the same network."""
    iface = ipaddress.IPv4Interface(base)
    ip = iface.ip + unit_number
    if ip not in iface.network or ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError(f"{base} for unit {unit_number} would be {ip}, outside the usable {iface.network}")
    return f"{ip}/{iface.network.prefixlen}"


def attachment_interfaces(l2sm_networks: str, multus_networks: str, network_status: str) -> dict[str, str]:
    """Network name -> interface in the pod, from the pod's own annotations, never guessed.

    The webhook writes the Multus list in the order of `l2sm/networks`; Multus's
    network-status names the interface it made for each attachment.
    """
    requests = parse_l2sm_networks(l2sm_networks)
    nads = [n for n in multus_attachment_names(multus_networks) if veth_port_number(n)]
    try:
        status = json.loads(network_status) if network_status.strip() else []
    except ValueError:
        raise ValueError("k8s.v1.cni.cncf.io/network-status is not valid JSON") from None
    by_nad = {}
    for entry in status if isinstance(status, list) else []:
        if isinstance(entry, dict) and entry.get("interface"):
            by_nad[str(entry.get("name", "")).split("/")[-1]] = str(entry["interface"])
    result = {}
    for request, nad in zip(requests, nads, strict=False):
        if nad in by_nad:
            result[request.name] = by_nad[nad]
    return result


@dataclass(frozen=True)
class InterfacePlan:
    """What one network's interface must carry; anything else IPv4 on it is removed."""

    ifname: str
    mtu: int | None = None
    addresses: tuple[str, ...] = ()  # a.b.c.d/len
    routes: tuple[tuple[str, str], ...] = ()  # (prefix, via)


@dataclass(frozen=True)
class Membership:
    """One network as the KNF sees it."""

    network: str
    interface: str | None
    address: str | None
    rejection: str | None = None
    mtu: int | None = None
    routes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    cidr: str = ""

    def plan(self, connected: tuple[str, ...] = ()) -> InterfacePlan | None:
        """The interface's plan. Routes via this unit itself (a router hears its own offers)
        and routes to a network it is on (`connected`) are left out: the kernel's on-link
        route for those must stay."""
        if not self.interface:
            return None
        routes: tuple[tuple[str, str], ...] = ()
        if self.address:
            own = str(ipaddress.IPv4Interface(self.address).ip)
            on_link = [ipaddress.IPv4Network(c) for c in connected if c]
            routes = tuple(
                (prefix, via)
                for prefix, via in self.routes
                if via != own and not any(ipaddress.IPv4Network(prefix).overlaps(n) for n in on_link)
            )
        return InterfacePlan(
            ifname=self.interface,
            mtu=self.mtu,
            addresses=(self.address,) if self.address else (),
            routes=routes,
        )

    @property
    def waiting_for_address(self) -> bool:
        return bool(self.cidr) and not self.address and not self.rejection

    def status_line(self) -> str:
        if self.rejection:
            return f"{self.network}: refused: {self.rejection}"
        if self.waiting_for_address:
            return f"{self.network} waiting for an address"
        where = f"on {self.interface}" if self.interface else "waiting for its interface"
        return f"{self.network} {self.address or '(L2 only)'} {where}"
