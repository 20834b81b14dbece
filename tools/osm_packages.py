#!/usr/bin/env python3
"""Check and build the OSM packages in osm/ (docs/decisions/0013).

    tools/osm_packages.py check osm/
    tools/osm_packages.py build osm/ --out build/osm [--charms build] [--require-charms]

`check` holds each package to what OSM's NBI and LCM do with it, as far as they can be known
without OSM (neither the OSM IM nor osmclient installs offline):
- package rules: one folder per package, exactly one YAML at its top, named `*vnfd.yaml` or
  `*nsd.yaml` (ours: `<name>_knf/<name>_vnfd.yaml`, `<name>_ns/<name>_nsd.yaml`), KDU bundles
  in `juju-bundles/`;
- fields: the SOL006 model as OSM extends it (etsi-nfv-vnfd/nsd with OSM's kdu, day1-2 and
  k8s-cluster augments), field by field with their types; a field the IM does not have is
  refused, as OSM's onboarding refuses it; IM fields a KNF package has no use for (VDUs,
  images, scaling aspects...) are refused too, saying so, until this checker models them;
- references: NSD -> VNFD -> KDU -> bundle file -> charm sources in charms/; vnf-profile,
  constituent cpd and virtual-link ids; mgmt-cp in ext-cpd; k8s-cluster-net in
  k8s-cluster.nets; kdu-resource-profile -> KDU and application;
- primitives: each one an action of the charm its `application-name` names in the KDU
  bundle (a config-primitive: of every application in the bundle with that action, since OSM
  keys primitives by name), the same parameter names, compatible types, defaults and values
  OSM can convert (INTEGER and BOOLEAN never "");
- names: a KDU name short enough for OSM's model `<kdu>-<36-character nsr id>` to be a
  63-character namespace;
- the KDU bundle: charms as `./<charm>_ubuntu@22.04-amd64.charm` files (OSM's VCA is Juju
  2.9) with their resources, endpoints that exist, the saas an offer of bundles/, and the
  service the same as `bundles/<name>.yaml` with `bundles/overlays/<name>-local-charms.yaml`.

`build` makes `<out>/<package>.tar.gz` for each package as `osm package-build` does (a tar.gz
of the folder with an md5 `checksums.txt`), reproducibly (sorted entries, fixed times and
owners). The charm files a bundle names are packed elsewhere (`charmcraft pack`, on a
machine that has it); build takes them from `--charms` (`<dir>/<charm>/<file>` as `make
stage` lays them out, or `<dir>/<file>`) when there, and lists those it did not find.
Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import io
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NSR_ID_LENGTH = 36  # OSM's NS record ids are UUIDs
NAMESPACE_MAX = 63
KDU_NAME_MAX = NAMESPACE_MAX - 1 - NSR_ID_LENGTH
BUNDLES_DIR = "juju-bundles"
CHECKSUMS = "checksums.txt"
# Juju 2.9 (OSM's VCA) deploys only the ubuntu@22.04 pack of a charm.
CHARM_FILE = re.compile(r"\./(?P<name>[a-z0-9][a-z0-9-]*)_ubuntu@22\.04-amd64\.charm")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Every entry of a built package gets this time (1980-01-01, the earliest a zip can hold too).
FIXED_MTIME = 315532800

# -- the information model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    type: str  # string, uint, boolean, enum
    values: tuple[str, ...] = ()
    many: bool = False  # a leaf-list


@dataclass(frozen=True)
class Container:
    fields: dict[str, Any]


@dataclass(frozen=True)
class List:
    key: tuple[str, ...]
    fields: dict[str, Any]


@dataclass(frozen=True)
class Unmodelled:
    """A field the IM has and this checker does not model: refused, saying why."""

    why: str = "a field of the IM this checker does not model (a KNF package does not need it)"


STR = Leaf("string")
STRS = Leaf("string", many=True)
UINT = Leaf("uint")
BOOL = Leaf("boolean")
NM = Unmodelled()
DATA_TYPE = Leaf("enum", ("STRING", "INTEGER", "BOOLEAN"))
EXECUTION_ENVIRONMENT = Unmodelled(
    "a juju-bundle KDU's primitives run on its bundle's applications; an execution environment "
    "(a charm of its own) would take them over"
)


def _unmodelled(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, NM)


PRIMITIVE_PARAMETER = List(
    ("name",),
    {
        "name": STR,
        "data-type": DATA_TYPE,
        "mandatory": BOOL,
        "default-value": STR,
        **_unmodelled("parameter-pool"),
    },
)
PRIMITIVE_VALUE = List(("name",), {"name": STR, "data-type": DATA_TYPE, "value": STR})
SEQUENCED_PRIMITIVE = List(
    ("seq",),
    {
        "seq": UINT,
        "name": STR,
        "parameter": PRIMITIVE_VALUE,
        **_unmodelled("execution-environment-ref", "user-defined-script"),
    },
)
DAY1_2 = List(
    ("id",),
    {
        "id": STR,
        "config-primitive": List(
            ("name",),
            {
                "name": STR,
                "parameter": PRIMITIVE_PARAMETER,
                **_unmodelled(
                    "execution-environment-ref", "execution-environment-primitive", "user-defined-script"
                ),
            },
        ),
        "initial-config-primitive": SEQUENCED_PRIMITIVE,
        "terminate-config-primitive": SEQUENCED_PRIMITIVE,
        "blacklist-config-primitive": Leaf("enum", ("upgrade", "rollback"), many=True),
        "script": EXECUTION_ENVIRONMENT,
        "juju": EXECUTION_ENVIRONMENT,
        "execution-environment-list": EXECUTION_ENVIRONMENT,
        **_unmodelled("metrics", "relation", "config-access"),
    },
)
VNFD = Container(
    {
        "id": STR,
        "provider": STR,
        "product-name": STR,
        "software-version": STR,
        "version": STR,
        "product-info-name": STR,
        "product-info-description": STR,
        "localization-language": STR,
        "default-localization-language": STR,
        "description": STR,
        "vnfm-info": STRS,
        "mgmt-cp": STR,
        "ext-cpd": List(
            ("id",),
            {
                "id": STR,
                "k8s-cluster-net": STR,
                "description": STR,
                "layer-protocol": STRS,
                "role": STR,
                **_unmodelled(
                    "int-virtual-link-desc",
                    "int-cpd",
                    "virtual-network-interface-requirement",
                    "nicio-requirements",
                    "protocol",
                    "trunk-mode",
                    "security-group-rule-id",
                    "port-security-enabled",
                    "port-security-disable-strategy",
                ),
            },
        ),
        "kdu": List(
            ("name",),
            {
                "name": STR,
                "description": STR,
                "juju-bundle": STR,
                "helm-chart": STR,
                "helm-version": Leaf("enum", ("v2", "v3")),
            },
        ),
        "k8s-cluster": Container(
            {
                "version": STRS,
                "cni": Leaf("enum", ("calico", "flannel", "multus"), many=True),
                "nets": List(("id",), {"id": STR}),
            }
        ),
        "df": List(
            ("id",),
            {
                "id": STR,
                "description": STR,
                "kdu-resource-profile": List(
                    ("id",),
                    {
                        "id": STR,
                        "kdu-name": STR,
                        "resource-name": STR,
                        "min-number-of-instances": UINT,
                        "max-number-of-instances": UINT,
                    },
                ),
                "lcm-operations-configuration": Container(
                    {
                        "operate-vnf-op-config": Container(
                            {
                                "day1-2": DAY1_2,
                                **_unmodelled(
                                    "min-graceful-stop-timeout",
                                    "max-recommended-graceful-stop-timeout",
                                    "parameter",
                                ),
                            }
                        ),
                        **_unmodelled(
                            "instantiate-vnf-op-config",
                            "scale-vnf-op-config",
                            "scale-vnf-to-level-op-config",
                            "heal-vnf-op-config",
                            "terminate-vnf-op-config",
                            "change-vnf-flavour-op-config",
                            "change-ext-vnf-connectivity-op-config",
                        ),
                    }
                ),
                **_unmodelled(
                    "vdu-profile",
                    "virtual-link-profile",
                    "instantiation-level",
                    "default-instantiation-level",
                    "supported-operation",
                    "affinity-or-anti-affinity-group",
                    "indicator",
                    "supported-vnf-interfaces",
                    "monitoring-parameter",
                    "scaling-aspect",
                ),
            },
        ),
        **_unmodelled(
            "vdu",
            "virtual-compute-desc",
            "virtual-storage-desc",
            "sw-image-desc",
            "int-virtual-link-desc",
            "security-group-rule",
            "configurable-properties",
            "modifiable-attributes",
            "lifecycle-management-script",
            "element-group",
            "indicator",
            "auto-scale",
            "service",
            "vip",
        ),
    }
)
NSD = Container(
    {
        "id": STR,
        "name": STR,
        "designer": STR,
        "version": STR,
        "invariant-id": STR,
        "description": STR,
        "vnfd-id": STRS,
        "virtual-link-desc": List(
            ("id",),
            {
                "id": STR,
                "description": STR,
                "mgmt-network": BOOL,
                "vim-network-name": STR,
                **_unmodelled(
                    "connectivity-type",
                    "df",
                    "test-access",
                    "signature",
                    "algorithm",
                    "certificate",
                    "provider-network",
                ),
            },
        ),
        "df": List(
            ("id",),
            {
                "id": STR,
                "vnf-profile": List(
                    ("id",),
                    {
                        "id": STR,
                        "vnfd-id": STR,
                        "flavour-id": STR,
                        "instantiation-level": STR,
                        "min-number-of-instances": UINT,
                        "max-number-of-instances": UINT,
                        "virtual-link-connectivity": List(
                            ("virtual-link-profile-id",),
                            {
                                "virtual-link-profile-id": STR,
                                "constituent-cpd-id": List(
                                    ("constituent-base-element-id", "constituent-cpd-id"),
                                    {
                                        "constituent-base-element-id": STR,
                                        "constituent-cpd-id": STR,
                                        "ip-address": STR,
                                    },
                                ),
                            },
                        ),
                        **_unmodelled(
                            "local-affinity-or-anti-affinity-rule", "affinity-or-anti-affinity-group"
                        ),
                    },
                ),
                "virtual-link-profile": List(
                    ("id",),
                    {
                        "id": STR,
                        "virtual-link-desc-id": STR,
                        "flavour-id": STR,
                        **_unmodelled(
                            "local-affinity-or-anti-affinity-rule",
                            "affinity-or-anti-affinity-group",
                            "max-bitrate-requirements",
                            "min-bitrate-requirements",
                            "virtual-link-protocol-data",
                        ),
                    },
                ),
                **_unmodelled(
                    "flavour-key",
                    "pnf-profile",
                    "scaling-aspect",
                    "affinity-or-anti-affinity-group",
                    "ns-instantiation-level",
                    "default-instantiation-level",
                    "ns-profile",
                    "dependencies",
                    "monitored-info",
                ),
            },
        ),
        **_unmodelled(
            "nested-nsd-id",
            "pnfd-id",
            "sapd",
            "vnffgd",
            "autoscale-rule",
            "lifecycle-management-script",
            "signature",
            "algorithm",
            "certificate",
            "ns-configuration",
        ),
    }
)
# Juju action parameter types -> the OSM data-types that reach the action as that type (OSM
# converts INTEGER with int() and BOOLEAN to true unless "false"; STRING passes as given).
COMPATIBLE = {
    "string": {"STRING"},
    "integer": {"INTEGER"},
    "number": {"INTEGER"},
    "boolean": {"BOOLEAN"},
    None: {"STRING"},
}

# -- problems ----------------------------------------------------------------------------------


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)

    def add(self, file: Path, where: str, message: str) -> None:
        self.problems.append(f"{file}: {where}: {message}" if where else f"{file}: {message}")


def _entry(path: str, item: Any, key: tuple[str, ...], index: int) -> str:
    if isinstance(item, dict) and all(k in item for k in key):
        return f"{path}[{','.join(str(item[k]) for k in key)}]"
    return f"{path}[{index}]"


def _leaf_ok(leaf: Leaf, value: Any) -> str | None:
    if leaf.type == "string":
        return None if isinstance(value, str) else f"{value!r} is not a string: quote it"
    if leaf.type == "uint":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else f"{value!r} is not an unsigned integer"
    if leaf.type == "boolean":
        return None if isinstance(value, bool) else f"{value!r} is not a boolean (true or false)"
    if value not in leaf.values:
        return f"{value!r} is none of {', '.join(leaf.values)}"
    return None


def check_fields(node: Any, value: Any, path: str, file: Path, report: Report) -> None:
    """Refuse every field the model does not have, and values of the wrong type."""
    if isinstance(node, Unmodelled):
        report.add(file, path, f"refused: {node.why}")
    elif isinstance(node, Leaf):
        values = value if node.many and isinstance(value, list) else [value]
        if node.many and not isinstance(value, list):
            report.add(file, path, "must be a list")
            return
        for item in values:
            problem = _leaf_ok(node, item)
            if problem:
                report.add(file, path, problem)
    elif isinstance(node, Container):
        if not isinstance(value, dict):
            report.add(file, path, "must be a mapping")
            return
        for key, item in value.items():
            where = f"{path}.{key}"
            if key not in node.fields:
                report.add(file, where, "unknown field (not in OSM's SOL006 information model)")
            else:
                check_fields(node.fields[key], item, where, file, report)
    elif isinstance(node, List):
        if not isinstance(value, list):
            report.add(file, path, "must be a list")
            return
        seen = set()
        for index, item in enumerate(value):
            where = _entry(path, item, node.key, index)
            if not isinstance(item, dict):
                report.add(file, where, "must be a mapping")
                continue
            missing = [k for k in node.key if k not in item]
            if missing:
                report.add(file, where, f"needs its key {', '.join(missing)}")
            else:
                ident = tuple(str(item[k]) for k in node.key)
                if ident in seen:
                    report.add(file, where, f"{'/'.join(node.key)} used twice (it is the list's key)")
                seen.add(ident)
            check_fields(Container(node.fields), item, where, file, report)


# -- charms and bundles ------------------------------------------------------------------------


@dataclass(frozen=True)
class Charm:
    name: str
    meta: dict[str, Any]

    @property
    def actions(self) -> dict[str, dict[str, Any]]:
        return self.meta.get("actions") or {}

    @property
    def endpoints(self) -> dict[str, str]:
        found = {}
        for role in ("provides", "requires", "peers"):
            for name, spec in (self.meta.get(role) or {}).items():
                found[name] = spec["interface"]
        return found


def charm_sources(charms_dir: Path) -> dict[str, Charm]:
    found = {}
    for path in sorted(charms_dir.glob("**/charmcraft.yaml")):
        meta = yaml.safe_load(path.read_text())
        found[meta["name"]] = Charm(meta["name"], meta)
    return found


def _charm_of(spec: dict[str, Any]) -> str:
    """The charm's name, from a name or from a packed file's `<name>_<platform>.charm`."""
    charm = str(spec.get("charm", ""))
    return Path(charm).name.split("_", 1)[0] if charm.endswith(".charm") else charm


def offers_of(bundles_dir: Path) -> dict[str, str]:
    """`admin/<model>.<offer>` -> the offering charm, the model named as its bundle."""
    found = {}
    for path in sorted(bundles_dir.glob("*.yaml")):
        bundle = yaml.safe_load(path.read_text()) or {}
        for spec in (bundle.get("applications") or {}).values():
            for offer in spec.get("offers") or {}:
                found[f"admin/{bundle.get('name')}.{offer}"] = _charm_of(spec)
    return found


def deployable_bundle(bundles_dir: Path, name: str) -> dict[str, Any] | None:
    """bundles/<name>.yaml with its local-charms overlay, charms named as files beside it."""
    source = bundles_dir / f"{name}.yaml"
    if not source.is_file():
        return None
    bundle = yaml.safe_load(source.read_text())
    overlay_path = bundles_dir / "overlays" / f"{name}-local-charms.yaml"
    overlay = yaml.safe_load(overlay_path.read_text()) if overlay_path.is_file() else {}
    merged = copy.deepcopy(bundle)
    for app, spec in (overlay.get("applications") or {}).items():
        merged["applications"].setdefault(app, {}).update(copy.deepcopy(spec))
    for spec in merged.get("applications", {}).values():
        charm = str(spec.get("charm", ""))
        if charm.endswith(".charm"):
            spec["charm"] = f"./{Path(charm).name}"
        else:
            spec["charm"] = f"./{charm}_ubuntu@22.04-amd64.charm"
    return merged


def _differences(expected: Any, actual: Any, path: str) -> list[tuple[str, str]]:
    """(where, what) for each place the KDU bundle differs from its source."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append((where, "missing"))
            elif key not in expected:
                found.append((where, "not in the source bundle"))
            else:
                found += _differences(expected[key], actual[key], where)
        return found
    if path == "relations" and isinstance(expected, list) and isinstance(actual, list):
        want = {tuple(sorted(map(str, r))) for r in expected}
        have = {tuple(sorted(map(str, r))) for r in actual}
        return [(path, f"{list(r)} missing") for r in sorted(want - have)] + [
            (path, f"{list(r)} not in the source bundle") for r in sorted(have - want)
        ]
    return [] if expected == actual else [(path, f"{actual!r}, the source bundle has {expected!r}")]


