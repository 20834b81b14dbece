"""Apply interface plans with netlink (pyroute2): no tools needed in any image.

Runs in the charm container (which shares the pod's network namespace) or, for the lab,
in a named network namespace. Routes it adds carry their own protocol number, so it
removes exactly the routes it made; it never replaces or removes a route somebody else
added.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from l2sm_core.knf import InterfacePlan, plan_problems

RTPROT_L2SM = 73  # our routes' protocol number (not assigned in /etc/iproute2/rt_protos)


class InterfaceMissing(Exception):
    """The plan names an interface the namespace does not have (yet)."""


def apply_plans(plans: Iterable[InterfacePlan], netns: str | None = None) -> list[str]:
    """Make each interface carry exactly its plan's IPv4 addresses and MTU, and the namespace
    exactly the routes of all plans. One route per prefix: if two networks bring the same
    prefix, the plan listed first keeps it; a route to a prefix that somebody else added is
    left alone. Returns what changed (and what was left alone), in words, for the log.
    A plan `plan_problems` refuses is a ValueError, and nothing is changed."""
    changes: list[str] = []
    plans = list(plans)
    # Checked before anything is touched: a route refused halfway would leave the
    # interfaces half configured.
    problems = [p for plan in plans for p in plan_problems(plan)]
    if problems:
        raise ValueError(f"refusing to apply: {'; '.join(problems)}")
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        indexes: dict[str, int] = {}
        for plan in plans:
            found = ipr.link_lookup(ifname=plan.ifname)
            if not found:
                raise InterfaceMissing(plan.ifname)
            indexes[plan.ifname] = next(iter(found))
        wanted: dict[str, tuple[int, str, str]] = {}  # prefix -> (oif, via, ifname)
        for plan in plans:
            for prefix, via in plan.routes:
                key = str(ipaddress.IPv4Network(prefix))
                if key in wanted:
                    changes.append(f"{plan.ifname}: route {key} already comes through {wanted[key][2]}")
                    continue
                wanted[key] = (indexes[plan.ifname], str(ipaddress.IPv4Address(via)), plan.ifname)
        # Stale routes first: they may hang on an address about to go.
        for route in _our_routes(ipr):
            key = _dst(route)
            if wanted.get(key, (None, None))[:2] != (
                route.get_attr("RTA_OIF"),
                route.get_attr("RTA_GATEWAY"),
            ):
                _delete_route(ipr, route)
                changes.append(f"removed route {key} via {route.get_attr('RTA_GATEWAY')}")
        for plan in plans:
            changes += _apply_link_and_addresses(ipr, indexes[plan.ifname], plan)
        # Read again: removing an address makes the kernel drop the routes through it.
        ours = {_dst(r) for r in _our_routes(ipr)}
        others = {
            _dst(r) for r in ipr.get_routes(family=socket.AF_INET, table=254) if r["proto"] != RTPROT_L2SM
        }
        for prefix, (oif, via, ifname) in sorted(wanted.items()):
            if prefix in ours:
                continue
            if prefix in others:
                changes.append(f"{ifname}: route {prefix} left alone: a route to it exists that is not ours")
                continue
            ipr.route("add", dst=prefix, gateway=via, oif=oif, proto=RTPROT_L2SM)
            changes.append(f"{ifname} route {prefix} via {via}")
    return changes


def _apply_link_and_addresses(ipr: IPRoute, index: int, plan: InterfacePlan) -> list[str]:
    changes = []
    link = next(iter(ipr.get_links(index)))
    if plan.mtu and link.get_attr("IFLA_MTU") != plan.mtu:
        ipr.link("set", index=index, mtu=plan.mtu)
        changes.append(f"{plan.ifname} mtu {plan.mtu}")
    if not link["flags"] & 1:  # IFF_UP
        ipr.link("set", index=index, state="up")
        changes.append(f"{plan.ifname} up")
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
    return changes


def _dst(route) -> str:
    # The default route carries no RTA_DST.
    return f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"


def _delete_route(ipr: IPRoute, route) -> None:
    try:
        ipr.route(
            "del",
            dst=_dst(route),
            gateway=route.get_attr("RTA_GATEWAY"),
            oif=route.get_attr("RTA_OIF"),
            proto=RTPROT_L2SM,
        )
    except NetlinkError as exc:
        if exc.code != 3:  # ESRCH: the kernel dropped it with its address already
            raise


def _our_routes(ipr: IPRoute) -> list:
    return [r for r in ipr.get_routes(family=socket.AF_INET) if r["proto"] == RTPROT_L2SM]
