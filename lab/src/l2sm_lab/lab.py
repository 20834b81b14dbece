"""The lab as a whole: a bundle realised on this machine, and the operations on it.

`Lab.up` plays every part a cluster would: the nodes and switches (fabric), the SDN
controller (l2sm_lab.controller, in its own namespace, REST on this host's loopback), the
L2S-M operator (networks created and ports added through the vnets REST API, as upstream's
operator does), the KNF library (interface plans applied with l2sm_core.netlink) and the
CDN workloads (l2sm_lab.knfs). Every decision comes from the plan (l2sm_lab.plan). What was
made is in the record (l2sm_lab.procs), so `status`, `action` and `down` are separate
processes, and `down` works after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from l2sm_controlplane.resync import DesiredState, ResyncReport
from l2sm_controlplane.vnets import ControllerError, ControllerUnreachable, VnetsClient
from l2sm_core import naming, netlink
from l2sm_lab import knfs, supervisor
from l2sm_lab.bundle import read_bundle
from l2sm_lab.fabric import DEFAULT_PORT_TYPE, PORT_TYPES, Fabric, InterfacesExhausted
from l2sm_lab.plan import LabPlan, Paths, UnitPlan, is_knf, plan_lab
from l2sm_lab.procs import LabError, LabState, start_time

DEFAULT_ROOT = Path(os.environ.get("L2SM_LAB_ROOT", "/run/l2sm-lab"))
DEFAULT_ID = "l2lab"
WORKLOADS = Path("/var/tmp/l2sm-lab")
OF_PORT = 6633
CONTROLLER = "controller"
USER = "karaf"  # the upstream manager's user name; the password is the lab's own
READY_TIMEOUT = 30.0
# The controller charm's update-status, compressed: Juju's default is every 5 minutes.
RESYNC_INTERVAL = 10.0
# A pod the API still shows: its ports are released (the charm's resync removes them).
GONE_STATES = ("Terminating", "Failed")
# Workloads start in this order: the cache follows an origin, through a router.
_START_ORDER = {"content-server": 0, "router": 1, "cache": 2}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Lab:
    def __init__(self, state: LabState, plan: LabPlan, fabric: Fabric):
        self.state = state
        self.plan = plan
        self.fabric = fabric

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        bundle_path: Path,
        *,
        nodes: int = 2,
        root: Path = DEFAULT_ROOT,
        lab_id: str = DEFAULT_ID,
        port_type: str = DEFAULT_PORT_TYPE,
        resync_interval: float = RESYNC_INTERVAL,
        progress: Progress = _quiet,
    ) -> Lab:
        """Realise the bundle. Everything is checked (bundle, options) before anything is
        made; a failure half-way tears down what was made and raises. Pod ports are of
        `port_type` (l2sm_lab.fabric.PORT_TYPES; the fabric's record keeps it for `load`).
        A unit its node has no switch interface for is not started: its problem is
        recorded (`problems()`, `status()`) and every other unit comes up. The controller
        runs under l2sm_lab.supervisor, which resyncs every `resync_interval` seconds."""
        if port_type not in PORT_TYPES:
            raise ValueError(f"port type {port_type!r}: choose one of {', '.join(map(repr, PORT_TYPES))}")
        bundle_path = Path(bundle_path).resolve()
        progress(f"reading {bundle_path.name}")
        cls.check(bundle_path, nodes=nodes)  # a bad option fails before anything exists
        _workloads_dir()
        state = LabState.create(root, lab_id)
        shutil.rmtree(workload_root(root), ignore_errors=True)  # a crashed lab's files
        try:
            state.data["lab"] = {
                "bundle": str(bundle_path),
                "bundle-sha256": hashlib.sha256(bundle_path.read_bytes()).hexdigest(),
                "nodes": nodes,
                "units": {},
                "networks": [],
                "next-index": 0,
                "apps": {
                    a.name: {"units": list(range(a.scale)), "next": a.scale}
                    for a in read_bundle(bundle_path).apps.values()
                    if is_knf(a)
                },
            }
            state.data["controller"] = {"resync-interval": resync_interval}
            state.save()
            lab = cls(state, _plan(state, bundle_path, nodes), None)  # type: ignore[arg-type]
            lab.fabric = Fabric(
                state,
                lab.plan.nodes,
                lab.plan.links,
                interfaces_per_node=lab.plan.interfaces_per_node,
                port_type=port_type,
            )
            progress(f"starting {len(lab.plan.nodes)} nodes and their switches")
            lab.fabric.up(OF_PORT)
            progress("starting the SDN controller")
            lab._start_controller()
            lab._wait_switches(progress)
            for network in lab.plan.networks.values():
                progress(f"creating network {network.name}")
                with lab.operator():
                    lab.client().create_network(network.name)
                    state.data["lab"]["networks"].append(network.name)
                    state.save()
            for unit in lab._start_order():
                progress(f"starting {unit.name} on {unit.node}")
                lab._start_unit(unit)
            for unit, problem in lab.problems().items():
                progress(f"{unit} not started: {problem}")
            return lab
        except BaseException:
            progress("failed: removing what was made")
            try:
                state.teardown()
                shutil.rmtree(workload_root(root), ignore_errors=True)
            except LabError as exc:
                print(f"l2sm-lab: teardown after failure: {exc}", file=sys.stderr)
            raise

    @staticmethod
    def check(bundle_path: Path, *, nodes: int = 2) -> LabPlan:
        """The bundle read and planned, with nothing made (BundleError naming what is wrong)."""
        return plan_lab(
            read_bundle(Path(bundle_path)), nodes=nodes, paths=lambda unit: _paths(DEFAULT_ROOT, unit)
        )

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Lab:
        state = LabState.load(root)
        info = state.data["lab"]
        bundle_path = Path(info["bundle"])
        if not bundle_path.is_file() or (
            hashlib.sha256(bundle_path.read_bytes()).hexdigest() != info["bundle-sha256"]
        ):
            raise LabError(f"{bundle_path} changed since `l2sm-lab up`: run `l2sm-lab down` and up again")
        return cls(state, _plan(state, bundle_path, info["nodes"]), Fabric.load(state))

    @staticmethod
    def down(root: Path = DEFAULT_ROOT) -> None:
        """Remove everything the record lists (also after a crash), then the units' files."""
        LabState.load(root).teardown()
        shutil.rmtree(workload_root(root), ignore_errors=True)

    # -- the parts -----------------------------------------------------------------------------

    def paths(self, unit: str) -> Paths:
        return _paths(self.state.root, unit)

    def unit_ns(self, unit: str) -> str:
        record = self.state.data["lab"]["units"].get(unit)
        if record is None:
            known = ", ".join(sorted(self.state.data["lab"]["units"])) or "none"
            raise LabError(f"no unit {unit!r} in this lab (units: {known})")
        if not record.get("ns"):
            why = record.get("problem") or record.get("gone") or "not started"
            raise LabError(f"{unit} has no pod: {why}")
        return record["ns"]

    def problems(self) -> dict[str, str]:
        """Unit -> why it is not running (a node out of switch interfaces)."""
        units = self.state.data["lab"]["units"]
        return {name: r["problem"] for name, r in sorted(units.items()) if r.get("problem")}

    @contextlib.contextmanager
    def operator(self) -> Iterator[None]:
        """Port changes and resyncs one at a time (l2sm_lab.supervisor.operator_lock)."""
        with supervisor.operator_lock(self.state.root):
            yield

    def unit(self, unit: str) -> UnitPlan:
        if unit not in self.plan.units:
            known = ", ".join(sorted(self.plan.units)) or "none"
            raise LabError(f"no unit {unit!r} in this lab (units: {known})")
        return self.plan.units[unit]

    def client(self, timeout: float = 5.0) -> VnetsClient:
        info = self.state.data["controller"]
        return VnetsClient(f"http://127.0.0.1:{info['rest-port']}", USER, info["password"], timeout=timeout)

    def replan(self) -> LabPlan:
        """The plan again, with what the routers' actions and scaling changed."""
        self.plan = _plan(self.state, Path(self.state.data["lab"]["bundle"]), self.state.data["lab"]["nodes"])
        return self.plan

    def _start_order(self) -> list[UnitPlan]:
        def key(unit: UnitPlan) -> tuple[int, str]:
            kind = unit.workload.kind if unit.workload else ""
            return _START_ORDER.get(kind, 0), unit.name

        return sorted(self.plan.units.values(), key=key)

    # -- the controller ------------------------------------------------------------------------

    def _start_controller(self) -> None:
        info = self.state.data.setdefault("controller", {})
        if "password" not in info:
            info["password"] = secrets.token_urlsafe(18)
        credentials = self.state.root / "controller.credentials"
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{USER}:{info['password']}\n")
        # REST listens on this host's loopback, OpenFlow inside the controller's namespace:
        # the socket is bound here and inherited across `ip netns exec`.
        listener = _bind_rest(int(info.get("rest-port", 0)))
        info["rest-port"] = listener.getsockname()[1]
        self.state.save()
        try:
            # The supervisor holds the socket (the port outlives each controller process) and
            # starts the controller in its namespace; it runs here, to reach REST on loopback.
            self.state.spawn(
                CONTROLLER,
                [
                    sys.executable,
                    "-m",
                    "l2sm_lab.supervisor",
                    "--root",
                    str(self.state.root),
                    "--netns",
                    self.fabric.controller_ns,
                    "--of-port",
                    str(OF_PORT),
                    "--rest-fd",
                    str(listener.fileno()),
                    "--credentials",
                    str(credentials),
                    "--resync-interval",
                    str(info.get("resync-interval", RESYNC_INTERVAL)),
                ],
                log=self.state.root / "controller.log",
                pass_fds=(listener.fileno(),),
            )
        finally:
            listener.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.client(timeout=1.0).is_ready():
            if time.monotonic() > deadline or not self.state.alive(CONTROLLER):
                raise LabError(f"the controller did not come up: see {self.state.root / 'controller.log'}")
            time.sleep(0.1)

    def _wait_switches(self, progress: Progress, timeout: float = READY_TIMEOUT) -> None:
        wanted = {naming.device_id(node) for node in self.plan.nodes}
        deadline = time.monotonic() + timeout
        while True:
            seen = {d.id for d in self.client().devices() if d.available}
            if wanted <= seen:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(wanted - seen))
                raise LabError(
                    f"switches did not connect to the controller within {timeout:.0f} s: {missing}"
                )
            progress(f"waiting for switches ({len(wanted & seen)}/{len(wanted)})")
            time.sleep(0.2)

    def stop_controller(self) -> None:
        """The controller's pod goes (supervisor and controller); the switches keep their
        flows (secure fail mode). Returns once nothing runs in the controller's namespace: a
        supervisor that had to be SIGKILLed leaves its child to PDEATHSIG, which ends it
        later, holding the REST port until then."""
        if any(p.name == CONTROLLER for p in self.state.procs):
            self.state.stop(CONTROLLER)
        if self.fabric.controller_ns in self.state.namespaces:
            self.state.end_stragglers(self.fabric.controller_ns)

    def restart_controller(self, progress: Progress = _quiet) -> ResyncReport:
        """Kill the controller (its state goes, as ONOS's does), start it again, and run the
        controller charm's resync so networks and ports come back. The supervisor's own
        resync after the start waits for this one, and then finds nothing to do. The lock is
        taken after the stop: the old supervisor may be waiting for it."""
        self.stop_controller()
        with self.operator():
            self._start_controller()
            self._wait_switches(progress)
            return self.resync()

    def supervisor_status(self) -> dict[str, Any] | None:
        """What the supervisor last wrote (l2sm_lab.supervisor.Status), or None."""
        return supervisor.read_status(self.state.root) if self.state.alive(CONTROLLER) else None

    def controller_pid(self) -> int | None:
        """The running controller process (the supervisor's child), checked by start time."""
        info = self.supervisor_status() or {}
        pid = int(info.get("child_pid") or 0)
        return pid if pid and start_time(pid) == info.get("child_start") else None

    def kill_controller(self, sig: int = signal.SIGKILL) -> int:
        """The controller process dies (SIGKILL: no goodbye, state lost); the supervisor
        restarts it as Pebble would. Returns the PID killed."""
        pid = self.controller_pid()
        if pid is None:
            raise LabError("no controller process is running under the supervisor")
        os.kill(pid, sig)
        return pid

    def desired(self) -> DesiredState:
        """What the cluster says (the charm's view): networks, and each pod's ports, wanted or
        released (l2sm_lab.supervisor.desired_state)."""
        return supervisor.desired_state(self.state.data["lab"])

    def resync(self) -> ResyncReport:
        with self.operator():
            return supervisor.resync(self.client(), lambda: self.state.data["lab"])

    # -- units ---------------------------------------------------------------------------------

    def _start_unit(self, unit: UnitPlan) -> None:
        """The unit's pod: a namespace, a switch interface per network, addresses, routes and
        its workload. A node without enough free interfaces leaves the unit with a recorded
        problem and nothing made (the pod would not start)."""
        lab = self.state.data["lab"]
        units = lab["units"]
        index = units.get(unit.name, {}).get("index")
        if index is None:
            index = max(lab.get("next-index", 0), len(units))
            lab["next-index"] = index + 1
        wanted = [m for m in unit.memberships if m.interface]
        with self.operator():
            free = self.fabric.free_ports(unit.node)
            if len(free) < len(wanted):
                limit = self.fabric.interfaces_per_node
                problem = str(InterfacesExhausted(unit.node, limit, len(free), len(wanted)))
                units[unit.name] = {"ns": "", "node": unit.node, "index": index, "ports": {}}
                units[unit.name]["problem"] = problem
                self.state.save()
                return
            ns = self.state.make_netns(f"u{index}")
            units[unit.name] = {"ns": ns, "node": unit.node, "index": index, "ports": {}}
            self.state.save()
        for membership in wanted:
            assert membership.interface
            # One port at a time under the lock: a resync sees a port in both or in neither of
            # the record and the controller.
            with self.operator():
                port = self.fabric.free_port(unit.node)
                mtu = membership.mtu or 1400
                endpoint = self.fabric.attach(unit.node, port, ns, membership.interface, mtu)
                units[unit.name]["ports"][membership.network] = {"port": port, "endpoint": endpoint}
                self.state.save()
                try:
                    self.client().add_ports(membership.network, [endpoint])
                except ControllerUnreachable as exc:
                    # The pod is attached in the cluster's view: the charm's resync adds it.
                    what = f"{endpoint} to {membership.network}"
                    print(f"l2sm-lab: {what}: {exc} (the resync adds it)", file=sys.stderr)
        if unit.interfaces:
            # One announcement: unlike a pod's, this unit's ports are in the controller already.
            netlink.apply_plans(unit.interfaces, netns=ns, announce_rounds=1)
        knfs.start_workload(self.state, unit, ns)

    def remove_unit(self, name: str, *, missed_delete: bool = False, leaves: str = "") -> None:
        """The unit's pod goes: the operator removes its ports, the node frees its interfaces.
        `missed_delete`: the operator misses it, the controller keeps the ports. `leaves`
        (Terminating or Failed): the pod object stays in the API with its ports, which the
        charm then sees released; without it, the pod leaves no trace."""
        if leaves and leaves not in GONE_STATES:
            raise ValueError(f"leaves={leaves!r}: one of {', '.join(GONE_STATES)}, or ''")
        record = self.state.data["lab"]["units"][name]
        if name in self.plan.units:
            knfs.stop_workload(self.state, self.plan.units[name])
        with self.operator():
            for network, port in sorted(record["ports"].items()):
                if not missed_delete:
                    try:
                        self.client().remove_ports(network, [port["endpoint"]])
                    except ControllerError as exc:
                        print(f"l2sm-lab: removing {port['endpoint']} from {network}: {exc}", file=sys.stderr)
                self.fabric.detach(record["node"], port["port"])
            if leaves:
                record["gone"] = leaves
            else:
                record["ports"] = {}
            record.pop("problem", None)
            if record.get("ns"):
                self.state.delete_netns(record["ns"])
                record["ns"] = ""
            self.state.save()

    def forget_unit(self, name: str) -> None:
        """A pod left Terminating or Failed finally goes from the API."""
        record = self.state.data["lab"]["units"].get(name)
        if record is None or not record.get("gone"):
            raise LabError(f"{name} is no pod left Terminating or Failed")
        with self.operator():
            del self.state.data["lab"]["units"][name]
            self.state.save()

    def recreate_unit(self, name: str) -> None:
        """The pod deleted and made again (same unit): same plan, so same addresses and routes."""
        unit = self.unit(name)
        self.remove_unit(name)
        self._start_unit(unit)

    def scale(
        self,
        app: str,
        count: int,
        *,
        missed_delete: bool = False,
        leaves: str = "",
        progress: Progress = _quiet,
    ) -> list[str]:
        """`juju scale-application APP COUNT`: down removes the highest-numbered units; up adds
        units numbered after the highest ever used (Juju never reuses a number), placed on
        the least-loaded nodes while the others stay where they are. Units whose interface
        plans changed (routes via a unit that came or went) get the new ones, as the KNF
        library applies them. Returns the units added or removed."""
        apps = self.state.data["lab"]["apps"]
        if app not in apps:
            known = ", ".join(sorted(apps))
            raise LabError(f"no application {app!r} with units to scale (these have: {known})")
        if count < 0:
            raise LabError(f"scale {app} {count}: give 0 or more units")
        info = apps[app]
        numbers = sorted(info["units"])
        before = {n: u.interfaces for n, u in self.plan.units.items()}
        changed: list[str] = []
        if count < len(numbers):
            for number in reversed(numbers[count:]):
                name = f"{app}/{number}"
                progress(f"removing {name}")
                self.remove_unit(name, missed_delete=missed_delete, leaves=leaves)
                if not leaves:
                    del self.state.data["lab"]["units"][name]
                changed.append(name)
            info["units"] = numbers[:count]
        else:
            added = list(range(info["next"], info["next"] + count - len(numbers)))
            info["units"], info["next"] = numbers + added, info["next"] + len(added)
            changed = [f"{app}/{n}" for n in added]
        self.state.save()
        self.replan()
        for unit in self._start_order():
            if unit.name in changed:
                progress(f"starting {unit.name} on {unit.node}")
                self._start_unit(unit)
            elif unit.name in before and unit.interfaces != before[unit.name]:
                ns = self.state.data["lab"]["units"].get(unit.name, {}).get("ns")
                if ns:
                    progress(f"{unit.name}: new interface plans")
                    netlink.apply_plans(unit.interfaces, netns=ns, announce_rounds=1)
        return changed

    def exec(
        self, unit: str, argv: Sequence[str], *, check: bool = False, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.unit_ns(unit), *argv], check=check, **kwargs)

    # -- reading -------------------------------------------------------------------------------

    def _running(self, unit: str) -> bool:
        """The unit's services (nginx, the cache's sync) are alive; one-shot jobs that ended
        are not a unit down."""
        services = {knfs.proc_name(unit, role) for role in ("nginx", "sync")}
        return all(self.state.alive(p.name) for p in self.state.procs if p.name in services)

    def status(self) -> dict[str, Any]:
        client = self.client()
        networks = []
        for plan in self.plan.networks.values():
            problem = ""
            try:
                held = client.network_ports(plan.name)
            except ControllerError as exc:
                held, problem = [], str(exc)
            networks.append(
                {
                    "application": plan.app,
                    "name": plan.name,
                    "cidr": plan.cidr or "(L2 only)",
                    "members": {u: plan.assignments.get(u, "") for u in sorted(plan.assignments)},
                    "refused": plan.rejections,
                    "routes": plan.routes.routes,
                    "controller-ports": held,
                    "controller-error": problem,
                }
            )
        units = []
        for name, unit in sorted(self.plan.units.items()):
            record = self.state.data["lab"]["units"].get(name, {})
            units.append(
                {
                    "unit": name,
                    "node": unit.node,
                    "namespace": record.get("ns", ""),
                    "addresses": unit.addresses,
                    "ports": {n: p["endpoint"] for n, p in record.get("ports", {}).items()},
                    "workload": unit.workload.kind if unit.workload else "",
                    "running": bool(record.get("ns")) and self._running(name),
                    "problem": record.get("problem", ""),
                }
            )
        for name, record in sorted(self.state.data["lab"]["units"].items()):
            if record.get("gone"):
                released = {n: p["endpoint"] for n, p in record.get("ports", {}).items()}
                units.append(
                    {
                        "unit": name,
                        "node": record["node"],
                        "namespace": "",
                        "addresses": {},
                        "ports": released,
                        "workload": "",
                        "running": False,
                        "problem": f"pod {record['gone']}: its ports released",
                    }
                )
        return {
            "lab": self.state.lab,
            "bundle": self.state.data["lab"]["bundle"],
            "controller": {
                "rest": client.base_url,
                "running": self.state.alive(CONTROLLER),
                "devices": [{"id": d.id, "available": d.available} for d in _devices(client)],
                "supervisor": self.supervisor_status() or {},
            },
            "nodes": self.fabric.status(),
            "networks": networks,
            "units": units,
        }