@dataclass
class KduBundle:
    file: Path
    bundle: dict[str, Any]
    charms: dict[str, Charm]  # application -> charm (applications whose charm has a source)


def check_bundle(
    file: Path, charms: dict[str, Charm], bundles_dir: Path, offers: dict[str, str], report: Report
) -> KduBundle | None:
    try:
        bundle = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        report.add(file, "", f"not YAML: {exc}")
        return None
    if not isinstance(bundle, dict):
        report.add(file, "", "not a bundle (a mapping)")
        return None
    if bundle.get("bundle") != "kubernetes":
        report.add(file, "bundle", "must be kubernetes (OSM deploys the KDU into a Kubernetes model)")
    apps = bundle.get("applications") or {}
    saas = bundle.get("saas") or {}
    resolved: dict[str, Charm] = {}
    for app, spec in apps.items():
        where = f"applications.{app}"
        if not DNS_LABEL.fullmatch(str(app)):
            report.add(file, where, "an application name must be a DNS-1123 label")
        charm_ref = str((spec or {}).get("charm", ""))
        match = CHARM_FILE.fullmatch(charm_ref)
        if not match:
            report.add(
                file,
                f"{where}.charm",
                f"{charm_ref!r}: name the packed file beside the bundle, ./<charm>_ubuntu@22.04-amd64.charm "
                "(OSM's Juju 2.9 deploys the 22.04 pack)",
            )
            continue
        charm = charms.get(match["name"])
        if charm is None:
            report.add(
                file, f"{where}.charm", f"{charm_ref!r}: no charm {match['name']!r} has a source in charms/"
            )
            continue
        resolved[app] = charm
        declared = set(charm.meta.get("resources") or {})
        given = set(spec.get("resources") or {})
        for name in sorted(declared - given):
            report.add(
                file, f"{where}.resources", f"{name!r} missing: a local charm file carries no resources"
            )
        for name in sorted(given - declared):
            report.add(file, f"{where}.resources.{name}", f"charm {charm.name!r} has no such resource")
        options = (charm.meta.get("config") or {}).get("options") or {}
        for key in spec.get("options") or {}:
            if key not in options:
                report.add(file, f"{where}.options.{key}", f"charm {charm.name!r} has no such option")
    remote: dict[str, Charm] = {}
    for name, spec in saas.items():
        url = (spec or {}).get("url")
        offering = offers.get(str(url))
        if offering is None:
            report.add(file, f"saas.{name}.url", f"{url!r} is no offer of the bundles in bundles/")
        elif offering in charms:
            remote[name] = charms[offering]
    known = {**resolved, **remote}
    for index, relation in enumerate(bundle.get("relations") or []):
        interfaces = []
        for end in relation:
            app, _, endpoint = str(end).partition(":")
            charm = known.get(app)
            if app not in apps and app not in saas:
                report.add(file, f"relations[{index}]", f"{end!r}: no application or saas {app!r}")
            elif charm is not None and endpoint not in charm.endpoints:
                report.add(
                    file, f"relations[{index}]", f"{end!r}: charm {charm.name!r} has no endpoint {endpoint!r}"
                )
            elif charm is not None:
                interfaces.append(charm.endpoints[endpoint])
        if len(interfaces) == 2 and interfaces[0] != interfaces[1]:
            report.add(
                file,
                f"relations[{index}]",
                f"{relation}: interfaces differ ({interfaces[0]}, {interfaces[1]})",
            )
    expected = deployable_bundle(bundles_dir, str(bundle.get("name")))
    if expected is None:
        report.add(
            file, "name", f"{bundle.get('name')!r}: no bundles/{bundle.get('name')}.yaml to keep it equal to"
        )
    else:
        source = f"bundles/{bundle['name']}.yaml (with its local-charms overlay)"
        for where, what in _differences(expected, bundle, ""):
            report.add(file, where, f"differs from {source}: {what}")
    return KduBundle(file, bundle, resolved)


