"""The CDN KNFs' workloads and actions in namespaces, with the core code the charms run:
bundles/cdn.yaml as three namespaces (cache | router | content server) joined by two veth
pairs, no Open vSwitch. Needs root, nginx and nft."""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_core.netlink import apply_plans
from l2sm_lab import actions, knfs
from l2sm_lab.actions import ActionFailed
from l2sm_lab.bundle import find_charms, read_bundle
from l2sm_lab.plan import LabPlan, Paths, plan_lab
from l2sm_lab.procs import LabState, run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nginx") or not shutil.which("nft"),
    reason="needs root, nginx and nft",
)
ROLES = {"cdn-cache/0": "cache", "cdn-router/0": "router", "cdn-content-server/0": "server"}
SERVER, CACHE, ROUTER = "cdn-content-server/0", "cdn-cache/0", "cdn-router/0"


@dataclass
class Ctx:
    plan: LabPlan
    state: LabState
    namespaces: dict[str, str]

    def unit_ns(self, unit: str) -> str:
        return self.namespaces[unit]

    def replan(self) -> LabPlan:
        self.plan = _plan(self.state)
        return self.plan


def _paths(state: LabState):
    def paths(unit: str) -> Paths:
        base = state.root / "units" / unit.replace("/", "-")
        return Paths(str(base / "content"), str(base / "run"), str(base / "nginx.conf"), str(base / "status"))

    return paths


def _plan(state: LabState) -> LabPlan:
    bundle = read_bundle(ROOT / "bundles" / "cdn.yaml", find_charms(ROOT))
    return plan_lab(
        bundle,
        paths=_paths(state),
        added_rules=actions.added_rules(state),
        cut_links=actions.cut_links(state),
    )


@pytest.fixture(scope="module")
def ctx():
    # Not pytest's tmp_path: its parents are 0700, and nginx's workers (nobody) must get in.
    root = Path(tempfile.mkdtemp(prefix="l2sm-knfs-", dir="/tmp"))
    root.chmod(0o755)
    lab = "k" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    state = LabState.create(root, lab)
    try:
        namespaces = {unit: state.make_netns(role) for unit, role in ROLES.items()}
        cache, router, server = (namespaces[u] for u in (CACHE, ROUTER, SERVER))
        # Made inside the namespaces: no interface ever exists on the host.
        run(
            ["ip", "link", "add", "net1", "type", "veth", "peer", "name", "net1", "netns", router],
            netns=cache,
        )
        run(
            ["ip", "link", "add", "net1", "type", "veth", "peer", "name", "net2", "netns", router],
            netns=server,
        )
        context = Ctx(_plan(state), state, namespaces)
        for unit in context.plan.units.values():
            apply_plans(unit.interfaces, netns=namespaces[unit.name])
        for name in (ROUTER, SERVER, CACHE):
            knfs.start_workload(state, context.plan.units[name], namespaces[name])
        yield context
    finally:
        try:
            state.teardown()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _snapshot(state: LabState) -> tuple[str, list[str]]:
    return json.dumps(state.data, sort_keys=True), [p.name for p in state.procs]


def test_workloads_run_in_their_namespaces(ctx):
    server = ctx.plan.units[SERVER]
    assert server.workload is not None
    assert Path(server.workload.paths.content_dir, "manifest.json").is_file()  # even when empty
    assert ctx.state.alive(knfs.proc_name(SERVER, "nginx")) and ctx.state.alive(
        knfs.proc_name(CACHE, "nginx")
    )
    router = ctx.plan.units[ROUTER]
    assert knfs.loaded_ruleset(router) == router.workload.ruleset  # type: ignore[union-attr]
    listed = run(["nft", "list", "table", "inet", "cdn_router"], netns=ctx.unit_ns(ROUTER)).stdout
    assert "cache-to-origin" in listed


def test_generated_content_is_fetched_by_the_cache_verified(ctx):
    made = actions.run_action(ctx, SERVER, "generate-content", {"name": "a.bin", "size": "1M", "wait": "30"})
    assert made["state"] == "done" and made["manifest"] == "refreshed"
    listing = actions.run_action(ctx, SERVER, "list-content", {})
    name, size, sha = listing["files"].split()
    assert (name, size) == ("a.bin", str(1024 * 1024)) and sha == made["sha256"]
    got = actions.run_action(ctx, CACHE, "fetch-content", {"name": "a.bin", "wait": "30"})
    assert got["state"] == "done" and got["sha256"] == sha
    assert got["url"] == "http://10.0.2.10:80/a.bin" and got["resumed"] == "false"
    assert set(got) >= {"name", "url", "state", "bytes", "total", "sha256", "resumed", "resumed-from"}
    cached = actions.run_action(ctx, CACHE, "list-content", {"application-name": "cdn-cache"})
    assert cached["complete"] == f"a.bin {1024 * 1024}"
    with pytest.raises(ActionFailed, match="already in the content: remove-content it first"):
        actions.run_action(ctx, SERVER, "generate-content", {"name": "a.bin", "size": "1K"})


