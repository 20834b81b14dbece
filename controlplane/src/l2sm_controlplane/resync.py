"""Restore a controller that lost its state (the vnets app keeps everything in memory), and
keep what it holds equal to what the cluster says, without ever posting a port twice.

Upstream facts this is built on (the vnets app's source): a network's ports are a LIST;
every POST /port appends, duplicates included, and DELETE /port removes one copy. Beside
the lists the app keeps one record per port of the network it is in; DELETE /port and
DELETE /{id} drop it, and a port held without its record is not forwarded for. So:

- the controller is read first (`read_held`: one GET per network, its text parsed; an
  answer that cannot be read leaves that network untouched: a blind post risks a
  duplicate, a missed port only waits for the next resync);
- `plan_resync` compares it with the cluster: absent networks are recreated with their
  ports; present ones get only the ports they lack; stale ports (released by their pod, or
  now wanted by another network) held once are removed one call each; a network holding a
  port twice cannot be mended by DELETE /port (the remaining copy would lose its record),
  so it is rebuilt: deleted and made again with each port once. A network whose wanted
  port shares its record with a stale copy elsewhere is rebuilt too (removing that copy
  drops the record);
- `apply_resync` deletes the networks to rebuild first, then removes, then adds: an
  interruption anywhere leaves a network absent (which the next resync sees) rather than
  holding a port without its record (which no read can see).

`resync_cluster` is the whole round as the controller charm runs it (and the lab's
supervisor, on the lab's record): live networks, the controller, then the pods
(`desired_from_pods`), the plan applied, and a network (re)made meanwhile deleted from the
cluster taken out of the controller again (`forget_deleted`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from l2sm_controlplane.vnets import (
    ControllerError,
    ControllerUnauthorized,
    ControllerUnreachable,
    NetworkMissing,
    VnetsClient,
    check_endpoint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredState:
    """What the controller should hold. Ports map a network name to `of:<dpid>/<N>` endpoints;
    released ports are those of pods that are gone or going."""

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
class PodPorts:
    """One pod as the cluster shows it: the ports it was attached with (network -> endpoints),
    whether it is gone or going (deleted, Terminating, finished: its ports are released) and
    whether it is still young (its attach may be under way: see `desired_from_pods`)."""

    name: str
    ports: Mapping[str, Iterable[str]]
    gone: bool = False
    young: bool = False


def desired_from_pods(
    networks: Iterable[str], pods: Iterable[PodPorts]
) -> tuple[DesiredState, frozenset[str]]:
    """Pure: what the controller should hold, and the ports of young pods. A gone pod's ports
    are released however young it is. A young pod's are neither wanted nor released: the
    operator may be posting them right now, and a resync that listed the pod after reading
    the controller would post them too (held twice); a copy held already shows up as
    unexplained and is left alone until the pod is past its youth."""
    ports: dict[str, set[str]] = {}
    released: dict[str, set[str]] = {}
    young: set[str] = set()
    for pod in pods:
        if pod.young and not pod.gone:
            young.update(p for endpoints in pod.ports.values() for p in endpoints)
            continue
        for network, endpoints in pod.ports.items():
            (released if pod.gone else ports).setdefault(network, set()).update(endpoints)
    return DesiredState.build(networks, ports, released), frozenset(young)


@dataclass(frozen=True)
class HeldState:
    """What the controller held when read: network -> its ports, in order, with repeats."""

    ports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()
    unreadable: Mapping[str, str] = field(default_factory=dict)  # network -> why


def read_held(client: VnetsClient, networks: Iterable[str]) -> HeldState:
    """One GET per network. Unreachable or unauthorized controllers raise (nothing else would
    work); any other failure marks that network unreadable, and the resync leaves it alone."""
    ports: dict[str, tuple[str, ...]] = {}
    absent: set[str] = set()
    unreadable: dict[str, str] = {}
    for name in sorted(set(networks)):
        try:
            ports[name] = tuple(client.network_ports(name))
        except NetworkMissing:
            absent.add(name)
        except (ControllerUnreachable, ControllerUnauthorized):
            raise
        except ControllerError as exc:
            unreadable[name] = str(exc)
    return HeldState(ports=ports, absent=frozenset(absent), unreadable=unreadable)


@dataclass(frozen=True)
class NetworkPlan:
    """What one network needs. With `recreate` or `rebuild` the network is made (again) with
    `keep`; otherwise `remove` goes one port per call, then `add` in one call."""

    network: str
    keep: tuple[str, ...]  # what it holds afterwards, each port once
    recreate: bool = False  # the controller does not know it
    rebuild: str = ""  # why it must be deleted and made again
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    confirmed: int = 0  # wanted ports found held once: nothing to send
    unexplained: tuple[str, ...] = ()  # held, wanted and released by no pod: left alone

    @property
    def writes(self) -> bool:
        return bool(self.recreate or self.rebuild or self.add or self.remove)


@dataclass(frozen=True)
class ResyncPlan:
    networks: tuple[NetworkPlan, ...]
    # Networks whose state could not be read: nothing is sent to them.
    unreadable: Mapping[str, str] = field(default_factory=dict)
    # Ports naming a network the desired state does not hold: never sent, only reported.
    orphans: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return any(p.writes for p in self.networks)


def plan_resync(desired: DesiredState, held: HeldState) -> ResyncPlan:
    """Pure: what to send so the controller holds `desired`, given what it `held`."""
    for endpoints in (*desired.ports.values(), *desired.released.values()):
        for endpoint in endpoints:
            check_endpoint(endpoint)
    orphans = {n: frozenset(eps) for n, eps in desired.ports.items() if n not in desired.networks and eps}
    plans: dict[str, NetworkPlan] = {}
    # Port -> the networks a stale copy of it is taken from (its record goes with it).
    dropped: dict[str, set[str]] = {}
    for name in sorted(desired.networks - set(held.unreadable)):
        wanted = desired.ports.get(name, frozenset())
        if name not in held.ports:
            plans[name] = NetworkPlan(name, keep=tuple(sorted(wanted)), recreate=True)
            continue
        counts = Counter(held.ports[name])
        elsewhere = {p for other, eps in desired.ports.items() if other != name for p in eps}
        released = desired.released.get(name, frozenset()) - wanted
        stale = {p for p in counts if p not in wanted and (p in released or p in elsewhere)}
        unexplained = {p for p in counts if p not in wanted and p not in stale}
        twice = sorted(p for p, n in counts.items() if n > 1)
        for port in stale:
            dropped.setdefault(port, set()).add(name)
        plans[name] = NetworkPlan(
            name,
            keep=tuple(sorted(wanted | unexplained)),
            rebuild=f"held more than once: {', '.join(twice)}" if twice else "",
            add=tuple(sorted(wanted - set(counts))),
            remove=tuple(sorted(stale)),
            confirmed=len(wanted & set(counts)),
            unexplained=tuple(sorted(unexplained)),
        )
    # A port kept by one network and stale in another shares one record: any call that takes
    # the copy out (DELETE /port, or deleting that network) drops it. Both are rebuilt, and
    # both deleted before anything else, so an interruption leaves them absent (seen and
    # recreated next time), never holding a port without its record (seen by no read).
    for name, plan in list(plans.items()):
        if plan.recreate:
            continue
        shared = sorted(p for p in plan.keep if p in held.ports[name] and dropped.get(p, set()) - {name})
        for port in shared:
            for other in sorted(dropped[port] - {name}):
                reason = f"its stale copy of {port} shares a record with {name}"
                if not plans[other].rebuild:
                    plans[other] = dataclasses.replace(plans[other], rebuild=reason)
        if shared and not plan.rebuild:
            others = sorted({n for p in shared for n in dropped[p]} - {name})
            reason = f"stale {', '.join(shared)} in {', '.join(others)} shares its controller record"
            plans[name] = dataclasses.replace(plan, rebuild=reason)
    return ResyncPlan(networks=tuple(plans.values()), unreadable=dict(held.unreadable), orphans=orphans)


@dataclass
class ResyncReport:
    networks_recreated: list[str] = field(default_factory=list)
    networks_present: list[str] = field(default_factory=list)
    networks_rebuilt: dict[str, str] = field(default_factory=dict)  # network -> why
    ports_restored: int = 0  # posted to networks that were recreated
    ports_rebuilt: int = 0  # posted to networks that were rebuilt
    ports_confirmed: int = 0  # found held, once, where wanted: nothing sent
    ports_added: int = 0  # posted to present networks that lacked them
    ports_removed: int = 0  # stale copies removed
    unexplained: dict[str, list[str]] = field(default_factory=dict)
    orphans: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # (Re)made here while their L2Network was being deleted: taken out again (forget_deleted).
    deleted_meanwhile: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        """The controller had lost something the cluster needs (released ports going is routine)."""
        return bool(self.networks_recreated or self.networks_rebuilt or self.ports_added)

    def summary(self) -> str:
        parts = [
            f"{len(self.networks_recreated)} network(s) recreated with {self.ports_restored} port(s)",
            f"{len(self.networks_present)} already present ({self.ports_confirmed} port(s) confirmed, "
            f"{self.ports_added} added)",
            f"{self.ports_removed} stale port(s) removed",
        ]
        if self.networks_rebuilt:
            why = "; ".join(f"{n}: {r}" for n, r in sorted(self.networks_rebuilt.items()))
            parts.append(
                f"{len(self.networks_rebuilt)} network(s) rebuilt with {self.ports_rebuilt} port(s) ({why})"
            )
        if self.unexplained:
            held = "; ".join(f"{n}: {', '.join(p)}" for n, p in sorted(self.unexplained.items()))
            parts.append(f"ports no pod explains, left alone: {held}")
        if self.orphans:
            parts.append(f"ports for unknown networks skipped: {', '.join(sorted(self.orphans))}")
        if self.deleted_meanwhile:
            names = ", ".join(sorted(self.deleted_meanwhile))
            parts.append(f"deleted meanwhile, taken out of the controller again: {names}")
        if self.failures:
            parts.append(f"{len(self.failures)} failure(s): {'; '.join(self.failures)}")
        return ", ".join(parts)


def apply_resync(client: VnetsClient, plan: ResyncPlan) -> ResyncReport:
    """Run the plan so that no interruption can lose a port silently. A network to rebuild
    is deleted FIRST: removing a stale copy elsewhere drops the shared port's record, and a
    network left holding a port without its record looks healthy to every later read, while
    a deleted one is simply absent and the next resync recreates it. Then the removals, one
    port per call; then creations and additions.

    Unreachable or unauthorized controllers abort (nothing else would work); a call the
    controller refuses is recorded, and that network gets nothing more this time."""
    report = ResyncReport(
        orphans={k: sorted(v) for k, v in plan.orphans.items()},
        failures=[f"read {n}: {why}" for n, why in sorted(plan.unreadable.items())],
        unexplained={p.network: list(p.unexplained) for p in plan.networks if p.unexplained},
    )
    rebuild = {p.network: p.rebuild for p in plan.networks if p.rebuild}
    failed: set[str] = set()
    # Networks that only keep ports go before those holding stale copies: deleting a holder
    # drops the record of the port it shares, and with the holder gone nothing would show
    # that the keeper lost it.
    holders = {p.network for p in plan.networks if p.remove}
    for name in sorted(rebuild, key=lambda n: (n in holders, n)):
        if not _call(report, failed, name, f"delete {name} to rebuild it", client.delete_network, name):
            rebuild.pop(name)
    # A stale copy may only go once every network sharing its record is deleted (above).
    undeleted = {p.network for p in plan.networks if p.rebuild and p.network not in rebuild}
    for net in plan.networks:
        if net.recreate or net.rebuild:
            continue
        report.networks_present.append(net.network)
        report.ports_confirmed += net.confirmed
        for endpoint in net.remove:
            if any(endpoint in p.keep for p in plan.networks if p.network in undeleted):
                report.failures.append(
                    f"kept stale {endpoint} in {net.network}: the network sharing it could not be rebuilt"
                )
                continue
            try:
                client.remove_ports(net.network, [endpoint])
            except (ControllerUnreachable, ControllerUnauthorized):
                raise
            except ControllerError as exc:
                if _still_holds(client, net.network, endpoint, report, failed):
                    # Held without a record: only a rebuild takes the copy out of the list.
                    reason = f"could not remove {endpoint}: {exc}"
                    if _call(
                        report,
                        failed,
                        net.network,
                        f"delete {net.network}",
                        client.delete_network,
                        net.network,
                    ):
                        rebuild[net.network] = reason
                    break
                continue  # the operator took it out meanwhile
            report.ports_removed += 1
    for net in plan.networks:
        if net.network in failed:
            continue
        if net.recreate or net.network in rebuild:
            if not _call(
                report, failed, net.network, f"create {net.network}", client.create_network, net.network
            ):
                continue
            if net.keep and not _call(
                report,
                failed,
                net.network,
                f"add {len(net.keep)} port(s) to {net.network}",
                client.add_ports,
                net.network,
                list(net.keep),
            ):
                continue
            if net.recreate:
                report.networks_recreated.append(net.network)
                report.ports_restored += len(net.keep)
            else:
                report.networks_rebuilt[net.network] = rebuild[net.network]
                report.ports_rebuilt += len(net.keep)
        elif net.add and _call(
            report,
            failed,
            net.network,
            f"add {len(net.add)} port(s) to {net.network}",
            client.add_ports,
            net.network,
            list(net.add),
        ):
            report.ports_added += len(net.add)
    report.networks_present = [n for n in report.networks_present if n not in report.networks_rebuilt]
    return report


def _still_holds(
    client: VnetsClient, network: str, endpoint: str, report: ResyncReport, failed: set[str]
) -> bool:
    """After a refused removal, look again: the operator may have removed the port itself
    meanwhile (a pod deleted during the resync), which needs no rebuild. When the answer
    cannot be read, nothing is rebuilt blind: the network gets nothing more this time and
    the failure is reported."""
    try:
        return endpoint in client.network_ports(network)
    except (ControllerUnreachable, ControllerUnauthorized):
        raise
    except ControllerError as exc:
        report.failures.append(f"read {network} again: {exc}")
        failed.add(network)
        return False


def _call(report: ResyncReport, failed: set[str], network: str, what: str, fn, *args) -> bool:
    try:
        fn(*args)
    except (ControllerUnreachable, ControllerUnauthorized):
        raise
    except ControllerError as exc:
        report.failures.append(f"{what}: {exc}")
        failed.add(network)
        return False
    return True


def forget_deleted(client: VnetsClient, report: ResyncReport, live: Callable[[], Iterable[str]]) -> list[str]:
    """After `apply_resync`: a network recreated or rebuilt here whose L2Network went while
    the resync ran would stay in the controller as an orphan (the operator deleted it there
    already). The live networks are listed again (only when something was made) and each
    such network is deleted again and taken out of the report. Returns their names."""
    made = set(report.networks_recreated) | set(report.networks_rebuilt)
    if not made:
        return []
    gone = sorted(made - set(live()))
    for name in gone:
        try:
            client.delete_network(name)
        except NetworkMissing:
            pass  # gone from the controller too
        except (ControllerUnreachable, ControllerUnauthorized):
            raise
        except ControllerError as exc:
            report.failures.append(f"delete {name}, deleted meanwhile: {exc}")
        if name in report.networks_recreated:
            report.networks_recreated.remove(name)
        report.networks_rebuilt.pop(name, None)
        report.deleted_meanwhile.append(name)
        logger.info("resync: %s was deleted meanwhile; removed it from the controller again", name)
    return gone


def resync_cluster(
    client: VnetsClient,
    live_networks: Callable[[], Iterable[str]],
    pods: Callable[[], Iterable[PodPorts]],
) -> tuple[ResyncReport, frozenset[str]]:
    """One resync round; returns the report and the young pods' ports. The controller is read
    before the pods are listed: a port it holds was added for a pod that exists by the time
    the pods are listed, so no new pod's port looks stale. `live_networks` is called again
    after the apply when a network was (re)made (see `forget_deleted`)."""
    networks = set(live_networks())
    held = read_held(client, networks)
    desired, young = desired_from_pods(networks, pods())
    report = apply_resync(client, plan_resync(desired, held))
    forget_deleted(client, report, live_networks)
    return report, young