# -- descriptors -------------------------------------------------------------------------------


@dataclass
class Vnfd:
    file: Path
    data: dict[str, Any]
    bundles: dict[str, KduBundle]  # KDU name -> its bundle


def _load(file: Path, top: str, report: Report) -> Any:
    try:
        doc = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        report.add(file, "", f"not YAML: {exc}")
        return None
    if not isinstance(doc, dict) or top not in doc:
        report.add(file, "", f"a {top.upper()} file holds one mapping under {top!r}")
        return None
    for key in sorted(set(doc) - {top}, key=str):
        report.add(file, str(key), f"unknown field: the file holds only {top!r}")
    return doc[top]


def _ids(items: Any, key: str = "id") -> list[str]:
    return [str(item[key]) for item in items or [] if isinstance(item, dict) and key in item]


def _require(file: Path, data: dict[str, Any], where: str, names: tuple[str, ...], report: Report) -> None:
    for name in names:
        if data.get(name) in (None, "", []):
            report.add(file, f"{where}.{name}", "missing (OSM needs it)")


def check_vnfd(
    package: Path,
    file: Path,
    charms: dict[str, Charm],
    bundles_dir: Path,
    offers: dict[str, str],
    report: Report,
) -> Vnfd | None:
    vnfd = _load(file, "vnfd", report)
    if not isinstance(vnfd, dict):
        return None
    check_fields(VNFD, vnfd, "vnfd", file, report)
    _require(
        file,
        vnfd,
        "vnfd",
        ("id", "product-name", "provider", "version", "mgmt-cp", "ext-cpd", "kdu", "df"),
        report,
    )
    cpds = _ids(vnfd.get("ext-cpd"))
    if vnfd.get("mgmt-cp") and vnfd["mgmt-cp"] not in cpds:
        report.add(
            file, "vnfd.mgmt-cp", f"{vnfd['mgmt-cp']!r} is no ext-cpd id ({', '.join(cpds) or 'none'})"
        )
    nets = _ids((vnfd.get("k8s-cluster") or {}).get("nets"))
    for cpd in vnfd.get("ext-cpd") or []:
        if isinstance(cpd, dict) and "k8s-cluster-net" in cpd and cpd["k8s-cluster-net"] not in nets:
            report.add(
                file,
                f"vnfd.ext-cpd[{cpd.get('id')}].k8s-cluster-net",
                f"{cpd['k8s-cluster-net']!r} is no k8s-cluster.nets id ({', '.join(nets) or 'none'})",
            )
    bundles: dict[str, KduBundle] = {}
    for kdu in vnfd.get("kdu") or []:
        if not isinstance(kdu, dict):
            continue
        name = str(kdu.get("name", ""))
        where = f"vnfd.kdu[{name}]"
        if not DNS_LABEL.fullmatch(name) or len(name) > KDU_NAME_MAX:
            report.add(
                file,
                f"{where}.name",
                f"{name!r}: OSM names the KDU's model and namespace <kdu-name>-<nsr-id>; with the "
                "36-character id that is a DNS-1123 label of at most 63 characters only for a lowercase "
                f"name of at most {KDU_NAME_MAX}",
            )
        if "juju-bundle" not in kdu:
            report.add(file, where, "needs juju-bundle: the KDUs here are Juju bundles")
            continue
        bundle_name = str(kdu["juju-bundle"])
        path = package / BUNDLES_DIR / bundle_name
        if "/" in bundle_name or not path.is_file():
            report.add(
                file,
                f"{where}.juju-bundle",
                f"{bundle_name!r}: no file {package.name}/{BUNDLES_DIR}/{bundle_name} (OSM reads a package's "
                f"bundle from {BUNDLES_DIR}/)",
            )
            continue
        checked = check_bundle(path, charms, bundles_dir, offers, report)
        if checked is not None:
            bundles[name] = checked
    dfs = vnfd.get("df") or []
    if isinstance(dfs, list) and len(dfs) > 1:
        report.add(file, "vnfd.df", "OSM reads only the first df: give one")
    for df in dfs if isinstance(dfs, list) else []:
        if isinstance(df, dict):
            _check_df(file, df, vnfd, bundles, report)
    return Vnfd(file, vnfd, bundles)


