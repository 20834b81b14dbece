"""The integration suite's own logic (tests/integration/helpers.py and tools/integration.py),
on status and task objects of jubilant's and jubilant_backports' own types, parsed from the JSON
`juju status` and `juju run` print: it is known to work before a cluster ever runs it."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import jubilant
import jubilant_backports
import pytest
import yaml
from integration import cluster, helpers
from integration.conftest import SUITE_CHARMS, Models

ROOT = Path(__file__).resolve().parent.parent
DIALECTS = [jubilant, jubilant_backports]


def _status(module: Any, apps: dict[str, dict[str, tuple[str, str, bool]]]) -> Any:
    """A Status of `module` parsed from `juju status --format json`: app -> unit -> (workload,
    agent, leader)."""
    raw = {
        "model": {"name": "m", "type": "caas", "controller": "c", "cloud": "microk8s", "version": "3.6.4"},
        "machines": {},
        "applications": {
            app: {
                "charm": app,
                "charm-origin": "local",
                "charm-name": app,
                "charm-rev": 0,
                "exposed": False,
                "application-status": {"current": "active"},
                "units": {
                    unit: {
                        "workload-status": {"current": workload, "message": f"{unit} says {workload}"},
                        "juju-status": {"current": agent},
                        "leader": leader,
                    }
                    for unit, (workload, agent, leader) in units.items()
                },
            }
            for app, units in apps.items()
        },
    }
    return module.Status._from_dict(json.loads(json.dumps(raw)))


def _task(module: Any, results: dict[str, Any]) -> Any:
    return module.Task(id="1", status="completed", results=results)


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_settled_and_unit_problems(module: Any) -> None:
    status = _status(
        module,
        {
            "net": {"net/0": ("active", "idle", True)},
            "router": {"router/0": ("blocked", "idle", True), "router/1": ("active", "executing", False)},
        },
    )
    assert helpers.unit_problems(status, ["net"]) == []
    assert helpers.settled(["net"])(status)
    assert helpers.unit_problems(status, ["router", "cache"]) == [
        "router/0: blocked (router/0 says blocked)",
        "router/1: agent executing",
        "cache: not in the model",
    ]
    assert not helpers.settled(["net", "router"])(status)
    # OSM's wait: active or blocked, agents idle.
    assert helpers.unit_problems(status, ["router"], ("active", "blocked")) == ["router/1: agent executing"]


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_errored_only_for_the_named_applications(module: Any) -> None:
    status = _status(module, {"a": {"a/0": ("error", "idle", True)}, "b": {"b/0": ("waiting", "idle", True)}})
    assert helpers.errored(["a"])(status)
    assert not helpers.errored(["b", "c"])(status)


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_leader_unit(module: Any) -> None:
    status = _status(
        module, {"a": {"a/0": ("active", "idle", False), "a/3": ("active", "idle", True)}, "b": {}}
    )
    assert helpers.leader_unit(status, "a") == "a/3"
    with pytest.raises(LookupError, match="0 leaders"):
        helpers.leader_unit(status, "b")
    with pytest.raises(LookupError, match="not in the model"):
        helpers.leader_unit(status, "zz")


class FakeJuju:
    """status() and run() as jubilant's Juju answers them."""

    def __init__(self, module: Any, status: Any) -> None:
        self.module, self._status, self.calls = module, status, []

    def status(self) -> Any:
        return self._status

    def run(self, unit: str, action: str, params: Any = None, *, wait: float | None = None) -> Any:
        self.calls.append((unit, action, params))
        return _task(self.module, {"ok": "yes"})


VNFD = yaml.safe_load((ROOT / "osm" / "cdn_knf" / "cdn_vnfd.yaml").read_text())


