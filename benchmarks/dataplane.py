"""The data-plane half of `make bench`: the lab (l2sm_lab) measured against baselines taken in
the same run, since the lab's userspace Open vSwitch is far from a cluster's kernel datapath and
only ratios carry over.

- throughput (iperf3 TCP) and RTT (ping) pod to pod across two nodes over VXLAN, against two pods
  on one switch and a plain veth pair between two namespaces (the physical limit here), and
  cache to content server through the router of bundles/cdn.yaml; for each pod port type of the
  lab (l2sm_lab.fabric.PORT_TYPES);
- attach latency: a unit's start (namespace, switch port, the operator's REST port add, its
  interface plan) to its first answered ping to a peer of its network, at 1, 10 and 50 units;
- scale: networks x units on 4 nodes: set-up time, per-unit cost, OpenFlow rules per switch;
- recovery: a cut download resuming after the link returns; paths after a controller restart.

Every lab is the product's own (`Lab.up` on a bundle written to a temp dir, or bundles/cdn.yaml);
nothing here re-implements what the lab or the core does. Everything made is removed
(`Lab.down`, LabState.teardown) also on failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2sm_lab import actions
from l2sm_lab.fabric import DEFAULT_PORT_TYPE, PORT_TYPES
from l2sm_lab.lab import Lab, workload_root
from l2sm_lab.plan import CACHE, CONTENT_SERVER, ROUTER
from l2sm_lab.procs import LabState
from l2sm_lab.procs import run as run_in

ROOT = Path(__file__).resolve().parent.parent
CDN = ROOT / "bundles" / "cdn.yaml"
PATHS = "data plane: throughput and RTT"
ATTACH = "data plane: attach latency"
SCALE = "data plane: scale (4 nodes)"
RECOVERY = "data plane: recovery"
IPERF_PORT = 5201
POD_MTU = 1400  # the l2sm-network charm's default: what a pod gets on the lab
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
_RTT = re.compile(r"time=([0-9.]+) ms")


# -- helpers --------------------------------------------------------------------------------------


def _lab_id() -> str:
    return "b" + "".join(secrets.choice("0123456789") for _ in range(5))


@contextlib.contextmanager
def _lab(bundle: Path, *, nodes: int, port_type: str = DEFAULT_PORT_TYPE) -> Iterator[tuple[Lab, float]]:
    """A lab of its own (a fresh root under /tmp/bench-*, a fresh id), with its set-up time;
    always taken down."""
    root = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    started = time.perf_counter()
    try:
        lab = Lab.up(bundle, nodes=nodes, root=root, lab_id=_lab_id(), port_type=port_type)
        yield lab, time.perf_counter() - started
    finally:
        with contextlib.suppress(Exception):
            Lab.down(root)
        shutil.rmtree(workload_root(root), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _pod_charm(where: Path) -> Path:
    """A KNF with nothing but an l2sm_network endpoint: the lab realises it as a plain pod."""
    charm = where / "bench-pod"
    charm.mkdir(parents=True, exist_ok=True)
    (charm / "charmcraft.yaml").write_text(
        textwrap.dedent(
            """\
            name: bench-pod
            type: charm
            summary: A pod that joins L2S-M networks (benchmarks only).
            description: A pod that joins L2S-M networks (benchmarks only).
            requires:
              networks:
                interface: l2sm_network
            """
        )
    )
    return charm


def pod_bundle(where: Path, networks: int, units_per_network: int, interfaces_per_node: int = 10) -> Path:
    """networks l2sm-network apps (10.100.N.0/24), each joined by one pod app of
    units_per_network units; the core (controller, switch) in the same model."""
    _pod_charm(where)
    apps: dict[str, Any] = {
        "l2sm-controller": {"charm": "l2sm-controller", "scale": 1, "trust": True},
        "l2sm-switch": {
            "charm": "l2sm-switch",
            "scale": 1,
            "trust": True,
            "options": {"topology": "full-mesh", "interfaces-per-node": interfaces_per_node},
        },
    }
    relations = [["l2sm-switch:controller", "l2sm-controller:l2sm-controller"]]
    for i in range(networks):
        net = f"net-{i}"
        apps[net] = {
            "charm": "l2sm-network",
            "scale": 1,
            "trust": True,
            "options": {"cidr": f"10.{100 + i // 256}.{i % 256}.0/24"},
        }
        apps[f"pod-{i}"] = {"charm": "./bench-pod", "scale": units_per_network}
        relations += [
            [f"{net}:controller", "l2sm-controller:l2sm-controller"],
            [f"pod-{i}:networks", f"{net}:network"],
        ]
    path = where / f"bench-{networks}x{networks * units_per_network}.yaml"
    path.write_text(
        json.dumps({"bundle": "kubernetes", "name": "bench", "applications": apps, "relations": relations})
    )
    return path


def _ip(lab: Lab, unit: str) -> str:
    return str(ipaddress.IPv4Interface(next(iter(lab.unit(unit).addresses.values()))).ip)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Endpoints:
    """Where a measurement runs: `client` and `server` are namespaces, `target` the server's
    address; `spawn` starts a recorded process in a namespace (removed with its lab)."""

    client: str
    server: str
    target: str
    state: LabState


def _in(ns: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def throughput(ends: Endpoints, seconds: float, reps: int, name: str) -> list[float]:
    """iperf3 TCP client -> server, Gbit/s per run (the receiver's figure)."""
    proc = f"iperf-{name}"
    ends.state.spawn(proc, ["iperf3", "-s", "-B", ends.target, "-p", str(IPERF_PORT)], netns=ends.server)
    try:
        samples = []
        for _ in range(reps):
            done, gbits = None, None
            for _attempt in range(20):  # the server takes a moment to listen
                done = _in(
                    ends.client,
                    ["iperf3", "-c", ends.target, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                    timeout=seconds + 30,
                )
                gbits = _received_gbits(done)
                if gbits is not None:
                    break
                time.sleep(0.2)
            if gbits is None:
                shown = (done.stdout + done.stderr)[-400:] if done else ""
                raise RuntimeError(f"iperf3 to {ends.target} failed: {shown}")
            samples.append(gbits)
        return samples
    finally:
        ends.state.stop(proc)


def _received_gbits(done: subprocess.CompletedProcess[str]) -> float | None:
    """The receiver's rate from an iperf3 -J report, or None when the run did not measure one
    (iperf3 can exit 0 with an `error` key and no `sum_received`, e.g. when it met the server
    while it was still starting)."""
    if done.returncode != 0:
        return None
    try:
        report = json.loads(done.stdout)
        return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9
    except (ValueError, KeyError, TypeError):
        return None


def rtt(ends: Endpoints, count: int) -> list[float]:
    """ping RTTs in ms (after one warm-up answer: the first packets on a tunnel learn paths)."""
    first_ping(ends.client, ends.target, deadline=15)
    done = _in(ends.client, ["ping", "-n", "-i", "0.02", "-c", str(count), "-W", "1", ends.target])
    samples = [float(m[1]) for m in _RTT.finditer(done.stdout)]
    if not samples:
        raise RuntimeError(f"no ping answer from {ends.target}: {done.stdout[-300:]}")
    return samples


def first_ping(ns: str, target: str, deadline: float = 15.0) -> float:
    """Seconds until the first answer, probing every 10 ms (-c 1 with a deadline stops at it)."""
    started = time.perf_counter()
    done = _in(ns, ["ping", "-n", "-q", "-c", "1", "-i", "0.01", "-w", str(int(deadline)), target])
    if done.returncode != 0:
        raise RuntimeError(f"no answer from {target} within {deadline:.0f} s")
    return time.perf_counter() - started


@contextlib.contextmanager
def _veth_pair() -> Iterator[Endpoints]:
    """Two namespaces joined by a plain veth (tx offload left on: the kernel path at its best)."""
    root = Path(tempfile.mkdtemp(prefix="bench-veth-", dir="/tmp"))
    state = LabState.create(root, _lab_id())
    try:
        a, b = state.make_netns("a"), state.make_netns("b")
        veth = f"v0 mtu {POD_MTU} type veth peer name v1 mtu {POD_MTU} netns {b}"
        run_in(["ip", "link", "add", *veth.split()], netns=a)
        for ns, dev, addr in ((a, "v0", "10.99.0.1/24"), (b, "v1", "10.99.0.2/24")):
            run_in(["ip", "addr", "add", addr, "dev", dev], netns=ns)
            run_in(["ip", "link", "set", dev, "up"], netns=ns)
        yield Endpoints(a, b, "10.99.0.2", state)
    finally:
        state.teardown()
        shutil.rmtree(root, ignore_errors=True)


def _ends(lab: Lab, client: str, server: str) -> Endpoints:
    return Endpoints(lab.unit_ns(client), lab.unit_ns(server), _ip(lab, server), lab.state)


def _pairs(lab: Lab) -> tuple[tuple[str, str], tuple[str, str]]:
    """(cross-node pair, same-switch pair) of the pod lab's units."""
    units = sorted(lab.plan.units.values(), key=lambda u: u.number)
    first = units[0]
    cross = next(u for u in units if u.node != first.node)
    same = next(u for u in units[1:] if u.node == first.node)
    return (first.name, cross.name), (first.name, same.name)


# -- the measurements ----------------------------------------------------------------------------


@dataclass
class Settings:
    seconds: int
    reps: int
    pings: int
    attach_sizes: tuple[int, ...]
    scale_sizes: tuple[tuple[int, int], ...]
    port_types: tuple[str, ...]
    recovery_reps: int
    long_cut: bool


def settings(smoke: bool, reps: int) -> Settings:
    if smoke:
        return Settings(1, 1, 20, (1,), ((2, 4),), (DEFAULT_PORT_TYPE,), 1, False)
    return Settings(
        3,
        max(1, reps),
        100,
        (1, 10, 50),
        ((10, 20), (50, 100), (100, 200)),
        tuple(sorted(PORT_TYPES)),
        max(1, reps),
        True,
    )


def _add_path(record: Any, label: str, tput: list[float], lat: list[float], meta: dict[str, Any]) -> None:
    base = {} if label == "veth" else {"baseline": "throughput veth"}
    record.add(PATHS, f"throughput {label}", tput, "Gbit/s", meta=meta, **base)
    base = {} if label == "veth" else {"baseline": "rtt veth"}
    record.add(PATHS, f"rtt {label}", lat, "ms", meta=meta, **base)


def bench_paths(record: Any, s: Settings, work: Path, progress: Callable[[str], None]) -> dict[str, float]:
    """veth baseline, then per port type the cross-node and same-switch pod pairs; medians back."""
    medians: dict[str, float] = {}
    progress("plain veth pair")
    with _veth_pair() as ends:
        tput, lat = throughput(ends, s.seconds, s.reps, "veth"), rtt(ends, s.pings)
    _add_path(
        record, "veth", tput, lat, {"what": "plain veth pair between two namespaces (the physical limit)"}
    )
    medians["veth"] = statistics.median(tput)
    bundle = pod_bundle(work / "pairs", 1, 3)
    for port_type in s.port_types:
        shown = port_type or "veth-netdev"
        progress(f"pod pairs, port type {shown}")
        with _lab(bundle, nodes=2, port_type=port_type) as (lab, _):
            cross, same = _pairs(lab)
            for label, (a, b) in ((f"cross-node {shown}", cross), (f"same-switch {shown}", same)):
                ends = _ends(lab, a, b)
                tput, lat = throughput(ends, s.seconds, s.reps, "pods"), rtt(ends, s.pings)
                meta = {"port_type": port_type, "client": a, "server": b, "nodes": 2}
                _add_path(record, label, tput, lat, meta)
                medians[label] = statistics.median(tput)
            record.ratio(
                PATHS, f"cross-node/veth {shown}", f"throughput cross-node {shown}", "throughput veth"
            )
            record.ratio(
                PATHS, f"same-switch/veth {shown}", f"throughput same-switch {shown}", "throughput veth"
            )
            record.ratio(PATHS, f"rtt cross-node/veth {shown}", f"rtt cross-node {shown}", "rtt veth")
    if len(s.port_types) > 1:
        for pair in ("cross-node", "same-switch"):
            record.ratio(
                PATHS,
                f"{pair} afxdp-nonpmd/veth-netdev",
                f"throughput {pair} afxdp-nonpmd",
                f"throughput {pair} veth-netdev",
            )
        record.note(
            PATHS,
            f"The lab's default pod port type is {DEFAULT_PORT_TYPE or 'veth-netdev'!r} (l2sm_lab.fabric."
            "DEFAULT_PORT_TYPE): the faster here, and the lab's end-to-end and CLI tests pass with it.",
        )
    return medians


def _router_rule(lab: Lab, router: str, cache_net: str, server_net: str) -> None:
    """iperf3's port opened on the router's firewall, by its add-rule action (as an operator would)."""
    actions.run_action(
        lab,
        router,
        "add-rule",
        {
            "name": "bench-iperf",
            "from": cache_net,
            "to": server_net,
            "protocol": "tcp",
            "port": str(IPERF_PORT),
        },
    )


def _size(paths: list[Path]) -> int:
    for path in paths:
        with contextlib.suppress(OSError):
            return path.stat().st_size
    return 0


def _cut_download(
    lab: Lab, cache: str, router: str, server_net: str, name: str, cut: float
) -> dict[str, float]:
    """demo.py's steps: a rate-limited fetch, the router's link to the server's network set down
    for `cut` seconds (at least until the bytes buffered before the cut have landed), then up;
    seconds from `up` to the first new byte on disk, polled every 5 ms."""
    content = Path(lab.paths(cache).content_dir)
    files = [content / f"{name}.partial", content / name]
    for _ in range(100):  # the last fetch's process may still be ending after its status said done
        try:
            actions.run_action(lab, cache, "fetch-content", {"name": name, "rate-limit": "4m", "wait": "0"})
            break
        except actions.ActionFailed as exc:
            if "is running" not in str(exc):
                raise
            time.sleep(0.1)
    deadline = time.monotonic() + 60
    while _size(files) < 4 * 2**20:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the fetch did not reach 4 MiB")
        time.sleep(0.02)
    actions.run_action(lab, router, "set-link", {"network": server_net, "state": "down"})
    cut_at = time.monotonic()
    held, still = _size(files), time.monotonic()
    while time.monotonic() - cut_at < cut or time.monotonic() - still < 0.5:
        now = _size(files)
        if now != held:
            held, still = now, time.monotonic()
        time.sleep(0.02)
    actions.run_action(lab, router, "set-link", {"network": server_net, "state": "up"})
    up = time.perf_counter()
    while _size(files) <= held:
        if time.perf_counter() - up > 60:
            raise RuntimeError(f"{name}: no new bytes within 60 s of the link's return")
        time.sleep(0.005)
    resumed = time.perf_counter() - up
    status = Path(lab.paths(cache).status_dir) / "fetch.json"
    deadline = time.monotonic() + 120
    while json.loads(status.read_text() or "{}").get("state") not in ("done", "failed", "stopped"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the fetch did not finish")
        time.sleep(0.1)
    return {"resumed": resumed, "cut": time.monotonic() - cut_at}


def bench_router(record: Any, s: Settings, progress: Callable[[str], None]) -> None:
    """bundles/cdn.yaml: cache -> content server through the router; then the cut download."""
    progress("router path (bundles/cdn.yaml)")
    with _lab(CDN, nodes=2) as (lab, _):
        server, router, cache = (
            next(u for u in lab.plan.units.values() if u.charm == charm)
            for charm in (CONTENT_SERVER, ROUTER, CACHE)
        )
        cache_net = next(m.network for m in cache.memberships if m.address)
        server_net = server.memberships[0].network
        _router_rule(lab, router.name, cache_net, server_net)
        ends = _ends(lab, cache.name, server.name)
        tput, lat = throughput(ends, s.seconds, s.reps, "router"), rtt(ends, s.pings)
        meta = {"client": cache.name, "server": server.name, "via": router.name, "nodes": 2}
        _add_path(record, "router", tput, lat, meta)
        port = DEFAULT_PORT_TYPE or "veth-netdev"
        record.ratio(PATHS, "router/cross-node", "throughput router", f"throughput cross-node {port}")

        progress("recovery: a cut download")
        cuts = [2.0] * s.recovery_reps + ([14.0] if s.long_cut else [])
        names = [f"bench{i}.bin" for i in range(len(cuts))]
        for name in names:
            actions.run_action(
                lab, server.name, "generate-content", {"name": name, "size": "16M", "wait": "120"}
            )
        short, long = [], []
        for name, cut in zip(names, cuts, strict=True):
            got = _cut_download(lab, cache.name, router.name, server_net, name, cut)
            (short if cut < 10 else long).append(got["resumed"])
        record.add(
            RECOVERY,
            "download resume after a 2 s cut",
            short,
            "s",
            meta={"from": "set-link up", "to": "first new byte", "connection": "kept (TCP retransmits)"},
        )
        if long:
            record.add(
                RECOVERY,
                "download resume after a 14 s cut",
                long,
                "s",
                meta={
                    "from": "set-link up",
                    "to": "first new byte",
                    "connection": "given up, resumed by range",
                },
            )


def _outage(ns: str, target: str, during: Callable[[], object], tail: float = 15.0) -> dict[str, float]:
    """A ping every 10 ms from before `during` until answers are back after it: the outage
    (longest gap between answers) and from the start of `during` to the first answer after
    the gap."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", "0.01", "-W", "0.1", target],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(0.3)
        started = time.time()
        during()
        returned = time.time()
        first_ping(ns, target, deadline=tail)  # answered again: the gap is over
        time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    stamps = [float(m[1]) for line in out.splitlines() if (m := _REPLY.match(line))]
    before = [t for t in stamps if t < started]
    after = [t for t in stamps if t >= started]
    gaps = [b - a for a, b in zip([*before[-1:], *after], after, strict=False)]
    worst = max(gaps, default=0.0)
    back = next((b for a, b in zip([*before[-1:], *after], after, strict=False) if b - a == worst), returned)
    return {"outage": worst, "back": max(0.0, back - started), "call": returned - started}


def bench_controller_restart(record: Any, s: Settings, work: Path, progress: Callable[[str], None]) -> None:
    progress("recovery: controller restart")
    with _lab(pod_bundle(work / "restart", 1, 2), nodes=2) as (lab, _):
        a, b = sorted(lab.plan.units)
        ns, target = lab.unit_ns(a), _ip(lab, b)
        first_ping(ns, target)
        runs = [_outage(ns, target, lab.restart_controller) for _ in range(s.recovery_reps)]
    meta = {"from": "controller killed", "to": "first answered ping after the outage (cross-node pair)"}
    record.add(RECOVERY, "paths back after a controller restart", [r["back"] for r in runs], "s", meta=meta)
    record.add(RECOVERY, "ping outage during a controller restart", [r["outage"] for r in runs], "s")
    record.add(
        RECOVERY, "restart_controller call (kill, start, switches, resync)", [r["call"] for r in runs], "s"
    )


def bench_attach(record: Any, s: Settings, work: Path, progress: Callable[[str], None]) -> None:
    """n units on one network with a peer (unit 0): each unit in turn removed, started again
    (Lab's unit start) and timed to its first answer from the peer."""
    for port_type, n in [(t, n) for t in s.port_types for n in s.attach_sizes]:
        shown = port_type or "veth-netdev"
        progress(f"attach latency, {n} unit(s), port type {shown}")
        per_node = max(10, math.ceil((n + 1) / 2))
        bundle = pod_bundle(work / f"attach{n}", 1, n + 1, per_node)
        with _lab(bundle, nodes=2, port_type=port_type) as (lab, _):
            units = sorted(lab.plan.units.values(), key=lambda u: u.number)
            peer = _ip(lab, units[0].name)
            first_ping(lab.unit_ns(units[1].name), peer)
            samples, starts = [], []
            for unit in units[1:]:
                lab.remove_unit(unit.name)
                started = time.perf_counter()
                lab._start_unit(unit)  # the unit's start as Lab.up runs it
                joined = time.perf_counter()
                first_ping(lab.unit_ns(unit.name), peer)
                samples.append(time.perf_counter() - started)
                starts.append(joined - started)
        axis = {"x": n, "x_label": "units on the network", "port_type": port_type}
        meta = {"units": n, "nodes": 2, "series": f"attach to first ping, {shown}", **axis}
        record.add(ATTACH, f"attach to first ping, {n} units, {shown}", samples, "s", meta=meta)
        meta = {"units": n, "series": f"unit start only, {shown}", **axis}
        record.add(ATTACH, f"unit start only, {n} units, {shown}", starts, "s", meta=meta)


def _flow_rules(lab: Lab) -> dict[str, int]:
    counts = {}
    for node in lab.plan.nodes:
        lines = lab.fabric.ofctl(node, "dump-flows").splitlines()
        counts[node] = sum(1 for line in lines if "cookie=" in line)
    return counts


def bench_scale(record: Any, s: Settings, work: Path, progress: Callable[[str], None]) -> None:
    previous: tuple[int, float, float] | None = None
    for networks, units in s.scale_sizes:
        progress(f"scale {networks} networks x {units} units on 4 nodes")
        per_node = max(10, math.ceil(units / 4))
        bundle = pod_bundle(work / f"scale{networks}", networks, units // networks, per_node)
        with _lab(bundle, nodes=4) as (lab, seconds):
            rules = _flow_rules(lab)
        label = f"{networks}x{units}"
        per_rules = statistics.mean(rules.values())
        meta = {
            "networks": networks,
            "units": units,
            "nodes": 4,
            "interfaces_per_node": per_node,
            "rules": rules,
        }
        axis = {"x": units, "x_label": "units (networks = units / 2)"}
        record.add(SCALE, f"{label} set-up", [seconds], "s", meta={**meta, **axis, "series": "set-up"})
        record.add(
            SCALE, f"{label} per unit", [seconds / units], "s", meta={**meta, **axis, "series": "per unit"}
        )
        record.add(
            SCALE,
            f"{label} OpenFlow rules per switch",
            list(map(float, rules.values())),
            "rules",
            meta={**axis, "series": "OpenFlow rules per switch"},
        )
        if previous:
            units0, seconds0, rules0 = previous
            growth = units / units0
            record.note(
                SCALE,
                f"{label} vs {units0} units (x{growth:g}): set-up x{seconds / seconds0:.2f}, "
                f"rules per switch x{per_rules / rules0:.2f} (linear would be x{growth:g})",
            )
        previous = (units, seconds, per_rules)
    networks, units = s.scale_sizes[len(s.scale_sizes) // 2]
    for port_type in (t for t in s.port_types if t != DEFAULT_PORT_TYPE):
        shown = port_type or "veth-netdev"
        progress(f"scale {networks} networks x {units} units on 4 nodes, port type {shown}")
        bundle = pod_bundle(
            work / f"scale{networks}-{shown}", networks, units // networks, math.ceil(units / 4)
        )
        with _lab(bundle, nodes=4, port_type=port_type) as (_, seconds):
            pass
        label = f"{networks}x{units}"
        record.add(SCALE, f"{label} set-up, {shown} ports", [seconds], "s", meta={"port_type": port_type})
        record.ratio(
            SCALE,
            f"{label} set-up, default/{shown} ports",
            f"{label} set-up",
            f"{label} set-up, {shown} ports",
        )


def run(record: Any, *, smoke: bool, reps: int, progress: Callable[[str], None] | None = None) -> None:
    """Every data-plane figure into `record` (benchmarks.common.Recorder)."""
    say = progress or getattr(record, "progress", None) or (lambda text: print(text, flush=True))
    s = settings(smoke, reps)
    work = Path(tempfile.mkdtemp(prefix="bench-bundles-", dir="/tmp"))
    try:
        bench_paths(record, s, work, say)
        bench_router(record, s, say)
        bench_controller_restart(record, s, work, say)
        bench_attach(record, s, work, say)
        bench_scale(record, s, work, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record.note(
        PATHS,
        "The lab's switches are Open vSwitch's userspace datapath in namespaces: absolute figures are "
        "the lab's, not a cluster's; compare the ratios.",
    )
