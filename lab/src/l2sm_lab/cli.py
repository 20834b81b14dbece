"""`l2sm-lab`: a bundle's networks and KNFs on this machine.

l2sm-lab up bundles/cdn.yaml --nodes 2
l2sm-lab status
l2sm-lab exec cdn-cache/0 -- ping -c 3 10.0.2.10
l2sm-lab action cdn-cache/0 fetch-content name=demo.bin wait=60
l2sm-lab scale cdn-router 2
l2sm-lab down
l2sm-lab demo cdn --json report.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from l2sm_controlplane.vnets import ControllerError
from l2sm_lab.bundle import BundleError, project_root
from l2sm_lab.fabric import DEFAULT_PORT_TYPE, PORT_TYPES
from l2sm_lab.procs import LabError

# Programs the lab runs, and the Debian package of each (`make demo` installs them).
NEEDED = {
    "ovs-vswitchd": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
    "ethtool": "ethtool",
    "nginx": "nginx-light",
    "nft": "nftables",
    "ip": "iproute2",
    "ping": "iputils-ping",
}
DEMOS = {"cdn": "bundles/cdn.yaml"}


class Progress:
    """One line that says what the lab is doing: a spinner on a terminal, plain lines else."""

    def __init__(self, stream=sys.stderr, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._text = ""
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self._text = text
        else:
            print(f"[{time.monotonic() - self._started:6.1f}s] {text}", file=self.stream, flush=True)

    @contextmanager
    def running(self) -> Iterator[Progress]:
        if self.tty and not self.quiet:
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._thread:
                self._thread.join()
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _spin(self) -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            if self._stop.wait(0.1):
                return
            elapsed = time.monotonic() - self._started
            self.stream.write(f"\r\033[K{frame} {self._text} ({elapsed:.0f}s)")
            self.stream.flush()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([lines[0], *lines[1:]])


def _preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("l2sm-lab needs root: it makes network namespaces and runs Open vSwitch")
    missing = sorted({pkg for prog, pkg in NEEDED.items() if not shutil.which(prog)})
    if missing:
        raise LabError(f"missing programs: install {' '.join(missing)} (`make demo` does)")


def _find_bundle(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    for root in (project_root(Path.cwd()), project_root(Path(__file__).resolve().parent)):
        if root and name in DEMOS and (root / DEMOS[name]).is_file():
            return root / DEMOS[name]
    raise LabError(f"no bundle {name!r}: give a path to a bundle file, or one of: {', '.join(DEMOS)}")


def _print_status(status: dict[str, Any]) -> None:
    controller = status["controller"]
    print(f"lab {status['lab']}: {status['bundle']}")
    print(f"controller: {controller['rest']} ({'running' if controller['running'] else 'DOWN'})")
    sup = controller.get("supervisor") or {}
    if sup:
        answering = "answering" if sup.get("answering") else "NOT answering"
        last = f", last exit: {sup['last_exit']}" if sup.get("last_exit") else ""
        print(f"  supervisor: {sup.get('restarts', 0)} restart(s){last}; controller {answering}")
        when = "never"
        if sup.get("last_resync"):
            when = time.strftime("%H:%M:%S", time.localtime(sup["last_resync"]))
        print(f"  last resync ({when}): {sup.get('last_resync_summary') or '-'}")
        if sup.get("last_repair"):
            at = time.strftime("%H:%M:%S", time.localtime(sup["last_repair"]))
            print(f"  last repair ({at}): {sup.get('last_repair_summary')}")
    print()
    print(
        table(
            [
                [
                    n["name"],
                    n["namespace"],
                    n["underlay_ip"],
                    n["bridge"],
                    n["dpid"],
                    "yes" if n["controller_connected"] else "NO",
                    len(n["pod_ports"]),
                    len(n["vxlan_ports"]),
                ]
                for n in status["nodes"]
            ],
            ["NODE", "NAMESPACE", "UNDERLAY", "SWITCH", "DATAPATH", "CONNECTED", "PORTS", "TUNNELS"],
        )
    )
    print()
    rows = []
    for net in status["networks"]:
        members = " ".join(f"{u}={a or '-'}" for u, a in net["members"].items()) or "-"
        rows.append([net["name"], net["cidr"], members, len(net["controller-ports"])])
    print(table(rows, ["NETWORK", "CIDR", "MEMBERS", "CONTROLLER PORTS"]))
    print()
    rows = [
        [
            u["unit"],
            u["node"],
            " ".join(f"{n}={a}" for n, a in u["addresses"].items()) or "-",
            u["workload"] or "-",
            "yes" if u["running"] else "no",
        ]
        for u in status["units"]
    ]
    print(table(rows, ["UNIT", "NODE", "ADDRESSES", "WORKLOAD", "RUNNING"]))
    problems = [u for u in status["units"] if u.get("problem")]
    if problems:
        print()
        for u in problems:
            print(f"{u['unit']}: {u['problem']}")


def _params(items: Sequence[str]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LabError(f"action parameter {item!r}: write key=value")
        params[key] = value
    return params


def _parser() -> argparse.ArgumentParser:
    from l2sm_lab.lab import DEFAULT_ROOT

    parser = argparse.ArgumentParser(prog="l2sm-lab", description="L2S-M bundles on this machine")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the lab's state directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "up",
        help="realise a bundle",
        description="Realise a bundle. A unit that cannot start (its node has no free switch "
        "interface) is reported and the command exits 1, but the lab stays up with every other "
        "unit: `l2sm-lab status` shows the problem, `l2sm-lab down` removes the lab.",
    )
    p.add_argument("bundle")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--id", default="l2lab", help="prefix of the lab's namespaces")
    p.add_argument(
        "--port-type",
        choices=sorted(PORT_TYPES),
        default=DEFAULT_PORT_TYPE,
        help="pod ports: '' veth through AF_PACKET, 'afxdp-nonpmd' AF_XDP in generic mode "
        f"(default {DEFAULT_PORT_TYPE!r})",
    )
    p = sub.add_parser("status", help="nodes, switches, networks and units")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("exec", help="run a command in a unit's network namespace")
    p.add_argument("unit")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("action", help="run a KNF action, as the charm does")
    p.add_argument("unit")
    p.add_argument("action")
    p.add_argument("params", nargs="*", metavar="key=value")
    p.add_argument("--json", action="store_true")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("resync", help="run the controller charm's resync against the lab's controller")
    sub.add_parser("restart-controller", help="kill the controller (state lost) and resync")
    p = sub.add_parser("recreate", help="delete a unit's pod and make it again")
    p.add_argument("unit")
    p = sub.add_parser(
        "scale",
        help="juju scale-application: down removes the highest-numbered units, up adds new numbers",
    )
    p.add_argument("application")
    p.add_argument("count", type=int)
    p = sub.add_parser("demo", help="replay the seed's proof of concept")
    p.add_argument("name", choices=sorted(DEMOS))
    p.add_argument("--json", type=Path, metavar="PATH", help="write the report there")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--cut-seconds", type=float, default=None, help="how long the link stays cut")
    return parser


def _run(args: argparse.Namespace, progress: Progress) -> int:
    from l2sm_lab import actions
    from l2sm_lab.demo import run_demo
    from l2sm_lab.lab import Lab

    if args.command == "down":
        Lab.down(args.root)
        print("lab removed")
        return 0
    if args.command == "up":
        Lab.check(_find_bundle(args.bundle), nodes=args.nodes)  # bundle errors need no root
    _preflight()
    if args.command == "up":
        with progress.running():
            lab = Lab.up(
                _find_bundle(args.bundle),
                nodes=args.nodes,
                root=args.root,
                lab_id=args.id,
                port_type=args.port_type,
                progress=progress,
            )
        _print_status(lab.status())
        problems = lab.problems()
        for unit, problem in problems.items():
            print(f"l2sm-lab: {unit} did not start: {problem}", file=sys.stderr)
        if problems:
            print("l2sm-lab: the lab is up without those units (l2sm-lab down removes it)", file=sys.stderr)
        return 1 if problems else 0
    if args.command == "demo":
        with progress.running():
            report = run_demo(
                _find_bundle(args.name),
                nodes=args.nodes,
                root=args.root / "demo",
                keep=args.keep,
                **({} if args.cut_seconds is None else {"cut_seconds": args.cut_seconds}),
                progress=progress,
            )
        text = json.dumps(report, indent=2)
        if args.json:
            args.json.write_text(text + "\n")
        print(text)
        return 0 if report["ok"] else 1
    lab = Lab.load(args.root)
    if args.command == "status":
        status = lab.status()
        print(json.dumps(status, indent=2)) if args.json else _print_status(status)
        return 0
    if args.command == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            raise LabError("exec: give a command after --, e.g. l2sm-lab exec cdn-cache/0 -- ip addr")
        return lab.exec(args.unit, argv).returncode
    if args.command == "action":
        results = actions.run_action(lab, args.unit, args.action, _params(args.params))
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(yaml.safe_dump(results, sort_keys=True, default_flow_style=False).rstrip())
        return 0
    if args.command == "resync":
        print(lab.resync().summary())
        return 0
    if args.command == "restart-controller":
        with progress.running():
            report = lab.restart_controller(progress)
        print(report.summary())
        return 0
    if args.command == "recreate":
        with progress.running():
            progress(f"recreating {args.unit}")
            lab.recreate_unit(args.unit)
        print(f"{args.unit} recreated")
        return 0
    if args.command == "scale":
        with progress.running():
            changed = lab.scale(args.application, args.count, progress=progress)
        print(f"{args.application}: {' '.join(changed) or 'no change'}")
        for unit, problem in lab.problems().items():
            if unit in changed:
                print(f"l2sm-lab: {unit} did not start: {problem}", file=sys.stderr)
        return 1 if any(u in changed for u in lab.problems()) else 0
    raise AssertionError(args.command)  # pragma: no cover


def main(argv: Sequence[str] | None = None, run: Callable[..., int] = _run) -> int:
    from l2sm_lab.actions import ActionFailed

    args = _parser().parse_args(argv)
    progress = Progress(quiet=args.quiet)
    try:
        return run(args, progress)
    except (LabError, BundleError, ActionFailed, ControllerError, ValueError) as exc:
        print(f"l2sm-lab: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BundleError) else 1
    except subprocess.TimeoutExpired as exc:
        print(
            f"l2sm-lab: {' '.join(map(str, exc.cmd))} did not finish within {exc.timeout} s", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("l2sm-lab: interrupted (`l2sm-lab down` removes what was made)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
