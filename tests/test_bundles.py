"""Static bundle checks: every charm, option, endpoint, interface, resource, offer and saas
exists and matches, in keys both Juju 2.9 and 3.x read.

A saas entry is resolved against the offers of this repository's bundles (`<owner>/<model>.
<offer>`, the model named as the offering bundle), so a relation to a consumed controller is
checked like any other. Overlays (bundles/overlays/) are checked merged onto their base.
"""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import pytest
import yaml

from l2sm_core import knf

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted((ROOT / "bundles").glob("*.yaml"))
OVERLAYS = sorted((ROOT / "bundles" / "overlays").glob("*.yaml"))
CHARMS = {
    meta["name"]: meta
    for meta in (yaml.safe_load(p.read_text()) for p in ROOT.glob("charms/**/charmcraft.yaml"))
}
TYPES = {"int": int, "string": str, "boolean": bool, "float": (int, float)}
# Keys Juju 2.9 and 3.x both read for a Kubernetes bundle. `series`/`base` are left out on
# purpose: 2.9 knows only series, Juju 4 only base, and the charm's own bases decide.
TOP_KEYS = {"bundle", "name", "description", "applications", "relations", "saas"}
APP_KEYS = {"charm", "channel", "revision", "scale", "num_units", "trust", "options", "resources", "offers"}


def _endpoints(meta: dict) -> dict[str, str]:
    result = {}
    for role in ("provides", "requires", "peers"):
        for name, spec in (meta.get(role) or {}).items():
            result[name] = spec["interface"]
    return result


def _charm_name(spec: dict) -> str:
    """A charm by name, or a local file `./build/<name>_<platform>.charm` (the overlay's form)."""
    charm = str(spec.get("charm", ""))
    if charm.endswith(".charm"):
        return Path(charm).name.split("_", 1)[0]
    return charm


def offered() -> dict[str, tuple[str, str]]:
    """`<owner>/<model>.<offer>` -> (charm, endpoint), for every offer in our bundles."""
    found = {}
    for path in BUNDLES:
        bundle = yaml.safe_load(path.read_text())
        for spec in (bundle.get("applications") or {}).values():
            for offer, detail in (spec.get("offers") or {}).items():
                for endpoint in detail.get("endpoints") or []:
                    found[f"admin/{bundle['name']}.{offer}"] = (_charm_name(spec), endpoint)
    return found


def bundle_problems(bundle: dict, offers: dict[str, tuple[str, str]] | None = None) -> list[str]:
    offers = offered() if offers is None else offers
    problems = [f"unknown top-level key {key!r}" for key in sorted(set(bundle) - TOP_KEYS)]
    apps = bundle.get("applications") or {}
    saas = bundle.get("saas") or {}
    for name in sorted(set(apps) & set(saas)):
        problems.append(f"{name}: both an application and a saas")
    for name, spec in saas.items():
        if (spec or {}).get("url") not in offers:
            problems.append(f"saas {name}: {(spec or {}).get('url')!r} is no offer of these bundles")
    for app, spec in apps.items():
        problems += [f"{app}: unknown key {key!r}" for key in sorted(set(spec) - APP_KEYS)]
        meta = CHARMS.get(_charm_name(spec))
        if meta is None:
            problems.append(f"{app}: unknown charm {spec.get('charm')!r}")
            continue
        options = (meta.get("config") or {}).get("options") or {}
        for key, value in (spec.get("options") or {}).items():
            if key not in options:
                problems.append(f"{app}: unknown option {key!r}")
            elif not isinstance(value, TYPES[options[key]["type"]]) or isinstance(value, bool) != (
                options[key]["type"] == "boolean"
            ):
                problems.append(f"{app}: option {key!r} must be {options[key]['type']}")
        if "k8s-api" in (meta.get("assumes") or []) and not spec.get("trust"):
            problems.append(f"{app}: needs trust: true")
        declared = meta.get("resources") or {}
        for key in sorted(set(spec.get("resources") or {}) - set(declared)):
            problems.append(f"{app}: unknown resource {key!r}")
        if str(spec.get("charm", "")).endswith(".charm"):
            # A local charm has no Charmhub resources: every one must be given.
            given = spec.get("resources") or {}
            for key in sorted(set(declared) - set(given)):
                problems.append(f"{app}: resource {key!r} missing for a local charm")
            for key in sorted(set(declared) & set(given)):
                upstream = declared[key].get("upstream-source")
                if upstream and given[key] != upstream:
                    problems.append(f"{app}: resource {key!r} is {given[key]!r}, the charm's is {upstream!r}")
        endpoints = _endpoints(meta)
        for offer, detail in (spec.get("offers") or {}).items():
            for endpoint in (detail or {}).get("endpoints") or []:
                if endpoint not in endpoints:
                    problems.append(f"{app}: offer {offer} names no endpoint {endpoint!r}")
    problems += _address_problems(bundle)
    for pair in bundle.get("relations") or []:
        sides = []
        for side in pair:
            app, _, endpoint = side.partition(":")
            if app in saas:
                charm, offered_endpoint = offers.get((saas[app] or {}).get("url"), ("", ""))
                endpoint = endpoint or offered_endpoint
                meta = CHARMS.get(charm) if endpoint == offered_endpoint else None
            else:
                meta = CHARMS.get(_charm_name(apps.get(app) or {}))
            interface = _endpoints(meta).get(endpoint) if meta else None
            if interface is None:
                problems.append(f"relation {side}: no such application endpoint")
            sides.append(interface)
        if len(sides) == 2 and None not in sides and sides[0] != sides[1]:
            problems.append(f"relation {pair}: interfaces differ ({sides[0]} vs {sides[1]})")
    return problems