def _check_df(
    file: Path, df: dict[str, Any], vnfd: dict[str, Any], bundles: dict[str, KduBundle], report: Report
) -> None:
    where = f"vnfd.df[{df.get('id')}]"
    kdus = _ids(vnfd.get("kdu"), "name")
    for profile in df.get("kdu-resource-profile") or []:
        if not isinstance(profile, dict):
            continue
        pw = f"{where}.kdu-resource-profile[{profile.get('id')}]"
        kdu = profile.get("kdu-name")
        if kdu not in kdus:
            report.add(file, f"{pw}.kdu-name", f"{kdu!r} is no KDU ({', '.join(kdus)})")
        elif kdu in bundles and profile.get("resource-name") not in bundles[kdu].bundle.get(
            "applications", {}
        ):
            apps = ", ".join(bundles[kdu].bundle.get("applications", {}))
            report.add(
                file,
                f"{pw}.resource-name",
                f"{profile.get('resource-name')!r} is no application of KDU {kdu} ({apps})",
            )
        low, high = profile.get("min-number-of-instances"), profile.get("max-number-of-instances")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            report.add(file, pw, f"min-number-of-instances {low} is above max-number-of-instances {high}")
    config = ((df.get("lcm-operations-configuration") or {}).get("operate-vnf-op-config") or {}).get(
        "day1-2"
    ) or []
    for entry in config if isinstance(config, list) else []:
        if not isinstance(entry, dict):
            continue
        ew = f"{where}.lcm-operations-configuration.operate-vnf-op-config.day1-2[{entry.get('id')}]"
        if entry.get("id") not in kdus:
            report.add(
                file,
                f"{ew}.id",
                f"{entry.get('id')!r} is no KDU name ({', '.join(kdus)}): a KDU's day1-2 id is its name",
            )
        elif entry["id"] in bundles:
            check_primitives(file, ew, entry, bundles[entry["id"]], report)


