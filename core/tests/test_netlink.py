"""The interface configuration applied for real, in network namespaces this test makes."""

import contextlib
import json
import os
import re
import socket
import subprocess
import time
import uuid

import pytest

from l2sm_core.knf import InterfacePlan
from l2sm_core.netlink import RTPROT_L2SM, InterfaceMissing, _announce, apply_plans, garp_frame
from l2sm_testing.netns import in_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)")


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns():
    name = f"l2sm-t-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    ip("-n", name, "link", "add", "net1", "type", "veth", "peer", "name", "peer1")
    ip("-n", name, "link", "add", "net2", "type", "veth", "peer", "name", "peer2")
    yield name
    ip("netns", "del", name)


def addresses(ns: str, ifname: str) -> set[str]:
    data = json.loads(ip("-n", ns, "-j", "addr", "show", "dev", ifname))
    return {f"{a['local']}/{a['prefixlen']}" for a in data[0]["addr_info"] if a["family"] == "inet"}


def routes(ns: str) -> set[tuple[str, str, str]]:
    data = json.loads(ip("-n", ns, "-j", "route", "show", "proto", str(RTPROT_L2SM)))
    return {(r["dst"], r["gateway"], r["dev"]) for r in data}


def mtu(ns: str, ifname: str) -> int:
    return json.loads(ip("-n", ns, "-j", "link", "show", "dev", ifname))[0]["mtu"]


def test_applies_addresses_mtu_and_routes(netns):
    plans = [
        InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.2.0/24", "10.0.1.1"),)),
        InterfacePlan("net2", 1350, ("10.0.3.5/24",)),
    ]
    changes = apply_plans(plans, netns=netns)
    assert "net1 added 10.0.1.10/24" in changes
    assert addresses(netns, "net1") == {"10.0.1.10/24"}
    assert addresses(netns, "net2") == {"10.0.3.5/24"}
    assert (mtu(netns, "net1"), mtu(netns, "net2")) == (1400, 1350)
    assert routes(netns) == {("10.0.2.0/24", "10.0.1.1", "net1")}
    # Applying the same plans again changes nothing.
    assert apply_plans(plans, netns=netns) == []


def test_removes_what_it_no_longer_owns_and_keeps_the_rest(netns):
    apply_plans(
        [
            InterfacePlan(
                "net1", 1400, ("10.0.1.10/24",), (("10.0.2.0/24", "10.0.1.1"), ("10.9.0.0/16", "10.0.1.1"))
            ),
            InterfacePlan("net2", 1400, ("10.0.3.5/24",), (("10.0.4.0/24", "10.0.3.1"),)),
        ],
        netns=netns,
    )
    # A route somebody else added is not ours to remove.
    ip("-n", netns, "route", "add", "192.168.0.0/16", "via", "10.0.1.254", "dev", "net1")
    # One route gone, and net2's network left (no plan names it).
    keep = ("10.0.2.0/24", "10.0.1.1")
    changes = apply_plans([InterfacePlan("net1", 1400, ("10.0.1.10/24",), (keep,))], netns=netns)
    assert routes(netns) == {("10.0.2.0/24", "10.0.1.1", "net1")}
    assert any("removed route 10.0.4.0/24" in c for c in changes)
    assert any("removed route 10.9.0.0/16" in c for c in changes)
    foreign = json.loads(ip("-n", netns, "-j", "route", "show", "192.168.0.0/16"))
    assert foreign and foreign[0]["gateway"] == "10.0.1.254"
    # A new address: the old one goes, and our route through the subnet is back.
    apply_plans([InterfacePlan("net1", 1400, ("10.0.1.11/24",), (keep,))], netns=netns)
    assert addresses(netns, "net1") == {"10.0.1.11/24"}
    assert routes(netns) == {("10.0.2.0/24", "10.0.1.1", "net1")}
    # A lost network's interface is emptied with an empty plan.
    apply_plans([InterfacePlan("net1"), InterfacePlan("net2")], netns=netns)
    assert addresses(netns, "net1") == addresses(netns, "net2") == set()
    assert routes(netns) == set()


