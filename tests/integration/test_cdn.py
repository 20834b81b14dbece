"""The seed's PoC on a real Juju and Kubernetes: bundles/l2sm.yaml (the core, see conftest) then
bundles/cdn.yaml with --trust, every step an action, as `make demo` replays it on the lab."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from l2sm_core.cdn import jobs

from . import cluster, helpers
from .conftest import CORE_CHARMS, ROOT, Core, Models

CDN = ROOT / "bundles" / "cdn.yaml"
BUNDLE = yaml.safe_load(CDN.read_text())
APPS = tuple(BUNDLE["applications"])
PLAN = helpers.network_plan(BUNDLE)
CACHE, SERVER, ROUTER = "cdn-cache", "cdn-content-server", "cdn-router"
# The cache's fetch job status, in its jobs container (the charm's STATUS_DIR;
# tests/test_integration_helpers.py holds them equal).
FETCH_STATUS = "/var/lib/cdn-cache/fetch.json"
CONTENT, SIZE, RATE, CUT_AT = "it-video.bin", "32M", "4m", 0.25
# Longer than the downloader's stall timeout, so the transfer is given up and resumed by range.
CUT_SECONDS = jobs.DEFAULT_TIMEOUT + 4


def _ip(address: str) -> str:
    return address.split("/", 1)[0]


def _network_of(app: str) -> str:
    return next(net for net, members in sorted(PLAN.items()) if app in members)


# The PoC's path: the cache's network, the server's, the router's address on the former.
CACHE_NET, SERVER_NET = _network_of(CACHE), _network_of(SERVER)
TARGET, ROUTER_HOP = _ip(PLAN[SERVER_NET][SERVER]), _ip(PLAN[CACHE_NET][ROUTER])


@pytest.fixture(scope="module")
def cdn(models: Models, core: Core, packed: Path, bundle_file, tmp_path_factory) -> Any:
    juju = models.get(f"{models.prefix}-cdn")
    if models.create:
        juju.deploy(bundle_file(CDN, packed, tmp_path_factory.mktemp("cdn"), core.offer_url), trust=True)
    juju.wait(helpers.settled(APPS), error=helpers.errored(APPS), delay=5)
    return juju


def _run(juju: Any, app: str, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return helpers.run_on_leader(juju, app, action, params).results


@pytest.mark.juju_setup
def test_every_application_is_active(cdn: Any, core: Core) -> None:
    assert helpers.unit_problems(cdn.status(), APPS) == []
    assert helpers.unit_problems(core.juju.status(), CORE_CHARMS) == []


def test_the_controller_sees_every_switch(core: Core) -> None:
    topology = _run(core.juju, "l2sm-switch", "show-topology")
    status = _run(core.juju, "l2sm-controller", "controller-status")
    assert status.get("rest") == "ready", status
    assert helpers.switches_missing(topology, status) == []


@pytest.mark.parametrize("network", sorted(PLAN))
def test_the_networks_show_their_members(cdn: Any, network: str) -> None:
    members = helpers.network_members(_run(cdn, network, "show"))
    assert helpers.members_problems(members, PLAN[network]) == []


def test_the_cache_reaches_the_content_server_through_the_router(cdn: Any) -> None:
    results = _run(cdn, CACHE, "check-connectivity", {"target": TARGET, "count": 3})
    assert helpers.connectivity_problems(results, ttl=63, hops=[ROUTER_HOP, TARGET]) == []


def _held(cdn: Any, key: str) -> int | None:
    return helpers.listed_bytes(_run(cdn, CACHE, "list-content"), key, CONTENT)


def test_a_fetch_cut_by_set_link_resumes_with_the_origin_s_sha256(cdn: Any) -> None:
    generated = _run(cdn, SERVER, "generate-content", {"name": CONTENT, "size": SIZE, "wait": 300})
    origin_sha, total = generated["sha256"], int(generated.get("bytes") or generated["total"])
    _run(cdn, CACHE, "purge", {"all": True})
    _run(cdn, CACHE, "fetch-content", {"name": CONTENT, "rate-limit": RATE, "wait": 0})
    cut_at = helpers.wait_for(
        f"{CUT_AT:.0%} of {CONTENT} in the cache",
        lambda: (_held(cdn, "partial") or 0) >= total * CUT_AT and _held(cdn, "partial"),
        timeout=300,
    )
    _run(cdn, ROUTER, "set-link", {"network": SERVER_NET, "state": "down"})
    try:
        time.sleep(CUT_SECONDS)
        blocked = _run(cdn, CACHE, "check-connectivity", {"target": TARGET, "count": 1})
    finally:
        _run(cdn, ROUTER, "set-link", {"network": SERVER_NET, "state": "up"})
    assert blocked.get("received") == "0", f"pings passed the cut: {blocked}"
    helpers.wait_for(
        f"{CONTENT} complete in the cache", lambda: _held(cdn, "complete") is not None, timeout=600
    )
    leader = helpers.leader_unit(cdn.status(), CACHE)
    status = json.loads(cdn.ssh(leader, f"cat {FETCH_STATUS}", container="jobs"))
    assert helpers.resume_problems(status, origin_sha, cut_at) == []
    # What an operator (or OSM) sees: the cache holds the origin's file, verified.
    again = _run(cdn, CACHE, "fetch-content", {"name": CONTENT, "wait": 300})
    assert (again.get("sha256"), again.get("verified")) == (origin_sha, "true")


def test_removing_a_network_relation_detaches_the_unit(cdn: Any, kubectl: list[str]) -> None:
    cdn.remove_relation(f"{CACHE}:networks", f"{CACHE_NET}:network")
    helpers.wait_for(
        f"{CACHE} to leave {CACHE_NET}",
        lambda: (
            not any(u.startswith(f"{CACHE}/") for u in helpers.network_members(_run(cdn, CACHE_NET, "show")))
        ),
        timeout=600,
    )
    # The pod template no longer asks L2S-M for that network (the pod restarts without it).
    statefulset = cluster.kubectl_json(kubectl, "get", "statefulset", CACHE, "-n", cluster.model_name(cdn))
    annotations = statefulset["spec"]["template"]["metadata"].get("annotations") or {}
    assert CACHE_NET not in annotations.get("l2sm/networks", ""), annotations


@pytest.mark.juju_teardown
def test_removing_the_applications_leaves_no_labelled_object(cdn: Any, kubectl: list[str]) -> None:
    cluster.remove_and_check(cdn, APPS, kubectl, saas=tuple(BUNDLE.get("saas") or ()))
