"""Security guarantees of bundles/cdn.yaml on the lab, shown with traffic: the router forwards
only what its rules allow (default-deny; add-rule opens a port, remove-rule closes it, and it
stays closed when the router's ruleset is reloaded from the record or its pod is recreated),
and no frame (broadcast, unknown or known unicast, ARP) of one network appears on another's
interfaces, on two nodes and on three. Each "blocked" is a connection that failed AND a
listener of ours that never saw it; each "works" a real exchange of bytes; each capture shows
it works (same-network members see the frames).

The lab tests need root and the lab's programs and skip otherwise; the tests of the checks'
own logic (frames, results, the TCP listener and client on loopback) run anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from l2sm_lab import checks, sniff

ROOT = Path(__file__).resolve().parent.parent
CDN = ROOT / "bundles" / "cdn.yaml"
PROGRAMS = ("ovs-vswitchd", "ovsdb-server", "ethtool", "nginx", "nft", "ip", "ping")
_missing = [p for p in PROGRAMS if not shutil.which(p)]
needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_missing),
    reason="the lab needs root and " + ", ".join(PROGRAMS) + f" (missing: {', '.join(_missing) or 'none'})",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw AF_PACKET sockets need root")

FIRST, SECOND = "my-first-osm-net", "my-second-osm-net"
CACHE, SERVER, ROUTER = "cdn-cache/0", "cdn-content-server/0", "cdn-router/0"
ROUTER_APP = "cdn-router"
CLOSED_PORT = 8080  # no rule of the bundle allows it, either way
RULE = "open-8080"


def _up(tmp_path_factory, nodes: int, lab_id: str):
    from l2sm_lab.lab import Lab

    root = tmp_path_factory.mktemp(f"security{nodes}")
    return Lab.up(CDN, nodes=nodes, root=root, lab_id=lab_id), root


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    from l2sm_lab.lab import Lab

    lab, root = _up(tmp_path_factory, 2, f"s{os.getpid() % 1000}")
    yield lab
    Lab.down(root)


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    from l2sm_lab.lab import Lab

    lab, root = _up(tmp_path_factory, 3, f"t{os.getpid() % 1000}")
    yield lab
    Lab.down(root)


# -- helpers -------------------------------------------------------------------------------------


def _opens(lab, client: str, server: str, port: int, deadline: float = 15.0) -> checks.PortProbe:
    """Probes until one exchange works (the first packets on a new path take 1-2 s)."""
    end = time.monotonic() + deadline
    probe = checks.probe_port(lab, client, server, port)
    while not probe.opened and time.monotonic() < end:
        time.sleep(0.2)
        probe = checks.probe_port(lab, client, server, port)
    return probe


def _assert_dropped(lab, client: str, server: str, port: int, when: str) -> None:
    probe = checks.probe_port(lab, client, server, port)
    # Dropped by the router: no answer at all, and our listener accepted nothing.
    assert probe.dropped, f"{when}: {client} -> {server}:{port} was not dropped: {probe}"


def _http_get(lab, client: str, host: str, path: str, deadline: float = 15.0) -> tuple[str, str]:
    """(status line, body) of GET path from the unit, retried until an answer comes."""
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"
    end = time.monotonic() + deadline
    while True:
        exchange = checks.tcp_exchange(lab, client, host, 80, request)
        if exchange.received or time.monotonic() > end:
            break
        time.sleep(0.2)
    head, _, body = exchange.received.partition("\r\n\r\n")
    return head.partition("\r\n")[0], body


def _assert_origin_serves(lab) -> None:
    """The allowed path works: the manifest, fetched over tcp/80, is the file on the server."""
    from l2sm_core.cdn import values

    status, body = _http_get(lab, CACHE, checks.unit_address(lab, SERVER), f"/{values.MANIFEST_NAME}")
    assert status.split()[1:2] == ["200"], status
    manifest = Path(lab.paths(SERVER).content_dir, values.MANIFEST_NAME).read_text()
    assert body == manifest


def _kernel_forward_chain(lab) -> str:
    done = lab.exec(
        ROUTER, ["nft", "list", "chain", "inet", "cdn_router", "forward"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _reload_router_from_record(lab) -> None:
    """What a fresh process does: the lab read back from its record, the router's ruleset
    loaded again from that plan."""
    from l2sm_lab import knfs
    from l2sm_lab.lab import Lab

    again = Lab.load(lab.state.root)
    knfs.reload_router(again.state, again.unit(ROUTER), again.unit_ns(ROUTER))


def _recorded_rules(lab) -> list[str]:
    from l2sm_lab import actions
    from l2sm_lab.lab import Lab

    return [r.name for r in actions.router_actions(Lab.load(lab.state.root).state, ROUTER_APP).rules]


def _listed_rules(lab) -> list[tuple[str, str]]:
    from l2sm_lab import actions

    listed = json.loads(actions.run_action(lab, ROUTER, "list-rules", {})["rules"])
    return [(r["name"], r["origin"]) for r in listed]


# -- the router: default-deny, and the rules ------------------------------------------------------


@needs_lab
def test_the_router_forwards_what_its_rules_allow_and_drops_the_rest(lab2):
    _assert_origin_serves(lab2)  # tcp/80, first -> second: allowed
    _assert_dropped(lab2, CACHE, SERVER, CLOSED_PORT, "a port no rule allows")
    # The reverse way nothing is allowed: not a port of ours, not the cache's web port, not ping.
    _assert_dropped(lab2, SERVER, CACHE, CLOSED_PORT, "second -> first")
    cache_ip = checks.unit_address(lab2, CACHE)
    to_cache_web = checks.tcp_exchange(lab2, SERVER, cache_ip, 80, "GET / HTTP/1.0\r\n\r\n")
    assert not to_cache_web.connected and to_cache_web.error == "timeout", to_cache_web
    # The server does route to the cache's network through the router: the router drops it.
    route = lab2.exec(SERVER, ["ip", "route", "get", cache_ip], capture_output=True, text=True).stdout
    gateway = ipaddress.IPv4Interface(lab2.unit(ROUTER).addresses[SECOND]).ip
    assert f" via {gateway} " in route, route
    ping = ["ping", "-c", "2", "-W", "1", "-q"]
    server_ip = checks.unit_address(lab2, SERVER)
    assert lab2.exec(CACHE, [*ping, server_ip], capture_output=True).returncode == 0  # allowed (icmp)
    assert lab2.exec(SERVER, [*ping, cache_ip], capture_output=True).returncode != 0


@needs_lab
def test_add_rule_opens_a_port_and_remove_rule_closes_it_for_good(lab2):
    from l2sm_lab import actions

    _assert_dropped(lab2, CACHE, SERVER, CLOSED_PORT, "before add-rule")
    params = {"name": RULE, "from": FIRST, "to": SECOND, "protocol": "tcp", "port": str(CLOSED_PORT)}
    added = actions.run_action(lab2, ROUTER, "add-rule", params)
    assert json.loads(added["added"])["port"] == str(CLOSED_PORT)
    # Recorded as the charm's peer data is, listed as the action's, loaded in the kernel.
    assert _recorded_rules(lab2) == [RULE]
    assert (RULE, "action") in _listed_rules(lab2)
    assert f'comment "{RULE}"' in _kernel_forward_chain(lab2)

    opened = _opens(lab2, CACHE, SERVER, CLOSED_PORT)
    assert opened.opened, opened
    assert opened.peers == {checks.unit_address(lab2, CACHE)}  # routed, not translated
    # One way only: the rule names its direction.
    _assert_dropped(lab2, SERVER, CACHE, CLOSED_PORT, "second -> first after add-rule")
    _reload_router_from_record(lab2)
    again = _opens(lab2, CACHE, SERVER, CLOSED_PORT)
    assert again.opened, f"the added rule did not survive a reload from the record: {again}"

    removed = actions.run_action(lab2, ROUTER, "remove-rule", {"name": RULE})
    assert removed["removed"] == RULE
    assert _recorded_rules(lab2) == []
    assert RULE not in dict(_listed_rules(lab2))
    assert RULE not in _kernel_forward_chain(lab2)
    _assert_dropped(lab2, CACHE, SERVER, CLOSED_PORT, "after remove-rule")
    _reload_router_from_record(lab2)
    _assert_dropped(lab2, CACHE, SERVER, CLOSED_PORT, "after remove-rule and a reload from the record")
    lab2.recreate_unit(ROUTER)
    _assert_origin_serves(lab2)  # the recreated router forwards again...
    _assert_dropped(lab2, CACHE, SERVER, CLOSED_PORT, "after remove-rule and a recreated router")


@needs_lab
def test_a_recreated_router_forwards_without_waiting_for_its_neighbours_arp_to_expire(lab2):
    """Its interfaces come back with new MACs; its gratuitous ARPs (l2sm_core.netlink) make the
    neighbours take them at once, not after their entries expire (about 30 s measured)."""
    _assert_origin_serves(lab2)  # its neighbours hold the router's MACs
    lab2.recreate_unit(ROUTER)
    from l2sm_core.cdn import values

    started = time.monotonic()
    # 5 s: well below the ~30 s a neighbour's ARP entry takes to expire.
    server = checks.unit_address(lab2, SERVER)
    status, _ = _http_get(lab2, CACHE, server, f"/{values.MANIFEST_NAME}", deadline=5.0)
    assert status.split()[1:2] == ["200"], (status, time.monotonic() - started)


# -- isolation, with traffic capture ------------------------------------------------------------


def _senders(lab) -> list[tuple[str, str]]:
    """(network, unit): every member of every network sends, so every interface is somewhere
    a capture point on its own network (the control) and elsewhere one on another's."""
    return [(n.name, unit) for n in lab.plan.networks.values() for unit in sorted(n.assignments)]


