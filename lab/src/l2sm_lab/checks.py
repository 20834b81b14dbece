"""Checks run on a lab that is up: isolation between networks (frames and IP), used by the
demo's report and the end-to-end tests."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from l2sm_lab import sniff

if TYPE_CHECKING:
    from l2sm_lab.lab import Lab

LISTEN_SECONDS = 2.5
FRAMES = 5


@dataclass
class FloodResult:
    sender: str
    network: str
    # "unit iface" -> frames seen, per kind
    same_network: dict[str, dict[str, int]] = field(default_factory=dict)
    other_networks: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def leaks(self) -> int:
        return sum(n for seen in self.other_networks.values() for n in seen.values())

    @property
    def control_ok(self) -> bool:
        """Every member of the sender's network saw every kind (the capture works), or the
        network has no other member."""
        return all(all(n > 0 for n in seen.values()) for seen in self.same_network.values())


def _mark(kind: str) -> str:
    if kind == "arp":
        # 198.18.0.0/15 is for benchmarks: no lab network uses it.
        return str(ipaddress.IPv4Address("198.18.0.0") + secrets.randbelow(2**17))
    return f"l2sm-lab-{kind}-{secrets.token_hex(6)}"


def flood_leaks(lab: Lab, sender: str, network: str, kinds: tuple[str, ...] = sniff.KINDS) -> FloodResult:
    """Send broadcast, unknown-unicast and ARP frames from `sender` on `network`; count them
    on every interface of every other unit. None may reach another network."""
    unit = lab.unit(sender)
    iface = next((m.interface for m in unit.memberships if m.network == network and m.interface), None)
    if iface is None:
        raise ValueError(f"{sender} has no interface on {network}")
    marks = {kind: _mark(kind) for kind in kinds}
    result = FloodResult(sender, network)
    for kind, mark in marks.items():
        listeners = []
        for other in lab.plan.units.values():
            for m in other.memberships:
                if not m.interface or (other.name == sender and m.network == network):
                    continue
                argv = [
                    sys.executable,
                    "-m",
                    "l2sm_lab.sniff",
                    "listen",
                    m.interface,
                    mark,
                    str(LISTEN_SECONDS),
                ]
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", lab.unit_ns(other.name), *argv], stdout=subprocess.PIPE, text=True
                )
                assert proc.stdout is not None
                proc.stdout.readline()  # READY: listening before anything is sent
                listeners.append((f"{other.name} {m.interface}", m.network == network, proc))
        lab.exec(
            sender,
            [sys.executable, "-m", "l2sm_lab.sniff", "send", iface, mark, kind, str(FRAMES)],
            check=True,
        )
        for key, same, proc in listeners:
            out, _ = proc.communicate(timeout=LISTEN_SECONDS + 10)
            seen = int(json.loads(out.strip().splitlines()[-1])["seen"])
            (result.same_network if same else result.other_networks).setdefault(key, {})[kind] = seen
    return result


def ip_leak(lab: Lab, sender: str, network: str, target: str) -> bool:
    """Whether `target` (an address on another network) answers `sender` directly, bypassing
    the router: the sender is told the target is on-link on `network`'s interface."""
    unit = lab.unit(sender)
    iface = next((m.interface for m in unit.memberships if m.network == network and m.interface), None)
    if iface is None:
        raise ValueError(f"{sender} has no interface on {network}")
    route = ["ip", "route", "replace", f"{target}/32", "dev", iface]
    lab.exec(sender, route, check=True)
    try:
        done = lab.exec(sender, ["ping", "-c", "2", "-W", "1", "-q", target], capture_output=True)
        return done.returncode == 0
    finally:
        lab.exec(sender, ["ip", "route", "del", f"{target}/32", "dev", iface])
