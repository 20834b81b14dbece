"""The lab decides exactly what the charms decide: `l2sm_lab.plan.plan_lab` on a bundle, against
the real charms run with ops.testing on the same bundle (tests/lab_charms.py chains them
through their relation data), on both Juju versions the charm suites use.

Compared: each network's answer on each `network` relation (assignments, rejections, routes,
name, cidr, MTU); each KNF unit's applied interface plans; the content server's nginx.conf and
origin URLs; the cache's nginx.conf, its chosen origin and its sync job; the router's ruleset,
as given to `nft -f -` and as pushed. Two bundles: the seed's (bundles/cdn.yaml) and one with
three networks (a custom network-name, reserved addresses, an MTU), a router on all three,
a content server on two (scale 2: the caches follow its leader), and two caches, one asking
the pool at scale 2, one asking from an address.
"""

from __future__ import annotations

import shlex
import textwrap
import urllib.parse
from pathlib import Path

import pytest
from lab_charms import Lab, charm_paths, fakes, load_charm
from ops import testing

from l2sm_core.cdn.origin import OriginProviderAppData
from l2sm_knf.databag import decode
from l2sm_lab.bundle import Bundle, find_charms, read_bundle
from l2sm_lab.plan import CACHE, CONTENT_SERVER, ROUTER, LabPlan, Workload, plan_lab

ROOT = Path(__file__).resolve().parent.parent
# OSM's controller (the oldest Juju the charms must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")

THREE_NETWORKS = """\
name: three-networks
saas:
  l2sm-controller:
    url: admin/l2sm.l2sm-controller
applications:
  net-origin:
    charm: l2sm-network
    options:
      cidr: 10.20.0.0/24
      network-name: origin-lan
      reserved: 10.20.0.1,10.20.0.2
  edge-a:
    charm: l2sm-network
    options:
      cidr: 10.21.0.0/24
      reserved: 10.21.0.1
  edge-b:
    charm: l2sm-network
    options:
      cidr: 10.22.0.0/26
      mtu: 1300
  origin:
    charm: cdn-content-server
    scale: 2
    options:
      port: 8080
      rate-limit: 2m
      autoindex: true
      addresses: origin-lan=10.20.0.1/24
  router:
    charm: cdn-router
    options:
      # origin-lan by its network name, edge-a by its application; edge-b from the pool.
      addresses: origin-lan=10.20.0.254/24,edge-a=10.21.0.254/24
      default-policy: drop
      rules: |
        - {name: a-to-origin, from: edge-a, to: origin-lan, protocol: tcp, port: 8080}
        - {name: a-to-b, from: edge-a, to: edge-b, protocol: tcp, port: 8080}
        - {name: ping, from: edge-a, to: origin-lan, protocol: icmp}
  cache-a:
    charm: cdn-cache
    scale: 2
    options:
      sync-interval: 300
      rate-limit: 500k
  cache-b:
    charm: cdn-cache
    options:
      addresses: edge-b=10.22.0.20/26
      port: 8081
relations:
  - [net-origin:controller, l2sm-controller:l2sm-controller]
  - [edge-a:controller, l2sm-controller:l2sm-controller]
  - [edge-b:controller, l2sm-controller:l2sm-controller]
  - [origin:networks, net-origin:network]
  - [origin:networks, edge-b:network]
  - [router:networks, net-origin:network]
  - [router:networks, edge-a:network]
  - [router:networks, edge-b:network]
  - [cache-a:networks, edge-a:network]
  - [cache-b:networks, edge-b:network]
  - [cache-a:origin, origin:origin]
  - [cache-b:origin, origin:origin]
"""


def _bundle(name: str, tmp: Path) -> Bundle:
    charms = find_charms(ROOT)
    if name == "cdn":
        return read_bundle(ROOT / "bundles" / "cdn.yaml", charms)
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(THREE_NETWORKS))
    return read_bundle(path, charms)


class Outcome:
    def __init__(self, plan: LabPlan, lab: Lab):
        self.plan = plan
        self.lab = lab

    def workload(self, unit: str) -> Workload:
        workload = self.plan.units[unit].workload
        assert workload is not None, f"{unit}: the plan has no workload"
        return workload

    def units_of(self, charm: str) -> list[str]:
        return [u for u, p in self.plan.units.items() if p.charm == charm]