@needs_lab
@pytest.mark.parametrize("nodes", [2, 3])
def test_no_frame_of_one_network_appears_on_another(nodes, request):
    lab = request.getfixturevalue(f"lab{nodes}")
    assert len({u.node for u in lab.plan.units.values()}) == min(nodes, len(lab.plan.units))
    senders = _senders(lab)
    assert {network for network, _ in senders} == {FIRST, SECOND}
    watched_for_leaks: set[str] = set()
    shown_capturing: set[str] = set()
    for network, sender in senders:
        result = checks.frame_leaks(lab, sender, network)
        assert result.leaks == 0, (sender, network, result.other_networks)
        assert result.same_network and result.control_ok, (sender, network, result.same_network)
        kinds = {label.split(" to ")[0] for seen in result.same_network.values() for label in seen}
        assert kinds == {*sniff.KINDS, checks.KNOWN_UNICAST, sniff.UNICAST}
        # Frames for the router's MAC on the other network flooded this one (that MAC is
        # unknown here), reaching the router's interface here unless it sent them, and
        # nothing bridged them across.
        router_there = next(k for k in result.other_networks if k.startswith(f"{ROUTER} "))
        label = f"unicast to {router_there}"
        assert all(seen[label] > 0 for seen in result.same_network.values()), result.same_network
        assert result.other_networks[router_there][label] == 0
        watched_for_leaks |= set(result.other_networks)
        shown_capturing |= set(result.same_network)
        # IP straight to another network's units (told they are on-link): no answer.
        for unit in lab.plan.units.values():
            if network not in {m.network for m in unit.memberships}:
                for address in unit.addresses.values():
                    target = str(ipaddress.IPv4Interface(address).ip)
                    assert not checks.ip_leak(lab, sender, network, target), (sender, target)
    # Every interface that saw no leak was shown, from its own network, to capture frames.
    assert watched_for_leaks and watched_for_leaks <= shown_capturing, (watched_for_leaks, shown_capturing)


