"""The OSM-shaped run: the KNF package's KDU bundle deployed as OSM deploys it (its
juju-bundles folder with the packed charms beside it, trust, one model `<kdu-name>-<nsr-id>`),
then every primitive of the VNFD called as N2VC calls it: the action of its name, on the leader
of the application its `application-name` names, with every declared parameter (converted as
LCM converts them), `application-name` among them. docs/decisions/0013."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import cluster, helpers
from .conftest import ROOT, Core, Models

PACKAGE = ROOT / "osm" / "cdn_knf"
VNFD = yaml.safe_load((PACKAGE / "cdn_vnfd.yaml").read_text())
(KDU,) = VNFD["vnfd"]["kdu"]
KDU_BUNDLE = PACKAGE / "juju-bundles" / KDU["juju-bundle"]
BUNDLE = yaml.safe_load(KDU_BUNDLE.read_text())
APPS = tuple(BUNDLE["applications"])
INITIAL, DAY2 = helpers.vnfd_primitives(VNFD, KDU["name"])
PLAN = helpers.network_plan(BUNDLE)
SERVER, CACHE, ROUTER = "cdn-content-server", "cdn-cache", "cdn-router"
SERVER_NET = next(net for net, members in sorted(PLAN.items()) if SERVER in members)
CACHE_NET = next(net for net, members in sorted(PLAN.items()) if CACHE in members)
SERVER_IP = PLAN[SERVER_NET][SERVER].split("/", 1)[0]
ROUTER_HOP = PLAN[CACHE_NET][ROUTER].split("/", 1)[0]
CONTENT = str(next(p for p in INITIAL if p.name == "generate-content").params()["name"])
EXTRA = "it-extra.bin"
# Day 2 as an operator would run it, each with what `osm ns-action --params` would give (YAML
# values; OSM asks for every parameter without a non-empty default, "" leaves one out).
SCENARIO: list[tuple[str, dict[str, Any]]] = [
    ("list-content", {}),
    ("check-connectivity", {"target": SERVER_IP}),
    ("fetch-content", {"name": CONTENT, "url": "", "wait": 300}),
    ("sync-now", {"wait": 300}),
    ("list-content", {"application-name": SERVER}),
    ("generate-content", {"name": EXTRA, "size": "1M", "wait": 120}),
    ("add-content", {"url": f"http://{SERVER_IP}/{EXTRA}", "name": f"copy-{EXTRA}", "wait": 120}),
    ("remove-content", {"name": f"copy-{EXTRA}"}),
    ("purge", {"name": CONTENT}),
    (
        "add-rule",
        {"name": "it-probe", "from": CACHE_NET, "to": SERVER_NET, "protocol": "tcp", "port": "8080"},
    ),
    ("list-rules", {}),
    ("remove-rule", {"name": "it-probe"}),
    ("show-routes", {}),
    ("set-link", {"network": SERVER_NET, "state": "down"}),
    ("set-link", {"network": SERVER_NET, "state": "up"}),
]


@pytest.fixture(scope="module")
def osm(models: Models, core: Core, packed: Path, osm_nsr_id: str, tmp_path_factory) -> Any:
    """The KDU's model, deployed from a copy of the package's juju-bundles folder holding the
    packed charms, as OSM deploys it (consuming this session's core)."""
    juju = models.get(helpers.osm_model_name(KDU["name"], osm_nsr_id))
    if models.create:
        folder = tmp_path_factory.mktemp("juju-bundles")
        for charm in helpers.charms_of(BUNDLE):
            shutil.copy2(helpers.charm_file(packed, charm), folder)
        bundle = helpers.with_offer(BUNDLE, "l2sm-controller", core.offer_url)
        (folder / KDU_BUNDLE.name).write_text(yaml.safe_dump(bundle, sort_keys=False))
        juju.deploy(folder / KDU_BUNDLE.name, trust=True)
    # OSM waits for active or blocked; the service is ready only when all are active.
    status = juju.wait(helpers.settled(APPS, ("active", "blocked")), error=helpers.errored(APPS), delay=5)
    assert helpers.unit_problems(status, APPS) == []
    return juju


@pytest.mark.juju_setup
def test_day_1_primitives_in_seq_order(osm: Any) -> None:
    answers = {p.name: helpers.run_primitive(osm, p).results for p in INITIAL}
    assert answers["generate-content"].get("state") == "done", answers["generate-content"]
    probe = answers["check-connectivity"]
    assert helpers.connectivity_problems(probe, ttl=63, hops=[ROUTER_HOP, SERVER_IP]) == []


def test_the_scenario_calls_every_day_2_primitive() -> None:
    assert sorted(set(DAY2) - {name for name, _ in SCENARIO}) == []


@pytest.mark.parametrize(
    ("name", "given"), SCENARIO, ids=[f"{i:02}-{n}" for i, (n, _) in enumerate(SCENARIO)]
)
def test_day_2_primitive(osm: Any, name: str, given: dict[str, Any]) -> None:
    task = helpers.run_primitive(osm, DAY2[name], given)
    assert task.success, task


@pytest.mark.juju_teardown
def test_removing_the_kdu_leaves_no_labelled_object(osm: Any, kubectl: list[str]) -> None:
    cluster.remove_and_check(osm, APPS, kubectl, saas=tuple(BUNDLE.get("saas") or ()))