def _params(primitive: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(p["name"]): p for p in primitive.get("parameter") or [] if isinstance(p, dict) and "name" in p
    }


def _signature(action: dict[str, Any]) -> dict[str, Any]:
    return {name: (spec or {}).get("type") for name, spec in (action.get("params") or {}).items()}


def check_primitives(file: Path, where: str, entry: dict[str, Any], kdu: KduBundle, report: Report) -> None:
    kinds = (("initial-config-primitive", "seq", "value"), ("terminate-config-primitive", "seq", "value"))
    for kind, key, value_field in (*kinds, ("config-primitive", "name", "default-value")):
        for primitive in entry.get(kind) or []:
            if isinstance(primitive, dict):
                pw = f"{where}.{kind}[{primitive.get(key)}]"
                _check_primitive(file, pw, primitive, value_field, kind == "config-primitive", kdu, report)


def _check_primitive(
    file: Path,
    where: str,
    primitive: dict[str, Any],
    value_field: str,
    day2: bool,
    kdu: KduBundle,
    report: Report,
) -> None:
    name = str(primitive.get("name", ""))
    params = _params(primitive)
    apps = kdu.bundle.get("applications") or {}
    selector = params.get("application-name")
    if selector is None:
        report.add(
            file,
            f"{where}.parameter",
            "needs parameter application-name: OSM runs a KDU primitive on the application it names "
            "and fails without it",
        )
        return
    app = selector.get(value_field)
    if app is None:
        report.add(
            file,
            f"{where}.parameter[application-name]",
            f"needs a {value_field}: the application that runs {name}"
            + (" unless ns-action names another" if day2 else ""),
        )
        return
    if app not in apps:
        report.add(
            file,
            f"{where}.parameter[application-name].{value_field}",
            f"{app!r} names no application of {kdu.file.name} ({', '.join(apps)})",
        )
        return
    charm = kdu.charms.get(str(app))
    if charm is None:
        return  # the bundle's own problem, reported there
    action = charm.actions.get(name)
    if action is None:
        report.add(
            file,
            f"{where}.name",
            f"{name!r} is no action of charm {charm.name!r} (application {app}); "
            f"its actions: {', '.join(charm.actions)}",
        )
        return
    _check_against_action(file, where, params, value_field, day2, charm.name, str(app), name, action, report)
    if day2:
        # One primitive per name serves every application with that action (ns-action picks one
        # with application-name): their parameters must agree.
        for other_app, other in sorted(kdu.charms.items()):
            other_action = other.actions.get(name)
            if other_app == app or other_action is None:
                continue
            if _signature(other_action) != _signature(action):
                report.add(
                    file,
                    f"{where}.name",
                    f"application {other_app} (charm {other.name}) has action {name} with other "
                    f"parameters ({', '.join(_signature(other_action))}) than {app}'s: OSM keys primitives "
                    "by name, so one primitive serves both",
                )


