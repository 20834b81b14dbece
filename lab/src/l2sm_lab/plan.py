"""What a bundle becomes, decided with the domain core exactly as the charms decide it.

Pure: no namespace, process or file is touched here. `plan_lab` gives every network's
assignments and routes (l2sm_core.ipam, as the l2sm-network charm computes them), every
unit's interface plans (l2sm_core.knf, as the KNF library computes them) and every CDN
workload's rendered config (l2sm_core.cdn, as the CDN charms render them). The realiser
applies this plan; tests/test_lab_matches_charms.py runs the real charms on the same bundle
and compares.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from l2sm_core import knf
from l2sm_core.cdn import jobs, render, values
from l2sm_core.cdn.firewall import Firewall, RouterNetwork, Rule, build_firewall, merge_rules, parse_rules
from l2sm_core.cdn.origin import OriginProviderAppData, pick_url
from l2sm_core.ipam import Member, RouteTable, allocate, compute_routes, unit_order
from l2sm_core.topology import FULL_MESH, Link, parse_nodes, parse_topology
from l2sm_lab.bundle import (
    NETWORK_CHARM,
    NETWORK_INTERFACE,
    SWITCH_CHARM,
    App,
    Bundle,
    BundleError,
)

CONTENT_SERVER = "cdn-content-server"
ROUTER = "cdn-router"
CACHE = "cdn-cache"
# KNF charms that forward between their networks (they pass `forwards=True` to the library).
FORWARDING_CHARMS = {ROUTER}
DEFAULT_INTERFACES = 10
RETRIES = 5  # as the CDN charms: a cut transfer resumes this many times within one job


@dataclass(frozen=True)
class Paths:
    """Where one unit's workload keeps its files (the charms' containers use fixed paths;
    the lab one directory per unit)."""

    content_dir: str
    runtime_dir: str
    nginx_conf: str
    status_dir: str


@dataclass
class NetworkPlan:
    app: str
    name: str
    cidr: str
    mtu: int
    reserved: list[str]
    members: list[Member]
    assignments: dict[str, str]
    rejections: dict[str, str]
    routes: RouteTable


@dataclass
class Workload:
    kind: str  # content-server | router | cache
    paths: Paths
    nginx: str | None = None  # rendered nginx.conf
    urls: list[str] = field(default_factory=list)  # content server: what it publishes on origin
    origin: OriginProviderAppData | None = None  # cache: what it follows
    base_url: str = ""  # cache: the origin URL it picked
    sync_command: str | None = None  # cache: the sync job, when sync-interval is set
    rules: tuple[Rule, ...] = ()  # router: config rules (action-added ones merge in)
    default_policy: str = "drop"
    firewall: Firewall | None = None
    ruleset: str | None = None
    forwarding: bool = False


@dataclass
class UnitPlan:
    name: str
    app: str
    charm: str
    number: int
    node: str
    forwards: bool
    memberships: list[knf.Membership]
    interfaces: list[knf.InterfacePlan]
    refused: list[str]
    workload: Workload | None = None

    @property
    def addresses(self) -> dict[str, str]:
        """network -> address with prefix length."""
        return {m.network: m.address for m in self.memberships if m.address}


@dataclass
class LabPlan:
    bundle: Bundle
    nodes: tuple[str, ...]
    links: tuple[Link, ...]
    interfaces_per_node: int
    core_in_bundle: bool
    networks: dict[str, NetworkPlan]  # by application
    units: dict[str, UnitPlan]

    def network_named(self, name: str) -> NetworkPlan | None:
        return next((n for n in self.networks.values() if n.name == name), None)


def lab_node_names(count: int) -> tuple[str, ...]:
    if not 1 <= count <= 16:
        raise BundleError(f"--nodes: {count} nodes: the lab runs 1 to 16")
    return tuple(f"lab-node-{i}" for i in range(1, count + 1))


def _fabric(bundle: Bundle, nodes: int) -> tuple[tuple[str, ...], tuple[Link, ...], int]:
    switches = bundle.by_charm(SWITCH_CHARM)
    options = switches[0].options if switches else {}
    named = parse_nodes(str(options.get("nodes", "") or "")) if options.get("nodes") else ()
    names = named or lab_node_names(nodes)
    topology = str(options.get("topology", FULL_MESH) or FULL_MESH)
    try:
        links = parse_topology(topology, names)
    except ValueError as exc:
        app = switches[0].name if switches else SWITCH_CHARM
        raise BundleError(f"{bundle.path}: application {app!r}: option 'topology': {exc}") from None
    mesh = parse_topology(FULL_MESH, names)
    if set(links) != set(mesh):
        app = switches[0].name if switches else SWITCH_CHARM
        # The lab's controller floods with split horizon: it relays nothing through a middle
        # switch, as ONOS's path intents would.
        raise BundleError(
            f"{bundle.path}: application {app!r}: option 'topology': the lab realises only "
            f"{FULL_MESH} (got {topology!r}); set it to {FULL_MESH} to run this bundle here"
        )
    per_node = int(options.get("interfaces-per-node", DEFAULT_INTERFACES))
    return names, links, per_node


def _knf_endpoints(app: App) -> list[str]:
    return sorted(e for e, i in app.charm.requires.items() if i == NETWORK_INTERFACE)


def is_knf(app: App) -> bool:
    """The application's units are pods with L2S-M interfaces (what the lab runs and scales)."""
    return bool(_knf_endpoints(app))


