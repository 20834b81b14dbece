"""Restore a controller that lost its state (the vnets app keeps everything in memory).

The desired state is plain data: which networks exist, which switch ports belong to each,
and which ports are known to have been released. `plan_resync` turns it into calls,
`apply_resync` runs them against a client, treating "already there" (and, for removals,
"already gone") as success. The vnets API cannot list a network's ports, so the plan never
reads them back: it re-adds every wanted port and removes only ports known to be released.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from l2sm_core.vnets import (
    ControllerConflict,
    ControllerError,
    ControllerResponseError,
    ControllerUnauthorized,
    ControllerUnreachable,
    VnetsClient,
    check_endpoint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredState:
    """What the controller should hold. Ports map a network name to `of:<dpid>/<N>` endpoints."""

    networks: frozenset[str]
    ports: Mapping[str, frozenset[str]] = field(default_factory=dict)
    released: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        networks: Iterable[str],
        ports: Mapping[str, Iterable[str]] | None = None,
        released: Mapping[str, Iterable[str]] | None = None,
    ) -> DesiredState:
        return cls(
            networks=frozenset(networks),
            ports={k: frozenset(v) for k, v in (ports or {}).items()},
            released={k: frozenset(v) for k, v in (released or {}).items()},
        )


@dataclass(frozen=True)
class CreateNetwork:
    network: str


@dataclass(frozen=True)
class AddPorts:
    network: str
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class RemovePorts:
    network: str
    endpoints: tuple[str, ...]


Call = CreateNetwork | AddPorts | RemovePorts


@dataclass(frozen=True)
class ResyncPlan:
    calls: tuple[Call, ...]
    # Ports naming a network the desired state does not hold: never sent, only reported.
    orphans: Mapping[str, frozenset[str]]


def plan_resync(desired: DesiredState) -> ResyncPlan:
    """Calls in a stable order: networks first, then their ports, then releases."""
    calls: list[Call] = [CreateNetwork(n) for n in sorted(desired.networks)]
    orphans: dict[str, frozenset[str]] = {}
    for network in sorted(desired.ports):
        endpoints = desired.ports[network]
        for endpoint in endpoints:
            check_endpoint(endpoint)
        if network not in desired.networks:
            if endpoints:
                orphans[network] = frozenset(endpoints)
            continue
        if endpoints:
            calls.append(AddPorts(network, tuple(sorted(endpoints))))
    for network in sorted(desired.released):
        if network not in desired.networks:
            continue  # the network is gone, and its ports with it
        # A port wanted again (a pod recreated onto the same interface) is not released.
        gone = desired.released[network] - desired.ports.get(network, frozenset())
        for endpoint in gone:
            check_endpoint(endpoint)
        if gone:
            calls.append(RemovePorts(network, tuple(sorted(gone))))
    return ResyncPlan(calls=tuple(calls), orphans=orphans)


@dataclass
class ResyncReport:
    networks_recreated: list[str] = field(default_factory=list)
    networks_present: list[str] = field(default_factory=list)
    ports_restored: int = 0  # posted to networks that had to be recreated
    ports_confirmed: int = 0  # posted again to networks that were there (a no-op upstream)
    ports_removed: int = 0
    ports_already_absent: int = 0
    orphans: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return bool(self.networks_recreated)

    def summary(self) -> str:
        parts = [
            f"{len(self.networks_recreated)} network(s) recreated with {self.ports_restored} port(s)",
            f"{len(self.networks_present)} already present ({self.ports_confirmed} port(s) confirmed)",
            f"{self.ports_removed} released port(s) removed",
        ]
        if self.ports_already_absent:
            parts.append(f"{self.ports_already_absent} released port(s) already absent")
        if self.orphans:
            parts.append(f"ports for unknown networks skipped: {', '.join(sorted(self.orphans))}")
        if self.failures:
            parts.append(f"{len(self.failures)} failure(s): {'; '.join(self.failures)}")
        return ", ".join(parts)


def apply_resync(client: VnetsClient, plan: ResyncPlan) -> ResyncReport:
    """Run the plan. Unreachable or unauthorized controllers abort (nothing else would work);
    a call the controller refuses is recorded and the rest go on."""
    report = ResyncReport(orphans={k: sorted(v) for k, v in plan.orphans.items()})
    for call in plan.calls:
        try:
            _apply_one(client, call, report)
        except (ControllerUnreachable, ControllerUnauthorized):
            raise
        except ControllerError as exc:
            report.failures.append(f"{_describe(call)}: {exc}")
    return report


def _apply_one(client: VnetsClient, call: Call, report: ResyncReport) -> None:
    if isinstance(call, CreateNetwork):
        # Ask first: a 409 on create would not tell "exists" from any other refusal.
        if client.network_exists(call.network):
            report.networks_present.append(call.network)
        else:
            client.create_network(call.network)
            report.networks_recreated.append(call.network)
    elif isinstance(call, AddPorts):
        client.add_ports(call.network, list(call.endpoints))
        if call.network in report.networks_recreated:
            report.ports_restored += len(call.endpoints)
        else:
            report.ports_confirmed += len(call.endpoints)
    elif call.network in report.networks_recreated:
        return  # a network recreated just now holds only the ports added above
    else:
        # One call per port: upstream stops at the first port the network does not hold
        # and answers 500, which for a released port means it is gone already.
        for endpoint in call.endpoints:
            try:
                client.remove_ports(call.network, [endpoint])
            except (ControllerResponseError, ControllerConflict):
                report.ports_already_absent += 1
            else:
                report.ports_removed += 1


def _describe(call: Call) -> str:
    if isinstance(call, CreateNetwork):
        return f"create {call.network}"
    verb = "add" if isinstance(call, AddPorts) else "remove"
    return f"{verb} {len(call.endpoints)} port(s) on {call.network}"
