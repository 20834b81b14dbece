"""The KNF side of a network membership, as plain data: which address to ask for, which
interface a network arrived on, and what that interface must carry. Shared by the KNF
library (charm container) and the lab (pod namespaces).

Nothing here trusts its input: the `addresses` option is the operator's, the plan comes from
another application's databag, and the pod's annotations can be edited by anyone who may
edit the pod. Each check says what is wrong and what would be right."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from l2sm_core.attachments import (
    MULTUS_STATUS_ANNOTATION,
    multus_attachment_names,
    parse_l2sm_networks,
    veth_port_number,
)
from l2sm_core.validation import (
    IPV4_WITH_LENGTH,
    clip,
    dns1123_label,
    ipv4_prefix,
    route_prefix,
    shown,
    unicast_ipv4,
)

# The L2S-M attachments are bridge-CNI veths of MTU 1400 (upstream's NADs); a larger MTU
# would be dropped on the VXLAN mesh, a smaller one than IPv4's minimum breaks IPv4.
ATTACHMENT_MTU = 1400
MIN_MTU = 576  # the least every IPv4 host must take
ADDRESSES_MAX = 4096  # characters: dozens of networks fit; a pasted file does not
# Linux interface names: at most 15 bytes; no '/', ':' or whitespace.
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def parse_addresses(text: str) -> dict[str, str]:
    """`net-a=10.0.1.1/24,net-b=10.0.2.1/24` -> {network: a.b.c.d/len}; errors name the entry.

    Spaces around entries are fine; newlines, control characters, host-less addresses
    (the network's own or its broadcast address), special ranges and duplicates are not."""
    if not isinstance(text, str):
        raise ValueError(f"must be text (network=address/prefix, comma separated), got {shown(text)}")
    if len(text) > ADDRESSES_MAX:
        raise ValueError(f"is {len(text)} characters long: at most {ADDRESSES_MAX}")
    if _CONTROL.search(text):
        raise ValueError(
            f"{shown(text)} contains a newline or control character: "
            "write network=address/prefix entries on one line, separated by commas"
        )
    result: dict[str, str] = {}
    holders: dict[str, str] = {}
    for entry in (part.strip(" ") for part in text.split(",")):
        if not entry:
            continue
        name, sep, address = (piece.strip(" ") for piece in entry.partition("="))
        if not sep or not name or not address:
            raise ValueError(f"{shown(entry)} is not network=address/prefix (e.g. net-a=10.0.1.1/24)")
        try:
            dns1123_label(name)
        except ValueError as exc:
            raise ValueError(f"{shown(entry)}: network name {exc}") from None
        if "/" not in address:
            raise ValueError(f"{shown(entry)}: give the prefix length, e.g. {name}={clip(address, 20)}/24")
        iface = _interface(entry, address)
        if name in result:
            raise ValueError(f"{shown(entry)}: network {name!r} is given twice")
        ip = str(iface.ip)
        if ip in holders:
            raise ValueError(
                f"{shown(entry)}: {ip} is given for {holders[ip]!r} too: one address per network"
            )
        result[name] = str(iface)
        holders[ip] = name
    return result


def _interface(entry: str, address: str) -> ipaddress.IPv4Interface:
    try:
        if not IPV4_WITH_LENGTH.fullmatch(address):
            raise ValueError(address)
        iface = ipaddress.IPv4Interface(address)
    except ValueError:
        raise ValueError(
            f"{shown(entry)}: {shown(address)} is not an IPv4 address with prefix length"
        ) from None
    try:
        unicast_ipv4(str(iface.ip))
    except ValueError as exc:
        raise ValueError(f"{shown(entry)}: {exc}") from None
    if iface.network.prefixlen > 30:
        raise ValueError(
            f"{shown(entry)}: /{iface.network.prefixlen} leaves no room for hosts: use /30 or wider"
        )
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError(f"{shown(entry)}: {iface.ip} is the network or broadcast address of {iface.network}")
    return iface


def address_for_unit(base: str, unit_number: int) -> str:
    """Unit 0 asks for `base`, unit N for the N-th address after it, in the same network."""
    iface = ipaddress.IPv4Interface(base)
    ip = iface.ip + unit_number
    if ip not in iface.network or ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError(f"{base} for unit {unit_number} would be {ip}, outside the usable {iface.network}")
    return f"{ip}/{iface.network.prefixlen}"


def request_in_cidr(network: str, base: str, unit_number: int, cidr: str) -> str:
    """The address unit N asks `network` for exactly (the N-th after `base`), checked against
    the CIDR the network has published: asking outside it would make the network revoke the
    address it holds."""
    return _in_cidr(network, address_for_unit(base, unit_number), cidr, f" (unit {unit_number})")


# A member may route to this many prefixes: enough for a router on many networks, and a
# bound on what one unit can make every other member install.
MAX_OFFERED_PREFIXES = 32


def offered_prefixes(other_cidrs: Iterable[str]) -> list[str]:
    """What a forwarding member offers one network: the prefixes of the other networks it
    joined (those with a usable CIDR), sorted, once each. ValueError past
    MAX_OFFERED_PREFIXES (the network would refuse the member's request)."""
    offered = set()
    for cidr in other_cidrs:
        try:
            offered.add(str(ipv4_prefix(cidr)))
        except ValueError:
            continue  # a pure L2 network (or an unreadable CIDR) has nothing to route to
    if len(offered) > MAX_OFFERED_PREFIXES:
        raise ValueError(
            f"this unit routes {len(offered)} other networks: a network takes at most "
            f"{MAX_OFFERED_PREFIXES} offered prefixes from one member; join fewer networks"
        )
    return sorted(offered)


def unit_request(network: str, base: str, unit_number: int, cidr: str) -> tuple[str, str]:
    """What unit N sends `network` for the `addresses` entry `base`: (`address`, `address-from`).

    `address-from` is `base` for every unit: the first free address from there, so a unit
    that comes back after a scale to 0 (router/1 after router/0) gets its predecessor's
    address and the routes via it stay valid. `address` is what unit N asked before
    `address-from` existed, the N-th address after `base`: a network that does not know
    `address-from` grants that, as it always did; "" (its pool) when that address falls
    outside the network. A `base` off the published cidr is a ValueError naming it."""
    start = _in_cidr(network, base, cidr, "")
    try:
        exact = address_for_unit(base, unit_number)
    except ValueError:
        exact = ""  # only an old network reads it; the new one grants from `start`
    return exact, start


def _in_cidr(network: str, address: str, cidr: str, who: str) -> str:
    if not cidr:
        raise ValueError(f"{network} is pure L2 (no cidr): it hands out no addresses; leave it out")
    iface = ipaddress.IPv4Interface(address)
    published = ipaddress.IPv4Network(cidr)
    if iface.ip not in published:
        raise ValueError(f"{address}{who} is outside {network}'s cidr {cidr}")
    if iface.network != published:
        raise ValueError(
            f"{address}{who} has prefix length /{iface.network.prefixlen}, "
            f"but {network}'s cidr is {cidr}: write /{published.prefixlen}"
        )
    return address


def attachment_interfaces(l2sm_networks: str, multus_networks: str, network_status: str) -> dict[str, str]:
    """Network name -> interface in the pod, from the pod's own annotations, never guessed.
    Raises ValueError naming the first annotation it cannot read (see `read_interfaces`)."""
    interfaces, problems = read_interfaces(l2sm_networks, multus_networks, network_status)
    if problems:
        raise ValueError(problems[0])
    return interfaces


def read_interfaces(
    l2sm_networks: object, multus_networks: object, network_status: object
) -> tuple[dict[str, str], list[str]]:
    """Network name -> interface in the pod, and what could not be read (each problem names
    its annotation). Never raises: anyone who may edit the pod may write these.

    The webhook writes the Multus list in the order of `l2sm/networks`; Multus's
    network-status names the interface it made for each attachment. An interface that is
    the pod's default one, loopback, or claimed by two attachments is never ours to set."""
    problems: list[str] = []
    try:
        requests = parse_l2sm_networks(l2sm_networks)  # type: ignore[arg-type]
        names = multus_attachment_names(multus_networks)  # type: ignore[arg-type]
        nads = [n for n in names if veth_port_number(n)]
    except ValueError as exc:
        return {}, [str(exc)]
    by_nad, status_problems = _network_status(network_status)
    problems += status_problems
    result: dict[str, str] = {}
    for request, nad in zip(requests, nads, strict=False):
        if nad in by_nad:
            result[request.name] = by_nad[nad]
    used: dict[str, list[str]] = {}
    for name, ifname in result.items():
        used.setdefault(ifname, []).append(name)
    for ifname, names in sorted(used.items()):
        if len(names) > 1:
            problems.append(f"{MULTUS_STATUS_ANNOTATION}: interface {ifname} is given for {', '.join(names)}")
            for name in names:
                del result[name]
    return result, problems


def _network_status(text: object) -> tuple[dict[str, str], list[str]]:
    """NAD name -> interface, from Multus's network-status; bad entries are named, not used."""
    where = MULTUS_STATUS_ANNOTATION
    if not isinstance(text, str):
        return {}, [f"{where} must be a string"]
    if not text.strip():
        return {}, []  # Multus has not reported yet: no interface, no guess
    try:
        status = json.loads(text)
    except (ValueError, RecursionError):
        return {}, [f"{where} is not valid JSON"]
    if not isinstance(status, list):
        return {}, [f"{where} must be a JSON list"]
    problems = []
    by_nad: dict[str, str] = {}
    reserved = {"lo"}
    for entry in status:
        if (
            isinstance(entry, dict)
            and entry.get("default") is True
            and isinstance(entry.get("interface"), str)
        ):
            reserved.add(entry["interface"])
    for entry in status:
        if not isinstance(entry, dict) or entry.get("default") is True or "interface" not in entry:
            continue
        name, ifname = entry.get("name"), entry.get("interface")
        if not isinstance(name, str) or not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname):
            problems.append(f"{where}: entry {shown(name)} has no usable interface name ({shown(ifname)})")
            continue
        if ifname in reserved:
            problems.append(f"{where}: {shown(name)} names {ifname}, the pod's own interface")
            continue
        by_nad[name.split("/")[-1]] = ifname
    return by_nad, problems


