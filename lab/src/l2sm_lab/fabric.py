"""The node fabric: per emulated node a namespace with its own Open vSwitch (userspace
datapath), the L2S-M switch bridge named as the operator names it, and a VXLAN mesh over an
underlay Linux bridge in a fabric namespace that also holds the controller's namespace.

Nothing is made in the host namespace: every veth is created directly inside lab namespaces,
so deleting the namespaces (LabState.teardown) removes everything, and two labs never collide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from l2sm_core import naming
from l2sm_core.naming import PROBE_PORT
from l2sm_core.topology import Link
from l2sm_lab.procs import LabError, LabState, run

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
VXLAN_PORT_BASE = 2000
VXLAN_DST_PORT = 7000
UNDERLAY_BRIDGE = "underlay"
_FABRIC_BRIDGE = "br0"
_NODE_UPLINK = "eth0"  # the node's underlay veth, inside the node namespace
_INACTIVITY_PROBE_MS = 5000
_MAX_BACKOFF_MS = 1000  # OVS's default grows to 8 s: reconnects would lag the controller
_VSCTL_TIMEOUT = 10
_START_TIMEOUT = 10.0
# Pod port types: "" is OVS's default for a veth (netdev, AF_PACKET); "afxdp-nonpmd" takes the
# veth through AF_XDP in generic XDP mode (works in namespaces; about twice the throughput here).
PORT_TYPES = {"": (), "afxdp-nonpmd": ("type=afxdp-nonpmd", "options:xdp-mode=generic")}
# The default since benchmarks/dataplane.py measured it here at 1.1-1.6x the cross-node and 1.8-1.9x
# the same-switch TCP throughput of "" (RTT alike), with tests/test_lab_e2e.py and test_lab_cli.py
# green. Its cost: an add-port waits for ovs-vswitchd to set up the AF_XDP socket, 90-185 ms against
# 9-18 ms at 10 ports a node, so attaching and setting up are slower (benchmarks report both).
DEFAULT_PORT_TYPE = "afxdp-nonpmd"


class InterfacesExhausted(LabError):
    """A node lacks switch interfaces for a pod: says which node, the limit, and the fix."""

    def __init__(self, node: str, limit: int, free: int = 0, needed: int = 1):
        self.node, self.limit, self.free, self.needed = node, limit, free, needed
        if free:
            what = f"{node} has {free} free switch interface(s) of {limit} but the pod needs {needed}"
        else:
            what = f"{node} has no free switch interface: all {limit} are in use"
        super().__init__(
            f"{what} (l2sm-switch option interfaces-per-node); raise interfaces-per-node "
            f"(at most {PROBE_PORT - 1}) or add a node"
        )


def _connectable(path: Path) -> bool:
    """A unix socket at path accepts connections. Through /proc/self/fd/N, as OVS does, since
    sun_path holds only 108 bytes and lab roots under pytest's tmp_path can be long."""
    try:
        dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(f"/proc/self/fd/{dirfd}/{path.name}")
            return True
    except OSError:
        return False
    finally:
        os.close(dirfd)


