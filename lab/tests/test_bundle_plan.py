"""The lab's bundle reader and planner, without root: bad bundles are refused naming the
application and option; good ones are planned as the PoC expects."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from l2sm_core import naming
from l2sm_lab.bundle import BundleError, find_charms, read_bundle
from l2sm_lab.plan import Paths, plan_lab

ROOT = Path(__file__).resolve().parents[2]
CDN = ROOT / "bundles" / "cdn.yaml"
CHARMS = find_charms(ROOT)


def _paths(unit: str) -> Paths:
    return Paths(f"/l/{unit}/c", f"/l/{unit}/r", f"/l/{unit}/n.conf", f"/l/{unit}/s")


def _write(tmp_path: Path, bundle: dict) -> Path:
    path = tmp_path / "bundle.yaml"
    path.write_text(yaml.safe_dump(bundle))
    return path


def _cdn() -> dict:
    return yaml.safe_load(CDN.read_text())


def test_the_cdn_bundle_is_planned_as_the_poc():
    plan = plan_lab(read_bundle(CDN, CHARMS), nodes=2, paths=_paths)
    first, second = plan.network_named("my-first-osm-net"), plan.network_named("my-second-osm-net")
    assert first and second
    assert first.assignments == {"cdn-cache/0": "10.0.1.10/24", "cdn-router/0": "10.0.1.1/24"}
    assert second.assignments == {"cdn-content-server/0": "10.0.2.10/24", "cdn-router/0": "10.0.2.1/24"}
    assert first.routes.routes == [{"prefix": "10.0.2.0/24", "via": "10.0.1.1"}]
    cache = plan.units["cdn-cache/0"]
    assert cache.interfaces[0].routes == (("10.0.2.0/24", "10.0.1.1"),)
    assert plan.units["cdn-router/0"].interfaces[0].routes == ()  # its own networks: on-link
    # Spread over the nodes: the path from cache to server crosses VXLAN twice.
    assert {u.node for u in plan.units.values()} == set(plan.nodes) == {"lab-node-1", "lab-node-2"}
    assert cache.node != plan.units["cdn-router/0"].node
    assert cache.workload and cache.workload.base_url == "http://10.0.2.10:80/"
    router = plan.units["cdn-router/0"].workload
    assert router and router.ruleset and "cache-to-origin" in router.ruleset
    assert plan.links and not plan.core_in_bundle


def test_the_one_model_bundle_plans_the_same_service():
    saas = plan_lab(read_bundle(CDN, CHARMS), nodes=3, paths=_paths)
    one = plan_lab(read_bundle(ROOT / "bundles" / "cdn-one-model.yaml", CHARMS), nodes=3, paths=_paths)
    assert one.core_in_bundle
    assert {k: v.assignments for k, v in one.networks.items()} == {
        k: v.assignments for k, v in saas.networks.items()
    }
    assert {k: v.interfaces for k, v in one.units.items()} == {k: v.interfaces for k, v in saas.units.items()}


def test_nodes_and_topology_come_from_the_switch_options(tmp_path):
    bundle = yaml.safe_load((ROOT / "bundles" / "cdn-one-model.yaml").read_text())
    switch = next(a for a in bundle["applications"].values() if a["charm"] == "l2sm-switch")
    switch.setdefault("options", {}).update(nodes="alpha,beta,gamma", topology="full-mesh")
    plan = plan_lab(read_bundle(_write(tmp_path, bundle), CHARMS), nodes=2, paths=_paths)
    assert plan.nodes == ("alpha", "beta", "gamma")
    assert [(link.a, link.b) for link in plan.links] == [
        ("alpha", "beta"),
        ("alpha", "gamma"),
        ("beta", "gamma"),
    ]
    assert [naming.bridge_name_for(n) for n in plan.nodes] == [
        naming.bridge_name_for(n) for n in ("alpha", "beta", "gamma")
    ]
    # A chain would need relaying through the middle switch, which the lab's controller lacks.
    switch["options"]["topology"] = "alpha:beta,beta:gamma"
    with pytest.raises(BundleError, match=r"topology.*full-mesh"):
        plan_lab(read_bundle(_write(tmp_path, bundle), CHARMS), nodes=2, paths=_paths)


def test_charms_named_by_path(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["charm"] = str(ROOT / "charms" / "cdn-knfs" / "cdn-cache")
    # Relative paths are relative to the bundle file, as juju deploy reads them.
    relative = os.path.relpath(ROOT / "charms" / "l2sm-network", tmp_path)
    bundle["applications"]["my-first-osm-net"]["charm"] = relative
    plan = plan_lab(read_bundle(_write(tmp_path, bundle), CHARMS), nodes=2, paths=_paths)
    assert plan.units["cdn-cache/0"].charm == "cdn-cache"
    assert plan.networks["my-first-osm-net"].assignments["cdn-cache/0"] == "10.0.1.10/24"
    bundle["applications"]["cdn-cache"]["charm"] = "./nowhere"
    with pytest.raises(BundleError, match=r"charmcraft\.yaml"):
        read_bundle(_write(tmp_path, bundle), CHARMS)


def test_scaled_units_get_successive_addresses(tmp_path):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["scale"] = 3
    plan = plan_lab(read_bundle(_write(tmp_path, bundle), CHARMS), nodes=2, paths=_paths)
    got = {u: a for u, a in plan.network_named("my-first-osm-net").assignments.items() if "cache" in u}  # type: ignore[union-attr]
    assert got == {
        "cdn-cache/0": "10.0.1.10/24",
        "cdn-cache/1": "10.0.1.11/24",
        "cdn-cache/2": "10.0.1.12/24",
    }


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda b: b["applications"]["cdn-cache"].update(charm="no-such-charm"),
            ["cdn-cache", "no-such-charm"],
        ),
        (lambda b: b["applications"]["cdn-cache"]["options"].update(colour="red"), ["cdn-cache", "'colour'"]),
        (
            lambda b: b["applications"]["cdn-cache"]["options"].update(port="80"),
            ["cdn-cache", "'port'", "int"],
        ),
        (lambda b: b["applications"]["cdn-cache"]["options"].update(port=70000), ["cdn-cache", "port"]),
        (lambda b: b["applications"]["my-first-osm-net"]["options"].update(cidr="10.0.1.0/33"), ["cidr"]),
        (
            lambda b: b["applications"]["cdn-cache"]["options"].update(
                addresses="my-first-osm-net=10.9.9.9/24"
            ),
            ["cdn-cache", "addresses"],
        ),
        (
            lambda b: b["relations"].append(["cdn-cache:nets", "my-first-osm-net:network"]),
            ["cdn-cache", "'nets'"],
        ),
        (
            lambda b: b["relations"].append(["cdn-cache:origin", "my-first-osm-net:network"]),
            ["cannot relate"],
        ),
        (lambda b: b["saas"]["l2sm-controller"].update(url="admin/l2sm.nothing"), ["saas", "nothing"]),
        (lambda b: b["applications"]["cdn-cache"].update(scale=-1), ["cdn-cache", "scale"]),
        (
            lambda b: b["applications"]["cdn-router"]["options"].update(rules="- {name: x}"),
            ["cdn-router", "rules"],
        ),
    ],
)
def test_bad_bundles_are_refused_naming_where(tmp_path, change, words):
    bundle = _cdn()
    change(bundle)
    path = _write(tmp_path, bundle)
    with pytest.raises(BundleError) as raised:
        plan_lab(read_bundle(path, CHARMS), nodes=2, paths=_paths)
    for word in words:
        assert word in str(raised.value)


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.none()))
def test_any_addresses_value_is_planned_or_refused_naming_the_option(tmp_path_factory, value):
    bundle = _cdn()
    bundle["applications"]["cdn-cache"]["options"]["addresses"] = value
    path = _write(tmp_path_factory.mktemp("b"), bundle)
    try:
        plan = plan_lab(read_bundle(path, CHARMS), nodes=2, paths=_paths)
    except BundleError as exc:
        assert "cdn-cache" in str(exc) and "addresses" in str(exc)
        return
    for address in plan.units["cdn-cache/0"].addresses.values():
        assert ipaddress.IPv4Interface(address).network == ipaddress.IPv4Network("10.0.1.0/24")


def test_unit_numbers_from_a_scale_and_placement_kept(tmp_path):
    """After `scale cdn-router 0` then `1`: cdn-router/1 alone, at its predecessor's addresses
    (address-from), and units already placed stay on their nodes."""
    fresh = plan_lab(read_bundle(CDN, CHARMS), nodes=2, paths=_paths)
    placed = {name: unit.node for name, unit in fresh.units.items() if name != "cdn-router/0"}
    plan = plan_lab(
        read_bundle(CDN, CHARMS),
        nodes=2,
        paths=_paths,
        unit_numbers={"cdn-router": [1]},
        placed=placed,
    )
    assert set(plan.units) == {"cdn-content-server/0", "cdn-router/1", "cdn-cache/0"}
    assert plan.units["cdn-router/1"].addresses == {
        "my-first-osm-net": "10.0.1.1/24",
        "my-second-osm-net": "10.0.2.1/24",
    }
    assert {n: plan.units[n].node for n in placed} == placed
    # The node the two others left with fewest units: the one cdn-router/0 had.
    assert plan.units["cdn-router/1"].node == fresh.units["cdn-router/0"].node
    assert plan.units["cdn-cache/0"].interfaces == fresh.units["cdn-cache/0"].interfaces
    # Scaled to none: no member, so the cache has no route to the server's network.
    none = plan_lab(read_bundle(CDN, CHARMS), nodes=2, paths=_paths, unit_numbers={"cdn-router": []})
    assert "cdn-router/0" not in none.units
    assert none.units["cdn-cache/0"].interfaces[0].routes == ()


def test_placement_is_round_robin_on_a_fresh_lab_and_keeps_placed_units():
    from l2sm_lab.plan import place_units

    nodes = ("a", "b", "c")
    units = [f"u/{i}" for i in range(5)]
    assert place_units(units, nodes, {}) == {"u/0": "a", "u/1": "b", "u/2": "c", "u/3": "a", "u/4": "b"}
    # u/0 and u/1 stay where they are (both on c); the new ones fill a and b first.
    got = place_units(units, nodes, {"u/0": "c", "u/1": "c", "gone/0": "a"})
    assert (got["u/0"], got["u/1"]) == ("c", "c")
    assert sorted(got[u] for u in units[2:]) == ["a", "a", "b"]
    # A placement on a node the fabric no longer has is not kept.
    assert place_units(["u/0"], nodes, {"u/0": "z"}) == {"u/0": "a"}


def test_a_server_that_is_not_unit_0_is_still_the_caches_origin():
    plan = plan_lab(read_bundle(CDN, CHARMS), nodes=2, paths=_paths, unit_numbers={"cdn-content-server": [3]})
    cache = plan.units["cdn-cache/0"].workload
    assert cache and cache.base_url == "http://10.0.2.10:80/"
