"""The lab's record, processes and node fabric, with real namespaces and Open vSwitch."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2sm_core import naming
from l2sm_core.topology import Link
from l2sm_lab.fabric import PORT_TYPES, VXLAN_PORT_BASE, Fabric, InterfacesExhausted
from l2sm_lab.procs import RECORD, LabError, LabState, NoLab, run, start_time, unlock_lab
from l2sm_testing.netns import in_netns

_MISSING = [
    tool for tool in ("ip", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ethtool") if not shutil.which(tool)
]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_MISSING),
    reason="needs root and Open vSwitch, iproute2, ethtool"
    + (f" (missing: {', '.join(_MISSING)})" if _MISSING else " (not root)"),
)

POD_MTU = 1400
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)


def _netns_with(prefix: str) -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text[text.rindex(")") + 2] != "Z"


@pytest.fixture
def lab(tmp_path):
    lab_id = "t" + secrets.token_hex(3)[:5]
    state = LabState.create(tmp_path / "lab", lab_id)
    pids = []
    original_spawn = state.spawn

    def spawn(*args, **kwargs):
        child = original_spawn(*args, **kwargs)
        pids.append(child.pid)
        return child

    state.spawn = spawn  # every PID the test started, to prove none survives
    yield state
    # Idempotent: also after the test tore the lab down itself, here or in another process.
    state.teardown()
    assert _netns_with(f"{lab_id}-") == []
    assert [pid for pid in pids if _running(pid)] == []


# The record and processes


def test_record_is_private_and_reloadable_and_teardown_works_from_another_process(lab):
    ns = lab.make_netns("a")
    assert ns == f"{lab.lab}-a"
    child = lab.spawn("sleeper", ["sleep", "60"], netns=ns)
    lab.data["mine"] = {"x": [1, 2]}
    lab.save()
    record = lab.root / RECORD
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    again = LabState.load(lab.root)
    assert again.lab == lab.lab and again.namespaces == [ns] and again.data == {"mine": {"x": [1, 2]}}
    (proc,) = again.procs
    assert (proc.name, proc.pid, proc.netns) == ("sleeper", child.pid, ns)
    assert proc.start == start_time(child.pid) and proc.argv[-2:] == ["sleep", "60"]
    assert again.alive("sleeper")
    # `down` is another process, which did not start the sleeper: it polls /proc.
    code = f"from l2sm_lab.procs import LabState; LabState.load({str(lab.root)!r}).teardown()"
    # While this process holds the lab, another command waits for it (one writer at a time).
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], check=True, timeout=2)
    unlock_lab(lab.root)  # as when the process that made the lab has ended
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert child.wait(5) == -15
    assert not record.exists() and _netns_with(f"{lab.lab}-") == []
    with pytest.raises(NoLab, match="no lab is recorded"):
        LabState.load(lab.root)
    lab.teardown()  # again, from a stale object: nothing left to do, no error


def test_stop_leaves_alone_a_pid_whose_start_time_changed(lab):
    child = lab.spawn("sleeper", ["sleep", "60"])
    (info,) = lab.procs
    info.start += 1  # as if the PID had been reused by another process
    lab.save()
    other = LabState.load(lab.root)
    assert not other.alive("sleeper")
    assert other.stop("sleeper") is False
    assert child.poll() is None and other.procs == []
    child.kill()
    child.wait(5)


def test_stop_by_another_process_waits_and_returns(lab):
    child = lab.spawn("sleeper", ["sleep", "60"])
    other = LabState.load(lab.root)  # not its parent: waits by polling /proc
    assert other.stop("sleeper", timeout=2) is True
    assert child.wait(5) == -15 and not other.alive("sleeper")
    assert LabState.load(lab.root).procs == []


def test_names_are_validated(lab, tmp_path):
    for bad in ("", "Ab", "1ab", "abcdefg", "a-b"):
        with pytest.raises(ValueError, match="lab id"):
            LabState.create(tmp_path / bad, bad)
    with pytest.raises(ValueError, match="role"):
        lab.ns("Bad role")
    with pytest.raises(ValueError, match="longer than 32"):
        lab.ns("x" * 30)
    with pytest.raises(NoLab):
        LabState.load(tmp_path / "nothing")
    with pytest.raises(LabError, match="already recorded"):
        LabState.create(lab.root, "other")
    lab.spawn("one", ["true"])
    with pytest.raises(LabError, match="already recorded"):
        lab.spawn("one", ["true"])
    with pytest.raises(LabError, match="iproute2 says no"):
        run(["sh", "-c", "echo iproute2 says no >&2; exit 3"])
    with pytest.raises(ValueError, match="probe port"):
        Fabric(lab, ["a"], [], interfaces_per_node=1999)


# The fabric


def test_switches_are_named_as_the_operator_names_them(lab):
    nodes = ["node-a", "node-b", "node-c"]
    links = [Link.between("node-a", "node-b"), Link.between("node-b", "node-c")]
    fabric = Fabric(lab, nodes, links)
    fabric.up(6653)
    loaded = Fabric.load(LabState.load(lab.root))
    assert (loaded.nodes, loaded.links, loaded.controller_port) == (nodes, sorted(links), 6653)
    assert loaded.namespaces == {n: f"{lab.lab}-n{i}" for i, n in enumerate(nodes, 1)}
    assert fabric.controller_ns == f"{lab.lab}-ctl" and fabric.controller_ip == "192.168.250.254"
    peers = {"node-a": ["node-b"], "node-b": ["node-a", "node-c"], "node-c": ["node-b"]}
    for i, node in enumerate(nodes, 1):
        br = naming.bridge_name_for(node)
        assert fabric.vsctl(node, "list-br").split() == sorted([br, "underlay"])
        assert fabric.vsctl(node, "get", "Bridge", br, "fail_mode").strip() == "secure"
        assert fabric.vsctl(node, "get", "Bridge", br, "datapath_type").strip() == "netdev"
        assert fabric.vsctl(node, "get", "Bridge", br, "protocols").strip() == "[OpenFlow13]"
        assert f"dpid:{naming.datapath_id(node)}" in fabric.ofctl(node, "show")
        assert fabric.vsctl(node, "get-controller", br).strip() == "tcp:192.168.250.254:6653"
        assert fabric.vsctl(node, "get", "Controller", br, "max_backoff").strip() == "1000"
        expected = []
        for peer in peers[node]:
            remote = f"192.168.250.{nodes.index(peer) + 1}"
            port = naming.vxlan_port_name(remote)
            options = fabric.vsctl(node, "get", "Interface", port, "options").strip()
            assert options == (
                f'{{dst_port="7000", key=flow, local_ip="192.168.250.{i}", remote_ip="{remote}"}}'
            )
            assert fabric.vsctl(node, "get", "Interface", port, "ofport").strip() == str(
                VXLAN_PORT_BASE + nodes.index(peer) + 1
            )
            expected.append(
                {"name": port, "ofport": VXLAN_PORT_BASE + nodes.index(peer) + 1, "remote_ip": remote}
            )
        row = next(r for r in fabric.status() if r["name"] == node)
        assert row["bridge"] == br and row["dpid"] == naming.datapath_id(node)
        assert row["underlay_ip"] == f"192.168.250.{i}" and row["namespace"] == f"{lab.lab}-n{i}"
        assert row["controller_connected"] is False and row["pod_ports"] == {} and row["switch_running"]
        assert sorted(row["vxlan_ports"], key=lambda p: p["name"]) == sorted(
            expected, key=lambda p: p["name"]
        )
    # Nothing of the fabric lives outside the lab's namespaces.
    loaded.down()
    assert _netns_with(f"{lab.lab}-") == []


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(ns: str, dst: str, size: int, wait: float = 0.5) -> bool:
    """One ICMP echo of `size` payload bytes with DF set (`ping -M do -s size`), sent from ns."""

    def call() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
            ident, payload = secrets.randbits(16), os.urandom(size)
            header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
            header = struct.pack("!BBHHH", 8, 0, _icmp_checksum(header + payload), ident, 1)
            sock.sendto(header + payload, (dst, 0))
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (src, _) = sock.recvfrom(65535)
                except TimeoutError:
                    return False
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, got, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if kind == 0 and got == ident and src == dst and data[ihl + 8 :] == payload:
                    return True
            return False

    return in_netns(ns, call)


def _ping_until(ns: str, dst: str, size: int = 56, deadline: float = 10) -> None:
    # The first packets on a new tunnel can take 1-2 s (OVS resolves the remote's MAC itself).
    end = time.monotonic() + deadline
    while not _echo(ns, dst, size):
        assert time.monotonic() < end, f"{dst} did not answer a {size}-byte ping from {ns} in {deadline} s"


ECHO_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
"""


