"""Checks run on a lab that is up: isolation between networks (frames and IP) and what the
router's firewall lets through (TCP), used by the demo's report and the end-to-end tests.

Every frame check listens on every interface of every unit but the sender's own, all at once,
for every batch it sends: what the sender's network members see is the control (the capture
works), what any other network's interface sees is a leak.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from l2sm_lab import sniff
from l2sm_lab.procs import LabError

if TYPE_CHECKING:
    from l2sm_lab.lab import Lab

# The longest a frame listener may run: a safety net, as listeners stop at the end of stdin
# (one stopped by it instead is an error, never a pass).
LISTEN_SECONDS = 60.0
# After the last batch, how long listeners keep counting: a leak may arrive late.
LINGER = 0.5
LEARN_SECONDS = 0.3  # for the controller to learn a MAC from one frame
FRAMES = 5
TCP_TIMEOUT = 2.0
KNOWN_UNICAST = "known-unicast"


@dataclass(frozen=True)
class Batch:
    """FRAMES marked frames the sender sends: `label` names them in the results; `dst` is the
    MAC of a unicast batch; `target` the "unit iface" that must receive them ("" when every
    other member of the sender's network must, as for a flood)."""

    label: str
    kind: str
    mark: str
    dst: str = ""
    target: str = ""


@dataclass
class FloodResult:
    sender: str
    network: str
    # "unit iface" -> frames seen, per batch label (the kind, for floods)
    same_network: dict[str, dict[str, int]] = field(default_factory=dict)
    other_networks: dict[str, dict[str, int]] = field(default_factory=dict)
    # label -> the "unit iface" that must receive it (labels absent: every member must)
    targets: dict[str, str] = field(default_factory=dict)

    @property
    def leaks(self) -> int:
        return sum(n for seen in self.other_networks.values() for n in seen.values())

    @property
    def control_ok(self) -> bool:
        """The capture works: every member of the sender's network saw every flood, and each
        unicast's target saw it (with no other member, only the targets are checked)."""
        for label, target in self.targets.items():
            if self.same_network.get(target, {}).get(label, 0) == 0:
                return False
        return all(
            n > 0
            for seen in self.same_network.values()
            for label, n in seen.items()
            if label not in self.targets
        )


def _mark(kind: str) -> str:
    if kind == "arp":
        # 198.18.0.0/15 is for benchmarks: no lab network uses it.
        return str(ipaddress.IPv4Address("198.18.0.0") + secrets.randbelow(2**17))
    return f"l2sm-lab-{kind}-{secrets.token_hex(6)}"


def _interface(lab: Lab, unit: str, network: str) -> str:
    iface = next(
        (m.interface for m in lab.unit(unit).memberships if m.network == network and m.interface), None
    )
    if iface is None:
        raise ValueError(f"{unit} has no interface on {network}")
    return iface


def _sniff(*args: str) -> list[str]:
    return [sys.executable, "-m", "l2sm_lab.sniff", *args]


def interface_mac(lab: Lab, unit: str, iface: str) -> str:
    """The MAC the unit's interface has now (read in its namespace)."""
    done = lab.exec(
        unit, ["cat", f"/sys/class/net/{iface}/address"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def capture_points(lab: Lab, sender: str, network: str) -> list[tuple[str, str, bool]]:
    """(unit, interface, on the sender's network) for every interface of every unit but the
    sender's own on `network`."""
    points = []
    for other in lab.plan.units.values():
        for m in other.memberships:
            if m.interface and not (other.name == sender and m.network == network):
                points.append((other.name, m.interface, m.network == network))
    return points


def send_batches(lab: Lab, sender: str, network: str, batches: Sequence[Batch]) -> FloodResult:
    """Send every batch from `sender` on `network` while every capture point listens."""
    iface = _interface(lab, sender, network)
    marks = [b.mark for b in batches]
    if len(set(marks)) != len(marks):
        raise ValueError("each batch needs its own mark")
    listeners = []
    try:
        for unit, point, same in capture_points(lab, sender, network):
            argv = _sniff("listen", point, *marks, str(LISTEN_SECONDS), "--until-eof")
            proc = subprocess.Popen(
                ["ip", "netns", "exec", lab.unit_ns(unit), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            listeners.append((f"{unit} {point}", same, proc))
        for key, _, proc in listeners:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":  # listening before anything is sent
                raise LabError(f"the listener on {key} did not start: {_stderr(proc)}")
        for batch in batches:
            extra = ["--to", batch.dst] if batch.dst else []
            lab.exec(sender, _sniff("send", iface, batch.mark, batch.kind, str(FRAMES), *extra), check=True)
        time.sleep(LINGER)
        result = FloodResult(sender, network, targets={b.label: b.target for b in batches if b.target})
        for key, same, proc in listeners:
            out, err = proc.communicate(timeout=10)  # closes its stdin: it stops
            if proc.returncode != 0:
                raise LabError(f"the listener on {key} failed: {err.strip()[-300:]}")
            report = json.loads(out.strip().splitlines()[-1])
            if report["until"] != "eof":
                raise LabError(f"the listener on {key} stopped at its deadline: it missed frames")
            seen = {b.label: int(report["marks"][b.mark]) for b in batches}
            (result.same_network if same else result.other_networks)[key] = seen
        return result
    finally:
        for _, _, proc in listeners:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _stderr(proc: subprocess.Popen) -> str:
    proc.kill()
    _, err = proc.communicate(timeout=10)
    return (err or "").strip()[-300:] or "no output"


def flood_leaks(lab: Lab, sender: str, network: str, kinds: tuple[str, ...] = sniff.KINDS) -> FloodResult:
    """Send broadcast, unknown-unicast and ARP frames from `sender` on `network`; count them
    on every interface of every other unit. None may reach another network."""
    _interface(lab, sender, network)
    return send_batches(lab, sender, network, [Batch(kind, kind, _mark(kind)) for kind in kinds])


def frame_leaks(lab: Lab, sender: str, network: str, kinds: tuple[str, ...] = sniff.KINDS) -> FloodResult:
    """flood_leaks' floods, and unicast: to every other member of `network` (its MAC learned
    first: known unicast, which must reach it) and to every interface on any other network
    (the router's there too; unknown in `network`, so flooded there, never bridged across)."""
    batches = [Batch(kind, kind, _mark(kind)) for kind in kinds]
    _interface(lab, sender, network)
    for unit, iface, same in capture_points(lab, sender, network):
        key = f"{unit} {iface}"
        mac = interface_mac(lab, unit, iface)
        if same:
            # One frame from the member, so the switches learn where its MAC is.
            lab.exec(unit, _sniff("send", iface, _mark("learn"), "broadcast", "1"), check=True)
            batches.append(Batch(f"{KNOWN_UNICAST} to {key}", sniff.UNICAST, _mark("unicast"), mac, key))
        else:
            batches.append(Batch(f"unicast to {key}", sniff.UNICAST, _mark("unicast"), mac))
    time.sleep(LEARN_SECONDS)
    return send_batches(lab, sender, network, batches)


def ip_leak(lab: Lab, sender: str, network: str, target: str) -> bool:
    """Whether `target` (an address on another network) answers `sender` directly, bypassing
    the router: the sender is told the target is on-link on `network`'s interface."""
    iface = _interface(lab, sender, network)
    route = ["ip", "route", "replace", f"{target}/32", "dev", iface]
    lab.exec(sender, route, check=True)
    try:
        done = lab.exec(sender, ["ping", "-c", "2", "-W", "1", "-q", target], capture_output=True)
        return done.returncode == 0
    finally:
        lab.exec(sender, ["ip", "route", "del", f"{target}/32", "dev", iface])


# -- TCP through the router ----------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One TCP client's try: connected, what came back, why it failed ("" when it did not)."""

    connected: bool
    received: str
    error: str


def tcp_exchange(
    lab: Lab, unit: str, host: str, port: int, payload: str = "", timeout: float = TCP_TIMEOUT
) -> Exchange:
    """Connect from `unit` to host:port, send `payload`, read the answer (sniff connect)."""
    argv = _sniff("connect", host, str(port), str(timeout), "--send", payload)
    done = lab.exec(unit, argv, capture_output=True, text=True, timeout=timeout * 2 + 10)
    if done.returncode != 0:
        raise LabError(f"the TCP client in {unit} failed: {done.stderr.strip()[-300:]}")
    data = json.loads(done.stdout)
    return Exchange(bool(data["connected"]), str(data["received"]), str(data["error"]))


@dataclass(frozen=True)
class PortProbe:
    """A TCP try from `client` to a listener of ours on `server`'s port."""

    client: str
    server: str
    host: str
    port: int
    token: str
    exchange: Exchange
    # What the listener accepted: {"peer": address, "data": what it read}
    accepted: tuple[dict[str, str], ...]

    @property
    def opened(self) -> bool:
        """A real exchange: the listener read the token and the client got ACK + token back."""
        answer = sniff.ACK.decode() + self.token
        return (
            self.exchange.connected
            and self.exchange.received == answer
            and any(c["data"] == self.token for c in self.accepted)
        )

    @property
    def blocked(self) -> bool:
        """The client could not connect and the listener never accepted a connection."""
        return not self.exchange.connected and not self.accepted

    @property
    def dropped(self) -> bool:
        """Blocked without any answer (a firewall's drop), not refused nor unreachable."""
        return self.blocked and self.exchange.error == "timeout"

    @property
    def peers(self) -> set[str]:
        return {c["peer"] for c in self.accepted}


def unit_address(lab: Lab, unit: str) -> str:
    """The unit's one address (ValueError when it has none or several: name the host)."""
    addresses = list(lab.unit(unit).addresses.values())
    if len(addresses) != 1:
        raise ValueError(f"{unit} has {len(addresses)} addresses: give the host to connect to")
    return str(ipaddress.IPv4Interface(addresses[0]).ip)


def probe_port(
    lab: Lab, client: str, server: str, port: int, *, host: str | None = None, timeout: float = TCP_TIMEOUT
) -> PortProbe:
    """Listen on `port` in `server`'s namespace (every address), connect from `client` to
    `host` (the server's address), exchange a fresh token, and report both ends."""
    host = host or unit_address(lab, server)
    token = f"l2sm-lab-tcp-{secrets.token_hex(8)}"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.unit_ns(server), *_sniff("serve", str(port))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise LabError(f"the TCP listener on {server} port {port} did not start: {_stderr(proc)}")
        exchange = tcp_exchange(lab, client, host, port, token, timeout)
        out, err = proc.communicate(timeout=sniff.SERVE_READ_SECONDS + 10)
        if proc.returncode != 0:
            raise LabError(f"the TCP listener on {server} failed: {err.strip()[-300:]}")
        accepted = tuple(json.loads(out.strip().splitlines()[-1])["connections"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return PortProbe(client, server, host, port, token, exchange, accepted)