def test_vnfd_primitives_and_osm_s_conversions() -> None:
    initial, day2 = helpers.vnfd_primitives(VNFD, "cdn")
    assert [p.name for p in initial] == ["generate-content", "check-connectivity"]
    assert initial[0].params() == {
        "application-name": "cdn-content-server",
        "name": "video.avi",
        "size": "50M",
        "wait": 120,
    }
    fetch = day2["fetch-content"]
    with pytest.raises(ValueError, match="'name' has no default"):
        fetch.params()
    assert fetch.params({"name": "v", "url": ""}) == {
        "application-name": "cdn-cache",
        "name": "v",
        "url": "",
        "rate-limit": "0",
        "wait": 0,
    }
    assert day2["purge"].params({"name": "", "all": "true"})["all"] is True
    assert day2["purge"].params({"name": "", "all": "false"})["all"] is False
    with pytest.raises(ValueError, match="not declared"):
        day2["list-rules"].params({"verbose": "1"})
    assert (
        day2["list-content"].application({"application-name": "cdn-content-server"}) == "cdn-content-server"
    )
    with pytest.raises(KeyError):
        helpers.vnfd_primitives(VNFD, "other")


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_run_primitive_on_the_named_application_s_leader(module: Any) -> None:
    status = _status(
        module,
        {"cdn-cache": {"cdn-cache/0": ("active", "idle", False), "cdn-cache/1": ("active", "idle", True)}},
    )
    juju = FakeJuju(module, status)
    _, day2 = helpers.vnfd_primitives(VNFD, "cdn")
    task = helpers.run_primitive(juju, day2["check-connectivity"], {"target": "10.0.2.10"})
    assert task.results == {"ok": "yes"}
    assert juju.calls == [
        (
            "cdn-cache/1",
            "check-connectivity",
            {"application-name": "cdn-cache", "target": "10.0.2.10", "count": 3},
        )
    ]


def test_osm_model_name() -> None:
    name = helpers.osm_model_name("cdn")
    assert name.startswith("cdn-") and len(name) == 4 + 36
    with pytest.raises(ValueError, match="36-character"):
        helpers.osm_model_name("cdn", "1234")
    with pytest.raises(ValueError, match="over 63"):
        helpers.osm_model_name("x" * 30, "0" * 36)


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_switches_missing(module: Any) -> None:
    nodes = [
        {"name": "a", "switch": "s-a", "device-id": "of:1", "ready": True},
        {"name": "b", "switch": "s-b", "device-id": "of:2", "ready": True},
        {"name": "c", "switch": "s-c", "device-id": "of:3", "ready": False},
    ]
    topology = _task(module, {"nodes": json.dumps(nodes)}).results
    status = _task(
        module,
        {"switches": json.dumps([{"id": "of:1", "available": True}, {"id": "of:2", "available": False}])},
    ).results
    assert helpers.switches_missing(topology, status) == [
        "b: of:2 not connected to the controller",
        "c: switch s-c not ready",
    ]
    assert helpers.switches_missing({"nodes": "[]"}, status) == ["show-topology lists no node"]
    with pytest.raises(KeyError, match="switches"):
        helpers.switches_missing(topology, {"rest": "not ready"})


def test_network_plan_and_members_problems() -> None:
    plan = helpers.network_plan(yaml.safe_load((ROOT / "bundles" / "cdn.yaml").read_text()))
    assert plan == {
        "my-first-osm-net": {"cdn-router": "10.0.1.1/24", "cdn-cache": "10.0.1.10/24"},
        "my-second-osm-net": {"cdn-content-server": "10.0.2.10/24", "cdn-router": "10.0.2.1/24"},
    }
    show = {
        "members": json.dumps(
            {"cdn-router/0": {"address": "10.0.1.1/24"}, "cdn-cache/0": {"address": "10.0.1.10/24"}}
        )
    }
    assert helpers.members_problems(helpers.network_members(show), plan["my-first-osm-net"]) == []
    members = {"cdn-router/1": "10.0.1.2/24", "cdn-router/2": "", "other/0": "10.0.1.3/24"}
    assert helpers.members_problems(members, {**plan["my-first-osm-net"], "pool": ""}) == [
        "cdn-cache: no unit is a member",
        "cdn-router/1: 10.0.1.2/24, asked for 10.0.1.1/24",
        "cdn-router/2: no address",
        "pool: no unit is a member",
        "other/0: a member, not in the bundle",
    ]


def test_connectivity_problems() -> None:
    good = {
        "target": "10.0.2.10",
        "received": "3",
        "reached": "true",
        "ttl": "63",
        "hops": "10.0.1.1 10.0.2.10",
    }
    assert helpers.connectivity_problems(good, ttl=63, hops=["10.0.1.1", "10.0.2.10"]) == []
    bad = {**good, "received": "0", "reached": "false", "ttl": "64", "hops": "10.0.2.10", "errors": "ping: x"}
    assert helpers.connectivity_problems(bad, ttl=63, hops=["10.0.1.1", "10.0.2.10"]) == [
        "no reply from 10.0.2.10 (ping: x)",
        "the trace did not reach 10.0.2.10: hops '10.0.2.10'",
        "ttl '64', expected 63",
        "hops '10.0.2.10', expected '10.0.1.1 10.0.2.10'",
    ]


