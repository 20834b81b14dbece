"""The lab's SDN controller (l2sm_lab.controller with l2sm_lab.ofapp) on real switches.

One fabric of two nodes for the whole module; the controller runs as the lab runs it: its
REST socket bound on this host's loopback and passed by fd, the process in the controller's
namespace. Everything is driven through the REST API with the control plane's own client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from l2sm_core import naming
from l2sm_core.topology import Link

ofapp = pytest.importorskip("l2sm_lab.ofapp", reason="os-ken is not importable")

from l2sm_controlplane.vnets import VnetsClient  # noqa: E402
from l2sm_lab.fabric import VXLAN_PORT_BASE, Fabric  # noqa: E402
from l2sm_lab.procs import LabState, run  # noqa: E402

_MISSING = [
    tool
    for tool in ("ip", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ethtool", "ping")
    if not shutil.which(tool)
]
needs_switches = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_MISSING),
    reason="needs root and Open vSwitch, iproute2, ethtool, ping"
    + (f" (missing: {', '.join(_MISSING)})" if _MISSING else " (not root)"),
)

NODES = ("node-a", "node-b")
POD_MTU = 1400
USER = "karaf"
CONTROLLER = "controller"
OF_PORT = 6633
REACH_DEADLINE = 10.0
TIMINGS: dict[str, float] = {}


# Pure parts: no switch needed


def test_network_keys_are_stable_nonzero_24_bit_and_step_past_collisions():
    key = ofapp.network_key("blue")
    assert key == ofapp.network_key("blue")
    assert 0 < key < 1 << 24
    assert ofapp.network_key("blue", [key]) == (key + 1) % (1 << 24)
    assert ofapp.network_key("blue", [key, key + 1]) == key + 2
    assert ofapp.cookie_of(key) & 0xFFFFFF == key
    assert ofapp.metadata(key, ofapp.FROM_TUNNEL) == (key << 1) | 1


# The fabric


@dataclass
class Unit:
    name: str
    ns: str
    node: str
    port: int
    ip: str
    endpoint: str = ""


@dataclass
class World:
    state: LabState
    fabric: Fabric
    credentials: Path
    units: dict[str, Unit]
    client: VnetsClient | None = None

    def start_controller(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        try:
            self.state.spawn(
                CONTROLLER,
                [sys.executable, "-m", "l2sm_lab.controller", "--of-port", str(OF_PORT),
                 "--rest-fd", str(listener.fileno()), "--credentials", str(self.credentials)],
                netns=self.fabric.controller_ns,
                log=self.state.root / "controller.log",
                pass_fds=(listener.fileno(),),
            )  # fmt: skip
        finally:
            listener.close()
        password = self.credentials.read_text().strip().split(":", 1)[1]
        self.client = VnetsClient(f"http://127.0.0.1:{port}", USER, password, timeout=3)
        deadline = time.monotonic() + 15
        while not self.client.is_ready():
            assert self.state.alive(CONTROLLER), self.log()
            assert time.monotonic() < deadline, "controller REST did not come up\n" + self.log()
            time.sleep(0.05)

    def wait_switches(self, timeout: float = 15) -> float:
        started = time.monotonic()
        wanted = {naming.device_id(n) for n in NODES}
        while {d.id for d in self.api.devices() if d.available} != wanted:
            assert time.monotonic() - started < timeout, f"switches did not connect\n{self.log()}"
            time.sleep(0.05)
        return time.monotonic() - started

    @property
    def api(self) -> VnetsClient:
        assert self.client is not None
        return self.client

    def log(self) -> str:
        path = self.state.root / "controller.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def join(self, network: str, *units: str) -> None:
        for u in units:
            self.api.add_ports(network, [self.units[u].endpoint])

    def leave(self, network: str, *units: str) -> None:
        for u in units:
            self.api.remove_ports(network, [self.units[u].endpoint])


# Two networks on ONE subnet: blue (a1, a2 on node-a, b1 on node-b), red (a3, b2), and a4 in none.
_UNITS = [
    ("a1", "node-a", 1, "10.77.0.1"),
    ("a2", "node-a", 2, "10.77.0.2"),
    ("b1", "node-b", 1, "10.77.0.3"),
    ("a3", "node-a", 3, "10.77.0.4"),
    ("b2", "node-b", 2, "10.77.0.5"),
    ("a4", "node-a", 4, "10.77.0.6"),
]
BLUE = ("a1", "a2", "b1")
RED = ("a3", "b2")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    if os.geteuid() != 0 or _MISSING:
        pytest.skip("needs root and Open vSwitch, iproute2, ethtool, ping")
    root = tmp_path_factory.mktemp("oflab")
    lab_id = "o" + secrets.token_hex(3)[:5]
    state = LabState.create(root / "lab", lab_id)
    try:
        started = time.monotonic()
        fabric = Fabric(state, list(NODES), [Link.between(*NODES)], interfaces_per_node=10)
        fabric.up(OF_PORT)
        credentials = state.root / "controller.credentials"
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{USER}:{secrets.token_urlsafe(12)}\n")
        units: dict[str, Unit] = {}
        for name, node, port, ip in _UNITS:
            ns = state.make_netns(f"u-{name}")
            unit = Unit(name, ns, node, port, ip)
            unit.endpoint = fabric.attach(node, port, ns, "net1", POD_MTU)
            run(["ip", "addr", "add", f"{ip}/24", "dev", "net1"], netns=ns)
            units[name] = unit
        w = World(state, fabric, credentials, units)
        w.start_controller()
        w.wait_switches()
        for network, members in (("blue", BLUE), ("red", RED)):
            w.api.create_network(network)
            w.join(network, *members)
        TIMINGS["setup (fabric, 6 units, controller, switches)"] = time.monotonic() - started
        yield w
    finally:
        state.teardown()
        left = [line for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.startswith(lab_id)]
        assert left == []
        for what, seconds in TIMINGS.items():
            print(f"\n  {what}: {seconds:.2f} s", end="")


def ping(w: World, src: str, dst: str, count: int = 1, wait: float = 1) -> bool:
    done = run(
        ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(wait), w.units[dst].ip],
        netns=w.units[src].ns,
        check=False,
    )
    return done.returncode == 0


def reaches(w: World, src: str, dst: str, deadline: float = REACH_DEADLINE) -> float:
    """Seconds until src pings dst (asserts it does within the deadline)."""
    started = time.monotonic()
    while not ping(w, src, dst):
        assert time.monotonic() - started < deadline, f"{src} cannot reach {dst}\n{w.log()}"
    return time.monotonic() - started


def never_reaches(w: World, src: str, dst: str) -> None:
    assert not ping(w, src, dst, count=2, wait=1), f"{src} reached {dst} across networks"


def frames_seen(
    w: World, sender: str, listeners: list[str], kinds=("broadcast", "arp", "unknown-unicast")
) -> dict:
    """Marked frames of each kind sent from sender's interface, counted on each listener's."""
    seen: dict[str, int] = {name: 0 for name in listeners}
    for kind in kinds:
        mark = "10.77.9.9" if kind == "arp" else f"mark-{secrets.token_hex(4)}"
        procs = {}
        for name in listeners:
            procs[name] = subprocess.Popen(
                ["ip", "netns", "exec", w.units[name].ns, sys.executable, "-m", "l2sm_lab.sniff",
                 "listen", "net1", mark, "1.5"],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        run(
            [sys.executable, "-m", "l2sm_lab.sniff", "send", "net1", mark, kind, "5"],
            netns=w.units[sender].ns,
        )
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=10)
            seen[name] += int(json.loads(out)["seen"])
    return seen


def dump_flows(w: World, node: str) -> list[str]:
    out = w.fabric.ofctl(node, "dump-flows")
    return [line for line in out.splitlines() if "cookie=" in line]


@needs_switches
def test_devices_lists_both_switches_available(world):
    devices = {d.id: d.available for d in world.api.devices()}
    assert devices == {naming.device_id(n): True for n in NODES}


@needs_switches
def test_one_network_pings_on_one_node_and_across_two(world):
    TIMINGS["first ping, same node"] = reaches(world, "a1", "a2")
    TIMINGS["first ping, across the tunnel"] = reaches(world, "a1", "b1")
    reaches(world, "b1", "a2")
    reaches(world, "a3", "b2")


@needs_switches
def test_two_networks_on_one_subnet_never_meet(world):
    reaches(world, "a1", "b1")  # the networks forward: the failures below are isolation
    reaches(world, "a3", "b2")
    for src, dst in (("a1", "a3"), ("a1", "b2"), ("b1", "b2"), ("a3", "a2"), ("a4", "a1"), ("a1", "a4")):
        never_reaches(world, src, dst)
    seen = frames_seen(world, "a1", ["a2", "b1", "a3", "b2", "a4"])
    assert seen["a2"] >= 5 and seen["b1"] >= 5, seen  # the probe sees what it should
    assert seen["a3"] == seen["b2"] == seen["a4"] == 0, seen
    seen = frames_seen(world, "b2", ["a3", "a1", "b1"], kinds=("broadcast",))
    assert seen == {"a3": 5, "a1": 0, "b1": 0}
    # a port in no network sends nowhere
    assert frames_seen(world, "a4", ["a1", "a3"], kinds=("broadcast",)) == {"a1": 0, "a3": 0}


@needs_switches
def test_a_port_moved_between_networks_follows(world):
    reaches(world, "a2", "a1")
    started = time.monotonic()
    world.leave("blue", "a2")
    world.join("red", "a2")
    TIMINGS["port moved blue -> red, first ping in red"] = reaches(world, "a2", "b2")
    never_reaches(world, "a2", "a1")
    never_reaches(world, "a2", "b1")
    assert frames_seen(world, "a2", ["a1", "b1", "a3"], kinds=("broadcast",)) == {"a1": 0, "b1": 0, "a3": 5}
    world.leave("red", "a2")
    world.join("blue", "a2")
    reaches(world, "a2", "b1")
    never_reaches(world, "a2", "b2")
    TIMINGS["port moved and back, all checks"] = time.monotonic() - started


@needs_switches
def test_flows_carry_one_cookie_per_network(world):
    reaches(world, "a1", "b1")
    keys = {ofapp.network_key(n) for n in ("blue", "red")}
    flows_a, flows_b = dump_flows(world, "node-a"), dump_flows(world, "node-b")
    cookies = {int(line.split("cookie=")[1].split(",")[0], 16) for line in flows_a}
    assert cookies == {ofapp.cookie_of(0)} | {ofapp.cookie_of(k) for k in keys}
    # a1's MAC was learned: on its own switch towards its port, on the other towards the tunnel.
    mac = run(["cat", "/sys/class/net/net1/address"], netns=world.units["a1"].ns).stdout.strip()
    port_a1 = world.units["a1"].port
    assert any("table=1" in f and f"dl_src={mac}" in f and f"in_port={port_a1}" in f for f in flows_a), (
        flows_a
    )
    assert any("table=2" in f and f"dl_dst={mac}" in f and f"actions=output:{port_a1}" in f for f in flows_a)
    tunnel = VXLAN_PORT_BASE + world.fabric.index("node-a")
    assert any(
        "table=2" in f and f"dl_dst={mac}" in f and "->tun_id" in f and f"output:{tunnel}" in f
        for f in flows_b
    ), flows_b


@needs_switches
def test_a_recreated_pod_port_is_programmed_again(world):
    """Port status delete then add (the veth recreated): the network follows without a REST call."""
    reaches(world, "a2", "b1")
    unit = world.units["a2"]
    world.fabric.detach(unit.node, unit.port)
    started = time.monotonic()
    assert world.fabric.attach(unit.node, unit.port, unit.ns, "net1", POD_MTU) == unit.endpoint
    run(["ip", "addr", "add", f"{unit.ip}/24", "dev", "net1"], netns=unit.ns)
    TIMINGS["pod port recreated: first ping across"] = reaches(world, "a2", "b1")
    TIMINGS["pod port recreated: attach + first ping"] = time.monotonic() - started
    never_reaches(world, "a2", "b2")


@needs_switches
def test_deleting_a_network_removes_its_flows_on_every_switch(world):
    reaches(world, "a3", "b2")
    cookie = ofapp.cookie_of(ofapp.network_key("red"))
    world.api.delete_network("red")
    deadline = time.monotonic() + 5
    while any(f"cookie={cookie:#x}," in f for node in NODES for f in dump_flows(world, node)):
        assert time.monotonic() < deadline, "red's flows stayed"
        time.sleep(0.05)
    never_reaches(world, "a3", "b2")
    reaches(world, "a1", "b1")  # blue untouched
    world.api.create_network("red")
    world.join("red", *RED)
    reaches(world, "a3", "b2")


@needs_switches
def test_a_restarted_switch_is_programmed_again(world):
    world.fabric.restart_switch("node-b")
    started = time.monotonic()
    TIMINGS["switch restart: first ping across"] = reaches(world, "a1", "b1", deadline=15)
    never_reaches(world, "b1", "b2")
    TIMINGS["switch restart: reconnect + ping"] = time.monotonic() - started


@needs_switches
def test_controller_restart_loses_the_networks_until_they_are_created_again(world):
    reaches(world, "a1", "b1")
    world.state.stop(CONTROLLER)
    # fail_mode=secure: with the controller gone the switches keep forwarding as programmed.
    assert len(dump_flows(world, "node-a")) > 2
    reaches(world, "a1", "b1", deadline=3)
    never_reaches(world, "a1", "b2")

    world.start_controller()
    TIMINGS["controller restart: switches back"] = world.wait_switches()
    assert not world.api.network_exists("blue")
    # A new controller knows no network: the reconnected switches forward nothing.
    deadline = time.monotonic() + 5
    while ping(world, "a1", "b1"):
        assert time.monotonic() < deadline, "a reconnected switch kept the old controller's flows"
    started = time.monotonic()
    for network, members in (("blue", BLUE), ("red", RED)):
        world.api.create_network(network)
        world.join(network, *members)
    reaches(world, "a1", "b1")
    reaches(world, "a3", "b2")
    TIMINGS["controller restart: networks re-created to ping"] = time.monotonic() - started
    never_reaches(world, "a1", "b2")


@needs_switches
def test_controller_exits_cleanly_on_sigterm(world):
    started = time.monotonic()
    assert world.state.stop(CONTROLLER, timeout=5) is True
    TIMINGS["controller SIGTERM to exit"] = time.monotonic() - started
    assert "stopping: SIGTERM" in world.log()
    world.start_controller()
    world.wait_switches()