def test_missing_interface(netns):
    with pytest.raises(InterfaceMissing, match="net9"):
        apply_plans([InterfacePlan("net9", 1400, ("10.0.1.1/24",))], netns=netns)


def test_one_route_per_prefix_and_foreign_routes_untouched(netns):
    ip("-n", netns, "link", "set", "net2", "up")
    ip("-n", netns, "addr", "add", "10.0.3.5/24", "dev", "net2")
    ip("-n", netns, "route", "add", "172.16.0.0/12", "via", "10.0.3.254", "dev", "net2")  # not ours
    plans = [
        InterfacePlan(
            "net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"), ("172.16.0.0/12", "10.0.1.1"))
        ),
        InterfacePlan(
            "net2", 1400, ("10.0.3.5/24",), (("10.0.9.0/24", "10.0.3.1"), ("0.0.0.0/0", "10.0.3.1"))
        ),
    ]
    changes = apply_plans(plans, netns=netns)
    # Two networks bring 10.0.9.0/24: the first plan keeps it, and it stays put when re-applied.
    assert routes(netns) == {("10.0.9.0/24", "10.0.1.1", "net1"), ("default", "10.0.3.1", "net2")}
    assert "net2: route 10.0.9.0/24 already comes through net1" in changes
    assert any("172.16.0.0/12 left alone" in c for c in changes)
    foreign = json.loads(ip("-n", netns, "-j", "route", "show", "172.16.0.0/12"))
    assert foreign[0]["gateway"] == "10.0.3.254"
    again = apply_plans(plans, netns=netns)
    assert not [c for c in again if "removed" in c or " route " in c.split(":")[0]]
    assert routes(netns) == {("10.0.9.0/24", "10.0.1.1", "net1"), ("default", "10.0.3.1", "net2")}
    # Dropping our routes leaves the foreign one.
    apply_plans(
        [InterfacePlan("net1", 1400, ("10.0.1.10/24",)), InterfacePlan("net2", 1400, ("10.0.3.5/24",))],
        netns=netns,
    )
    assert routes(netns) == set()
    assert json.loads(ip("-n", netns, "-j", "route", "show", "172.16.0.0/12"))


