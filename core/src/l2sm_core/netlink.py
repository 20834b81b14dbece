"""Apply interface plans with netlink (pyroute2): no tools needed in any image.

Runs in the charm container (which shares the pod's network namespace) or, for the lab,
in a named network namespace. Routes it adds carry their own protocol number, so it
removes exactly the routes it made and never one somebody else added.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from l2sm_core.knf import InterfacePlan

RTPROT_L2SM = 73  # our routes' protocol number (not assigned in /etc/iproute2/rt_protos)


class InterfaceMissing(Exception):
    """The plan names an interface the namespace does not have (yet)."""


def apply_plans(plans: Iterable[InterfacePlan], netns: str | None = None) -> list[str]:
    """Make each interface carry exactly its plan's IPv4 addresses and routes. Returns what
    changed, in words, for the log."""
    changes: list[str] = []
    plans = list(plans)
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        planned_indexes = set()
        for plan in plans:
            found = ipr.link_lookup(ifname=plan.ifname)
            if not found:
                raise InterfaceMissing(plan.ifname)
            index = next(iter(found))
            planned_indexes.add(index)
            changes += _apply_one(ipr, index, plan)
        # Routes we made on interfaces no plan names any more (a network left).
        for route in _our_routes(ipr):
            if route.get_attr("RTA_OIF") not in planned_indexes:
                _delete_route(ipr, route)
                changes.append(f"removed route {_describe(route)}")
    return changes


def _apply_one(ipr: IPRoute, index: int, plan: InterfacePlan) -> list[str]:
    changes = []
    link = next(iter(ipr.get_links(index)))
    if plan.mtu and link.get_attr("IFLA_MTU") != plan.mtu:
        ipr.link("set", index=index, mtu=plan.mtu)
        changes.append(f"{plan.ifname} mtu {plan.mtu}")
    if not link["flags"] & 1:  # IFF_UP
        ipr.link("set", index=index, state="up")
        changes.append(f"{plan.ifname} up")

    # Stale routes first: they may hang on an address about to go.
    current = {
        (f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY")): r
        for r in _our_routes(ipr, index)
    }
    wanted = {(str(ipaddress.IPv4Network(p)), str(ipaddress.IPv4Address(v))) for p, v in plan.routes}
    for key in sorted(set(current) - wanted):
        _delete_route(ipr, current[key])
        changes.append(f"{plan.ifname} removed route {key[0]} via {key[1]}")

    have = {
        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
        for a in ipr.get_addr(index=index, family=socket.AF_INET)
    }
    want = {str(ipaddress.IPv4Interface(a)) for a in plan.addresses}
    for address in sorted(have - want):
        ip, length = address.split("/")
        ipr.addr("del", index=index, address=ip, prefixlen=int(length))
        changes.append(f"{plan.ifname} removed {address}")
    for address in sorted(want - have):
        ip, length = address.split("/")
        ipr.addr("add", index=index, address=ip, prefixlen=int(length))
        changes.append(f"{plan.ifname} added {address}")

    # Read again: removing an address makes the kernel drop the routes through it.
    present = {
        (f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"))
        for r in _our_routes(ipr, index)
    }
    for prefix, via in sorted(wanted - present):
        ipr.route("replace", dst=prefix, gateway=via, oif=index, proto=RTPROT_L2SM)
        changes.append(f"{plan.ifname} route {prefix} via {via}")
    return changes


def _delete_route(ipr: IPRoute, route) -> None:
    try:
        ipr.route("del", **_route_key(route))
    except NetlinkError as exc:
        if exc.code != 3:  # ESRCH: the kernel dropped it with its address already
            raise


def _our_routes(ipr: IPRoute, index: int | None = None) -> list:
    routes = [r for r in ipr.get_routes(family=socket.AF_INET) if r["proto"] == RTPROT_L2SM]
    return [r for r in routes if index is None or r.get_attr("RTA_OIF") == index]


def _route_key(route) -> dict:
    return {
        "dst": f"{route.get_attr('RTA_DST')}/{route['dst_len']}",
        "gateway": route.get_attr("RTA_GATEWAY"),
        "oif": route.get_attr("RTA_OIF"),
        "proto": RTPROT_L2SM,
    }


def _describe(route) -> str:
    return f"{route.get_attr('RTA_DST')}/{route['dst_len']} via {route.get_attr('RTA_GATEWAY')}"
