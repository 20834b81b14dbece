"""Apply interface plans with netlink (pyroute2): no tools needed in any image.

Runs in the charm container (which shares the pod's network namespace) or, for the lab,
in a named network namespace. Routes it adds carry their own protocol number, so it
removes exactly the routes it made; it never replaces or removes a route somebody else
added.

An address it adds is announced with a gratuitous ARP: a pod made again (rescheduled, or its
unit's pod deleted) comes back with the same address on an interface with a new MAC, and
its neighbours would otherwise send to the old MAC until their ARP entries expire (about
30 s measured on the lab, with a router's forwarding lost all that time).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from l2sm_core.knf import InterfacePlan, plan_problems

RTPROT_L2SM = 73  # our routes' protocol number (not assigned in /etc/iproute2/rt_protos)
ETH_P_ARP = 0x0806
ANNOUNCE_ROUNDS, ANNOUNCE_GAP = 3, 0.5  # as arping -U -c 3 would, within a second
CLONE_NEWNET = 0x40000000


class InterfaceMissing(Exception):
    """The plan names an interface the namespace does not have (yet)."""


def apply_plans(
    plans: Iterable[InterfacePlan], netns: str | None = None, *, announce_rounds: int = ANNOUNCE_ROUNDS
) -> list[str]:
    """Make each interface carry exactly its plan's IPv4 addresses and MTU, and the namespace
    exactly the routes of all plans. One route per prefix: if two networks bring the same
    prefix, the plan listed first keeps it; a route to a prefix that somebody else added is
    left alone. Returns what changed (and what was left alone), in words, for the log.
    A plan `plan_problems` refuses is a ValueError, and nothing is changed. Added addresses
    are announced `announce_rounds` times (a caller that knows the switch forwards for the
    port already may send one)."""
    changes: list[str] = []
    announce: list[tuple[str, str]] = []  # (ifname, address) newly added
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
            done, added = _apply_link_and_addresses(ipr, indexes[plan.ifname], plan)
            changes += done
            announce += [(plan.ifname, address) for address in added]
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
    if announce and announce_rounds > 0:
        changes += _announce(announce, netns, rounds=announce_rounds)
    return changes


def garp_frame(mac: bytes, address: str) -> bytes:
    """A gratuitous ARP request (sender and target both `address`), broadcast: neighbours that
    hold an entry for the address take the new MAC (Linux overrides on a gratuitous ARP)."""
    ip = ipaddress.IPv4Address(address).packed
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp


def _announce(
    added: list[tuple[str, str]], netns: str | None, rounds: int = ANNOUNCE_ROUNDS, gap: float = ANNOUNCE_GAP
) -> list[str]:
    """Announce each (interface, address), `rounds` times `gap` seconds apart: the first frame
    may go before the switch forwards for the port (the operator adds it on its own time).
    A failure (no CAP_NET_RAW in some pods) only costs the wait for neighbours' entries to
    expire, so it is reported, not raised."""
    outcome: dict[tuple[str, str], str] = {}

    def send() -> None:
        for turn in range(rounds):
            if turn:
                time.sleep(gap)
            for ifname, address in added:
                if outcome.get((ifname, address), "").startswith("could not"):
                    continue
                try:
                    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as raw:
                        raw.bind((ifname, 0))
                        raw.send(garp_frame(raw.getsockname()[4], address))
                    outcome[(ifname, address)] = "announced"
                except OSError as exc:
                    outcome[(ifname, address)] = f"could not announce ({exc.strerror or exc})"

    try:
        if netns:
            _in_netns(netns, send)
        else:
            send()
    except OSError as exc:  # the namespace itself
        return [f"could not announce in {netns} ({exc.strerror or exc}): neighbours learn on expiry"]
    said = []
    for (ifname, address), result in outcome.items():
        if result == "announced":
            said.append(f"{ifname} announced {address}")
        else:
            said.append(
                f"{ifname}: {result.replace('announce', f'announce {address}', 1)}: "
                "neighbours learn it when their entry expires"
            )
    return said


def _in_netns(netns: str, call: Callable[[], Any]) -> None:
    """call() in a thread that joined the named namespace (setns is per thread: the caller
    stays where it is, and sockets made there stay in `netns`)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            call()
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"announce-{netns}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _apply_link_and_addresses(ipr: IPRoute, index: int, plan: InterfacePlan) -> tuple[list[str], list[str]]:
    """What changed, in words, and the addresses added (to announce)."""
    changes, added = [], []
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
        added.append(ip)
    return changes, added


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