def _network_name(spec: dict, app: str) -> str:
    return str((spec.get("options") or {}).get("network-name") or app)


def _address_problems(bundle: dict) -> list[str]:
    """A KNF's `addresses` may name only networks it is related to, at addresses in their cidr
    (the rule the KNF library applies at run time, checked here before anyone deploys)."""
    apps = bundle.get("applications") or {}
    networks = {
        _network_name(spec, app): (app, str((spec.get("options") or {}).get("cidr") or ""))
        for app, spec in apps.items()
        if _charm_name(spec) == "l2sm-network"
    }
    related: dict[str, set[str]] = {}
    for pair in bundle.get("relations") or []:
        ends = [side.partition(":")[0] for side in pair]
        for one, other in (ends, ends[::-1]):
            related.setdefault(one, set()).add(other)
    problems = []
    for app, spec in apps.items():
        text = (spec.get("options") or {}).get("addresses")
        if not text:
            continue
        try:
            wanted = knf.parse_addresses(text)
        except ValueError as exc:
            problems.append(f"{app}: option 'addresses': {exc}")
            continue
        for network, address in sorted(wanted.items()):
            network_app, cidr = networks.get(network, (None, ""))
            if network_app is None or network_app not in related.get(app, set()):
                problems.append(
                    f"{app}: option 'addresses' names {network!r}, a network it is not related to"
                )
            elif cidr and ipaddress.IPv4Interface(address).network != ipaddress.IPv4Network(cidr):
                problems.append(f"{app}: option 'addresses': {address} is not on {network}'s cidr {cidr}")
    return problems


def merged(base: dict, overlay: dict) -> dict:
    """An overlay onto its base as Juju applies it: applications merged key by key, options
    and resources by entry; relations and saas added."""
    result = copy.deepcopy(base)
    for app, spec in (overlay.get("applications") or {}).items():
        target = result.setdefault("applications", {}).setdefault(app, {})
        for key, value in (spec or {}).items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    result["relations"] = list(result.get("relations") or []) + list(overlay.get("relations") or [])
    if overlay.get("saas"):
        result["saas"] = {**(result.get("saas") or {}), **overlay["saas"]}
    return result


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_bundle_is_consistent(path):
    bundle = yaml.safe_load(path.read_text())
    assert bundle.get("bundle") == "kubernetes"
    assert bundle_problems(bundle) == []


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.name)
def test_overlay_onto_its_base_is_consistent(path):
    overlay = yaml.safe_load(path.read_text())
    # The first comment line names the base: "# overlay for bundles/<base>.yaml".
    first = path.read_text().splitlines()[0]
    base_path = ROOT / first.split("overlay for ", 1)[1].strip()
    base = yaml.safe_load(base_path.read_text())
    assert bundle_problems(merged(base, overlay)) == []