@dataclass(frozen=True)
class InterfacePlan:
    """What one network's interface must carry; anything else IPv4 on it is removed."""

    ifname: str
    mtu: int | None = None
    addresses: tuple[str, ...] = ()  # a.b.c.d/len
    routes: tuple[tuple[str, str], ...] = ()  # (prefix, via)


def plan_problems(plan: InterfacePlan) -> list[str]:
    """What in a plan netlink must not apply, whoever made it (the library checks each part
    against the network's answer first; the lab or a caller may not): an interface name
    Linux would refuse or the loopback, an MTU outside 576-1400, an address that is not
    a.b.c.d/len with host bits, a route that is no prefix or goes through an off-link gateway."""
    problems = []
    if not isinstance(plan.ifname, str) or not _IFNAME.fullmatch(plan.ifname) or plan.ifname == "lo":
        problems.append(f"interface {shown(plan.ifname)} is not an interface name this may configure")
    where = shown(plan.ifname, 24)
    if plan.mtu is not None and not (isinstance(plan.mtu, int) and MIN_MTU <= plan.mtu <= ATTACHMENT_MTU):
        problems.append(f"{where}: mtu {shown(plan.mtu)} is outside {MIN_MTU}-{ATTACHMENT_MTU}")
    networks = []
    for address in plan.addresses:
        try:
            iface = _interface(address, address)
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: address {clip(str(exc), 120)}")
            continue
        networks.append(iface)
    for prefix, via in plan.routes:
        try:
            # Any prefix, the default route too (which prefixes to accept is the plan's
            # maker's policy: `Membership.checked_plan` refuses /0 and special ranges).
            if not isinstance(prefix, str) or not IPV4_WITH_LENGTH.fullmatch(prefix):
                raise ValueError(f"{shown(prefix)} is not an IPv4 prefix (a.b.c.d/len)")
            ipaddress.IPv4Network(prefix)
            gateway = unicast_ipv4(via)
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: route {clip(str(exc), 120)}")
            continue
        if not any(gateway in n.network and gateway != n.ip for n in networks):
            problems.append(f"{where}: route {prefix} via {via}: the gateway is not on-link")
    return problems


