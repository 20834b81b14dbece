"""End to end on the lab: bundles/cdn.yaml realised with Open vSwitch, VXLAN, the OpenFlow
controller, nginx and nftables, then the seed PoC's checks, isolation, a controller restart
and a recreated unit, on two nodes and on three. Needs root and the lab's programs
(`make test` installs them); elsewhere it skips, saying what is missing."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CDN = ROOT / "bundles" / "cdn.yaml"
PROGRAMS = ("ovs-vswitchd", "ovsdb-server", "ethtool", "nginx", "nft", "ip", "ping")
_missing = [p for p in PROGRAMS if not shutil.which(p)]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_missing),
    reason="the lab needs root and " + ", ".join(PROGRAMS) + f" (missing: {', '.join(_missing) or 'none'})",
)


def _up(tmp_path_factory, nodes: int, lab_id: str):
    from l2sm_lab.lab import Lab

    root = tmp_path_factory.mktemp(f"lab{nodes}")
    lab = Lab.up(CDN, nodes=nodes, root=root, lab_id=lab_id)
    return lab, root


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    from l2sm_lab.lab import Lab

    lab, root = _up(tmp_path_factory, 2, f"e{os.getpid() % 1000}")
    yield lab
    Lab.down(root)


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    from l2sm_lab.lab import Lab

    lab, root = _up(tmp_path_factory, 3, f"f{os.getpid() % 1000}")
    yield lab
    Lab.down(root)


def _ip(lab, unit: str) -> str:
    return str(ipaddress.IPv4Interface(next(iter(lab.unit(unit).addresses.values()))).ip)


def _reaches(lab, unit: str, target: str, deadline: float = 15.0) -> bool:
    """Reachability is asserted with retries: the first packets on a new tunnel take 1-2 s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if lab.exec(unit, ["ping", "-c", "1", "-W", "1", "-q", target], capture_output=True).returncode == 0:
            return True
    return False


def test_the_poc_path_ttl_63_and_two_hops(lab2):
    from l2sm_lab import actions

    server = _ip(lab2, "cdn-content-server/0")
    assert _reaches(lab2, "cdn-cache/0", server)
    result = actions.run_action(lab2, "cdn-cache/0", "check-connectivity", {"target": server, "count": "3"})
    assert result["ttl"] == "63"
    assert result["hops"].split() == ["10.0.1.1", server]


def test_the_nodes_and_switches_are_what_naming_computes(lab2):
    from l2sm_core import naming

    # OVSDB's Controller.is_connected lags the connection by up to ~5 s (its stats interval).
    deadline = time.monotonic() + 10
    status = lab2.status()
    while not all(n["controller_connected"] for n in status["nodes"]):
        assert time.monotonic() < deadline, status["nodes"]
        time.sleep(0.5)
        status = lab2.status()
    for node in lab2.plan.nodes:
        # Read from each node's own OVS, not from what the lab meant to make.
        bridges = set(lab2.fabric.vsctl(node, "list-br").split())
        assert naming.bridge_name_for(node) in bridges
        dpid = lab2.fabric.vsctl(node, "get", "Bridge", naming.bridge_name_for(node), "datapath_id")
        assert dpid.strip().strip('"') == naming.datapath_id(node)
    devices = {d["id"] for d in status["controller"]["devices"] if d["available"]}
    assert devices == {naming.device_id(n) for n in lab2.plan.nodes}
    for net in status["networks"]:
        assert len(net["controller-ports"]) == len(net["members"])


def test_the_download_survives_a_cut_and_ends_with_the_origins_sha256(lab2):
    from l2sm_lab.demo import CUT_SECONDS, _replay

    report = _replay(lab2, cut_seconds=CUT_SECONDS, progress=lambda _: None)
    assert report["download_sha256_match"], json.dumps(report, indent=1)
    assert report["cut_blocked_ping"] and report["resumed"]
    assert 0 < report["resume_offset_bytes"] < report["download_bytes"]
    assert report["isolation_leaks"] == 0 and report["isolation_control_ok"], report["isolation"]


def test_no_frame_crosses_networks(lab2):
    from l2sm_lab import checks

    for sender, network in (
        ("cdn-cache/0", "my-first-osm-net"),
        ("cdn-content-server/0", "my-second-osm-net"),
    ):
        flood = checks.flood_leaks(lab2, sender, network)
        assert flood.leaks == 0, flood.other_networks
        assert flood.control_ok and flood.same_network, flood.same_network
    assert not checks.ip_leak(lab2, "cdn-cache/0", "my-first-osm-net", _ip(lab2, "cdn-content-server/0"))


def test_a_controller_restart_keeps_isolation_and_the_resync_brings_paths_back(lab2):
    from l2sm_lab import checks

    server = _ip(lab2, "cdn-content-server/0")
    lab2.stop_controller()
    # Controller gone: secure fail mode, nothing floods between networks.
    while_down = checks.flood_leaks(lab2, "cdn-cache/0", "my-first-osm-net")
    assert while_down.leaks == 0, while_down.other_networks
    report = lab2.restart_controller()
    assert report.networks_recreated and not report.failures, report.summary()
    assert _reaches(lab2, "cdn-cache/0", server)
    after = checks.flood_leaks(lab2, "cdn-cache/0", "my-first-osm-net")
    assert after.leaks == 0 and after.control_ok, (after.same_network, after.other_networks)
    # Nothing missing now: a second resync only reads.
    assert not lab2.resync().repaired


def test_a_recreated_unit_keeps_its_address_and_routes(lab2):
    def seen(unit):
        addrs = json.loads(lab2.exec(unit, ["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout)
        routes = json.loads(
            lab2.exec(unit, ["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout
        )
        own = sorted(
            (a["ifname"], i["local"], i["prefixlen"])
            for a in addrs
            for i in a["addr_info"]
            if a["ifname"] != "lo"
        )
        return own, sorted((r["dst"], r.get("gateway", "")) for r in routes)

    before = seen("cdn-cache/0")
    lab2.recreate_unit("cdn-cache/0")
    assert seen("cdn-cache/0") == before
    assert ("10.0.2.0/24", "10.0.1.1") in before[1]
    assert _reaches(lab2, "cdn-cache/0", _ip(lab2, "cdn-content-server/0"))


def test_three_nodes(lab3):
    from l2sm_lab import actions, checks

    assert len({u.node for u in lab3.plan.units.values()}) == 3
    server = _ip(lab3, "cdn-content-server/0")
    assert _reaches(lab3, "cdn-cache/0", server)
    result = actions.run_action(lab3, "cdn-cache/0", "check-connectivity", {"target": server, "count": "2"})
    assert result["ttl"] == "63" and len(result["hops"].split()) == 2
    flood = checks.flood_leaks(lab3, "cdn-cache/0", "my-first-osm-net")
    assert flood.leaks == 0 and flood.control_ok and flood.same_network