def _check_against_action(
    file: Path,
    where: str,
    params: dict[str, dict[str, Any]],
    value_field: str,
    day2: bool,
    charm: str,
    app: str,
    name: str,
    action: dict[str, Any],
    report: Report,
) -> None:
    declared = _signature(action)
    required = set(action.get("required") or [])
    owner = f"action {name} of charm {charm} (application {app})"
    for param in sorted(set(params) - set(declared)):
        report.add(
            file, f"{where}.parameter[{param}]", f"{owner} has no parameter {param!r} ({', '.join(declared)})"
        )
    for param in sorted(set(declared) - set(params)):
        if day2:
            report.add(
                file,
                f"{where}.parameter",
                f"{owner} has parameter {param!r}, not declared here: OSM passes only declared parameters",
            )
        elif param in required:
            report.add(file, f"{where}.parameter", f"{owner} requires parameter {param!r}")
    for param in sorted(set(params) & set(declared)):
        spec = params[param]
        pw = f"{where}.parameter[{param}]"
        data_type = spec.get("data-type")
        allowed = COMPATIBLE.get(declared[param], {"STRING"})
        if data_type is None:
            report.add(
                file,
                f"{pw}.data-type",
                f"missing: {owner} takes it as {declared[param]}: use {'/'.join(sorted(allowed))}",
            )
            continue
        if data_type not in allowed:
            report.add(
                file,
                f"{pw}.data-type",
                f"{data_type} does not reach {owner} as the {declared[param] or 'string'} it declares: "
                f"use {'/'.join(sorted(allowed))}",
            )
            continue
        value = spec.get(value_field)
        if value is None:
            if not day2:
                report.add(file, pw, f"needs a {value_field}")
            continue
        problem = _value_problem(data_type, value, param in required)
        if problem:
            report.add(file, f"{pw}.{value_field}", problem)


def _value_problem(data_type: str, value: Any, required: bool) -> str | None:
    if not isinstance(value, str):
        return None  # the field check says it must be a string
    if data_type == "INTEGER" and not re.fullmatch(r"-?[0-9]+", value):
        return f"{value!r}: OSM converts an INTEGER with int() and fails the primitive on this"
    if data_type == "BOOLEAN" and value not in ("true", "false"):
        return f"{value!r}: OSM sends a BOOLEAN as true unless it is 'false': write true or false"
    if data_type == "STRING" and value == "" and required:
        return "'' for a parameter the action requires: drop the default so OSM asks for it"
    return None