# -- the checks' own logic (no root, no lab) ----------------------------------------------------


def test_a_unicast_frame_carries_its_destination_and_only_its_own_mark():
    dst = sniff.parse_mac("02:00:00:aa:bb:cc")
    frame = sniff.marked_frames("lo", "mark-one", sniff.UNICAST, dst)
    assert frame[:6] == dst
    assert frame[12:14] == sniff.ETH_P_MARK.to_bytes(2, "big")
    assert len(frame) >= 60  # an Ethernet minimum, without the FCS
    assert sniff.carried_mark(frame, ("mark-two", "mark-one")) == "mark-one"
    assert sniff.carried_mark(frame, ("mark-on", "mark-one-x")) is None
    arp = sniff.marked_frames("lo", "198.18.3.4", "arp")
    assert sniff.carried_mark(arp, ("mark-one", "198.18.3.4")) == "198.18.3.4"
    assert sniff.carried_mark(arp, ("198.18.3.5",)) is None
    assert sniff.carried_mark(frame[:13], ("mark-one",)) is None
    assert sniff.marked_frames("lo", "m", "broadcast")[:6] == sniff.BROADCAST
    assert sniff.marked_frames("lo", "m", "unknown-unicast")[:6] == sniff.UNKNOWN


def test_unicast_needs_a_unicast_destination():
    with pytest.raises(ValueError, match="destination MAC"):
        sniff.marked_frames("lo", "m", sniff.UNICAST)
    with pytest.raises(ValueError, match="kind 'multicast'"):
        sniff.marked_frames("lo", "m", "multicast")
    assert sniff.parse_mac(" 02:AB:cd:00:00:01\n") == bytes.fromhex("02abcd000001")
    for bad in ("01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:00:00:00:00", "zz"):
        with pytest.raises(ValueError):
            sniff.parse_mac(bad)
    with pytest.raises(SystemExit):  # refused before any socket is opened
        sniff.main(["send", "lo", "m", sniff.UNICAST, "1"])
    with pytest.raises(SystemExit):
        sniff.main(["send", "lo", "m", "broadcast", "1", "--to", "02:00:00:00:00:01"])