@pytest.mark.parametrize(
    ("plan", "fragment"),
    [
        (InterfacePlan("net1", 9000, ("10.0.1.10/24",)), "mtu 9000 is outside 576-1400"),
        (InterfacePlan("net1", 1400, ("10.0.1.0/24",)), "network or broadcast address"),
        (InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.5.1"),)), "not on-link"),
        (InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.1/24", "10.0.1.1"),)), "10.0.9.1/24"),
        (InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.10"),)), "not on-link"),
        (InterfacePlan("net1", 1400, (), (("10.0.9.0/24", "10.0.1.1"),)), "not on-link"),
        (InterfacePlan("lo", 1400, ("10.0.1.10/24",)), "'lo' is not an interface name"),
        (InterfacePlan("net1/x", 1400), "is not an interface name"),
    ],
)
def test_a_plan_that_must_not_be_applied_changes_nothing(netns, plan, fragment):
    good = InterfacePlan("net2", 1400, ("10.0.3.5/24",))
    with pytest.raises(ValueError, match=re.escape(fragment)):
        apply_plans([good, plan], netns=netns)
    # Refused before anything was touched, the good plan beside it included.
    assert addresses(netns, "net2") == set() and addresses(netns, "net1") == set()
    assert routes(netns) == set()


def test_garp_frame_is_a_broadcast_arp_request_for_the_address_itself():
    mac = bytes.fromhex("020000000001")
    frame = garp_frame(mac, "10.0.1.1")
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[6:8] == b"\x00\x01"  # a request
    assert arp[8:14] == mac and arp[14:18] == bytes([10, 0, 1, 1])
    assert arp[24:28] == bytes([10, 0, 1, 1])  # target = sender: gratuitous


@pytest.fixture
def pair():
    """A unit's namespace and a neighbour's, joined by a veth pair."""
    unit, peer = f"l2sm-u-{uuid.uuid4().hex[:8]}", f"l2sm-p-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", unit)
    ip("netns", "add", peer)
    ip("-n", unit, "link", "add", "net1", "type", "veth", "peer", "name", "peer1", "netns", peer)
    ip("-n", peer, "addr", "add", "10.9.0.2/24", "dev", "peer1")
    ip("-n", peer, "link", "set", "peer1", "up")
    yield unit, peer
    ip("netns", "del", unit)
    ip("netns", "del", peer)


def neighbour_mac(ns: str, address: str) -> str:
    entries = json.loads(ip("-n", ns, "-j", "neigh", "show", address))
    return entries[0].get("lladdr", "") if entries else ""


def test_an_added_address_is_announced_so_neighbours_drop_a_predecessors_mac(pair):
    unit, peer = pair
    # The neighbour still holds the MAC of the pod that had this address before.
    old = "02:00:00:00:00:99"
    ip("-n", peer, "neigh", "replace", "10.9.0.1", "lladdr", old, "dev", "peer1", "nud", "stale")
    plan = InterfacePlan("net1", 1400, ("10.9.0.1/24",))
    changes = apply_plans([plan], netns=unit)
    assert "net1 announced 10.9.0.1" in changes
    own = json.loads(ip("-n", unit, "-j", "link", "show", "net1"))[0]["address"]
    deadline = time.monotonic() + 5
    while neighbour_mac(peer, "10.9.0.1") != own:
        assert time.monotonic() < deadline, ip("-n", peer, "neigh", "show")
        time.sleep(0.05)
    # Nothing added, nothing announced.
    assert apply_plans([plan], netns=unit) == []


def test_an_announcement_that_cannot_be_sent_is_reported_not_raised(pair):
    unit, _ = pair
    (message,) = _announce([("no-such-if", "10.9.0.1")], unit, rounds=2, gap=0.01)
    assert message.startswith("no-such-if: could not announce 10.9.0.1 (") and "expires" in message
    (message,) = _announce([("net1", "10.9.0.1")], "l2sm-no-such-ns", rounds=1)
    assert message.startswith("could not announce in l2sm-no-such-ns (")


def test_each_added_address_is_announced_every_round(pair):
    """Repeated: the first frame may go before the switch forwards for the new port."""
    unit, peer = pair
    ip("-n", unit, "link", "set", "net1", "up")

    def listener() -> socket.socket:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        raw.bind(("peer1", 0))
        raw.settimeout(0.5)
        return raw

    raw = in_netns(peer, listener)
    try:
        said = _announce([("net1", "10.9.0.1"), ("net1", "10.9.0.7")], unit, rounds=3, gap=0.05)
        assert said == ["net1 announced 10.9.0.1", "net1 announced 10.9.0.7"]
        seen: dict[bytes, int] = {}
        with contextlib.suppress(TimeoutError):
            while True:
                frame = raw.recv(2048)
                arp = frame[14:]
                if arp[14:18] == arp[24:28]:  # gratuitous: sender = target
                    seen[arp[14:18]] = seen.get(arp[14:18], 0) + 1
    finally:
        raw.close()
    assert seen == {bytes([10, 9, 0, 1]): 3, bytes([10, 9, 0, 7]): 3}


def test_no_announcement_when_the_caller_asks_for_none(pair):
    unit, _ = pair
    changes = apply_plans([InterfacePlan("net1", 1400, ("10.9.0.1/24",))], netns=unit, announce_rounds=0)
    assert "net1 added 10.9.0.1/24" in changes and not [c for c in changes if "announce" in c]