def check_nsd(file: Path, vnfds: dict[str, Vnfd], report: Report) -> None:
    top = _load(file, "nsd", report)
    if not isinstance(top, dict):
        return
    for key in sorted(set(top) - {"nsd"}, key=str):
        report.add(file, f"nsd.{key}", "unknown field: nsd holds only the list nsd")
    entries = top.get("nsd")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        report.add(file, "nsd.nsd", "must be a list of exactly one NSD (OSM's onboarding takes one)")
        return
    nsd = entries[0]
    where = f"nsd.nsd[{nsd.get('id')}]"
    check_fields(NSD, nsd, where, file, report)
    _require(file, nsd, where, ("id", "name", "vnfd-id", "df"), report)
    members = [str(v) for v in nsd.get("vnfd-id") or []]
    for vnfd_id in members:
        if vnfd_id not in vnfds:
            report.add(
                file,
                f"{where}.vnfd-id",
                f"{vnfd_id!r}: no VNFD package here has that id ({', '.join(vnfds)})",
            )
    links = set(_ids(nsd.get("virtual-link-desc")))
    for df in nsd.get("df") or []:
        if not isinstance(df, dict):
            continue
        dw = f"{where}.df[{df.get('id')}]"
        profiles = {str(p["id"]): p for p in df.get("vnf-profile") or [] if isinstance(p, dict) and "id" in p}
        link_profiles = set(links)
        for vlp in df.get("virtual-link-profile") or []:
            if isinstance(vlp, dict):
                link_profiles.add(str(vlp.get("id")))
                if vlp.get("virtual-link-desc-id") not in links:
                    report.add(
                        file,
                        f"{dw}.virtual-link-profile[{vlp.get('id')}].virtual-link-desc-id",
                        f"{vlp.get('virtual-link-desc-id')!r} is no virtual-link-desc id "
                        f"({', '.join(sorted(links))})",
                    )
        for pid, profile in profiles.items():
            pw = f"{dw}.vnf-profile[{pid}]"
            vnfd_id = profile.get("vnfd-id")
            if vnfd_id not in members:
                report.add(
                    file, f"{pw}.vnfd-id", f"{vnfd_id!r} is not in the NSD's vnfd-id ({', '.join(members)})"
                )
            for vlc in profile.get("virtual-link-connectivity") or []:
                if not isinstance(vlc, dict):
                    continue
                vw = f"{pw}.virtual-link-connectivity[{vlc.get('virtual-link-profile-id')}]"
                if vlc.get("virtual-link-profile-id") not in link_profiles:
                    report.add(
                        file,
                        f"{vw}.virtual-link-profile-id",
                        f"{vlc.get('virtual-link-profile-id')!r} is no virtual link "
                        f"({', '.join(sorted(link_profiles))})",
                    )
                for cpd in vlc.get("constituent-cpd-id") or []:
                    if isinstance(cpd, dict):
                        _check_constituent(file, vw, cpd, profiles, vnfds, report)


def _check_constituent(
    file: Path,
    where: str,
    cpd: dict[str, Any],
    profiles: dict[str, Any],
    vnfds: dict[str, Vnfd],
    report: Report,
) -> None:
    base = cpd.get("constituent-base-element-id")
    cw = f"{where}.constituent-cpd-id[{base},{cpd.get('constituent-cpd-id')}]"
    if base not in profiles:
        report.add(
            file,
            f"{cw}.constituent-base-element-id",
            f"{base!r} is no vnf-profile id of this df ({', '.join(profiles)})",
        )
        return
    vnfd = vnfds.get(str(profiles[base].get("vnfd-id")))
    if vnfd is None:
        return
    cpds = _ids(vnfd.data.get("ext-cpd"))
    if cpd.get("constituent-cpd-id") not in cpds:
        report.add(
            file,
            f"{cw}.constituent-cpd-id",
            f"{cpd.get('constituent-cpd-id')!r} is no ext-cpd of VNFD {vnfd.data.get('id')} "
            f"({', '.join(cpds)})",
        )


# -- packages ----------------------------------------------------------------------------------


@dataclass
class Result:
    problems: list[str]
    charm_files: dict[str, list[str]]  # package folder -> the charm files its bundles name


def package_dirs(osm_dir: Path) -> list[Path]:
    return sorted(p for p in osm_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _package_files(package: Path) -> list[Path]:
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(package).parts)
    )


