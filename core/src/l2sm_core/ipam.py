"""Addresses and routes of one network's members: pure functions, the same inputs in any
order giving the same result, so every leader (and the lab) computes the same answer."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from l2sm_core.validation import route_prefix


@dataclass(frozen=True)
class Member:
    """A unit on the network: what it asked for and what it routes to."""

    unit: str  # Juju unit name, e.g. cdn-router/0
    requested: str = ""  # a.b.c.d/len exactly, or "" for the pool
    offered: tuple[str, ...] = ()  # prefixes this unit forwards to
    # a.b.c.d/len: the first free address at or after it (a unit that comes back after a
    # scale to 0 gets its predecessor's address). Set, it supersedes `requested`.
    start: str = ""

    @property
    def exact(self) -> str:
        """The address asked for exactly, "" for none (a pool or a from-request)."""
        return "" if self.start else self.requested


def unit_order(unit: str) -> tuple[str, int]:
    """Application name, then unit number as a number (router/10 after router/9)."""
    app, _, number = unit.rpartition("/")
    return (app, int(number)) if number.isdigit() else (unit, -1)


@dataclass(frozen=True)
class Allocation:
    assignments: dict[str, str] = field(default_factory=dict)  # unit -> a.b.c.d/len
    rejections: dict[str, str] = field(default_factory=dict)  # unit -> reason


def _members(members: Iterable[Member]) -> list[Member]:
    """One entry per unit, in unit order; a unit given twice keeps its greatest entry, so the
    input order never matters."""
    by_unit: dict[str, Member] = {}
    for member in members:
        kept = by_unit.get(member.unit)
        if kept is None or _key(member) > _key(kept):
            by_unit[member.unit] = member
    return [by_unit[u] for u in sorted(by_unit, key=unit_order)]


def _key(member: Member) -> tuple[str, str, tuple[str, ...]]:
    return (member.requested, member.start, member.offered)


def allocate(
    cidr: str,
    reserved: Iterable[str],
    members: Iterable[Member],
    existing: Mapping[str, str],
) -> Allocation:
    """Keep what units hold, grant exact requests, then from-requests, then the pool.

    An existing assignment stays its holder's while it still satisfies the request (the
    address asked for; one at or after a from-request's start; any, for the pool) and is
    never moved to make room. Then, each step in unit order: exact requests (among new
    requests for one address the lowest unit wins), from-requests (the first free address
    at or after the start), pool requests (the lowest free address). `existing` holds what
    was assigned before (departed units simply are not among `members`).
    """
    ordered = _members(members)
    if not cidr:
        rejections = {
            m.unit: f"{m.exact or m.start} asked for, but this network is pure L2 (no cidr): no addresses"
            for m in ordered
            if m.exact or m.start
        }
        return Allocation(rejections=rejections)
    net = ipaddress.IPv4Network(cidr)
    blocked = {ipaddress.IPv4Address(r) for r in reserved}

    def unusable(ip: ipaddress.IPv4Address) -> str | None:
        if ip not in net:
            return f"outside {cidr}"
        if ip == net.network_address:
            return f"the network address of {cidr}"
        if ip == net.broadcast_address:
            return f"the broadcast address of {cidr}"
        if ip in blocked:
            return "reserved"
        return None

    held: dict[ipaddress.IPv4Address, str] = {}
    assignments: dict[str, str] = {}
    rejections: dict[str, str] = {}

    def grant(unit: str, ip: ipaddress.IPv4Address) -> None:
        held[ip] = unit
        assignments[unit] = f"{ip}/{net.prefixlen}"

    def wrong_length(requested: str) -> str | None:
        iface = ipaddress.IPv4Interface(requested)
        if iface.network.prefixlen == net.prefixlen:
            return None
        return (
            f"{requested} has prefix length /{iface.network.prefixlen}: "
            f"use {iface.ip}/{net.prefixlen} ({cidr})"
        )

    def refusal(member: Member) -> str | None:
        """Why a request cannot be granted, whoever holds what."""
        asked = member.exact or member.start
        reason = wrong_length(asked)
        if reason:
            return reason
        ip = ipaddress.IPv4Interface(asked).ip
        if member.exact:
            why = unusable(ip)
            return f"{ip} is {why}" if why else None
        # A start may be the network address or a reserved one: the search skips those.
        return None if ip in net else f"{ip} is outside {cidr}: no address from it"

    def satisfies(member: Member, ip: ipaddress.IPv4Address) -> bool:
        if member.exact:
            return ipaddress.IPv4Interface(member.exact) == ipaddress.IPv4Interface(f"{ip}/{net.prefixlen}")
        if member.start:
            start = ipaddress.IPv4Interface(member.start)
            return start.network == net and ip >= start.ip
        return True

    # What units hold already stays theirs while it is valid and still satisfies what they
    # ask. A holder asking for something else keeps what it has until the new one is
    # granted: a refused request never costs a working address.
    fallback: dict[str, ipaddress.IPv4Address] = {}
    for member in ordered:
        old = existing.get(member.unit)
        if not old:
            continue
        iface = ipaddress.IPv4Interface(old)
        if iface.network != net or unusable(iface.ip) is not None or iface.ip in held:
            continue  # no longer valid here: released
        if satisfies(member, iface.ip):
            grant(member.unit, iface.ip)
            continue
        reason = refusal(member)
        if reason:
            grant(member.unit, iface.ip)
            rejections[member.unit] = reason
        else:
            fallback[member.unit] = iface.ip
            held[iface.ip] = member.unit  # still its own until the move is granted

    def settle(member: Member, ip: ipaddress.IPv4Address | None, reason: str | None) -> None:
        kept = fallback.get(member.unit)
        if ip is not None:
            if kept is not None:
                del held[kept]  # moved: the old address is free for the others from here on
            grant(member.unit, ip)
            return
        assert reason is not None
        rejections[member.unit] = reason
        if kept is not None:
            grant(member.unit, kept)

    for member in ordered:
        if member.unit in assignments or not member.exact:
            continue
        ip = ipaddress.IPv4Interface(member.exact).ip
        reason = refusal(member)
        if reason is None and ip in held:
            reason = f"{ip} is held by {held[ip]}"
        settle(member, ip if reason is None else None, reason)

    for member in ordered:
        if member.unit in assignments or not member.start:
            continue
        reason = refusal(member)
        found = None
        if reason is None:
            start = ipaddress.IPv4Interface(member.start).ip
            # Stops at the first free one: at most len(held) + len(blocked) + 2 steps.
            candidates = (start + n for n in range(int(net.broadcast_address) - int(start) + 1))
            found = next((ip for ip in candidates if ip not in held and unusable(ip) is None), None)
            if found is None:
                reason = f"no free address from {start} in {cidr}"
        settle(member, found, reason)

    free = (ip for ip in net.hosts() if ip not in held and ip not in blocked)
    for member in ordered:
        if member.unit in assignments or member.exact or member.start:
            continue
        ip = next(free, None)
        if ip is None:
            rejections[member.unit] = f"no free address left in {cidr}"
        else:
            grant(member.unit, ip)
    # In unit order: the same answer is always written the same way.
    return Allocation(assignments=_in_unit_order(assignments), rejections=_in_unit_order(rejections))


def _in_unit_order(by_unit: Mapping[str, str]) -> dict[str, str]:
    return {unit: by_unit[unit] for unit in sorted(by_unit, key=unit_order)}


def renumbered(cidr: str, held: Mapping[str, str]) -> dict[str, str]:
    """The holders (unit -> address) that `cidr` would take an address from: it is not on
    that network (or the network has no cidr any more). A live member is never renumbered:
    its static request, its peers' configuration and its routes all name the old address."""
    net = ipaddress.IPv4Network(cidr) if cidr else None
    return _in_unit_order(
        {u: a for u, a in held.items() if net is None or ipaddress.IPv4Interface(a).network != net}
    )