def test_listed_bytes_and_resume_problems() -> None:
    listing = {"complete": "a.bin 10\nb.bin 20", "partial": "it.bin 4096"}
    assert helpers.listed_bytes(listing, "partial", "it.bin") == 4096
    assert helpers.listed_bytes(listing, "complete", "it.bin") is None
    done = {"state": "done", "sha256": "ab", "resumed-from": 5000, "bytes": 10000}
    assert helpers.resume_problems(done, "ab", 4096) == []
    assert helpers.resume_problems({**done, "resumed-from": 0}, "ab", 4096) == [
        "resumed from byte 0: expected at or after the cut (4096) and below 10000"
    ]
    assert helpers.resume_problems({"state": "failed", "error": "e"}, "ab", 1)[:2] == [
        "state 'failed' (e)",
        "sha256 None, origin's 'ab'",
    ]


def test_bundles_with_local_charms_and_another_offer(tmp_path: Path) -> None:
    bundle = yaml.safe_load((ROOT / "osm" / "cdn_knf" / "juju-bundles" / "bundle.yaml").read_text())
    (tmp_path / "l2sm-network").mkdir()
    nested = tmp_path / "l2sm-network" / "l2sm-network_ubuntu@22.04-amd64.charm"
    nested.touch()
    (tmp_path / "cdn-cache_ubuntu@22.04-amd64.charm").touch()
    local = helpers.local_charms(bundle, tmp_path)
    assert local["applications"]["my-first-osm-net"]["charm"] == str(nested)
    assert local["applications"]["cdn-cache"]["charm"] == str(tmp_path / "cdn-cache_ubuntu@22.04-amd64.charm")
    assert helpers.charms_of(bundle) == {"l2sm-network", "cdn-content-server", "cdn-router", "cdn-cache"}
    moved = helpers.with_offer(bundle, "l2sm-controller", "admin/it-l2sm.l2sm-controller")
    assert moved["saas"]["l2sm-controller"]["url"] == "admin/it-l2sm.l2sm-controller"
    assert bundle["saas"]["l2sm-controller"]["url"] == "admin/l2sm.l2sm-controller"  # a copy
    with pytest.raises(KeyError, match="no 'db'"):
        helpers.with_offer(bundle, "db", "x")