def test_checker_catches_mistakes():
    bad = {
        "series": "jammy",
        "applications": {
            "ctl": {"charm": "l2sm-controller", "options": {"nope": 1, "webhook-renew-days": "30"}},
            "x": {"charm": "no-such-charm"},
            "sw": {"charm": "./build/l2sm-switch_ubuntu@22.04-amd64.charm", "trust": True, "base": "x"},
            "net": {"charm": "l2sm-network", "trust": True, "resources": {"image": "nginx"}},
            "local": {
                "charm": "../../build/l2sm-controller/l2sm-controller_ubuntu@22.04-amd64.charm",
                "trust": True,
                "resources": {"controller-image": "onos:latest"},
            },
        },
        "saas": {"far": {"url": "admin/elsewhere.ctl"}, "ctl": {"url": "admin/l2sm.l2sm-controller"}},
        "relations": [["ctl:missing", "ctl:l2sm-controller"], ["net:controller", "far"]],
    }
    problems = bundle_problems(bad)
    assert "unknown top-level key 'series'" in problems
    assert "ctl: both an application and a saas" in problems
    assert "saas far: 'admin/elsewhere.ctl' is no offer of these bundles" in problems
    assert "ctl: unknown option 'nope'" in problems
    assert "ctl: option 'webhook-renew-days' must be int" in problems
    assert "ctl: needs trust: true" in problems
    assert "x: unknown charm 'no-such-charm'" in problems
    assert "sw: unknown key 'base'" in problems
    assert "net: unknown resource 'image'" in problems
    assert "local: resource 'manager-image' missing for a local charm" in problems
    assert (
        "local: resource 'controller-image' is 'onos:latest', the charm's is 'alexdecb/l2sm-controller:2.5.3'"
        in problems
    )
    assert "relation far: no such application endpoint" in problems


def test_addresses_name_related_networks_on_their_cidr():
    bundle = {
        "applications": {
            "net-a": {"charm": "l2sm-network", "trust": True, "options": {"cidr": "10.0.1.0/24"}},
            "net-b": {"charm": "l2sm-network", "trust": True, "options": {"cidr": "10.0.2.0/24"}},
            "knf": {"charm": "test-knf", "options": {"addresses": "net-a=10.0.2.5/24,net-b=10.0.2.6/24"}},
            "bad": {"charm": "test-knf", "options": {"addresses": "net-a=10.0.1.5"}},
        },
        "relations": [["knf:networks", "net-a:network"], ["bad:networks", "net-a:network"]],
    }
    problems = _address_problems(bundle)
    assert "knf: option 'addresses': 10.0.2.5/24 is not on net-a's cidr 10.0.1.0/24" in problems
    assert "knf: option 'addresses' names 'net-b', a network it is not related to" in problems
    assert any(p.startswith("bad: option 'addresses': ") for p in problems)


def test_saas_relations_are_checked_through_the_offer():
    bundle = {
        "applications": {"net": {"charm": "l2sm-network", "trust": True}},
        "saas": {"core": {"url": "admin/l2sm.l2sm-controller"}},
        "relations": [["net:controller", "core"], ["net:network", "core:l2sm-controller"]],
    }
    problems = bundle_problems(bundle)
    assert problems == [
        "relation ['net:network', 'core:l2sm-controller']: "
        "interfaces differ (l2sm_network vs l2sm_controller)"
    ]


def test_the_one_model_bundle_is_the_service_with_the_core_in_place_of_its_saas():
    cross = yaml.safe_load((ROOT / "bundles" / "cdn.yaml").read_text())
    one = yaml.safe_load((ROOT / "bundles" / "cdn-one-model.yaml").read_text())
    core = yaml.safe_load((ROOT / "bundles" / "l2sm.yaml").read_text())
    assert "saas" not in one
    service = {app: spec for app, spec in one["applications"].items() if app not in core["applications"]}
    assert service == cross["applications"]
    for app, spec in core["applications"].items():
        assert one["applications"][app] == {k: v for k, v in spec.items() if k != "offers"}
    # The saas stood for the offered application under the same name: the relations agree.
    assert sorted(map(sorted, one["relations"])) == sorted(
        map(sorted, cross["relations"] + core["relations"])
    )