def _tcp_echo(ns: str, dst: str, port: int, chunks: int = 32, size: int = 16384) -> None:
    def call() -> None:
        end = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection((dst, port), timeout=3)
                break
            except OSError:
                assert time.monotonic() < end, f"no TCP connection to {dst}:{port} from {ns}"
                time.sleep(0.1)
        with conn:
            for _ in range(chunks):
                block = os.urandom(size)
                conn.sendall(block)
                got = b""
                while len(got) < size:
                    part = conn.recv(size - len(got))
                    assert part, "the echo server closed the connection"
                    got += part
                assert got == block

    in_netns(ns, call, timeout=30)


def _cross_flows(fabric: Fabric, nodes: list[str]) -> None:
    """Without a controller: port 1 of each node to its tunnel to the other node and back."""
    for node, peer in (nodes, nodes[::-1]):
        tunnel = VXLAN_PORT_BASE + fabric.index(peer)
        fabric.ofctl(node, "add-flow", f"in_port=1,actions=set_field:100->tun_id,output:{tunnel}")
        fabric.ofctl(node, "add-flow", f"in_port={tunnel},actions=output:1")


def _two_units(lab: LabState, fabric: Fabric) -> tuple[str, str]:
    units = []
    for i, node in enumerate(fabric.nodes, 1):
        ns = lab.make_netns(f"u{i}")
        mac = "02:00:00:00:00:01" if i == 1 else None
        endpoint = fabric.attach(node, 1, ns, "net1", POD_MTU, mac=mac)
        assert endpoint == naming.port_endpoint(node, 1) == f"of:{naming.datapath_id(node)}/1"
        run(["ip", "addr", "add", f"10.77.0.{i}/24", "dev", "net1"], netns=ns)
        units.append(ns)
    return units[0], units[1]


