"""Static bundle checks: every charm, option, endpoint and interface exists and matches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted((ROOT / "bundles").glob("*.yaml"))
CHARMS = {
    meta["name"]: meta
    for meta in (yaml.safe_load(p.read_text()) for p in ROOT.glob("charms/**/charmcraft.yaml"))
}
TYPES = {"int": int, "string": str, "boolean": bool, "float": (int, float)}


def _endpoints(meta: dict) -> dict[str, str]:
    result = {}
    for role in ("provides", "requires", "peers"):
        for name, spec in (meta.get(role) or {}).items():
            result[name] = spec["interface"]
    return result


def bundle_problems(bundle: dict) -> list[str]:
    problems = []
    apps = bundle.get("applications") or {}
    for app, spec in apps.items():
        meta = CHARMS.get(spec.get("charm", ""))
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
    for pair in bundle.get("relations") or []:
        sides = []
        for side in pair:
            app, _, endpoint = side.partition(":")
            meta = CHARMS.get((apps.get(app) or {}).get("charm", ""))
            interface = _endpoints(meta).get(endpoint) if meta else None
            if interface is None:
                problems.append(f"relation {side}: no such application endpoint")
            sides.append(interface)
        if len(sides) == 2 and None not in sides and sides[0] != sides[1]:
            problems.append(f"relation {pair}: interfaces differ ({sides[0]} vs {sides[1]})")
    return problems


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_bundle_is_consistent(path):
    bundle = yaml.safe_load(path.read_text())
    assert bundle.get("bundle") == "kubernetes"
    assert bundle_problems(bundle) == []


def test_checker_catches_mistakes():
    bad = {
        "applications": {
            "ctl": {"charm": "l2sm-controller", "options": {"nope": 1, "webhook-renew-days": "30"}},
            "x": {"charm": "no-such-charm"},
        },
        "relations": [["ctl:missing", "ctl:l2sm-controller"]],
    }
    problems = bundle_problems(bad)
    assert "ctl: unknown option 'nope'" in problems
    assert "ctl: option 'webhook-renew-days' must be int" in problems
    assert "ctl: needs trust: true" in problems
    assert "x: unknown charm 'no-such-charm'" in problems
    assert "relation ctl:missing: no such application endpoint" in problems
