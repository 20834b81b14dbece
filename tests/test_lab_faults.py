"""Faults on the lab, end to end (issue 14): the controller killed during traffic and brought back
by its supervisor with no one acting; a node's switch killed and restarted; a router scaled to 0
and back during a download; a unit removed while the controller keeps its port; a node out of
switch interfaces. One lab is shared: each fault is applied, checked and healed in turn.
(A KNF pod deleted and recreated is tests/test_lab_e2e.py's
test_a_recreated_unit_keeps_its_address_and_routes.) Needs root and the lab's programs."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CDN = ROOT / "bundles" / "cdn.yaml"
PROGRAMS = ("ovs-vswitchd", "ovsdb-server", "ethtool", "nginx", "nft", "ip", "ping")
_missing = [p for p in PROGRAMS if not shutil.which(p)]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_missing),
    reason="the lab needs root and " + ", ".join(PROGRAMS) + f" (missing: {', '.join(_missing) or 'none'})",
)
RESYNC_INTERVAL = 3.0  # the supervisor's update-status, short so the tests need not wait long
FIRST, SECOND = "my-first-osm-net", "my-second-osm-net"
SERVER, ROUTER_APP, CACHE_APP = "10.0.2.10", "cdn-router", "cdn-cache"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from l2sm_lab.lab import Lab

    root = tmp_path_factory.mktemp("faults")
    lab = Lab.up(CDN, nodes=2, root=root, lab_id=f"g{os.getpid() % 1000}", resync_interval=RESYNC_INTERVAL)
    yield lab
    Lab.down(root)


def _unit(lab, app: str) -> str:
    return next(u for u in sorted(lab.plan.units) if u.startswith(app + "/"))


def _iface(lab, unit: str, network: str) -> str:
    return next(m.interface for m in lab.unit(unit).memberships if m.network == network and m.interface)


def _pings(lab, unit: str, target: str) -> bool:
    done = lab.exec(unit, ["ping", "-c", "1", "-W", "1", "-q", target], capture_output=True)
    return done.returncode == 0


def _reaches(lab, unit: str, target: str, deadline: float = 15.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if _pings(lab, unit, target):
            return True
    return False


def _held(lab) -> dict[str, list[str]]:
    from l2sm_controlplane.vnets import ControllerError

    held = {}
    for name in lab.desired().networks:
        try:
            held[name] = sorted(lab.client(timeout=1.0).network_ports(name))
        except ControllerError:
            held[name] = []
    return held


def _wanted(lab) -> dict[str, list[str]]:
    desired = lab.desired()
    return {n: sorted(desired.ports.get(n, ())) for n in desired.networks}


def _wait(what: str, test, timeout: float, poll: float = 0.1) -> float:
    started = time.monotonic()
    while not test():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)
    return time.monotonic() - started


def _listen(lab, unit: str, iface: str, mark: str, seconds: float) -> subprocess.Popen:
    argv = [sys.executable, "-m", "l2sm_lab.sniff", "listen", iface, mark, str(seconds)]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.unit_ns(unit), *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def _seen(proc: subprocess.Popen) -> int:
    out, _ = proc.communicate(timeout=60)
    return int(json.loads(out.strip().splitlines()[-1])["seen"])


class _Pinger(threading.Thread):
    """`ping -c 1` in a loop; what each answered, and when."""

    def __init__(self, lab, unit: str, target: str):
        super().__init__(daemon=True)
        self.lab, self.unit, self.target = lab, unit, target
        self.results: list[tuple[float, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            ok = _pings(self.lab, self.unit, self.target)
            self.results.append((time.monotonic(), ok))
            if ok:
                self.stop.wait(0.1)


def test_controller_killed_during_traffic_isolates_and_recovers_with_no_one_acting(lab, record_property):
    """SIGKILL the controller (its state goes) while a ping crosses the router and marked
    floods go out on the cache's network. Nothing is called on the lab afterwards: the
    supervisor restarts the controller (Pebble's part) and resyncs (the charm's). No flood
    frame may reach the other network at any moment, down or coming back."""
    from l2sm_lab.cli import _print_status

    cache, router, server = _unit(lab, CACHE_APP), _unit(lab, ROUTER_APP), _unit(lab, "cdn-content-server")
    assert _reaches(lab, cache, SERVER)
    assert _held(lab) == _wanted(lab)
    before = lab.supervisor_status() or {}
    send_seconds = 15.0
    marks = {
        kind: f"l2sm-fault-{kind}-{os.getpid()}-{time.monotonic_ns()}"
        for kind in ("broadcast", "unknown-unicast")
    }
    listeners = []
    for kind, mark in marks.items():
        # The other network: the server and the router's side there. The control: the router
        # on the cache's own network, which must see the frames while the network works.
        listeners.append(
            (kind, False, _listen(lab, server, _iface(lab, server, SECOND), mark, send_seconds + 3))
        )
        listeners.append(
            (kind, False, _listen(lab, router, _iface(lab, router, SECOND), mark, send_seconds + 3))
        )
        listeners.append(
            (kind, True, _listen(lab, router, _iface(lab, router, FIRST), mark, send_seconds + 3))
        )
    count = str(int(send_seconds / 0.05))
    senders = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.unit_ns(cache),
                sys.executable,
                "-m",
                "l2sm_lab.sniff",
                "send",
                _iface(lab, cache, FIRST),
                mark,
                kind,
                count,
            ]
        )
        for kind, mark in marks.items()
    ]
    pinger = _Pinger(lab, cache, SERVER)
    pinger.start()
    time.sleep(2.0)
    killed_at = time.monotonic()
    pid = lab.kill_controller(signal.SIGKILL)
    _wait("the supervisor to start a new controller", lambda: lab.controller_pid() not in (None, pid), 10)
    # Until the supervisor resyncs, the new controller holds nothing: wait for all the ports.
    ports_back = _wait(
        "the controller to hold every port again", lambda: _held(lab) == _wanted(lab), 30, 0.05
    )
    _wait(
        "a ping through the router after the resync",
        lambda: any(t > killed_at + ports_back and ok for t, ok in pinger.results),
        30,
    )
    ping_back = next(t for t, ok in pinger.results if ok and t > killed_at + ports_back) - killed_at
    outage = [t for t, ok in pinger.results if not ok and t > killed_at]
    for sender in senders:
        assert sender.wait(60) == 0
    pinger.stop.set()
    pinger.join(10)
    seen = [(kind, same, _seen(proc)) for kind, same, proc in listeners]
    assert [s for s in seen if not s[1] and s[2]] == [], seen
    assert all(n > 0 for _, same, n in seen if same), seen  # the capture works
    status = lab.supervisor_status() or {}
    assert status["restarts"] == before.get("restarts", 0) + 1
    assert "signal SIGKILL" in status["last_exit"]
    assert "2 network(s) recreated with 4 port(s)" in status["last_repair_summary"]
    assert _reaches(lab, cache, SERVER)
    record_property("kill_to_all_ports_held_s", round(ports_back, 2))
    record_property("kill_to_first_ping_after_resync_s", round(ping_back, 2))
    record_property("failed_pings_after_kill", len(outage))
    print(
        f"\ncontroller SIGKILL -> all ports held again: {ports_back:.2f} s; -> first ping through "
        f"the router after that: {ping_back:.2f} s ({len(outage)} ping(s) failed meanwhile)"
    )
    # `l2sm-lab status` shows the restart and the resync.
    _print_status(lab.status())


def test_status_shows_the_supervisors_restarts_and_last_resync(lab, capsys):
    from l2sm_lab.cli import _print_status

    _wait(
        "a periodic resync",
        lambda: (lab.supervisor_status() or {}).get("last_resync", 0) > time.time() - 2 * RESYNC_INTERVAL,
        10,
    )
    capsys.readouterr()
    _print_status(lab.status())
    out = capsys.readouterr().out
    status = lab.supervisor_status() or {}
    assert f"supervisor: {status['restarts']} restart(s)" in out and "last resync (" in out
    assert "last repair (" in out and "recreated" in out


def _log_has(lab, text: str) -> bool:
    return text in (lab.state.root / "controller.log").read_text(errors="replace")


def test_a_restart_while_the_supervisor_waits_for_the_lock_or_after_it_was_killed(lab):
    """restart_controller stops the old supervisor before it takes the resync lock, and the old
    one gives up waiting for that lock at SIGTERM (no SIGKILL, whose PDEATHSIG leaves its child
    holding the REST port a while). A supervisor SIGKILLed just before a restart: the restart
    waits until its controller is gone and gets the same REST port."""
    port = lab.state.data["controller"]["rest-port"]
    old = lab.supervisor_status() or {}
    hold = RESYNC_INTERVAL + 8.0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from l2sm_lab.supervisor import operator_lock\n"
            "with operator_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n",
            str(lab.state.root),
            str(hold),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        held_at = time.time()
        # Past its next periodic resync, the supervisor is waiting for the lock.
        time.sleep(max(0.0, old["last_resync"] + RESYNC_INTERVAL + 1.0 - held_at))
        report = lab.restart_controller()
        assert time.time() - held_at >= hold - 0.5  # the restart waited for the holder, after the stop
    finally:
        holder.kill()
        holder.wait(10)
    assert _log_has(lab, f"supervisor {old['pid']} stopped")  # SIGTERM was enough
    assert lab.state.data["controller"]["rest-port"] == port
    assert sorted(report.networks_recreated) == sorted(lab.desired().networks)
    assert _held(lab) == _wanted(lab)

    status = lab.supervisor_status() or {}
    child = status["child_pid"]
    os.kill(status["pid"], signal.SIGKILL)
    lab.restart_controller()
    assert not _alive(child) and not _log_has(lab, f"supervisor {status['pid']} stopped")
    assert lab.state.data["controller"]["rest-port"] == port
    assert _held(lab) == _wanted(lab)
    assert _reaches(lab, _unit(lab, CACHE_APP), SERVER)


def test_a_killed_switch_comes_back_with_its_identity_ports_and_tunnels(lab):
    """ovs-vswitchd SIGKILLed on the cache's node and started again, as its DaemonSet pod would
    be: the datapath id, pod ports and VXLAN tunnels are read back from OVS, the controller
    reprograms the switch on reconnect, and traffic across nodes resumes."""
    from l2sm_core import naming
    from l2sm_lab import checks

    cache = _unit(lab, CACHE_APP)
    node = lab.unit(cache).node
    bridge = naming.bridge_name_for(node)

    def seen() -> tuple[str, dict, list]:
        dpid = lab.fabric.vsctl(node, "get", "Bridge", bridge, "datapath_id").strip().strip('"')
        row = next(r for r in lab.fabric.status() if r["name"] == node)
        return dpid, row["pod_ports"], row["vxlan_ports"]

    before = seen()
    assert before[0] == naming.datapath_id(node) and before[1] and before[2]
    name = f"vswitchd-{node}"
    info = next(p for p in lab.state.procs if p.name == name)
    os.kill(info.pid, signal.SIGKILL)
    _wait("ovs-vswitchd to die", lambda: not lab.state.alive(name), 10)
    assert not _pings(lab, cache, SERVER)  # no switch, no path
    lab.fabric.restart_switch(node)
    assert seen() == before
    device = naming.device_id(node)
    _wait(
        "the switch to reconnect",
        lambda: any(d.id == device and d.available for d in lab.client().devices()),
        20,
    )
    assert _reaches(lab, cache, SERVER, deadline=20)
    flood = checks.flood_leaks(lab, cache, FIRST)
    assert flood.leaks == 0 and flood.control_ok and flood.same_network, (
        flood.same_network,
        flood.other_networks,
    )


def _fetch_status(lab, cache: str) -> dict:
    try:
        return json.loads((Path(lab.paths(cache).status_dir) / "fetch.json").read_text())
    except (OSError, ValueError):
        return {}


def _addresses(lab, unit: str) -> set[str]:
    out = lab.exec(unit, ["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    return {
        f"{i['local']}/{i['prefixlen']}"
        for a in json.loads(out)
        if a["ifname"] != "lo"
        for i in a["addr_info"]
    }


def test_a_router_scaled_to_0_and_back_during_a_download(lab):
    """`scale cdn-router 0` then `1` mid-download: cdn-router/1 comes back at its predecessor's
    addresses (address-from), with the firewall rules, and the download resumes by range to the
    origin's sha256. Away longer than the downloader's stall timeout, so the transfer is given
    up and resumed, not just delayed."""
    from l2sm_lab import actions, knfs
    from l2sm_lab.demo import CUT_SECONDS

    cache, server = _unit(lab, CACHE_APP), _unit(lab, "cdn-content-server")
    old = _unit(lab, ROUTER_APP)
    assert old == "cdn-router/0"
    addresses = _addresses(lab, old)
    assert addresses == {"10.0.1.1/24", "10.0.2.1/24"}
    generated = actions.run_action(
        lab, server, "generate-content", {"name": "faults.bin", "size": "24M", "wait": "120"}
    )
    total = int(generated["bytes"])
    actions.run_action(lab, cache, "fetch-content", {"name": "faults.bin", "rate-limit": "2m", "wait": "0"})
    _wait(
        "a quarter of the download",
        lambda: int(_fetch_status(lab, cache).get("bytes") or 0) >= total // 4,
        60,
        0.2,
    )
    assert lab.scale(ROUTER_APP, 0) == [old]
    assert not _reaches(lab, cache, SERVER, deadline=2)
    time.sleep(CUT_SECONDS)
    assert lab.scale(ROUTER_APP, 1) == ["cdn-router/1"]  # Juju never reuses a number
    assert sorted(u for u in lab.plan.units if u.startswith(ROUTER_APP)) == ["cdn-router/1"]
    assert _addresses(lab, "cdn-router/1") == addresses
    loaded = subprocess.run(
        ["ip", "netns", "exec", lab.unit_ns("cdn-router/1"), "nft", "list", "ruleset"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    planned = lab.unit("cdn-router/1").workload
    assert planned and planned.rules and knfs.loaded_ruleset(lab.unit("cdn-router/1")) == planned.ruleset
    for rule in planned.rules:
        assert rule.name in loaded, rule.name
    _wait(
        "the download to end",
        lambda: _fetch_status(lab, cache).get("state") in ("done", "failed", "stopped"),
        180,
        0.5,
    )
    final = _fetch_status(lab, cache)
    assert final["state"] == "done" and final["sha256"] == generated["sha256"], final
    assert 0 < int(final["resumed-from"]) < total, final


def test_a_missed_delete_never_lands_a_later_unit_in_the_old_network(lab):
    """A unit removed while the operator misses the delete: its port stays in the controller.
    What the charm can tell through the Kubernetes API, and so what the resync does:
    - the pod gone entirely leaves no trace: its port is "unexplained" (a young pod's port
      looks the same), reported by the resync and left alone;
    - a later pod on the same switch port in another network: the port is wanted there, so
      the resync takes it out of the old network, and that pod reaches its own peers only;
    - a pod still shown Terminating or Failed: its ports are released, and the resync removes
      them.
    It cannot see a port whose pod vanished and that no other pod claims: that stays until
    someone removes it (or the controller restarts), and it is only reported."""
    from l2sm_lab import checks

    cache = _unit(lab, CACHE_APP)
    stale = lab.state.data["lab"]["units"][cache]["ports"][FIRST]["endpoint"]
    node = lab.unit(cache).node
    assert lab.scale(CACHE_APP, 0, missed_delete=True) == [cache]
    assert stale in _held(lab)[FIRST]

    def resynced_since(t: float) -> dict:
        status = lab.supervisor_status() or {}
        return status if status.get("last_resync", 0) > t else {}

    now = time.time()
    _wait("a periodic resync", lambda: resynced_since(now), 3 * RESYNC_INTERVAL)
    summary = resynced_since(now)["last_resync_summary"]
    assert "no pod explains" in summary and stale in summary, summary
    assert stale in _held(lab)[FIRST]  # left alone: nothing in the API says whose it was

    # A second content server: placed on the node the cache left, on the port it held.
    assert lab.scale("cdn-content-server", 2) == ["cdn-content-server/1"]
    late = "cdn-content-server/1"
    assert lab.unit(late).node == node
    assert lab.state.data["lab"]["units"][late]["ports"][SECOND]["endpoint"] == stale
    _wait(
        "the resync to take the port out of the old network",
        lambda: stale not in _held(lab)[FIRST],
        3 * RESYNC_INTERVAL,
    )
    assert _held(lab) == _wanted(lab)
    late_ip = str(ipaddress.IPv4Interface(lab.unit(late).addresses[SECOND]).ip)
    assert _reaches(lab, late, SERVER) and _reaches(lab, late, "10.0.2.1")
    router = _unit(lab, ROUTER_APP)
    flood = checks.flood_leaks(lab, router, FIRST)
    assert flood.leaks == 0, flood.other_networks
    assert any(key.startswith(late) for key in flood.other_networks)  # it was listening
    assert not checks.ip_leak(lab, router, FIRST, late_ip)

    # The same unit removed again, the operator missing it, the pod left Terminating.
    # The lock keeps the periodic resync out until the port is seen held after the scale.
    with lab.operator():
        assert lab.scale("cdn-content-server", 1, missed_delete=True, leaves="Terminating") == [late]
        assert stale in _held(lab)[SECOND]
        released = time.time()
    _wait(
        "the resync to remove the released port", lambda: stale not in _held(lab)[SECOND], 3 * RESYNC_INTERVAL
    )

    def removed_by_resync() -> bool:
        status = lab.supervisor_status() or {}
        return status.get("last_repair", 0) >= released and "1 stale port(s) removed" in status.get(
            "last_repair_summary", ""
        )

    _wait("the supervisor to report the removal", removed_by_resync, RESYNC_INTERVAL)
    status = lab.status()
    gone = next(u for u in status["units"] if u["unit"] == late)
    assert "Terminating" in gone["problem"] and not gone["running"]
    lab.forget_unit(late)
    # Healed: a cache again, at its predecessor's address.
    assert lab.scale(CACHE_APP, 1) == ["cdn-cache/1"]
    assert _addresses(lab, "cdn-cache/1") == {"10.0.1.10/24"}
    assert _reaches(lab, "cdn-cache/1", SERVER)
    _wait("the controller to match the cluster", lambda: _held(lab) == _wanted(lab), 3 * RESYNC_INTERVAL)


# -- a node out of switch interfaces: its own lab, through the CLI --------------------------------


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "l2sm_lab.cli", "--root", str(root), "-q", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT)


def test_a_node_out_of_interfaces_fails_only_the_unit_that_needs_one(tmp_path):
    """interfaces-per-node 2 on two nodes: lab-node-1 holds the server and cdn-cache/0, lab-node-2
    the router (two networks): cdn-cache/1, placed on lab-node-2, gets no port. `up` says so and
    exits 1; the lab stays up with every other unit working; `status` shows the problem."""
    bundle = yaml.safe_load((ROOT / "bundles" / "cdn-one-model.yaml").read_text())
    bundle["applications"]["l2sm-switch"]["options"]["interfaces-per-node"] = 2
    bundle["applications"]["cdn-cache"]["scale"] = 2
    path = tmp_path / "crowded.yaml"
    path.write_text(yaml.safe_dump(bundle))
    root = tmp_path / "lab"
    supervisor = {"pid": 0}
    up = _cli(root, "up", str(path), "--nodes", "2", "--id", f"x{os.getpid() % 1000}")
    try:
        assert up.returncode == 1, up.stderr
        message = "lab-node-2 has no free switch interface: all 2 are in use"
        assert f"cdn-cache/1 did not start: {message}" in up.stderr
        assert "interfaces-per-node" in up.stderr and "add a node" in up.stderr
        status = json.loads(_cli(root, "status", "--json").stdout)
        units = {u["unit"]: u for u in status["units"]}
        assert message in units["cdn-cache/1"]["problem"] and not units["cdn-cache/1"]["running"]
        assert all(u["running"] and not u["problem"] for name, u in units.items() if name != "cdn-cache/1")
        assert message in _cli(root, "status").stdout
        ping = _cli(root, "exec", "cdn-cache/0", "--", "ping", "-c", "2", "-W", "2", SERVER)
        assert ping.returncode == 0 and "ttl=63" in ping.stdout, ping.stdout + ping.stderr
        # Scaling down removes the highest number, the one that had no port: nothing left to say.
        down1 = _cli(root, "scale", "cdn-cache", "1")
        assert down1.returncode == 0 and "cdn-cache/1" in down1.stdout, down1.stderr
        assert not [u for u in json.loads(_cli(root, "status", "--json").stdout)["units"] if u["problem"]]
        # Up again: a new number (never 1 again), on the node with fewest units, still full.
        again = _cli(root, "scale", "cdn-cache", "2")
        assert again.returncode == 1 and "cdn-cache/2 did not start: lab-node-2" in again.stderr, again.stderr
        # The supervisor crashing takes its controller with it, and `down` still cleans up.
        supervisor = json.loads((root / "supervisor.json").read_text())
        os.kill(supervisor["pid"], signal.SIGKILL)
        _wait("the controller to die with its supervisor", lambda: not _alive(supervisor["child_pid"]), 10)
    finally:
        down = _cli(root, "down")
        assert down.returncode == 0, down.stderr
    assert not _alive(supervisor["pid"]) and not (root / "record.json").exists()


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie waits for the machine's init to reap it)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2 :].split()[0] != "Z"