def test_wait_for_returns_the_answer_or_names_what_it_waited_for() -> None:
    now = [0.0]
    answers = iter([None, 0, 7])
    assert (
        helpers.wait_for("x", lambda: next(answers), 10, 1, clock=lambda: now[0], sleep=lambda s: None) == 7
    )

    def tick(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(TimeoutError, match=r"waiting for the file \(last: 0\)"):
        helpers.wait_for("the file", lambda: 0, 5, 2, clock=lambda: now[0], sleep=tick)


def test_leftovers() -> None:
    selector = helpers.leftover_selector(["m2", "m1"])
    assert selector == "app.kubernetes.io/managed-by=juju-l2sm-charms,l2sm-charms.juju.is/model in (m1,m2)"
    listing = {
        "items": [
            {"kind": "L2Network", "metadata": {"name": "net", "namespace": "m1"}},
            {"kind": "CustomResourceDefinition", "metadata": {"name": "l2networks.l2sm.l2sm.k8s.local"}},
        ]
    }
    assert helpers.leftovers(listing) == [
        "CustomResourceDefinition l2networks.l2sm.l2sm.k8s.local",
        "L2Network m1/net",
    ]


def _done(args: list[str], out: str = "", err: str = "", code: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(args, code, out, err)


def _juju(
    controller_json: dict[str, Any] | None, clouds: dict[str, Any], cli: str = "3.6.4-genericlinux-amd64"
):
    def run(args: Any) -> subprocess.CompletedProcess[str]:
        args = list(args)
        if args[1] == "version":
            return _done(args, json.dumps(cli))
        if args[1] == "show-controller":
            if controller_json is None:
                return _done(args, err="ERROR No controllers registered.\n\nPlease either create...", code=1)
            return _done(args, json.dumps(controller_json))
        return _done(args, json.dumps(clouds))

    return run


def test_probe_says_in_one_line_what_is_missing() -> None:
    env = helpers.probe(which=lambda _: None)
    assert env.missing.startswith("no `juju` command on PATH")
    env = helpers.probe(run=_juju(None, {}), which=lambda _: "/snap/bin/juju")
    assert env.missing.startswith(
        "no reachable Juju controller (`juju show-controller`: ERROR No controllers"
    )
    assert "\n" not in env.missing
    lxd = {"lxd-c": {"details": {"cloud": "localhost", "agent-version": "3.6.4"}}}
    env = helpers.probe(run=_juju(lxd, {"localhost": {"type": "lxd"}}), which=lambda _: "juju")
    assert env.missing.startswith(
        "controller 'lxd-c' is on cloud 'localhost' of type 'lxd', not a Kubernetes cloud"
    )


@pytest.mark.parametrize(
    ("agent", "cli", "dialect", "missing"),
    [
        ("3.6.4", "3.6.4-genericlinux-amd64", "jubilant", ""),
        ("4.0.1", "4.0.1-genericlinux-amd64", "jubilant", ""),
        ("2.9.43", "2.9.43-ubuntu-amd64", "backports", ""),
        ("2.9.43", "3.6.4-genericlinux-amd64", "backports", "the juju command is 3.6.4"),
    ],
)
def test_probe_picks_the_dialect_from_the_controller(
    agent: str, cli: str, dialect: str, missing: str
) -> None:
    k8s = {
        "mk8s": {
            "details": {"cloud": "microk8s", "agent-version": agent},
            "account": {"user": "alice", "access": "superuser"},
        }
    }
    env = helpers.probe("mk8s", run=_juju(k8s, {"microk8s": {"type": "k8s"}}, cli), which=lambda _: "juju")
    assert (env.controller, env.user, env.cloud, env.dialect) == ("mk8s", "alice", "microk8s", dialect)
    assert env.missing.startswith(missing) if missing else env.missing == ""


def test_the_suite_reads_the_cache_s_own_status_dir() -> None:
    tree = ast.parse((ROOT / "charms" / "cdn-knfs" / "cdn-cache" / "src" / "charm.py").read_text())
    status_dir = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "STATUS_DIR" for t in n.targets)
    )
    suite = (ROOT / "tests" / "integration" / "test_cdn.py").read_text()
    assert f'FETCH_STATUS = "{status_dir}/fetch.json"' in suite


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location(
        "l2sm_integration_runner", ROOT / "tools" / "integration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_runner_verdicts() -> None:
    verdict = _runner().verdict
    reason = "no `juju` command on PATH"
    skipped = {"t1": ("skipped", reason), "t2": ("skipped", reason)}
    assert verdict(0, skipped, reason) == (0, f"integration: skipped (2 tests): {reason}")
    # Skipped for another reason, or a controller found: pytest's own verdict.
    assert verdict(0, {"t1": ("skipped", "other")}, reason) == (0, "")
    assert verdict(1, {**skipped, "t3": ("failed", "")}, reason) == (1, "")
    assert verdict(0, {"t1": ("passed", "")}, "") == (0, "")
    assert verdict(5, {}, reason)[0] == 5
    assert verdict(0, {}, "")[0] == 5


@pytest.mark.slow
def test_make_integration_here_skips_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "integration.py"), "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},  # no juju on this PATH, whatever the machine has
        cwd=ROOT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("integration:")]
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("integration: skipped ("), done.stdout
    assert lines[0].endswith("tests): no `juju` command on PATH (tools/setup-microk8s.sh sets one up)")


SETUP = ROOT / "tools" / "setup-microk8s.sh"


def test_the_setup_script_parses_and_names_what_exists() -> None:
    subprocess.run(["bash", "-n", str(SETUP)], check=True)
    text = SETUP.read_text()
    assert text.splitlines()[:1] == ["#!/usr/bin/env bash"] and "set -euo pipefail" in text
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", text))
    assert named and named <= targets, f"make targets not in the Makefile: {sorted(named - targets)}"
    paths = set(re.findall(r"\./((?:bundles|tools)/[\w@./-]+)", text)) | set(
        re.findall(r"\btools/[\w.-]+", text)
    )
    assert {"bundles/l2sm.yaml", "bundles/overlays/l2sm-local-charms.yaml"} <= paths
    assert [p for p in paths if not (ROOT / p).is_file()] == []
    for flag in ("--juju-channel", "--microk8s-channel", "--no-deploy"):
        assert flag in text