def unit_names(app: App, numbers: Sequence[int] | None = None) -> list[str]:
    """The app's units: `numbers` (what a scale left, from the lab's record) or, when not
    given, the bundle's `scale` numbered from 0 as Juju deploys them."""
    chosen = range(app.scale) if numbers is None else sorted(set(numbers))
    return [f"{app.name}/{n}" for n in chosen]


def place_units(units: Sequence[str], nodes: Sequence[str], placed: Mapping[str, str]) -> dict[str, str]:
    """Unit -> node. A unit already placed stays (a pod is not moved by others scaling);
    each other unit, in order, goes to the node holding fewest units, the first such node
    on a tie: on a fresh lab that is round-robin over the nodes."""
    where = {u: placed[u] for u in units if placed.get(u) in nodes}
    load = {n: 0 for n in nodes}
    for node in where.values():
        load[node] += 1
    for unit in units:
        if unit not in where:
            node = min(nodes, key=lambda n: (load[n], nodes.index(n)))
            where[unit] = node
            load[node] += 1
    return where


def plan_lab(
    bundle: Bundle,
    *,
    nodes: int = 2,
    paths: Callable[[str], Paths],
    added_rules: dict[str, Sequence[Rule]] | None = None,
    cut_links: dict[str, Sequence[str]] | None = None,
    unit_numbers: Mapping[str, Sequence[int]] | None = None,
    placed: Mapping[str, str] | None = None,
) -> LabPlan:
    """The whole lab. `paths(unit)` places a unit's files; `added_rules` / `cut_links` (by
    router application) are what the router's actions changed, kept as its peer data is.
    `unit_numbers` (by application) are the units a scale left, `placed` the node of each
    unit that exists (both from the lab's record); without them, the bundle's scale."""
    names, links, per_node = _fabric(bundle, nodes)
    numbers = unit_numbers or {}
    networks: dict[str, NetworkPlan] = {}
    knf_apps = [a for a in bundle.apps.values() if _knf_endpoints(a)]
    # KNF app -> the network apps it joined (any of its l2sm_network endpoints).
    joined: dict[str, list[str]] = {
        a.name: sorted(
            {
                other
                for endpoint in _knf_endpoints(a)
                for other, _ in bundle.related(a.name, endpoint)
                if other in bundle.apps and bundle.apps[other].charm.name == NETWORK_CHARM
            }
        )
        for a in knf_apps
    }
    requests = {a.name: _requests(bundle, a) for a in knf_apps}
    info = {a.name: _network_info(a) for a in bundle.by_charm(NETWORK_CHARM)}
    for net_app in bundle.by_charm(NETWORK_CHARM):
        name, cidr, mtu, reserved = info[net_app.name]
        members = []
        for knf_app in knf_apps:
            if net_app.name not in joined[knf_app.name]:
                continue
            forwards = knf_app.charm.name in FORWARDING_CHARMS
            for unit in unit_names(knf_app, numbers.get(knf_app.name)):
                number = int(unit.rpartition("/")[2])
                base = requests[knf_app.name].get(name) or requests[knf_app.name].get(net_app.name)
                try:
                    address, start = knf.unit_request(name, base, number, cidr) if base else ("", "")
                except ValueError as exc:
                    raise BundleError(
                        f"{bundle.path}: application {knf_app.name!r}: option 'addresses': {exc}"
                    ) from None
                offered: tuple[str, ...] = ()
                if forwards:
                    others = [info[o][1] for o in joined[knf_app.name] if o != net_app.name]
                    try:
                        offered = tuple(knf.offered_prefixes(others))
                    except ValueError as exc:
                        raise BundleError(f"{bundle.path}: application {knf_app.name!r}: {exc}") from None
                members.append(Member(unit, address, offered, start=start))
        allocation = allocate(cidr, reserved, members, {})
        routes = compute_routes(cidr, members, allocation.assignments)
        networks[net_app.name] = NetworkPlan(
            net_app.name,
            name,
            cidr,
            mtu,
            reserved,
            members,
            dict(allocation.assignments),
            {u: allocation.rejections[u] for u in sorted(allocation.rejections, key=unit_order)},
            routes,
        )
    units: dict[str, UnitPlan] = {}
    order = [u for a in knf_apps for u in unit_names(a, numbers.get(a.name))]
    node_of = place_units(order, names, placed or {})
    for unit in order:
        app = bundle.apps[unit.rpartition("/")[0]]
        memberships = []
        for position, net_app in enumerate(sorted(joined[app.name], key=lambda n: info[n][0]), start=1):
            plan = networks[net_app]
            memberships.append(
                knf.Membership(
                    network=plan.name,
                    interface=f"net{position}",
                    address=plan.assignments.get(unit),
                    rejection=plan.rejections.get(unit),
                    mtu=plan.mtu,
                    routes=tuple((r["prefix"], r["via"]) for r in plan.routes.routes),
                    cidr=plan.cidr,
                )
            )
        memberships.sort(key=lambda m: m.network)
        connected = tuple(m.cidr for m in memberships if m.cidr)
        interfaces, refused = [], []
        for m in memberships:
            checked = m.checked_plan(connected)
            refused += [f"{m.network}: {r}" for r in checked.refused]
            if checked.plan:
                interfaces.append(checked.plan)
        units[unit] = UnitPlan(
            name=unit,
            app=app.name,
            charm=app.charm.name,
            number=int(unit.rpartition("/")[2]),
            node=node_of[unit],
            forwards=app.charm.name in FORWARDING_CHARMS,
            memberships=memberships,
            interfaces=interfaces,
            refused=refused,
        )
    lab = LabPlan(bundle, names, links, per_node, not bundle.saas, networks, units)
    for unit in units.values():
        unit.workload = plan_workload(
            lab,
            unit,
            paths(unit.name),
            added_rules=(added_rules or {}).get(unit.app, ()),
            cut_links=(cut_links or {}).get(unit.app, ()),
        )
    return lab


