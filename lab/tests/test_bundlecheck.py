"""The bundle checker refuses each kind of broken bundle naming the application and the option
or endpoint, collects every problem rather than the first, and never raises on bad input."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_lab.bundle import Problem, core_offers, find_charms
from l2sm_lab.bundlecheck import check, main

ROOT = Path(__file__).resolve().parents[2]
CHARMS = find_charms(ROOT)
CDN = yaml.safe_load((ROOT / "bundles" / "cdn.yaml").read_text())
CORE = yaml.safe_load((ROOT / "bundles" / "l2sm.yaml").read_text())


def _write(tmp_path: Path, doc: object, name: str = "bundle.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def _check(tmp_path: Path, doc: object, overlays: tuple[object, ...] = ()) -> list[Problem]:
    paths = [_write(tmp_path, o, f"overlay{i}.yaml") for i, o in enumerate(overlays)]
    return check(_write(tmp_path, doc), paths, CHARMS)


def _one(problems: list[Problem], app: str | None, subject: str | None, *words: str) -> Problem:
    found = [p for p in problems if p.app == app and (subject is None or p.subject == subject)]
    assert found, f"no problem for {app} {subject}: {[str(p) for p in problems]}"
    text = str(found[0])
    for word in words:
        assert word in text, text
    return found[0]


def _cdn() -> dict:
    return copy.deepcopy(CDN)


def test_the_project_bundles_pass():
    for name in ("cdn.yaml", "cdn-one-model.yaml", "l2sm.yaml"):
        assert check(ROOT / "bundles" / name, charms=CHARMS) == []


def test_the_offers_are_read_from_the_core_bundle():
    offers = core_offers(ROOT)
    assert {k: (o.charm, o.endpoints) for k, o in offers.items()} == {
        "l2sm-controller": ("l2sm-controller", ("l2sm-controller",))
    }


def test_missing_endpoint(tmp_path):
    bundle = _cdn()
    bundle["relations"].append(["cdn-cache:nets", "my-first-osm-net:network"])
    _one(_check(tmp_path, bundle), "cdn-cache", "endpoint 'nets'", "no such endpoint", "networks")


def test_wrong_interface(tmp_path):
    bundle = _cdn()
    bundle["relations"].append(["cdn-cache:origin", "my-first-osm-net:network"])
    _one(
        _check(tmp_path, bundle),
        "cdn-cache",
        "endpoint 'origin'",
        "cdn_origin",
        "l2sm_network",
        "same interface",
    )


def test_same_roles_and_peers_are_refused(tmp_path):
    bundle = _cdn()
    bundle["relations"] += [
        ["cdn-cache:networks", "cdn-router:networks"],
        ["cdn-router:peers", "cdn-router:peers"],
    ]
    problems = _check(tmp_path, bundle)
    _one(problems, "cdn-cache", "endpoint 'networks'", "provide")
    router_peer = next(iter(yaml.safe_load((CHARMS["cdn-router"] / "charmcraft.yaml").read_text())["peers"]))
    bundle["relations"][-1] = [f"cdn-router:{router_peer}", f"cdn-router:{router_peer}"]
    _one(_check(tmp_path, bundle), "cdn-router", f"endpoint '{router_peer}'", "peer", "drop")


def test_unknown_option(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["options"]["colour"] = "red"
    _one(_check(tmp_path, bundle), "cdn-cache", "option 'colour'", "not an option", "origin-url")


@pytest.mark.parametrize(
    ("app", "option", "value", "words"),
    [
        ("cdn-cache", "port", "80", ["int"]),  # the Juju type
        ("cdn-cache", "port", 70000, ["TCP port"]),  # the charm's model
        ("my-first-osm-net", "cidr", "10.0.1.0/33", []),  # a CIDR
        ("cdn-router", "default-policy", "maybe", ["drop"]),  # an enum
    ],
)
def test_bad_option_value(tmp_path, app, option, value, words):
    bundle = _cdn()
    bundle["applications"][app]["options"][option] = value
    _one(_check(tmp_path, bundle), app, f"option '{option}'", *words)


def test_address_outside_its_network(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["options"]["addresses"] = "my-first-osm-net=10.0.2.10/24"
    _one(_check(tmp_path, bundle), "cdn-cache", "option 'addresses'", "10.0.2.10", "10.0.1.0/24")


def test_address_on_a_network_not_related(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["options"]["addresses"] = "my-second-osm-net=10.0.2.11/24"
    _one(_check(tmp_path, bundle), "cdn-cache", "option 'addresses'", "not related", "my-first-osm-net")


def test_unknown_saas_offer(tmp_path):
    bundle = _cdn()
    bundle["saas"]["l2sm-controller"]["url"] = "admin/l2sm.nothing"
    _one(_check(tmp_path, bundle), None, "saas 'l2sm-controller'", "nothing", "offers: l2sm-controller")


def test_unknown_charm(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["charm"] = "no-such-charm"
    problems = _check(tmp_path, bundle)
    _one(problems, "cdn-cache", "'charm'", "no-such-charm", "cdn-router")
    # Its relations are not reported again as unknown applications.
    assert [p.app for p in problems] == ["cdn-cache"]


def test_overlay_on_a_missing_application(tmp_path):
    overlay = {"applications": {"cdn-cahce": {"options": {"port": 8080}}}}
    _one(_check(tmp_path, _cdn(), (overlay,)), "cdn-cahce", None, "no such application", "cdn-cache")


def test_overlays_merge_as_juju_merges_them(tmp_path):
    overlay = {
        "applications": {
            "cdn-cache": {"options": {"port": 8080}},
            "extra-net": {"charm": "l2sm-network", "trust": True, "options": {"cidr": "10.0.3.0/24"}},
            "cdn-content-server": None,  # removed, with its relations
        },
        "relations": [["extra-net:controller", "l2sm-controller"]],
    }
    (tmp_path / "o").mkdir()
    assert check(_write(tmp_path, _cdn()), [_write(tmp_path / "o", overlay)], CHARMS) == []
    # The options of an application are merged, not replaced: the base's addresses stay.
    bad = {"applications": {"cdn-cache": {"options": {"addresses": "my-first-osm-net=10.0.9.1/24"}}}}
    _one(_check(tmp_path, _cdn(), (overlay, bad)), "cdn-cache", "option 'addresses'", "10.0.9.1")


def test_a_packed_charm_is_read_as_its_source_charm(tmp_path):
    (tmp_path / "o").mkdir()
    overlay: dict[str, Any] = {
        "applications": {"cdn-router": {"charm": "./cdn-router_ubuntu@22.04-amd64.charm"}}
    }
    problems = check(_write(tmp_path, _cdn()), [_write(tmp_path / "o", overlay)], CHARMS)
    # A local charm takes every resource explicitly, as the charm names it upstream.
    _one(problems, "cdn-router", "resource 'router-image'", "local charm")
    overlay["applications"]["cdn-router"]["resources"] = {"router-image": "busybox"}
    problems = check(_write(tmp_path, _cdn()), [_write(tmp_path / "o", overlay)], CHARMS)
    _one(problems, "cdn-router", "resource 'router-image'", "busybox", "nicolaka/netshoot")
    overlay["applications"]["cdn-router"]["charm"] = "./no-such_ubuntu@22.04-amd64.charm"
    problems = check(_write(tmp_path, _cdn()), [_write(tmp_path / "o", overlay)], CHARMS)
    _one(problems, "cdn-router", "'charm'", "packed from no charm")


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    bundle = _cdn()
    bundle["series"] = "jammy"
    apps = bundle["applications"]
    apps["cdn-cache"]["options"].update(colour="red", port="80")
    apps["cdn-router"]["trust"] = False
    apps["cdn-router"]["base"] = "ubuntu@22.04"
    apps["my-first-osm-net"]["resources"] = {"image": "nginx"}
    apps["my-second-osm-net"]["options"]["mtu"] = 10
    bundle["relations"].append(["cdn-cache:nets", "my-first-osm-net:network"])
    problems = _check(tmp_path, bundle)
    got = {(p.app, p.subject) for p in problems}
    assert got >= {
        (None, "key 'series'"),
        ("cdn-cache", "option 'colour'"),
        ("cdn-cache", "option 'port'"),
        ("cdn-router", "'trust'"),
        ("cdn-router", "key 'base'"),
        ("my-first-osm-net", "resource 'image'"),
        ("my-second-osm-net", "option 'mtu'"),
        ("cdn-cache", "endpoint 'nets'"),
    }, [str(p) for p in problems]
    assert all(str(p).startswith(str(tmp_path / "bundle.yaml")) for p in problems)


def test_an_offer_must_name_an_endpoint(tmp_path):
    core = copy.deepcopy(CORE)
    core["applications"]["l2sm-controller"]["offers"]["l2sm-controller"]["endpoints"] = ["nope"]
    _one(_check(tmp_path, core), "l2sm-controller", "offer 'l2sm-controller'", "nope")


def test_the_router_rules_are_checked_by_the_planner(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-router"]["options"]["rules"] = "- {name: x, from: nowhere, to: any}"
    _one(_check(tmp_path, bundle), "cdn-router", None, "nowhere")


def test_a_topology_the_lab_cannot_run_is_still_a_fine_bundle(tmp_path):
    core = copy.deepcopy(CORE)
    core["applications"]["l2sm-switch"]["options"].update(nodes="a,b,c", topology="a:b,b:c")
    assert _check(tmp_path, core) == []


@pytest.mark.parametrize(
    ("text", "subject", "words"),
    [
        ("applications: [", None, ["YAML"]),
        ("- just\n- a list\n", None, ["mapping"]),
        ("applications: [a, b]\n", "'applications'", ["mapping"]),
        ("applications: {x: 3}\n", None, ["mapping", "charm"]),
        ("applications: {}\nrelations: {a: b}\n", "'relations'", ["list"]),
        ("applications: {}\nrelations: [[a]]\n", "relation ['a']", ["app:endpoint"]),
        ("applications: {}\nsaas: [x]\n", "'saas'", ["mapping"]),
        ("applications: {}\nsaas: {x: {}}\n", "saas 'x'", ["url"]),
    ],
)
def test_malformed_documents_are_problems(tmp_path, text, subject, words):
    problems = _check(tmp_path, text)
    assert problems
    found = [p for p in problems if subject is None or p.subject == subject]
    assert found, [str(p) for p in problems]
    for word in words:
        assert word in str(found[0])


def test_a_missing_file_is_a_problem(tmp_path):
    problems = check(tmp_path / "nope.yaml", charms=CHARMS)
    assert len(problems) == 1 and "cannot read" in str(problems[0])


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.text(max_size=12),
    st.sampled_from(["10.0.1.0/24", ""]),
)
_names = st.sampled_from(
    [
        "cdn-cache",
        "cdn-router",
        "my-first-osm-net",
        "l2sm-controller",
        "charm",
        "options",
        "x",
        "port",
        "cidr",
    ]
)
_docs = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(_names, st.integers(0, 3)), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=_docs, mutate=st.dictionaries(st.sampled_from(["applications", "relations", "saas", "name"]), _docs)
)
def test_any_document_gives_problems_or_passes_never_raises(tmp_path, doc, mutate):
    for candidate in (doc, {**_cdn(), **mutate}):
        problems = _check(tmp_path, candidate, ({"applications": doc} if isinstance(doc, dict) else doc,))
        assert all(isinstance(p, Problem) and str(p) for p in problems)


def test_the_command_line(tmp_path, capsys):
    assert (
        main(
            [
                str(ROOT / "bundles" / "cdn.yaml"),
                "--overlay",
                str(ROOT / "bundles/overlays/cdn-local-charms.yaml"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("ok: ")
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["options"].update(colour="red", port="80")
    assert main([str(_write(tmp_path, bundle))]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("'cdn-cache'" in line for line in out)


def test_the_module_runs(tmp_path):
    """The README's command, as a process."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "l2sm_lab.bundlecheck",
            "bundles/l2sm.yaml",
            "--overlay",
            "bundles/overlays/l2sm-local-charms.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