def inspect(
    osm_dir: Path, charms_dir: Path = ROOT / "charms", bundles_dir: Path = ROOT / "bundles"
) -> Result:
    report = Report()
    charms = charm_sources(charms_dir)
    offers = offers_of(bundles_dir)
    vnfds: dict[str, Vnfd] = {}
    nsds: list[Path] = []
    charm_files: dict[str, list[str]] = {}
    packages = package_dirs(osm_dir)
    if not packages:
        report.add(osm_dir, "", "no package folders")
    for package in packages:
        top = sorted(p for p in package.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
        if len(top) != 1:
            names = ", ".join(p.name for p in top) or "none"
            report.add(
                package,
                "",
                f"{len(top)} YAML files at the package's top ({names}): OSM takes exactly one, the "
                f"descriptor (bundles go in {BUNDLES_DIR}/)",
            )
            continue
        if (package / CHECKSUMS).exists():
            report.add(package / CHECKSUMS, "", "made by the build (tools/osm_packages.py build): remove it")
        for path in _package_files(package):
            rel = path.relative_to(package)
            if path.suffix in (".yaml", ".yml") and len(rel.parts) > 1 and rel.parts[0] != BUNDLES_DIR:
                report.add(path, "", f"a YAML file outside the package's top and {BUNDLES_DIR}/")
        descriptor = top[0]
        base = package.name.rsplit("_", 1)[0]
        if descriptor.name.endswith("vnfd.yaml"):
            if not package.name.endswith(("_knf", "_vnf")) or descriptor.name != f"{base}_vnfd.yaml":
                report.add(
                    descriptor,
                    "",
                    f"a VNFD package is <name>_knf/<name>_vnfd.yaml, not {package.name}/{descriptor.name}",
                )
            vnfd = check_vnfd(package, descriptor, charms, bundles_dir, offers, report)
            if vnfd is None:
                continue
            vnfd_id = str(vnfd.data.get("id"))
            if vnfd_id in vnfds:
                report.add(descriptor, "vnfd.id", f"{vnfd_id!r} is the id of {vnfds[vnfd_id].file} too")
            vnfds[vnfd_id] = vnfd
            charm_files[package.name] = sorted(
                {
                    Path(str(spec["charm"])).name
                    for kdu in vnfd.bundles.values()
                    for spec in (kdu.bundle.get("applications") or {}).values()
                    if CHARM_FILE.fullmatch(str(spec.get("charm", "")))
                }
            )
        elif descriptor.name.endswith("nsd.yaml"):
            if not package.name.endswith("_ns") or descriptor.name != f"{base}_nsd.yaml":
                report.add(
                    descriptor,
                    "",
                    f"an NS package is <name>_ns/<name>_nsd.yaml, not {package.name}/{descriptor.name}",
                )
            nsds.append(descriptor)
        else:
            report.add(
                descriptor,
                "",
                "a descriptor's file name ends in vnfd.yaml or nsd.yaml (OSM finds it by that)",
            )
    for descriptor in nsds:
        check_nsd(descriptor, vnfds, report)
    return Result(report.problems, charm_files)


def check(
    osm_dir: Path, charms_dir: Path = ROOT / "charms", bundles_dir: Path = ROOT / "bundles"
) -> list[str]:
    return inspect(osm_dir, charms_dir, bundles_dir).problems


# -- build -------------------------------------------------------------------------------------


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
        info.size = size
    return info


def build_package(package: Path, out_dir: Path, extra: dict[str, Path] | None = None) -> Path:
    """`<out_dir>/<package>.tar.gz`: the folder, `extra` (relative name -> file) and checksums.txt."""
    files = {path.relative_to(package).as_posix(): path for path in _package_files(package)}
    files.update(extra or {})
    files.pop(CHECKSUMS, None)
    checksums = "".join(f"{md5_of(files[rel])}\t{package.name}/{rel}\n" for rel in sorted(files)).encode()
    names = {f"{package.name}/{rel}" for rel in files} | {f"{package.name}/{CHECKSUMS}"}
    dirs = {package.name}
    for name in names:
        parts = name.split("/")[:-1]
        dirs |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(dirs | names):
            if name in dirs:
                tar.addfile(_info(name, directory=True))
            elif name == f"{package.name}/{CHECKSUMS}":
                tar.addfile(_info(name, len(checksums)), io.BytesIO(checksums))
            else:
                source = files[name.split("/", 1)[1]]
                with source.open("rb") as stream:
                    tar.addfile(_info(name, source.stat().st_size), stream)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{package.name}.tar.gz"
    with (
        target.open("wb") as stream,
        gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0) as zipped,
    ):
        zipped.write(raw.getvalue())
    return target


def find_charm_file(name: str, charm_dirs: list[Path]) -> Path | None:
    charm = name.split("_", 1)[0]
    for directory in charm_dirs:
        for candidate in (directory / charm / name, directory / name):
            if candidate.is_file():
                return candidate
    return None


def build(
    osm_dir: Path,
    out_dir: Path,
    charm_dirs: list[Path],
    charms_dir: Path = ROOT / "charms",
    bundles_dir: Path = ROOT / "bundles",
) -> tuple[list[Path], dict[str, list[str]], list[str]]:
    """Check, then build every package: (archives, package -> charm files not found, problems)."""
    result = inspect(osm_dir, charms_dir, bundles_dir)
    if result.problems:
        return [], {}, result.problems
    built, missing = [], {}
    for package in package_dirs(osm_dir):
        extra = {}
        for name in result.charm_files.get(package.name, []):
            if (package / BUNDLES_DIR / name).is_file():
                continue
            found = find_charm_file(name, charm_dirs)
            if found is None:
                missing.setdefault(package.name, []).append(name)
            else:
                extra[f"{BUNDLES_DIR}/{name}"] = found
        built.append(build_package(package, out_dir, extra))
    return built, missing, []


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check and build the OSM packages in osm/.")
    sub = parser.add_subparsers(dest="command", required=True)
    check_cmd = sub.add_parser("check", help="check every package in a folder")
    check_cmd.add_argument("osm_dir", type=Path)
    build_cmd = sub.add_parser("build", help="check, then build one tar.gz per package")
    build_cmd.add_argument("osm_dir", type=Path)
    build_cmd.add_argument("--out", type=Path, required=True)
    build_cmd.add_argument(
        "--charms",
        type=Path,
        action="append",
        default=[],
        help="where packed charm files are (<dir>/<charm>/<file>)",
    )
    build_cmd.add_argument(
        "--require-charms", action="store_true", help="fail when a charm file is not found"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        result = inspect(args.osm_dir)
        for problem in result.problems:
            print(problem, file=sys.stderr)
        if result.problems:
            return 1
        print(f"{args.osm_dir}: {len(package_dirs(args.osm_dir))} packages OK")
        for package, files in sorted(result.charm_files.items()):
            print(f"{package} needs the packed charm files (charmcraft): {', '.join(files)}")
        return 0
    built, missing, problems = build(args.osm_dir, args.out, args.charms)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    for path in built:
        print(f"{path} md5 {md5_of(path)}")
    for package, files in sorted(missing.items()):
        print(
            f"{package}: not found, so not in the package: {', '.join(files)} (make stage, then "
            "`charmcraft pack --platform ubuntu@22.04:amd64` in build/<charm>/, and build again)",
            file=sys.stderr,
        )
    return 1 if missing and args.require_charms else 0


if __name__ == "__main__":
    sys.exit(main())