def test_bad_params_are_refused_naming_the_parameter_with_nothing_changed(ctx):
    before = _snapshot(ctx.state)
    cases = [
        (CACHE, "fetch-content", {"name": "a.bin", "url": "http://10.0.2.10/a.bin"}, "exactly one"),
        (CACHE, "fetch-content", {"name": "a.bin", "wait": "soon"}, "parameter 'wait'"),
        (CACHE, "fetch-content", {"name": "a.bin", "colour": "red"}, "parameter 'colour': unknown parameter"),
        (CACHE, "purge", {"all": "1"}, "parameter 'all'"),
        (SERVER, "generate-content", {"name": "../x", "size": "1M"}, "parameter 'name'"),
        (SERVER, "generate-content", {"name": "b.bin", "size": "50MB"}, "parameter 'size'"),
        (ROUTER, "set-link", {"network": "nowhere", "state": "down"}, "parameter 'network'"),
        (ROUTER, "set-link", {"network": "my-first-osm-net", "state": "off"}, "parameter 'state'"),
        (CACHE, "check-connectivity", {"target": "example.com"}, "host names are not resolved"),
        (
            CACHE,
            "check-connectivity",
            {"application-name": "Bad_Name", "target": "10.0.2.10"},
            "application-name",
        ),
    ]
    for unit, action, params, message in cases:
        with pytest.raises(ActionFailed, match=re.escape(message)):
            actions.run_action(ctx, unit, action, params)
    assert _snapshot(ctx.state) == before


_JUNK = st.text(alphabet=string.ascii_letters + string.digits + "-_=./: ", max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(
        [(CACHE, "fetch-content"), (CACHE, "purge"), (SERVER, "generate-content"), (ROUTER, "add-rule")]
    ),
    junk=st.dictionaries(_JUNK, _JUNK, max_size=4),
    extra=_JUNK.filter(lambda k: k not in {"name", "url", "wait", "size", "all", "to", "from", "port"}),
)
def test_junk_params_never_start_a_process_nor_change_state(ctx, target, junk, extra):
    unit, action = target
    before = _snapshot(ctx.state)
    with pytest.raises(ActionFailed):
        # One key the action does not take: always refused, whatever the others hold.
        actions.run_action(ctx, unit, action, {**junk, f"x{extra}": "1"})
    assert _snapshot(ctx.state) == before


def test_a_cut_link_is_the_firewall_s_and_up_restores_it(ctx):
    reached = actions.run_action(ctx, CACHE, "check-connectivity", {"target": "10.0.2.10", "count": "2"})
    assert reached["received"] != "0" and reached["hops"] == "10.0.1.1 10.0.2.10"
    down = actions.run_action(ctx, ROUTER, "set-link", {"network": "my-second-osm-net", "state": "down"})
    assert json.loads(down["cut-links"]) == ["my-second-osm-net"]
    assert ctx.state.data["routers"]["cdn-router"]["cut"] == ["my-second-osm-net"]
    assert "my-second-osm-net" in actions.run_action(ctx, ROUTER, "list-rules", {})["cut-links"]
    cut = actions.run_action(ctx, CACHE, "check-connectivity", {"target": "10.0.2.10", "count": "1"})
    assert cut["received"] == "0"
    actions.run_action(ctx, ROUTER, "set-link", {"network": "my-second-osm-net", "state": "up"})
    back = actions.run_action(ctx, CACHE, "check-connectivity", {"target": "10.0.2.10", "count": "2"})
    assert back["received"] != "0"
    assert ctx.state.data["routers"]["cdn-router"]["cut"] == []


def test_router_rules_added_and_removed_by_action(ctx):
    added = actions.run_action(
        ctx,
        ROUTER,
        "add-rule",
        {
            "name": "web8080",
            "from": "my-first-osm-net",
            "to": "my-second-osm-net",
            "protocol": "tcp",
            "port": "8080",
        },
    )
    assert added["rules"] == "4"
    assert "web8080" in run(["nft", "list", "table", "inet", "cdn_router"], netns=ctx.unit_ns(ROUTER)).stdout
    with pytest.raises(ActionFailed, match="remove-rule name=web8080 first"):
        actions.run_action(
            ctx, ROUTER, "add-rule", {"name": "web8080", "from": "any", "to": "any", "protocol": "icmp"}
        )
    with pytest.raises(ActionFailed, match="comes from option 'rules'"):
        actions.run_action(ctx, ROUTER, "remove-rule", {"name": "ping"})
    assert actions.run_action(ctx, ROUTER, "remove-rule", {"name": "web8080"})["rules"] == "3"
    routes = json.loads(actions.run_action(ctx, ROUTER, "show-routes", {})["kernel-routes"])
    assert {r["prefix"] for r in routes} >= {"10.0.1.0/24", "10.0.2.0/24"}


def test_unknown_action_is_refused_listing_what_the_lab_runs(ctx):
    with pytest.raises(ActionFailed, match=r"no action 'reboot' of cdn-cache .*fetch-content"):
        actions.run_action(ctx, CACHE, "reboot", {})


def test_the_action_table_is_the_charms_run_action_lines():
    for charm, table in actions.ACTIONS.items():
        source = (ROOT / "charms" / "cdn-knfs" / charm / "src" / "charm.py").read_text()
        tree = ast.parse(source)
        handlers = {}  # method -> (params class, leader_only)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "run_action":
                leader = next((k.value for k in node.keywords if k.arg == "leader_only"), ast.Constant(True))
                assert isinstance(leader, ast.Constant) and isinstance(node.args[1], ast.Name)
                handlers[node.args[1].id] = leader.value
        observed = dict(re.findall(r"self\.on\.(\w+)_action, self\.(\w+)\)", source))
        assert {a.replace("_", "-") for a in observed} == set(table), charm
        for action, spec in table.items():
            assert spec.params in handlers, (charm, action)
            assert handlers[spec.params] == spec.leader_only, (charm, action)