def _mtu(ns: str, ifname: str) -> int:
    return int(run(["cat", f"/sys/class/net/{ifname}/mtu"], netns=ns).stdout)


def test_units_on_two_nodes_ping_and_talk_tcp_across_vxlan(lab):
    fabric = Fabric(lab, ["a", "b"], [Link.between("a", "b")])
    fabric.up()
    ua, ub = _two_units(lab, fabric)
    assert "02:00:00:00:00:01" in run(["ip", "link", "show", "net1"], netns=ua).stdout
    sw = naming.interface_name("a", 1)
    assert _mtu(ua, "net1") == _mtu(fabric.namespaces["a"], sw) == POD_MTU
    assert "tx-checksumming: off" in run(["ethtool", "-k", "net1"], netns=ua).stdout
    assert fabric.status()[0]["pod_ports"] == {1: sw}
    assert not _echo(ua, "10.77.0.2", 56, wait=0.3)  # fail_mode secure: no flows, no traffic
    _cross_flows(fabric, ["a", "b"])
    _ping_until(ua, "10.77.0.2")
    _ping_until(ua, "10.77.0.2", size=POD_MTU - 28)  # a full pod MTU crosses the 50-byte VXLAN header
    with pytest.raises(OSError) as too_big:
        _echo(ua, "10.77.0.2", POD_MTU - 27)
    assert too_big.value.errno == errno.EMSGSIZE
    # TCP breaks where ping works when veth checksum offload is left on.
    lab.spawn("echo", [sys.executable, "-c", ECHO_SERVER, "10.77.0.2", "7777"], netns=ub)
    _tcp_echo(ua, "10.77.0.2", 7777)