def test_listen_takes_several_marks_before_its_seconds():
    args = sniff._parser().parse_args(["listen", "net1", "a", "b", "c", "2.5", "--until-eof"])
    assert (args.marks, args.seconds, args.until_eof) == (["a", "b", "c"], 2.5, True)
    args = sniff._parser().parse_args(["listen", "net1", "a", "2"])
    assert (args.marks, args.seconds, args.until_eof) == (["a"], 2.0, False)


def _result(**kwargs) -> checks.FloodResult:
    return checks.FloodResult("u/0", "net", **kwargs)


def test_the_control_needs_every_flood_at_every_member_and_each_unicast_at_its_target():
    floods = {"a/0 net1": {"broadcast": 5}, "b/0 net1": {"broadcast": 3}}
    assert _result(same_network=floods).control_ok
    assert not _result(same_network={**floods, "c/0 net1": {"broadcast": 0}}).control_ok
    known = {"a/0 net1": {"broadcast": 5, "k": 5}, "b/0 net1": {"broadcast": 5, "k": 0}}
    # Known unicast: only its target must see it, the other member need not.
    assert _result(same_network=known, targets={"k": "a/0 net1"}).control_ok
    assert not _result(same_network=known, targets={"k": "b/0 net1"}).control_ok
    # A target no listener covered is no control.
    assert not _result(same_network=known, targets={"k": "z/0 net1"}).control_ok
    assert _result().control_ok  # a network with no other member: nothing to show


def test_leaks_count_every_frame_on_other_networks():
    assert _result(other_networks={"a/0 net2": {"broadcast": 0, "k": 0}}).leaks == 0
    assert _result(other_networks={"a/0 net2": {"broadcast": 2}, "b/0 net1": {"k": 1}}).leaks == 3


def _probe(connected: bool, received: str, error: str, accepted=()) -> checks.PortProbe:
    exchange = checks.Exchange(connected, received, error)
    return checks.PortProbe("c/0", "s/0", "10.0.0.1", 8080, "tok", exchange, tuple(accepted))


def test_a_port_is_open_only_on_a_real_exchange_and_blocked_only_when_the_listener_saw_nothing():
    seen = [{"peer": "10.0.1.10", "data": "tok"}]
    assert _probe(True, "l2sm-lab-ack tok", "", seen).opened
    assert _probe(True, "l2sm-lab-ack tok", "", seen).peers == {"10.0.1.10"}
    assert not _probe(True, "l2sm-lab-ack tok", "", []).opened  # the listener never read it
    assert not _probe(True, "l2sm-lab-ack other", "", seen).opened  # someone else answered
    assert not _probe(False, "", "timeout", seen).opened
    assert _probe(False, "", "timeout").blocked and _probe(False, "", "timeout").dropped
    assert _probe(False, "", "refused").blocked and not _probe(False, "", "refused").dropped
    # The client failed, yet the listener accepted: not blocked (it reached the server).
    assert not _probe(False, "", "timeout", seen).blocked
    assert not _probe(True, "", "", []).blocked


def test_serve_and_connect_exchange_over_loopback_and_record_the_peer():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        stop_read, stop_write = os.pipe()
        got: list[list[dict[str, str]]] = []
        server = threading.Thread(target=lambda: got.append(sniff.serve(listener, stop_read)))
        server.start()
        try:
            answer = sniff.connect("127.0.0.1", port, 5.0, b"hello")
        finally:
            os.close(stop_write)
            server.join(10)
            os.close(stop_read)
    assert answer == {"connected": True, "received": "l2sm-lab-ack hello", "error": ""}
    assert got == [[{"peer": "127.0.0.1", "data": "hello"}]]


def test_connect_names_a_refusal():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        assert sniff.connect("127.0.0.1", port, 2.0, b"x") == {
            "connected": False,
            "received": "",
            "error": "refused",
        }


@needs_root
def test_listen_counts_each_mark_apart_and_stops_at_the_end_of_stdin():
    """On loopback: what `send` puts on an interface is what `listen_marks` counts there."""
    stop_read, stop_write = os.pipe()
    counted: list[tuple[dict[str, int], bool]] = []
    marks = ("m-a", "m-b", "m-c")
    listener = threading.Thread(
        target=lambda: counted.append(sniff.listen_marks("lo", marks, 30.0, stop_fd=stop_read))
    )
    listener.start()
    time.sleep(0.3)  # bound before anything is sent
    started = time.monotonic()
    try:
        sniff.send("lo", "m-a", "broadcast", 3, gap=0.01)
        sniff.send("lo", "m-b", sniff.UNICAST, 2, gap=0.01, dst=sniff.parse_mac("02:00:00:00:00:01"))
    finally:
        os.close(stop_write)
        listener.join(10)
        os.close(stop_read)
    assert time.monotonic() - started < 10  # the end of stdin stopped it, not its 30 s
    assert counted == [({"m-a": 3, "m-b": 2, "m-c": 0}, True)]