def _log_tail(path: str | Path, lines: int = 5) -> str:
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Fabric:
    def __init__(
        self,
        state: LabState,
        nodes: Sequence[str],
        links: Sequence[Link],
        *,
        interfaces_per_node: int = 10,
        underlay: str = "192.168.250.0/24",
        mtu: int = 1600,
        port_type: str = DEFAULT_PORT_TYPE,
    ):
        nodes = list(nodes)
        if not nodes:
            raise ValueError("a fabric needs at least one node")
        if len(set(nodes)) != len(nodes):
            raise ValueError(f"node names repeat: {', '.join(nodes)}")
        for link in links:
            for end in (link.a, link.b):
                if end not in nodes:
                    raise ValueError(f"link {link.a}:{link.b} names {end}, which is not a fabric node")
        if not 1 <= interfaces_per_node < PROBE_PORT:
            raise ValueError(
                f"interfaces_per_node must be 1..{PROBE_PORT - 1} (port {PROBE_PORT} is the switch's "
                f"probe port), got {interfaces_per_node}"
            )
        net = ipaddress.ip_network(underlay)
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"underlay {underlay} must be an IPv4 network")
        if net.num_addresses - 2 < len(nodes) + 1:
            raise ValueError(f"underlay {underlay} is too small for {len(nodes)} nodes and a controller")
        if not 1280 <= mtu <= 9000:
            raise ValueError(f"underlay mtu must be 1280..9000, got {mtu}")
        if port_type not in PORT_TYPES:
            known = ", ".join(repr(t) for t in PORT_TYPES)
            raise ValueError(f"port_type must be one of {known}, got {port_type!r}")
        self.state = state
        self.nodes = nodes
        self.links = sorted(set(links))
        self.interfaces_per_node = interfaces_per_node
        self.underlay = net
        self.mtu = mtu
        self.port_type = port_type
        self.controller_port = 6633
        self.fabric_ns = state.ns("fabric")
        self.controller_ns = state.ns("ctl")
        self.controller_ip = str(net.broadcast_address - 1)
        self.namespaces = {node: state.ns(f"n{i}") for i, node in enumerate(nodes, 1)}

    # Identity of nodes

    def index(self, node: str) -> int:
        try:
            return self.nodes.index(node) + 1
        except ValueError:
            raise LabError(f"{node} is not a node of this fabric ({', '.join(self.nodes)})") from None

    def node_ip(self, node: str) -> str:
        return str(self.underlay.network_address + self.index(node))

    def bridge(self, node: str) -> str:
        self.index(node)
        return naming.bridge_name_for(node)

    def rundir(self, node: str) -> Path:
        self.index(node)
        return self.state.root / node

    def peers(self, node: str) -> list[str]:
        ends = ((link.a, link.b) for link in self.links)
        return sorted({b if a == node else a for a, b in ends if node in (a, b)})

    def _db(self, node: str) -> str:
        return f"unix:{self.rundir(node) / 'db.sock'}"

    def _env(self, node: str) -> dict[str, str]:
        # Without these OVS tools look for a system OVS under /var/run/openvswitch.
        d = str(self.rundir(node))
        return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}

    # Persistence

    def _save(self) -> None:
        self.state.data["fabric"] = {
            "nodes": self.nodes,
            "links": [[link.a, link.b] for link in self.links],
            "interfaces_per_node": self.interfaces_per_node,
            "underlay": str(self.underlay),
            "mtu": self.mtu,
            "port_type": self.port_type,
            "controller_port": self.controller_port,
        }
        self.state.save()

    @classmethod
    def load(cls, state: LabState) -> Fabric:
        raw = state.data.get("fabric")
        if not raw:
            raise LabError(f"the lab {state.lab} in {state.root} has no fabric recorded")
        fabric = cls(
            state,
            raw["nodes"],
            [Link.between(a, b) for a, b in raw["links"]],
            interfaces_per_node=raw["interfaces_per_node"],
            underlay=raw["underlay"],
            mtu=raw["mtu"],
            port_type=raw.get("port_type", ""),  # labs recorded before the choice: the old default
        )
        fabric.controller_port = raw["controller_port"]
        return fabric

    # OVS tools

    def vsctl(self, node: str, *args: str, wait: bool = True, check: bool = True) -> str:
        """ovs-vsctl against the node's own db; wait=False does not wait for ovs-vswitchd."""
        argv = ["ovs-vsctl", f"--db={self._db(node)}", f"--timeout={_VSCTL_TIMEOUT}"]
        if not wait:
            argv.append("--no-wait")
        return self._ovs(node, [*argv, *args], check).stdout

    def ofctl(self, node: str, command: str, *args: str, check: bool = True) -> str:
        """ovs-ofctl -O OpenFlow13 COMMAND <the bridge's management socket> ARGS."""
        target = f"unix:{self.rundir(node) / (self.bridge(node) + '.mgmt')}"
        return self._ovs(node, ["ovs-ofctl", "-O", "OpenFlow13", command, target, *args], check).stdout

    def _ovs(self, node: str, argv: list[str], check: bool):
        # --db= and unix: targets name the node's sockets: no OVS_RUNDIR needed for the tools.
        return run(argv, check=check, timeout=_VSCTL_TIMEOUT + 5)

    def _vsctl_json(self, node: str, table: str, columns: str, wait: bool = False) -> list[dict[str, Any]]:
        out = self.vsctl(node, "--format=json", f"--columns={columns}", "list", table, wait=wait)
        doc = json.loads(out)
        return [dict(zip(doc["headings"], (_ovs_value(v) for v in row), strict=True)) for row in doc["data"]]

    # Bringing up

    def up(self, controller_port: int = 6633, *, on_step: Callable[[str], None] | None = None) -> None:
        step = on_step or (lambda _msg: None)
        self.controller_port = controller_port
        self._save()
        prefix = self.underlay.prefixlen
        step(f"fabric namespace {self.fabric_ns}")
        self.state.make_netns("fabric")
        run(["ip", "link", "add", _FABRIC_BRIDGE, "type", "bridge"], netns=self.fabric_ns)
        run(["ip", "link", "set", _FABRIC_BRIDGE, "mtu", str(self.mtu), "up"], netns=self.fabric_ns)

        step(f"controller namespace {self.controller_ns} at {self.controller_ip}")
        self.state.make_netns("ctl")
        self._uplink(self.controller_ns, "ctl")
        run(["ip", "addr", "add", f"{self.controller_ip}/{prefix}", "dev", "eth0"], netns=self.controller_ns)

        for node in self.nodes:
            step(f"node {node}: namespace {self.namespaces[node]}, Open vSwitch")
            self.state.make_netns(f"n{self.index(node)}")
            self._uplink(self.namespaces[node], f"n{self.index(node)}")
            self._start_ovs(node, fresh=True)
            step(f"node {node}: bridges {UNDERLAY_BRIDGE} ({self.node_ip(node)}) and {self.bridge(node)}")
            self._make_bridges(node)

    def _uplink(self, ns: str, fabric_side: str) -> None:
        """A veth from the fabric bridge to `eth0` in ns, created in place (never in the host)."""
        run(
            ["ip", "link", "add", fabric_side, "mtu", str(self.mtu), "type", "veth",
             "peer", "name", "eth0", "mtu", str(self.mtu), "netns", ns],
            netns=self.fabric_ns,
        )  # fmt: skip
        run(["ip", "link", "set", fabric_side, "master", _FABRIC_BRIDGE, "up"], netns=self.fabric_ns)
        run(["ip", "link", "set", "eth0", "up"], netns=ns)
        # Partial checksums from veth offload reach OVS's userspace datapath unfinished: TCP breaks.
        run(["ethtool", "-K", fabric_side, "tx", "off"], netns=self.fabric_ns)
        run(["ethtool", "-K", "eth0", "tx", "off"], netns=ns)

    def _start_ovs(self, node: str, fresh: bool) -> None:
        d = self.rundir(node)
        if fresh:
            # Left by an earlier lab in this root: its record is gone, so its db is stale.
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True, mode=0o700)
            run(["ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA)])
        self._start_db(node)
        if fresh:
            self.vsctl(node, "init", wait=False)
        self._start_vswitchd(node)

    def _proc_names(self, node: str) -> tuple[str, str]:
        return f"ovsdb-{node}", f"vswitchd-{node}"

    def _wait_socket(self, name: str, path: Path) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _connectable(path):
            info = next(p for p in self.state.procs if p.name == name)
            if not self.state.alive(name):
                raise LabError(f"{name} exited at start: {_log_tail(info.log)}")
            if time.monotonic() > deadline:
                raise LabError(f"{name} did not open {path} within {_START_TIMEOUT} s: {_log_tail(info.log)}")
            time.sleep(0.01)

    def _start_db(self, node: str) -> None:
        d = self.rundir(node)
        name = self._proc_names(node)[0]
        self.state.spawn(
            name,
            ["ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d / 'db.sock'}",
             f"--unixctl={d / 'ovsdb-server.ctl'}", "-vsyslog:off", "-vconsole:info"],
            netns=self.namespaces[node],
            env=self._env(node),
            log=d / "ovsdb-server.log",
        )  # fmt: skip
        self._wait_socket(name, d / "db.sock")

    def _start_vswitchd(self, node: str) -> None:
        d = self.rundir(node)
        name = self._proc_names(node)[1]
        self.state.spawn(
            name,
            ["ovs-vswitchd", self._db(node), f"--unixctl={d / 'ovs-vswitchd.ctl'}",
             "-vsyslog:off", "-vconsole:info"],
            netns=self.namespaces[node],
            env=self._env(node),
            log=d / "ovs-vswitchd.log",
        )  # fmt: skip
        self._wait_socket(name, d / "ovs-vswitchd.ctl")
        # A change made without --no-wait returns once ovs-vswitchd has applied the db.
        self.vsctl(node, "set", "Open_vSwitch", ".", "external_ids:l2sm-lab=ready")
        # After a restart that can return before the bridges from the db are back: wait for them.
        for br in self.vsctl(node, "list-br", wait=False).split():
            self._wait_socket(name, d / f"{br}.mgmt")

    def _make_bridges(self, node: str) -> None:
        ns = self.namespaces[node]
        br = self.bridge(node)
        # The tunnel endpoint address must sit on an OVS bridge, else "native tunnel routing failed".
        self.vsctl(
            node,
            "add-br", UNDERLAY_BRIDGE,
            "--", "set", "Bridge", UNDERLAY_BRIDGE, "datapath_type=netdev", "fail_mode=standalone",
            "--", "set", "Interface", UNDERLAY_BRIDGE, f"mtu_request={self.mtu}",
            "--", "add-port", UNDERLAY_BRIDGE, _NODE_UPLINK,
        )  # fmt: skip
        self._underlay_address(node)
        commands = [
            "add-br", br,
            "--", "set", "Bridge", br, "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13",
            f"other_config:datapath-id={naming.datapath_id(node)}", "other_config:disable-in-band=true",
            "--", "--id=@c", "create", "Controller",
            f"target=\"tcp:{self.controller_ip}:{self.controller_port}\"",
            f"max_backoff={_MAX_BACKOFF_MS}", f"inactivity_probe={_INACTIVITY_PROBE_MS}",
            "connection_mode=out-of-band",
            "--", "set", "Bridge", br, "controller=@c",
        ]  # fmt: skip
        for peer in self.peers(node):
            remote = self.node_ip(peer)
            port = naming.vxlan_port_name(remote)
            commands += [
                "--", "add-port", br, port,
                "--", "set", "Interface", port, "type=vxlan",
                "options:key=flow", f"options:remote_ip={remote}", f"options:local_ip={self.node_ip(node)}",
                f"options:dst_port={VXLAN_DST_PORT}", f"ofport_request={VXLAN_PORT_BASE + self.index(peer)}",
            ]  # fmt: skip
        self.vsctl(node, *commands)
        run(["ip", "link", "set", br, "up"], netns=ns)

    def _underlay_address(self, node: str) -> None:
        # The internal port is a tap that dies with ovs-vswitchd: set again after each start.
        ns = self.namespaces[node]
        addr = f"{self.node_ip(node)}/{self.underlay.prefixlen}"
        run(["ip", "link", "set", UNDERLAY_BRIDGE, "mtu", str(self.mtu), "up"], netns=ns)
        run(["ip", "addr", "replace", addr, "dev", UNDERLAY_BRIDGE], netns=ns)

    # Pod ports

    def _check_port(self, node: str, port: int) -> None:
        self.index(node)
        if not 1 <= port <= self.interfaces_per_node:
            raise LabError(f"port {port} on {node} is outside the pod ports 1..{self.interfaces_per_node}")

    def _link_exists(self, ns: str, ifname: str) -> bool:
        return run(["ip", "link", "show", "dev", ifname], netns=ns, check=False).returncode == 0

    def attach(
        self, node: str, port: int, unit_ns: str, ifname: str, mtu: int, mac: str | None = None
    ) -> str:
        """A veth from switch port `port` of node's bridge to `ifname` in unit_ns; returns the
        port's ONOS connect point of:<dpid>/<port>."""
        self._check_port(node, port)
        if not 1 <= len(ifname) <= 15:
            raise ValueError(f"interface name {ifname!r} must be 1..15 characters")
        ns = self.namespaces[node]
        br = self.bridge(node)
        sw = naming.interface_name(node, port)
        # A port whose veth was recreated under its old name stays dead in OVS: remove it first.
        self.vsctl(node, "--if-exists", "del-port", br, sw)
        if self._link_exists(ns, sw):
            run(["ip", "link", "del", "dev", sw], netns=ns)
        # Both ends are created in their namespaces, under their final names: no host-side name.
        run(
            ["ip", "link", "add", sw, "mtu", str(mtu), "type", "veth",
             "peer", "name", ifname, "mtu", str(mtu), "netns", unit_ns],
            netns=ns,
        )  # fmt: skip
        try:
            if mac:
                run(["ip", "link", "set", "dev", ifname, "address", mac], netns=unit_ns)
            for where, dev in ((ns, sw), (unit_ns, ifname)):
                run(["ip", "link", "set", "dev", dev, "up"], netns=where)
                run(["ethtool", "-K", dev, "tx", "off"], netns=where)
            self.vsctl(
                node, "add-port", br, sw,
                "--", "set", "Interface", sw, f"ofport_request={port}", *PORT_TYPES[self.port_type],
            )  # fmt: skip
            got = self.vsctl(node, "get", "Interface", sw, "ofport", wait=False).strip()
            if got != str(port):
                raise LabError(f"OVS gave {sw} on {node} port {got}, not {port}")
        except BaseException:
            with contextlib.suppress(LabError):
                self.vsctl(node, "--if-exists", "del-port", br, sw)
            with contextlib.suppress(LabError):
                run(["ip", "link", "del", "dev", sw], netns=ns)
            raise
        return naming.port_endpoint(node, port)

    def detach(self, node: str, port: int) -> None:
        self._check_port(node, port)
        sw = naming.interface_name(node, port)
        self.vsctl(node, "--if-exists", "del-port", self.bridge(node), sw)
        ns = self.namespaces[node]
        if self._link_exists(ns, sw):
            run(["ip", "link", "del", "dev", sw], netns=ns)  # takes the unit's end with it

    def _bridge_ports(self, node: str) -> dict[str, int]:
        """Interface name -> ofport of every port on node's switch bridge (-1 when unassigned)."""
        names = set(self.vsctl(node, "list-ports", self.bridge(node), wait=False).split())
        ofports = {}
        for row in self._vsctl_json(node, "Interface", "name,ofport"):
            if row["name"] in names:
                ofports[row["name"]] = row["ofport"] if isinstance(row["ofport"], int) else -1
        return ofports

    def used_ports(self, node: str) -> set[int]:
        return {p for p in self._bridge_ports(node).values() if 1 <= p <= self.interfaces_per_node}

    def free_ports(self, node: str) -> list[int]:
        used = self.used_ports(node)
        return [port for port in range(1, self.interfaces_per_node + 1) if port not in used]

    def free_port(self, node: str) -> int:
        free = self.free_ports(node)
        if not free:
            raise InterfacesExhausted(node, self.interfaces_per_node)
        return free[0]

    # Operations

    def restart_switch(self, node: str) -> None:
        """Stop and start node's ovs-vswitchd; bridges and ports come back from its db (flows do
        not: the controller reinstalls them when the switch reconnects)."""
        name = self._proc_names(node)[1]
        if any(p.name == name for p in self.state.procs):
            self.state.stop(name)
        self._start_vswitchd(node)
        self._underlay_address(node)
        run(["ip", "link", "set", self.bridge(node), "up"], netns=self.namespaces[node])

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for node in self.nodes:
            db_name, vswitchd_name = self._proc_names(node)
            row: dict[str, Any] = {
                "name": node,
                "namespace": self.namespaces[node],
                "underlay_ip": self.node_ip(node),
                "bridge": self.bridge(node),
                "dpid": naming.datapath_id(node),
                "device_id": naming.device_id(node),
                "db_running": self.state.alive(db_name),
                "switch_running": self.state.alive(vswitchd_name),
                "controller": f"tcp:{self.controller_ip}:{self.controller_port}",
                "controller_connected": False,
                "pod_ports": {},
                "vxlan_ports": [],
            }
            if row["db_running"]:
                controllers = self._vsctl_json(node, "Controller", "is_connected")
                row["controller_connected"] = any(c["is_connected"] is True for c in controllers)
                ports = self._bridge_ports(node)
                row["pod_ports"] = {
                    n: name for name, n in sorted(ports.items(), key=lambda kv: kv[1])
                    if 1 <= n <= self.interfaces_per_node
                }  # fmt: skip
                by_name = {r["name"]: r for r in self._vsctl_json(node, "Interface", "name,type,options")}
                row["vxlan_ports"] = [
                    {"name": name, "ofport": n, "remote_ip": by_name[name]["options"].get("remote_ip")}
                    for name, n in sorted(ports.items())
                    if name in by_name and by_name[name]["type"] == "vxlan"
                ]
            rows.append(row)
        return rows

    def down(self) -> None:
        """Everything the fabric made is in a recorded namespace or process."""
        self.state.teardown()


def _ovs_value(value: Any) -> Any:
    """OVSDB JSON (["map", [[k, v]...]], ["set", [...]], ["uuid", x]) to plain Python."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind == "map":
            return {k: _ovs_value(v) for k, v in body}
        if kind == "set":
            items = [_ovs_value(v) for v in body]
            return items[0] if len(items) == 1 else (items or None)
        if kind in ("uuid", "named-uuid"):
            return body
    return value