def test_the_setup_script_s_juju_commands_are_the_readme_s() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"\bjuju (bootstrap|add-model|deploy)\b([^\"\n|&;]*)", SETUP.read_text())
    assert {verb for verb, _ in commands} == {"bootstrap", "add-model", "deploy"}
    # A command on a cloud the script names by variable (the strict Juju's) is the next test's.
    for verb, rest in [(verb, rest) for verb, rest in commands if rest.strip()]:
        command = re.sub(r"\s+-m \S+", "", f"juju {verb}{rest}").strip()
        assert command in readme, f"{command!r} is not how the README says it"


def test_the_setup_script_refuses_an_unknown_juju_channel() -> None:
    done = subprocess.run(
        ["bash", str(SETUP), "--juju-channel", "1.25/stable"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--juju-channel" in done.stderr


# -- the leftover check, on kubectl's own output --------------------------------------------

METRICS_DOWN = (
    "E0101 00:00:00.000000   1 memcache.go:287] couldn't get resource list for metrics.k8s.io/v1beta1: "
    "the server is currently unable to handle the request\n"
    "error: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: "
    "the server is currently unable to handle the request\n"
)
API_RESOURCES = (
    "pods\nservices\nsecrets\ncustomresourcedefinitions.apiextensions.k8s.io\nwidgets.example.io\n"
)


class FakeKubectl:
    """`kubectl api-resources` and `kubectl get` answered from canned output: `objects` by
    kind, `broken` kinds whose get fails (as a kind of a dead aggregated API does)."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], broken: dict[str, str], discovery=("", 0)):
        self.objects, self.broken, self.discovery, self.calls = objects, broken, discovery, []

    def __call__(self, args: Any) -> subprocess.CompletedProcess[str]:
        args = list(args)
        self.calls.append(args)
        if args[1] == "api-resources":
            err, code = self.discovery
            return _done(args, API_RESOURCES, err, code)
        assert args[1] == "get" and args[3:6] == ["-A", "-l", helpers.leftover_selector(["m"])], args
        kinds = args[2].split(",")
        failing = [k for k in kinds if k in self.broken]
        if failing:
            return _done(args, "", f"Error from server: {self.broken[failing[0]]}\n", 1)
        items = [item for kind in kinds for item in self.objects.get(kind, [])]
        return _done(args, json.dumps({"kind": "List", "items": items}))


def _svc(name: str) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "m"}}


def test_listable_kinds_keeps_what_discovery_found() -> None:
    listed = _done(["kubectl"], API_RESOURCES, METRICS_DOWN, 1)
    kinds, problems = helpers.listable_kinds(listed)
    assert "services" in kinds and "widgets.example.io" in kinds and len(kinds) == 5
    assert len(problems) == 2 and all("metrics.k8s.io/v1beta1" in p for p in problems)
    assert helpers.listable_kinds(_done(["kubectl"], "", "", 1)) == ([], ["kubectl api-resources exited 1"])
    assert helpers.listable_kinds(_done(["kubectl"], API_RESOURCES))[1] == []


def test_a_scan_skips_kinds_not_ours_that_kubectl_cannot_list() -> None:
    fake = FakeKubectl({"services": [_svc("a-sdn")]}, {"widgets.example.io": "the server could not find it"})
    found = cluster.scan(["kubectl"], helpers.leftover_selector(["m"]), run=fake)
    assert found.left == ["Service m/a-sdn"] and found.unknown == []
    assert found.skipped == ["widgets.example.io: Error from server: the server could not find it"]
    # One get of them all, then one per kind once that failed.
    assert [c[2] for c in fake.calls[1:]] == [
        ",".join(sorted(API_RESOURCES.split())),
        *sorted(API_RESOURCES.split()),
    ]
    assert not found.clean and "left behind after x: ['Service m/a-sdn']" in found.report("x")


def test_a_scan_cannot_conclude_when_one_of_our_kinds_fails() -> None:
    fake = FakeKubectl({}, {"secrets": "forbidden"})
    found = cluster.scan(["kubectl"], helpers.leftover_selector(["m"]), run=fake)
    assert found.left == [] and found.unknown == ["secrets: Error from server: forbidden"]
    assert not found.clean and found.report("x").startswith("cannot tell what is left after x")
    down = FakeKubectl(
        {},
        {},
        (
            "error: unable to retrieve the complete list of server APIs: "
            "l2sm.l2sm.k8s.local/v1: stale GroupVersion discovery",
            1,
        ),
    )
    assert not cluster.scan(["kubectl"], helpers.leftover_selector(["m"]), run=down).clean
    metrics = FakeKubectl({}, {}, (METRICS_DOWN, 1))
    found = cluster.scan(["kubectl"], helpers.leftover_selector(["m"]), run=metrics)
    assert found.clean and len(found.skipped) == 2
    nothing = helpers.scan_leftovers([], ["error: connection refused"], lambda kinds: None)
    assert nothing.unknown == ["no listable kind found: error: connection refused"]


class RemovingJuju:
    """remove_application, cli and wait as jubilant's Juju does them, on `juju status` JSON."""

    def __init__(self, module: Any) -> None:
        self.module, self.model, self.calls = module, "c:m", []

    def remove_application(self, *apps: str, destroy_storage: bool = False) -> None:
        self.calls.append(("remove-application", *apps))

    def cli(self, *args: str) -> str:
        self.calls.append(args)
        return ""

    def wait(self, ready: Any, **_: Any) -> Any:
        status = _status(self.module, {})
        assert ready(status)
        remote = dataclasses.replace(status, app_endpoints={"l2sm-controller": object()})
        self.calls.append(("wait", "saas" if not ready(remote) else "apps"))
        return status


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_remove_and_check_says_what_is_left_never_a_kubectl_error(module: Any) -> None:
    juju = RemovingJuju(module)
    fake = FakeKubectl({"services": [_svc("a-sdn")]}, {"widgets.example.io": "gone"}, (METRICS_DOWN, 1))
    with pytest.raises(AssertionError, match=r"left behind after removing a, b: \['Service m/a-sdn'\]"):
        cluster.remove_and_check(juju, ["a", "b"], ["kubectl"], ["l2sm-controller"], run=fake, timeout=0)
    # The applications go, then the saas (its offer's connection), each waited for.
    assert juju.calls == [
        ("remove-application", "a", "b"),
        ("wait", "apps"),
        ("remove-saas", "l2sm-controller"),
        ("wait", "saas"),
    ]
    clean = FakeKubectl({}, {"widgets.example.io": "gone"})
    with pytest.warns(UserWarning, match="not checked .*widgets.example.io"):
        cluster.remove_and_check(RemovingJuju(module), ["a"], ["kubectl"], run=clean, timeout=0)


def test_the_labelled_kinds_are_those_cluster_access_lists() -> None:
    """Every kind docs/cluster-access.md says a charm labels (identity or owner labels) is one the
    leftover check insists on listing."""
    rows = re.findall(
        r"^\| ([A-Z]\w+)[^|]*\|[^|]*\|[^|]*\| (identity|owner) labels",
        (ROOT / "docs" / "cluster-access.md").read_text(),
        re.MULTILINE,
    )
    kinds = {kind for kind, _ in rows}
    assert kinds and kinds <= set(helpers.LABELLED_KINDS), sorted(kinds - set(helpers.LABELLED_KINDS))


@pytest.mark.parametrize("module", DIALECTS, ids=lambda m: m.__name__)
def test_offers_connected(module: Any) -> None:
    status = _status(module, {})
    offers = {
        "l2sm-controller": module.statustypes.OfferStatus._from_dict(
            {
                "application": "l2sm-controller",
                "endpoints": {},
                "total-connected-count": 1,
                "active-connected-count": 0,
            }
        ),
        "idle": module.statustypes.OfferStatus._from_dict({"application": "x", "endpoints": {}}),
    }
    assert helpers.offers_connected(dataclasses.replace(status, offers=offers)) == {
        "l2sm-controller": "1 connected, 0 active"
    }


class FakeModelJuju:
    def __init__(self, log: list[str], model: str | None = None, wait_timeout: float | None = None) -> None:
        self.log, self.model = log, model

    def add_model(self, name: str, controller: str | None = None) -> None:
        self.log.append(f"add {controller}:{name}")

    def debug_log(self) -> str:
        return f"log of {self.model}"

    def destroy_model(self, model: str, destroy_storage: bool = False, force: bool = False) -> None:
        if model.endswith("broken"):
            raise jubilant.CLIError(1, ["juju"], stderr="ERROR cannot destroy")
        self.log.append(f"destroy {model}")


def test_models_are_qualified_and_destroyed_last_made_first(tmp_path: Path) -> None:
    log: list[str] = []
    dialect = types.SimpleNamespace(Juju=lambda **kw: FakeModelJuju(log, **kw), CLIError=jubilant.CLIError)
    models = Models(dialect=dialect, prefix="p", controller="ctl", create=True, existing_ok=False)  # type: ignore[arg-type]
    assert models.existing("l2sm").model == "ctl:l2sm" and models.made == []
    for name in ("p-l2sm", "broken", "p-cdn"):
        models.get(name)
    assert models.teardown(str(tmp_path / "logs"), destroy=True) == ["ctl:broken: ERROR cannot destroy"]
    assert log == [
        "add ctl:p-l2sm",
        "add ctl:broken",
        "add ctl:p-cdn",
        "destroy ctl:p-cdn",
        "destroy ctl:p-l2sm",
    ]
    assert (tmp_path / "logs" / "ctl-p-l2sm-juju-debug.log").read_text() == "log of ctl:p-l2sm"


def _setup_lines() -> list[str]:
    return [line.strip() for line in SETUP.read_text().splitlines() if not line.strip().startswith("#")]


def _first(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_the_setup_script_gives_a_strict_juju_the_cluster_as_a_cloud() -> None:
    """A strict Juju (3.x, 4) sees the built-in microk8s cloud only with a strict MicroK8s: with
    another confinement it gets `microk8s config` through add-k8s, and bootstraps that cloud;
    ~/.local/share exists before any bootstrap (the strict snap cannot make it)."""
    lines = _setup_lines()
    cloud = re.search(r"^ADDED_CLOUD=([\w-]+)$", SETUP.read_text(), re.MULTILINE)
    assert cloud and cloud.group(1) != "microk8s"  # the built-in cloud's name is taken
    add = _first(lines, r'sudo microk8s config \| juju add-k8s "\$ADDED_CLOUD" --client$')
    boot = _first(lines, r'^juju bootstrap "\$ADDED_CLOUD"$')
    assert add < boot
    assert _first(lines, r'mkdir -p "\$HOME/.local/share"') < _first(lines, r"juju bootstrap")
    same = _first(lines, r'if \[ "\$\(confinement juju\)" = "\$\(confinement microk8s\)" \]')
    assert same < _first(lines, r'sg "\$MK8S_GROUP" -c "juju bootstrap microk8s"') < add


def test_the_setup_script_uses_the_group_of_the_microk8s_installed() -> None:
    lines = _setup_lines()
    assert (
        "MK8S_GROUP=microk8s" in lines
        and '[ "$(confinement microk8s)" = classic ] || MK8S_GROUP=snap_microk8s' in lines
    )
    assert not [line for line in lines if re.search(r"-G snap_microk8s|sg snap_microk8s", line)]


def test_the_setup_script_packs_the_suite_s_charms_in_an_initialised_lxd() -> None:
    text = SETUP.read_text()
    charms = re.search(r'^CHARMS="([^"]+)"$', text, re.MULTILINE)
    assert charms and tuple(charms.group(1).split()) == SUITE_CHARMS
    assert re.search(r"^BASE=(\S+)$", text, re.MULTILINE).group(1) == helpers.CHARM_BASE  # type: ignore[union-attr]
    lines = _setup_lines()
    pack = _first(lines, r"charmcraft pack")
    assert _first(lines, r"lxd init --auto") < pack and _first(lines, r"usermod -a -G lxd") < pack
    # The lxd group is new to this shell too; no --destructive-mode (it builds on the host).
    assert 'sg lxd -c "charmcraft pack --platform $BASE:amd64"' in lines[pack]
    assert "--destructive-mode" not in text


def test_the_setup_script_leaves_kubectl_working_in_this_shell() -> None:
    """The suite's kubectl must work without the MicroK8s group (not active until a new login):
    kubectl installed and ~/.kube/config written from `microk8s config`, an existing one kept."""
    lines = _setup_lines()
    write = _first(lines, r'sudo microk8s config >"\$HOME/.kube/config"')
    assert 'if [ ! -s "$HOME/.kube/config" ]; then' in lines[write - 2 : write]
    assert "umask 077" in lines[write]
    assert _first(lines, r"command -v kubectl .*snap install kubectl") < write
    assert "--kubectl" in lines[-1] or "KUBECONFIG_NOTE" in lines[-1]