def _requests(bundle: Bundle, app: App) -> dict[str, str]:
    try:
        return knf.parse_addresses(str(app.options.get("addresses", "") or ""))
    except ValueError as exc:
        raise BundleError(f"{bundle.path}: application {app.name!r}: option 'addresses': {exc}") from None


def _network_info(app: App) -> tuple[str, str, int, list[str]]:
    config: Any = app.config
    name = config.network_name or app.name
    return name, config.cidr, config.mtu, list(config.reserved_addresses)


# --- the CDN workloads --------------------------------------------------------------------------


def plan_workload(
    lab: LabPlan,
    unit: UnitPlan,
    paths: Paths,
    *,
    added_rules: Sequence[Rule] = (),
    cut_links: Sequence[str] = (),
) -> Workload | None:
    app = lab.bundle.apps[unit.app]
    config: Any = app.config
    if unit.charm == CONTENT_SERVER:
        site = render.ContentServerSite(
            port=config.port,
            content_dir=paths.content_dir,
            runtime_dir=paths.runtime_dir,
            limit_rate=config.rate_limit,
            manifest=values.MANIFEST_NAME,
            autoindex=config.autoindex,
        )
        addresses = [str(ipaddress.IPv4Interface(a).ip) for a in unit.addresses.values()]
        return Workload(
            kind="content-server",
            paths=paths,
            nginx=render.render_content_server(site),
            urls=[f"http://{a}:{config.port}/" for a in addresses],
        )
    if unit.charm == ROUTER:
        return plan_router(unit, paths, config, added_rules, cut_links)
    if unit.charm == CACHE:
        return plan_cache(lab, unit, paths, config)
    return None