@dataclass(frozen=True)
class CheckedPlan:
    """A plan with what was refused in it. Each refusal names the databag field it came
    from ('network', 'assignments', 'routes'); the refused part keeps the last applied value."""

    plan: InterfacePlan | None
    refused: tuple[str, ...] = ()


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

    def plan(
        self, connected: tuple[str, ...] = (), last: InterfacePlan | None = None
    ) -> InterfacePlan | None:
        """The interface's plan, with whatever `checked_plan` refuses left at `last`."""
        return self.checked_plan(connected, last).plan

    def checked_plan(self, connected: tuple[str, ...] = (), last: InterfacePlan | None = None) -> CheckedPlan:
        """The interface's plan, every part checked before netlink sees it: an address inside
        the network's CIDR (neither its network nor broadcast address), an MTU within
        576-1400, routes to ordinary prefixes through a gateway on this network. A refused
        part keeps what `last` (the last applied plan) had, or is left out.

        Routes via this unit itself (a router hears its own offers) and routes to a network
        it is on (`connected`) are left out silently: the kernel's on-link route for those
        must stay."""
        if not self.interface:
            return CheckedPlan(None)
        refused: list[str] = []
        network = self._network(refused)
        mtu = self.mtu
        if mtu is not None and not MIN_MTU <= mtu <= ATTACHMENT_MTU:
            refused.append(
                f"field 'network': mtu {shown(mtu)} is outside {MIN_MTU}-{ATTACHMENT_MTU} "
                "(L2S-M's attachments)"
            )
            mtu = last.mtu if last else None
        address = self._address(network, refused, last)
        routes: tuple[tuple[str, str], ...] = ()
        if address:
            own = ipaddress.IPv4Interface(address)
            on_link = []
            for cidr in connected:
                try:
                    on_link.append(ipv4_prefix(cidr))
                except ValueError:
                    continue
            kept = self._routes(own, refused, last)
            routes = tuple(
                (prefix, via)
                for prefix, via in kept
                if via != str(own.ip) and not any(ipaddress.IPv4Network(prefix).overlaps(n) for n in on_link)
            )
        plan = InterfacePlan(
            ifname=self.interface,
            mtu=mtu,
            addresses=(address,) if address else (),
            routes=routes,
        )
        return CheckedPlan(plan, tuple(refused))

    def _network(self, refused: list[str]) -> ipaddress.IPv4Network | None:
        if not self.cidr:
            return None
        try:
            return ipv4_prefix(self.cidr)
        except ValueError as exc:
            refused.append(f"field 'network': cidr {clip(str(exc), 160)}")
            return None

    def _address(
        self, network: ipaddress.IPv4Network | None, refused: list[str], last: InterfacePlan | None
    ) -> str | None:
        if not self.address:
            return None
        kept = last.addresses[0] if last and last.addresses else None
        try:
            iface = ipaddress.IPv4Interface(self.address)
        except ValueError:
            refused.append(
                f"field 'assignments': {shown(self.address)} is not an IPv4 address with prefix length"
            )
            return kept
        if network is None and self.cidr:
            return kept  # the cidr itself was refused (and said so): the address cannot be checked
        if network is None:
            problem = f"{self.address} given on a pure L2 network (no cidr)"
        elif iface.ip not in network:
            problem = f"{self.address} is outside the network's cidr {network}"
        elif iface.network != network:
            problem = f"{self.address} has prefix length /{iface.network.prefixlen}, the cidr is {network}"
        elif iface.ip in (network.network_address, network.broadcast_address):
            problem = f"{self.address} is the network or broadcast address of {network}"
        else:
            return str(iface)
        refused.append(f"field 'assignments': {problem}")
        return kept

    def _routes(
        self, own: ipaddress.IPv4Interface, refused: list[str], last: InterfacePlan | None
    ) -> list[tuple[str, str]]:
        previous = dict(last.routes) if last else {}
        kept: dict[str, str] = {}
        for prefix, via in self.routes:
            try:
                problem = self._route_problem(own, prefix, via)
            except ValueError as exc:
                problem = f"{shown(prefix)} via {shown(via)}: {exc}"
            if problem is None:
                kept.setdefault(str(ipaddress.IPv4Network(prefix)), via)
                continue
            refused.append(f"field 'routes': {clip(problem, 160)}")
            # The last applied gateway, if it is still on this address's network.
            if prefix in previous and self._kept_route(own, prefix, previous[prefix]):
                kept.setdefault(prefix, previous[prefix])
        return list(kept.items())

    @classmethod
    def _kept_route(cls, own: ipaddress.IPv4Interface, prefix: str, via: str) -> bool:
        try:
            return cls._route_problem(own, prefix, via) is None
        except ValueError:
            return False

    @staticmethod
    def _route_problem(own: ipaddress.IPv4Interface, prefix: str, via: str) -> str | None:
        route_prefix(prefix)
        gateway = unicast_ipv4(via)
        if gateway not in own.network:
            return f"{prefix} via {via}: the gateway is not on-link (outside {own.network})"
        if gateway in (own.network.network_address, own.network.broadcast_address):
            return f"{prefix} via {via}: the gateway is the network or broadcast address of {own.network}"
        return None

    @property
    def waiting_for_address(self) -> bool:
        return bool(self.cidr) and not self.address and not self.rejection

    def status_line(self) -> str:
        if self.rejection:
            return f"{self.network}: refused: {clip(' '.join(self.rejection.split()), 200)}"
        if self.waiting_for_address:
            return f"{self.network} waiting for an address"
        where = f"on {self.interface}" if self.interface else "waiting for its interface"
        return f"{self.network} {self.address or '(L2 only)'} {where}"
