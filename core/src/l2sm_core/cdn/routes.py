"""What the router's show-routes reports: the networks it joined and the kernel's IPv4 routes.

The charm reads the routes in the pod's network namespace (its container shares it), the lab
in the unit's named namespace. pyroute2 (the `netlink` extra) is imported only when asked.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from l2sm_core.knf import Membership


def membership_entries(memberships: Iterable[Membership]) -> list[dict[str, Any]]:
    """The memberships as show-routes' `networks` lists them."""
    return [
        {
            "network": m.network,
            "interface": m.interface or "",
            "address": m.address or "",
            "cidr": m.cidr,
            "routes": [list(r) for r in m.routes],
        }
        for m in memberships
    ]


def kernel_routes(netns: str | None = None) -> list[dict[str, str]]:
    """The IPv4 main-table routes (of `netns`, else this process's namespace), read with
    netlink; `by` says which the KNF library installed."""
    from pyroute2 import IPRoute

    from l2sm_core.netlink import RTPROT_L2SM

    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        routes = []
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            entry = {
                "prefix": f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}",
                "dev": str(names.get(route.get_attr("RTA_OIF"), "")),
                "by": "l2sm" if route["proto"] == RTPROT_L2SM else "kernel",
            }
            if route.get_attr("RTA_GATEWAY"):
                entry["via"] = route.get_attr("RTA_GATEWAY")
            routes.append(entry)
    return sorted(routes, key=lambda r: (r["prefix"], r["dev"]))
