"""`l2sm-lab demo cdn`: the seed's OSM proof of concept, replayed end to end on the lab.

The steps are the PoC's: the two networks and three KNFs of bundles/cdn.yaml come up; the
cache pings (ttl 63) and traces (2 hops) the content server; content is generated on the
server and downloaded by the cache through the router; the router's link to the server's
network is cut mid-transfer (`set-link ... down`) and restored; the download goes on and
ends with the origin's sha256. Then isolation: frames and pings from the cache's network
must never reach the other network except through the router. Every step is the action the
charm would run (l2sm_lab.actions).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l2sm_core.cdn import jobs
from l2sm_lab import actions, checks
from l2sm_lab.lab import DEFAULT_ROOT, Lab
from l2sm_lab.plan import CACHE, CONTENT_SERVER, ROUTER, UnitPlan
from l2sm_lab.procs import LabError, LabState, NoLab

CONTENT = "demo.bin"
SIZE = "32M"
RATE = "4m"  # the cache's pace: long enough a transfer to cut it in the middle
CUT_AT = 0.25  # the share of the file held when the link is cut
# Longer than the downloader's stall timeout: the connection is given up and the transfer
# resumed with a range request, as the seed's `curl -C -` did.
CUT_SECONDS = jobs.DEFAULT_TIMEOUT + 4


def demo_lab_id(root: Path) -> str:
    """The demo's namespace prefix, one per root: two demos on one machine never collide."""
    return "dm" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:4]


class DemoError(LabError):
    pass


def _one(lab: Lab, charm: str) -> UnitPlan:
    units = [u for u in lab.plan.units.values() if u.charm == charm]
    if not units:
        raise DemoError(f"the bundle has no {charm} unit: the demo needs a content server, router and cache")
    return units[0]


def _fetch_status(lab: Lab, cache: str) -> dict[str, Any]:
    path = Path(lab.paths(cache).status_dir) / "fetch.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _wait(what: str, test: Callable[[], bool], timeout: float, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def run_demo(
    bundle: Path,
    *,
    nodes: int = 2,
    root: Path = DEFAULT_ROOT / "demo",
    keep: bool = False,
    cut_seconds: float = CUT_SECONDS,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.suppress(NoLab):
        LabState.load(root).teardown()  # the demo's own root: what a crashed demo left
    lab = Lab.up(bundle, nodes=nodes, root=root, lab_id=demo_lab_id(root), progress=progress)
    report: dict[str, Any] = {"bundle": str(bundle), "nodes": list(lab.plan.nodes)}
    try:
        report["setup_seconds"] = round(time.monotonic() - started, 2)
        report.update(_replay(lab, cut_seconds, progress))
    finally:
        if not keep:
            progress("tearing down")
            Lab.down(root)
    report["ok"] = bool(
        report.get("ping_ttl") == 63
        and len(report.get("traceroute_hops", [])) == 2
        and report.get("download_sha256_match")
        and report.get("resumed")
        and report.get("isolation_leaks") == 0
        and report.get("isolation_control_ok")
    )
    return report


def _replay(lab: Lab, cut_seconds: float, progress: Callable[[str], None]) -> dict[str, Any]:
    server, router, cache = _one(lab, CONTENT_SERVER), _one(lab, ROUTER), _one(lab, CACHE)
    server_net = server.memberships[0]
    cache_net = next(m for m in cache.memberships if m.address)
    server_ip = str(ipaddress.IPv4Interface(server_net.address or "").ip)
    report: dict[str, Any] = {}

    progress(f"check-connectivity from {cache.name} to {server_ip}")
    probe = actions.run_action(lab, cache.name, "check-connectivity", {"target": server_ip, "count": "3"})
    report["ping_ttl"] = int(probe["ttl"]) if "ttl" in probe else None
    report["ping_received"] = int(probe["received"])
    report["traceroute_hops"] = probe["hops"].split() if probe.get("hops") else []

    progress(f"generate-content {CONTENT} ({SIZE}) on {server.name}")
    generated = actions.run_action(
        lab, server.name, "generate-content", {"name": CONTENT, "size": SIZE, "wait": "120"}
    )
    origin_sha = generated.get("sha256", "")
    total = int(generated.get("bytes") or generated.get("total") or 0)

    progress(f"fetch-content {CONTENT} on {cache.name}, through {router.name}")
    actions.run_action(lab, cache.name, "fetch-content", {"name": CONTENT, "rate-limit": RATE, "wait": "0"})
    _wait(
        f"{CUT_AT:.0%} of {CONTENT}",
        lambda: int(_fetch_status(lab, cache.name).get("bytes") or 0) >= total * CUT_AT,
        timeout=120,
    )
    cut_at = int(_fetch_status(lab, cache.name).get("bytes") or 0)
    progress(f"set-link {server_net.network} down on {router.name} at {cut_at} bytes")
    actions.run_action(lab, router.name, "set-link", {"network": server_net.network, "state": "down"})
    time.sleep(cut_seconds)
    held = int(_fetch_status(lab, cache.name).get("bytes") or 0)
    # Bytes buffered before the cut may still arrive; after them, nothing may.
    blocked = actions.run_action(lab, cache.name, "check-connectivity", {"target": server_ip, "count": "1"})
    progress(f"set-link {server_net.network} up at {held} bytes")
    actions.run_action(lab, router.name, "set-link", {"network": server_net.network, "state": "up"})
    _wait(
        f"the download of {CONTENT} to finish",
        lambda: _fetch_status(lab, cache.name).get("state") in ("done", "failed", "stopped"),
        timeout=300,
    )
    final = _fetch_status(lab, cache.name)
    report.update(
        {
            "download_bytes": int(final.get("bytes") or 0),
            "download_state": final.get("state"),
            "download_sha256": final.get("sha256", ""),
            "origin_sha256": origin_sha,
            "download_sha256_match": bool(origin_sha) and final.get("sha256") == origin_sha,
            "cut_at_bytes": cut_at,
            "cut_seconds": cut_seconds,
            "cut_blocked_ping": blocked.get("received") == "0",
            "held_at_restore_bytes": held,
            # The offset of the range request that resumed the transfer (the job's own resume).
            "resume_offset_bytes": int(final.get("resumed-from") or 0),
            "attempts": int(final.get("attempts") or 0),
        }
    )
    report["resumed"] = bool(
        report["download_sha256_match"]
        and 0 < report["resume_offset_bytes"] < report["download_bytes"]
        and report["cut_blocked_ping"]
    )

    progress("isolation: floods and pings from one network must not reach the other")
    flood = checks.flood_leaks(lab, cache.name, cache_net.network)
    direct = checks.ip_leak(lab, cache.name, cache_net.network, server_ip)
    report["isolation_leaks"] = flood.leaks + int(direct)
    report["isolation_control_ok"] = flood.control_ok and bool(flood.same_network)
    report["isolation"] = {
        "same_network": flood.same_network,
        "other_networks": flood.other_networks,
        "direct_ping_bypassing_router": direct,
    }
    return report