@pytest.fixture(
    scope="module",
    params=[(b, j) for b in ("cdn", "three-networks") for j in JUJU_VERSIONS],
    ids=lambda p: f"{p[0]}-juju{p[1]}",
)
def outcome(request, tmp_path_factory) -> Outcome:
    bundle_name, juju_version = request.param
    tmp = tmp_path_factory.mktemp(f"{bundle_name}-{juju_version}")
    bundle = _bundle(bundle_name, tmp)
    modules = {a.charm.name: load_charm(a.charm.path) for a in bundle.apps.values()}
    plan = plan_lab(
        bundle,
        nodes=2,
        paths=lambda unit: charm_paths(modules[bundle.apps[unit.partition("/")[0]].charm.name]),
    )
    with fakes(tmp):
        lab = Lab(bundle, juju_version, tmp, modules).run()
    return Outcome(plan, lab)


def test_the_bundles_have_what_is_compared(outcome):
    """Guard: every kind of charm is there, and the second bundle is the richer one."""
    for charm in (CONTENT_SERVER, ROUTER, CACHE):
        assert outcome.units_of(charm)
    assert set(outcome.lab.units) == set(outcome.plan.units)
    assert set(outcome.lab.networks) == set(outcome.plan.networks)


def test_each_network_answers_what_the_plan_assigns_and_routes(outcome):
    for app, net in outcome.lab.networks.items():
        planned = outcome.plan.networks[app]
        assert net.relations, f"{app}: no member"
        granted: dict[str, str] = {}
        for member in net.relations:
            answer = net.answer(member)
            mine = {u: a for u, a in planned.assignments.items() if u.partition("/")[0] == member}
            assert answer.assignments == mine, f"{app} -> {member}"
            refused = {u: r for u, r in planned.rejections.items() if u.partition("/")[0] == member}
            assert answer.rejections == refused, f"{app} -> {member}"
            assert [r.model_dump() for r in answer.routes] == planned.routes.routes, f"{app} -> {member}"
            assert (answer.network.name, answer.network.cidr, answer.network.mtu) == (
                planned.name,
                planned.cidr,
                planned.mtu,
            )
            granted |= answer.assignments
        assert granted == planned.assignments
        assert not planned.rejections, f"{app}: the bundles are meant to be granted everything"


def test_each_unit_applies_the_planned_interfaces(outcome):
    for name, unit in outcome.lab.units.items():
        planned = outcome.plan.units[name]
        assert planned.interfaces, f"{name}: nothing planned"
        assert unit.applied == planned.interfaces, name
        assert not planned.refused


def test_the_content_server_serves_and_publishes_what_the_plan_renders(outcome):
    for name in outcome.units_of(CONTENT_SERVER):
        unit, workload = outcome.lab.units[name], outcome.workload(name)
        assert unit.container_file("nginx", workload.paths.nginx_conf) == workload.nginx
        assert workload.urls
        status = unit.state.unit_status
        assert isinstance(status, testing.ActiveStatus), f"{name}: {status}"
        assert f" at {' '.join(workload.urls)};" in status.message  # what it would publish
        if not unit.state.leader:
            continue  # the leader publishes
        assert unit.origin_ids
        for other, rid in unit.origin_ids.items():
            published = decode(unit.state.get_relation(rid).local_app_data, OriginProviderAppData)
            assert published.urls == workload.urls, f"{name} -> {other}"
            assert published.manifest == "manifest.json"


def test_the_cache_serves_and_follows_what_the_plan_picks(outcome):
    for name in outcome.units_of(CACHE):
        unit, workload = outcome.lab.units[name], outcome.workload(name)
        assert unit.container_file("nginx", workload.paths.nginx_conf) == workload.nginx
        assert workload.origin is not None and workload.base_url
        command = unit.state.get_container("jobs").plan.services["sync"].command
        manifest = [a for a in shlex.split(command) if a.startswith("--origin-manifest=")]
        assert manifest == [f"--origin-manifest={urllib.parse.urljoin(workload.base_url, 'manifest.json')}"]
        if workload.sync_command is not None:
            assert command == workload.sync_command
        status = unit.state.unit_status
        assert isinstance(status, testing.ActiveStatus), f"{name}: {status}"
        assert f" from {workload.base_url};" in status.message


def test_the_router_loads_the_planned_ruleset(outcome):
    for name in outcome.units_of(ROUTER):
        unit, workload = outcome.lab.units[name], outcome.workload(name)
        loaded = [e.stdin for e in unit.ctx.exec_history.get("router", []) if e.command == ["nft", "-f", "-"]]
        assert loaded, f"{name}: nft never ran"
        assert loaded[-1] == workload.ruleset
        assert unit.container_file("router", unit.module.RULESET_PATH) == workload.ruleset