def reserved_held(reserved: Iterable[str], held: Mapping[str, str]) -> dict[str, str]:
    """Reserved addresses (address -> holder) that a member holds: reserving one would take
    it from the holder."""
    wanted = sorted({str(ipaddress.IPv4Address(r)) for r in reserved}, key=ipaddress.IPv4Address)
    if not wanted:
        return {}  # the usual case: no holder to parse (10 000 members took 70 ms per call)
    holder_of = {str(ipaddress.IPv4Interface(a).ip): u for u, a in held.items()}
    return {ip: holder_of[ip] for ip in wanted if ip in holder_of}


def offers_routed_via(routes: Iterable[Mapping[str, str]], address: str) -> tuple[str, ...]:
    """The prefixes of `routes` that go via `address` (a.b.c.d/len): what a member was
    routing for the others when the table was written."""
    ip = str(ipaddress.IPv4Interface(address).ip)
    return tuple(sorted({r["prefix"] for r in routes if r.get("via") == ip}))


@dataclass(frozen=True)
class RouteTable:
    routes: list[dict[str, str]] = field(default_factory=list)  # [{prefix, via}]
    # prefix -> units whose offer lost to another member's (or had no address to route via)
    shadowed: dict[str, list[str]] = field(default_factory=dict)
    # prefix -> units that offered it although it overlaps this network (on-link: never routed)
    ignored: dict[str, list[str]] = field(default_factory=dict)


def compute_routes(cidr: str, members: Iterable[Member], assignments: Mapping[str, str]) -> RouteTable:
    """Every member's offered prefix but this network's own, via that member's address.

    Two members offering one prefix: the lowest unit with an address wins, the others are
    reported. Prefixes overlapping this network are never routed (they are on-link).
    """
    own = ipaddress.IPv4Network(cidr) if cidr else None
    offers: dict[ipaddress.IPv4Network, list[str]] = {}
    table = RouteTable()
    for member in _members(members):
        for text in dict.fromkeys(member.offered):  # an offer made twice counts once
            try:
                prefix = route_prefix(text)
            except ValueError:
                # The schema refuses these; a caller that did not check gets no route for them.
                table.ignored.setdefault(text, []).append(member.unit)
                continue
            if own is not None and prefix.overlaps(own):
                table.ignored.setdefault(str(prefix), []).append(member.unit)
                continue
            if member.unit not in offers.get(prefix, []):
                offers.setdefault(prefix, []).append(member.unit)
    for prefix in sorted(offers):
        units = offers[prefix]
        routable = [u for u in units if u in assignments]
        if routable:
            via = str(ipaddress.IPv4Interface(assignments[routable[0]]).ip)
            table.routes.append({"prefix": str(prefix), "via": via})
        losers = [u for u in units if not routable or u != routable[0]]
        if losers:
            table.shadowed[str(prefix)] = losers
    return table