def _bind_rest(port: int, wait: float = 5.0) -> socket.socket:
    """The REST listener on this host's loopback, at `port` (0: any). A process of ours that
    is ending may still hold it for a moment: retried briefly, never taken over."""
    deadline = time.monotonic() + wait
    while True:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
            return listener
        except OSError as exc:
            listener.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise LabError(f"cannot listen on 127.0.0.1:{port} for the controller's REST: {exc}") from exc
            time.sleep(0.1)


def _devices(client: VnetsClient) -> list[Any]:
    try:
        return client.devices()
    except ControllerError:
        return []


def _workloads_dir() -> Path:
    """WORKLOADS, made by root and for root's writes only (others may traverse it: nginx's
    workers run as nobody); refused if anyone else made it or it is a symlink, since root
    writes below it."""
    WORKLOADS.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = os.lstat(WORKLOADS)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise LabError(f"{WORKLOADS} is not a directory only this user can write: remove it and try again")
    return WORKLOADS


def workload_root(root: Path) -> Path:
    """Where the units' files live: outside the record's directory (0700), as nginx's workers
    run as nobody and must reach what they serve. One per lab root."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return WORKLOADS / digest


def _paths(root: Path, unit: str) -> Paths:
    base = workload_root(root) / unit.replace("/", "-")
    return Paths(
        content_dir=str(base / "content"),
        runtime_dir=str(base / "run"),
        nginx_conf=str(base / "nginx.conf"),
        status_dir=str(base / "status"),
    )


def _plan(state: LabState, bundle_path: Path, nodes: int) -> LabPlan:
    from l2sm_lab import actions  # actions imports the plan, not the lab

    info = state.data.get("lab", {})
    units = info.get("units", {})
    return plan_lab(
        read_bundle(bundle_path),
        nodes=nodes,
        paths=lambda unit: _paths(state.root, unit),
        added_rules=actions.added_rules(state),
        cut_links=actions.cut_links(state),
        unit_numbers={app: a["units"] for app, a in info.get("apps", {}).items()},
        placed={name: r["node"] for name, r in units.items() if not r.get("gone")},
    )