def plan_router(
    unit: UnitPlan, paths: Paths, config: Any, added_rules: Sequence[Rule] = (), cut_links: Sequence[str] = ()
) -> Workload:
    networks = [
        RouterNetwork.model_validate({"name": m.network, "interface": m.interface, "prefix": m.cidr or None})
        for m in unit.memberships
        if m.interface
    ]
    joined = {n.name for n in networks}
    try:
        rules = merge_rules(parse_rules(config.rules), tuple(added_rules))
        firewall = build_firewall(
            networks, rules, config.default_policy, [c for c in cut_links if c in joined]
        )
    except ValueError as exc:
        raise BundleError(f"application {unit.app!r}: {exc}") from None
    return Workload(
        kind="router",
        paths=paths,
        rules=tuple(rules),
        default_policy=config.default_policy,
        firewall=firewall,
        ruleset=render.render_ruleset(firewall),
        forwarding=True,
    )


def origin_of(lab: LabPlan, unit: UnitPlan, config: Any) -> OriginProviderAppData | None:
    """The cache's origin: option origin-url first, else the related content server's URLs
    (its leader's: its lowest-numbered unit here)."""
    if config.origin_url:
        return OriginProviderAppData(urls=[config.origin_url])
    for other, _ in lab.bundle.related(unit.app, "origin"):
        servers = sorted((u for u in lab.units.values() if u.app == other), key=lambda u: u.number)
        if not servers:
            continue
        server = servers[0]
        port = _port(lab, other)
        urls = [f"http://{ipaddress.IPv4Interface(a).ip}:{port}/" for a in server.addresses.values()]
        if urls:
            return OriginProviderAppData(urls=urls, manifest=values.MANIFEST_NAME)
    return None


def _port(lab: LabPlan, app: str) -> int:
    config: Any = lab.bundle.apps[app].config
    return int(config.port)


def routable(unit: UnitPlan) -> list[str]:
    """The prefixes a unit reaches: its networks' own and every route it was given."""
    prefixes = set()
    for m in unit.memberships:
        if m.address:
            prefixes.add(str(ipaddress.IPv4Interface(m.address).network))
        prefixes.update(prefix for prefix, _ in m.routes)
    return sorted(prefixes)


def plan_cache(lab: LabPlan, unit: UnitPlan, paths: Paths, config: Any) -> Workload:
    site = render.CacheSite(
        port=config.port,
        content_dir=paths.content_dir,
        runtime_dir=paths.runtime_dir,
        limit_rate=config.rate_limit,
        tls=None,
        health_port=render.cache_health_port(config.port),
    )
    origin = origin_of(lab, unit, config)
    base = pick_url(list(origin.urls), routable(unit)) if origin else ""
    sync = None
    if origin and config.sync_interval:
        sync = jobs.job_command(
            "sync",
            origin_manifest=urllib.parse.urljoin(base, origin.manifest),
            dest=paths.content_dir,
            interval=config.sync_interval,
            retries=RETRIES,
            status=f"{paths.status_dir}/sync.json",
        )
    return Workload(
        kind="cache",
        paths=paths,
        nginx=render.render_cache(site),
        origin=origin,
        base_url=base,
        sync_command=sync,
    )
