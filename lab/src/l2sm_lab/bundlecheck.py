"""The bundle checker: everything `juju deploy` (and then the charms) would refuse in a bundle
and its overlays, found before anyone deploys it, every problem at once.

    python -m l2sm_lab.bundlecheck bundles/cdn.yaml --overlay bundles/overlays/cdn-local-charms.yaml

Exit 0 when the bundle is fine; 1 printing one problem a line, each naming the bundle, the
application and the option or endpoint, and the fix; 2 for a bad command line.

Checked: keys Juju 2.9 and 3.x both read; each charm exists (by name in charms/, by path, or a
packed `./x.charm` read as the source charm of that name); options exist, have the Juju type
and a value the charm's own config model accepts; `addresses` entries name networks the KNF
is related to, inside their cidr (l2sm_core.knf, as the KNF library and the lab's planner);
relations name existing, non-peer endpoints of one interface and opposite roles; `saas:`
consumes only offers the core bundle (bundles/l2sm.yaml) makes; `trust` where the charm
needs the Kubernetes API; resources; offers' endpoints. Then the lab's planner
(l2sm_lab.plan) decides the bundle, for the rules only it applies (the router's firewall).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from l2sm_core import knf
from l2sm_core.topology import FULL_MESH
from l2sm_core.validation import shown
from l2sm_lab.bundle import (
    NETWORK_CHARM,
    NETWORK_INTERFACE,
    SWITCH_CHARM,
    App,
    Bundle,
    BundleError,
    Offer,
    Problem,
    Reading,
    read_collecting,
)

# Keys Juju 2.9 and 3.x both read for a Kubernetes bundle. `series`/`base` are left out on
# purpose: 2.9 knows only series, Juju 4 only base, and the charm's own bases decide.
TOP_KEYS = {"bundle", "name", "description", "applications", "relations", "saas"}
APP_KEYS = {"charm", "channel", "revision", "scale", "num_units", "trust", "options", "resources", "offers"}


def check(
    path: Path,
    overlays: Sequence[Path] = (),
    charms: Mapping[str, Path] | None = None,
    offers: Mapping[str, Offer] | None = None,
) -> list[Problem]:
    """Every problem of the bundle with its overlays merged; [] when it is fine."""
    reading = read_collecting(Path(path), charms, [Path(o) for o in overlays], offers)
    problems = list(reading.problems)
    if reading.bundle is None:
        return problems
    problems += _key_problems(reading)
    problems += address_problems(reading.where, reading.bundle)
    if not problems:
        problems += _plan_problems(reading.where, reading.bundle)
    return problems


def _key_problems(reading: Reading) -> list[Problem]:
    where, raw = reading.where, reading.raw
    out = [
        Problem(where, None, f"key {shown(k)}", "is not a bundle key both Juju 2.9 and 3.x read: remove it")
        for k in sorted(set(raw) - TOP_KEYS, key=str)
    ]
    bundle = reading.bundle
    assert bundle is not None
    specs = raw.get("applications")
    specs = specs if isinstance(specs, dict) else {}
    for name, app in bundle.apps.items():
        spec: dict[str, Any] = specs.get(name) or {}
        out += [
            Problem(
                where, name, f"key {shown(k)}", f"is not an application key ({', '.join(sorted(APP_KEYS))})"
            )
            for k in sorted(set(spec) - APP_KEYS, key=str)
        ]
        meta = app.charm
        if "k8s-api" in _assumes(meta.path) and spec.get("trust") is not True:
            out.append(
                Problem(
                    where, name, "'trust'", f"charm {meta.name} needs the Kubernetes API: set trust: true"
                )
            )
        out += _resource_problems(where, name, spec, meta.path)
        offers = spec.get("offers")
        if offers is not None and not isinstance(offers, dict):
            out.append(
                Problem(where, name, "'offers'", "must be a mapping of offer name to {endpoints: [...]}")
            )
            offers = {}
        for offer, detail in (offers or {}).items():
            endpoints = detail.get("endpoints") if isinstance(detail, dict) else None
            if not isinstance(endpoints, list) or not endpoints:
                out.append(Problem(where, name, f"offer {shown(offer)}", "needs endpoints: [endpoint, ...]"))
                continue
            for endpoint in endpoints:
                found = meta.endpoint(endpoint) if isinstance(endpoint, str) else None
                if found is None or found[0] == "peers":
                    known = ", ".join(sorted({*meta.requires, *meta.provides}))
                    out.append(
                        Problem(
                            where,
                            name,
                            f"offer {shown(offer)}",
                            f"charm {meta.name} has no endpoint {shown(endpoint)} to offer "
                            f"(its endpoints: {known})",
                        )
                    )
    return out


def _charm_meta(path: Path) -> dict[str, Any]:
    import yaml

    meta = yaml.safe_load((path / "charmcraft.yaml").read_text())
    return meta if isinstance(meta, dict) else {}


def _assumes(path: Path) -> list[Any]:
    assumes = _charm_meta(path).get("assumes") or []
    return assumes if isinstance(assumes, list) else []


def _resource_problems(where: str, app: str, spec: Mapping[str, Any], charm_path: Path) -> list[Problem]:
    declared = _charm_meta(charm_path).get("resources") or {}
    given = spec.get("resources")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return [Problem(where, app, "'resources'", "must be a mapping of resource to image or revision")]
    out = [
        Problem(
            where, app, f"resource {shown(k)}", f"the charm declares no such resource ({', '.join(declared)})"
        )
        for k in sorted(set(given) - set(declared), key=str)
    ]
    if str(spec.get("charm", "")).endswith(".charm"):
        # A local charm has no Charmhub resources: every one must be given, the image the
        # charm names upstream (what its tests ran against).
        for key in sorted(set(declared) - set(given)):
            out.append(
                Problem(where, app, f"resource {key!r}", "a local charm has no Charmhub resources: give it")
            )
        for key in sorted(set(declared) & set(given)):
            upstream = (declared[key] or {}).get("upstream-source")
            if upstream and given[key] != upstream:
                out.append(
                    Problem(
                        where, app, f"resource {key!r}", f"is {given[key]!r}: use the charm's {upstream!r}"
                    )
                )
    return out


def _network_name(app: App) -> str:
    name = app.options.get("network-name")
    return name if isinstance(name, str) and name else app.name


def address_problems(where: str, bundle: Bundle) -> list[Problem]:
    """A KNF's `addresses` names only networks it is related to, each entry inside that
    network's cidr for every unit (the KNF library's rule: knf.parse_addresses, unit_request)."""
    out: list[Problem] = []
    networks = {a.name: a for a in bundle.by_charm(NETWORK_CHARM)}
    for app in bundle.apps.values():
        endpoints = [e for e, i in app.charm.requires.items() if i == NETWORK_INTERFACE]
        if "addresses" not in app.options or not endpoints:
            continue
        try:
            wanted = knf.parse_addresses(app.options["addresses"] or "")
        except ValueError as exc:
            out.append(Problem(where, app.name, "option 'addresses'", str(exc)))
            continue
        joined = sorted({o for e in endpoints for o, _ in bundle.related(app.name, e) if o in networks})
        names = ", ".join(_network_name(networks[n]) for n in joined) or "none"
        for key, base in sorted(wanted.items()):
            net = next((networks[n] for n in joined if key in (n, _network_name(networks[n]))), None)
            if net is None:
                out.append(
                    Problem(
                        where,
                        app.name,
                        "option 'addresses'",
                        f"names network {key!r}, which it is not related to (it joins: {names}): "
                        "relate it or drop the entry",
                    )
                )
                continue
            cidr = str(getattr(net.config, "cidr", net.options.get("cidr", "")) or "")
            for number in range(max(app.scale, 1)):
                try:
                    knf.unit_request(_network_name(net), base, number, cidr)
                except ValueError as exc:
                    out.append(
                        Problem(where, app.name, "option 'addresses'", f"{exc} (network app {net.name!r})")
                    )
                    break
    return out


def _plan_problems(where: str, bundle: Bundle) -> list[Problem]:
    from l2sm_lab.plan import Paths, plan_lab

    # The lab's fabric takes only a full mesh; any topology is a fine bundle for Juju.
    apps = {
        name: dataclasses.replace(app, options={**app.options, "topology": FULL_MESH})
        if app.charm.name == SWITCH_CHARM
        else app
        for name, app in bundle.apps.items()
    }
    planned = dataclasses.replace(bundle, apps=apps)

    def paths(unit: str) -> Paths:
        top = f"/nonexistent/{unit.replace('/', '-')}"
        return Paths(f"{top}/content", f"{top}/run", f"{top}/nginx.conf", f"{top}/status")

    try:
        plan_lab(planned, nodes=2, paths=paths)
    except (BundleError, ValueError) as exc:
        text = str(exc)
        found = re.search(r"application '([^']+)': (.*)", text, re.S)
        if found:
            return [Problem(where, found.group(1), None, found.group(2))]
        return [Problem(where, None, None, text)]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m l2sm_lab.bundlecheck",
        description="Check a Juju bundle (and overlays) against this project's charms.",
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument(
        "--overlay", type=Path, action="append", default=[], help="applied in order, as juju deploy"
    )
    args = parser.parse_args(argv)
    problems = check(args.bundle, args.overlay)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.bundle}", file=sys.stderr)
        return 1
    print(f"ok: {args.bundle}" + "".join(f" + {o}" for o in args.overlay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