@pytest.mark.parametrize("port_type", sorted(PORT_TYPES))
def test_each_port_type_carries_tcp_across_vxlan_and_is_reloaded(lab, port_type):
    fabric = Fabric(lab, ["a", "b"], [Link.between("a", "b")], port_type=port_type)
    fabric.up()
    ua, ub = _two_units(lab, fabric)
    sw = naming.interface_name("a", 1)
    assert fabric.vsctl("a", "get", "Interface", sw, "type").strip().strip('"') == port_type
    assert Fabric.load(lab).port_type == port_type
    _cross_flows(fabric, ["a", "b"])
    _ping_until(ua, "10.77.0.2")
    lab.spawn("echo", [sys.executable, "-c", ECHO_SERVER, "10.77.0.2", "7777"], netns=ub)
    _tcp_echo(ua, "10.77.0.2", 7777)
    with pytest.raises(ValueError, match="port_type"):
        Fabric(lab, ["a"], [], port_type="dpdk")


def test_detach_reattach_and_switch_restart_keep_ports(lab):
    fabric = Fabric(lab, ["a", "b"], [Link.between("a", "b")])
    fabric.up()
    ua, _ = _two_units(lab, fabric)
    _cross_flows(fabric, ["a", "b"])
    _ping_until(ua, "10.77.0.2")
    fabric.detach("a", 1)
    assert fabric.used_ports("a") == set() and "net1" not in run(["ip", "link"], netns=ua).stdout
    fabric.detach("a", 1)  # nothing there any more: no error
    assert fabric.attach("a", 1, ua, "net1", POD_MTU) == naming.port_endpoint("a", 1)
    assert fabric.vsctl("a", "get", "Interface", naming.interface_name("a", 1), "ofport").strip() == "1"
    run(["ip", "addr", "add", "10.77.0.1/24", "dev", "net1"], netns=ua)
    _ping_until(ua, "10.77.0.2")  # flows match port 1, which is port 1 again

    pid = next(p.pid for p in lab.procs if p.name == "vswitchd-b")
    fabric.restart_switch("b")
    assert next(p.pid for p in lab.procs if p.name == "vswitchd-b") != pid and not _running(pid)
    br = naming.bridge_name_for("b")
    assert fabric.used_ports("b") == {1}
    assert fabric.vsctl("b", "get", "Bridge", br, "fail_mode").strip() == "secure"
    assert f"dpid:{naming.datapath_id('b')}" in fabric.ofctl("b", "show")
    _cross_flows(fabric, ["a", "b"])  # flows are the controller's to reinstall
    _ping_until(ua, "10.77.0.2")


def test_free_port_until_the_limit(lab):
    fabric = Fabric(lab, ["solo"], [], interfaces_per_node=2)
    fabric.up()
    unit = lab.make_netns("u1")
    assert fabric.free_port("solo") == 1
    fabric.attach("solo", 1, unit, "net1", POD_MTU)
    assert fabric.free_port("solo") == 2
    fabric.attach("solo", 2, unit, "net2", POD_MTU)
    assert fabric.used_ports("solo") == {1, 2}
    with pytest.raises(
        InterfacesExhausted, match=r"solo has no free switch interface: all 2 are in use.*interfaces-per-node"
    ) as full:
        fabric.free_port("solo")
    assert (full.value.node, full.value.limit) == ("solo", 2)
    with pytest.raises(LabError, match="outside the pod ports"):
        fabric.attach("solo", 3, unit, "net3", POD_MTU)
    fabric.detach("solo", 1)
    assert fabric.free_port("solo") == 1
