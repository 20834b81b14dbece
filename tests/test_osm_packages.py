"""The OSM packages in osm/ pass tools/osm_packages.py, and the checker refuses broken ones,
naming the file and the field; the build is reproducible and its checksums hold."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OSM = ROOT / "osm"
VNFD_FILE = "cdn_knf/cdn_vnfd.yaml"
BUNDLE_FILE = "cdn_knf/juju-bundles/bundle.yaml"
NSD_FILE = "cdn_ns/cdn_nsd.yaml"
DAY12 = "vnfd.df[default-df].lcm-operations-configuration.operate-vnf-op-config.day1-2[cdn]"
CDN_CHARMS = ("cdn-cache", "cdn-content-server", "cdn-router")


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("osm_packages", ROOT / "tools" / "osm_packages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["osm_packages"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture
def osm(tmp_path: Path) -> Path:
    copy = tmp_path / "osm"
    shutil.copytree(OSM, copy)
    return copy


def edit(root: Path, rel: str, change: Callable[[Any], Any]) -> None:
    path = root / rel
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def vnfd(data: dict) -> dict:
    return data["vnfd"]


def day12(data: dict) -> dict:
    return data["vnfd"]["df"][0]["lcm-operations-configuration"]["operate-vnf-op-config"]["day1-2"][0]


def primitive(data: dict, name: str) -> dict:
    return next(p for p in day12(data)["config-primitive"] if p["name"] == name)


def param(prim: dict, name: str) -> dict:
    return next(p for p in prim["parameter"] if p["name"] == name)


def nsd(data: dict) -> dict:
    return data["nsd"]["nsd"][0]


def assert_refused(root: Path, rel: str, where: str, message: str) -> None:
    problems = tool.check(root)
    expected = f"{root / rel}: {where}: "
    hits = [p for p in problems if p.startswith(expected) and message in p]
    assert hits, f"no problem starting {expected!r} and saying {message!r} in:\n" + "\n".join(problems)


# -- the packages here -----------------------------------------------------------------------


def test_every_package_passes():
    assert tool.check(OSM) == []


def test_check_command(capsys):
    assert tool.main(["check", str(OSM)]) == 0
    out = capsys.readouterr().out
    assert "2 packages OK" in out
    assert "cdn-router_ubuntu@22.04-amd64.charm" in out


def test_kdu_bundle_is_the_cdn_bundle_made_deployable():
    """The KDU bundle's service is bundles/cdn.yaml with the local-charms overlay."""
    expected = tool.deployable_bundle(ROOT / "bundles", "cdn")
    assert yaml.safe_load((OSM / BUNDLE_FILE).read_text()) == expected


def test_every_cdn_action_is_a_primitive():
    data = yaml.safe_load((OSM / VNFD_FILE).read_text())
    primitives = {p["name"] for p in day12(data)["config-primitive"]}
    charms = tool.charm_sources(ROOT / "charms")
    actions = {action for name in CDN_CHARMS for action in charms[name].actions}
    assert primitives == actions


def test_kdu_name_fits_a_namespace():
    data = yaml.safe_load((OSM / VNFD_FILE).read_text())
    for kdu in vnfd(data)["kdu"]:
        assert len(f"{kdu['name']}-{'0' * 36}") <= 63


# -- broken packages -------------------------------------------------------------------------

BROKEN_VNFD = [
    (
        "mgmt-cp naming no ext-cpd",
        lambda d: vnfd(d).update({"mgmt-cp": "mgmt"}),
        "vnfd.mgmt-cp",
        "no ext-cpd id",
    ),
    (
        "k8s-cluster-net naming no net",
        lambda d: vnfd(d)["ext-cpd"][0].update({"k8s-cluster-net": "datanet"}),
        "vnfd.ext-cpd[mgmt-ext].k8s-cluster-net",
        "no k8s-cluster.nets id",
    ),
    (
        "primitive without an action",
        lambda d: primitive(d, "show-routes").update({"name": "reboot"}),
        f"{DAY12}.config-primitive[reboot].name",
        "'reboot' is no action of charm 'cdn-router'",
    ),
    (
        "parameter name mismatch",
        lambda d: param(primitive(d, "fetch-content"), "wait").update({"name": "timeout"}),
        f"{DAY12}.config-primitive[fetch-content].parameter[timeout]",
        "has no parameter 'timeout'",
    ),
    (
        "action parameter left out",
        lambda d: primitive(d, "fetch-content")["parameter"].pop(),
        f"{DAY12}.config-primitive[fetch-content].parameter",
        "has parameter 'wait', not declared here",
    ),
    (
        "application-name naming no application",
        lambda d: param(primitive(d, "purge"), "application-name").update({"default-value": "cdn-cahce"}),
        f"{DAY12}.config-primitive[purge].parameter[application-name].default-value",
        "'cdn-cahce' names no application of bundle.yaml",
    ),
    (
        "no application-name",
        lambda d: primitive(d, "list-rules").update({"parameter": []}),
        f"{DAY12}.config-primitive[list-rules].parameter",
        "needs parameter application-name",
    ),
    (
        "application-name without a default",
        lambda d: param(primitive(d, "list-rules"), "application-name").pop("default-value"),
        f"{DAY12}.config-primitive[list-rules].parameter[application-name]",
        "needs a default-value",
    ),
    (
        "incompatible type",
        lambda d: param(primitive(d, "sync-now"), "wait").update({"data-type": "STRING"}),
        f"{DAY12}.config-primitive[sync-now].parameter[wait].data-type",
        "STRING does not reach action sync-now",
    ),
    (
        "no data-type",
        lambda d: param(primitive(d, "set-link"), "state").pop("data-type"),
        f"{DAY12}.config-primitive[set-link].parameter[state].data-type",
        "missing",
    ),
    (
        "INTEGER defaulting to ''",
        lambda d: param(primitive(d, "check-connectivity"), "count").update({"default-value": ""}),
        f"{DAY12}.config-primitive[check-connectivity].parameter[count].default-value",
        "int()",
    ),
    (
        "BOOLEAN defaulting to ''",
        lambda d: param(primitive(d, "purge"), "all").update({"default-value": ""}),
        f"{DAY12}.config-primitive[purge].parameter[all].default-value",
        "as true unless it is 'false'",
    ),
    (
        "'' for a required parameter",
        lambda d: param(primitive(d, "remove-rule"), "name").update({"default-value": ""}),
        f"{DAY12}.config-primitive[remove-rule].parameter[name].default-value",
        "the action requires",
    ),
    (
        "initial primitive without a required parameter",
        lambda d: day12(d)["initial-config-primitive"][0]["parameter"].pop(2),
        f"{DAY12}.initial-config-primitive[1].parameter",
        "requires parameter 'size'",
    ),
    (
        "initial primitive on an application without that action",
        lambda d: param(day12(d)["initial-config-primitive"][0], "application-name").update(
            {"value": "cdn-cache"}
        ),
        f"{DAY12}.initial-config-primitive[1].name",
        "'generate-content' is no action of charm 'cdn-cache'",
    ),
    (
        "initial primitive value not a string",
        lambda d: param(day12(d)["initial-config-primitive"][1], "count").update({"value": 3}),
        f"{DAY12}.initial-config-primitive[2].parameter[count].value",
        "is not a string",
    ),
    (
        "seq not an integer",
        lambda d: day12(d)["initial-config-primitive"][0].update({"seq": "first"}),
        f"{DAY12}.initial-config-primitive[first].seq",
        "not an unsigned integer",
    ),
    (
        "primitive declared twice",
        lambda d: day12(d)["config-primitive"].append(dict(primitive(d, "list-rules"))),
        f"{DAY12}.config-primitive[list-rules]",
        "used twice",
    ),
    (
        "unknown field",
        lambda d: vnfd(d)["kdu"][0].update({"helm-repo": "stable"}),
        "vnfd.kdu[cdn].helm-repo",
        "unknown field",
    ),
    ("unknown top-level field", lambda d: vnfd(d).update({"name": "cdn"}), "vnfd.name", "unknown field"),
    ("an IM field a KNF does not use", lambda d: vnfd(d).update({"vdu": []}), "vnfd.vdu", "refused"),
    (
        "an execution environment on the KDU",
        lambda d: day12(d).update({"juju": {"charm": "cdn"}}),
        f"{DAY12}.juju",
        "an execution environment",
    ),
    (
        "KDU name too long for a namespace",
        lambda d: (
            vnfd(d)["kdu"][0].update({"name": "content-delivery-network-kdu"}),
            day12(d).update({"id": "content-delivery-network-kdu"}),
        ),
        "vnfd.kdu[content-delivery-network-kdu].name",
        "at most 26",
    ),
    (
        "day1-2 naming no KDU",
        lambda d: day12(d).update({"id": "cdn-kdu"}),
        "vnfd.df[default-df].lcm-operations-configuration.operate-vnf-op-config.day1-2[cdn-kdu].id",
        "no KDU name",
    ),
    (
        "bundle file missing",
        lambda d: vnfd(d)["kdu"][0].update({"juju-bundle": "cdn.yaml"}),
        "vnfd.kdu[cdn].juju-bundle",
        "no file cdn_knf/juju-bundles/cdn.yaml",
    ),
    ("two dfs", lambda d: vnfd(d)["df"].append({"id": "other"}), "vnfd.df", "only the first df"),
    (
        "kdu-resource-profile naming no application",
        lambda d: vnfd(d)["df"][0].update(
            {"kdu-resource-profile": [{"id": "cache", "kdu-name": "cdn", "resource-name": "cache"}]}
        ),
        "vnfd.df[default-df].kdu-resource-profile[cache].resource-name",
        "'cache' is no application of KDU cdn",
    ),
]


@pytest.mark.parametrize(
    ("change", "where", "message"), [c[1:] for c in BROKEN_VNFD], ids=[c[0] for c in BROKEN_VNFD]
)
def test_broken_vnfd_refused(osm, change, where, message):
    edit(osm, VNFD_FILE, change)
    assert_refused(osm, VNFD_FILE, where, message)


def test_kdu_resource_profile_accepted(osm):
    edit(
        osm,
        VNFD_FILE,
        lambda d: vnfd(d)["df"][0].update(
            {
                "kdu-resource-profile": [
                    {
                        "id": "cache",
                        "kdu-name": "cdn",
                        "resource-name": "cdn-cache",
                        "min-number-of-instances": 1,
                    }
                ]
            }
        ),
    )
    assert tool.check(osm) == []


def _app(name: str) -> Callable[[dict], dict]:
    return lambda b: b["applications"][name]


BROKEN_BUNDLE = [
    (
        "charm with no source",
        lambda b: _app("cdn-cache")(b).update({"charm": "./cdn-proxy_ubuntu@22.04-amd64.charm"}),
        "applications.cdn-cache.charm",
        "no charm 'cdn-proxy' has a source in charms/",
    ),
    (
        "charm by name",
        lambda b: _app("cdn-cache")(b).update({"charm": "cdn-cache"}),
        "applications.cdn-cache.charm",
        "./<charm>_ubuntu@22.04-amd64.charm",
    ),
    (
        "the 24.04 pack",
        lambda b: _app("cdn-router")(b).update({"charm": "./cdn-router_ubuntu@24.04-amd64.charm"}),
        "applications.cdn-router.charm",
        "Juju 2.9",
    ),
    (
        "missing endpoint",
        lambda b: b["relations"].append(["cdn-cache:origins", "cdn-content-server:origin"]),
        "relations[7]",
        "charm 'cdn-cache' has no endpoint 'origins'",
    ),
    (
        "wrong interface",
        lambda b: b["relations"].append(["cdn-cache:origin", "my-first-osm-net:network"]),
        "relations[7]",
        "interfaces differ (cdn_origin, l2sm_network)",
    ),
    (
        "missing resource",
        lambda b: _app("cdn-router")(b).pop("resources"),
        "applications.cdn-router.resources",
        "'router-image' missing",
    ),
    (
        "unknown option",
        lambda b: _app("cdn-cache")(b)["options"].update({"cache-size": "1G"}),
        "applications.cdn-cache.options.cache-size",
        "has no such option",
    ),
    (
        "saas naming no offer",
        lambda b: b["saas"]["l2sm-controller"].update({"url": "admin/core.l2sm-controller"}),
        "saas.l2sm-controller.url",
        "no offer",
    ),
    (
        "service drifted from bundles/cdn.yaml",
        lambda b: _app("my-first-osm-net")(b)["options"].update({"cidr": "10.0.9.0/24"}),
        "applications.my-first-osm-net.options.cidr",
        "differs from bundles/cdn.yaml",
    ),
]


@pytest.mark.parametrize(
    ("change", "where", "message"), [c[1:] for c in BROKEN_BUNDLE], ids=[c[0] for c in BROKEN_BUNDLE]
)
def test_broken_kdu_bundle_refused(osm, change, where, message):
    edit(osm, BUNDLE_FILE, change)
    assert_refused(osm, BUNDLE_FILE, where, message)


CONSTITUENT = "nsd.nsd[cdn_ns].df[default-df].vnf-profile[cdn].virtual-link-connectivity[mgmtnet]"


def _constituent(d: dict) -> dict:
    return nsd(d)["df"][0]["vnf-profile"][0]["virtual-link-connectivity"][0]["constituent-cpd-id"][0]


BROKEN_NSD = [
    (
        "constituent cpd naming no ext-cpd",
        lambda d: _constituent(d).update({"constituent-cpd-id": "mgmt"}),
        f"{CONSTITUENT}.constituent-cpd-id[cdn,mgmt].constituent-cpd-id",
        "'mgmt' is no ext-cpd of VNFD cdn_knf",
    ),
    (
        "constituent naming the VNFD, not the vnf-profile",
        lambda d: _constituent(d).update({"constituent-base-element-id": "cdn_knf"}),
        f"{CONSTITUENT}.constituent-cpd-id[cdn_knf,mgmt-ext].constituent-base-element-id",
        "no vnf-profile id",
    ),
    (
        "virtual link naming no virtual-link-desc",
        lambda d: nsd(d)["df"][0]["vnf-profile"][0]["virtual-link-connectivity"][0].update(
            {"virtual-link-profile-id": "datanet"}
        ),
        "nsd.nsd[cdn_ns].df[default-df].vnf-profile[cdn].virtual-link-connectivity[datanet].virtual-link-profile-id",
        "no virtual link",
    ),
    (
        "vnf-profile naming a VNFD the NSD does not list",
        lambda d: nsd(d)["df"][0]["vnf-profile"][0].update({"vnfd-id": "cache_knf"}),
        "nsd.nsd[cdn_ns].df[default-df].vnf-profile[cdn].vnfd-id",
        "not in the NSD's vnfd-id",
    ),
    (
        "VNFD with no package",
        lambda d: nsd(d).update({"vnfd-id": ["cdn_knf", "cache_knf"]}),
        "nsd.nsd[cdn_ns].vnfd-id",
        "'cache_knf': no VNFD package here",
    ),
    ("unknown field", lambda d: nsd(d).update({"vld": []}), "nsd.nsd[cdn_ns].vld", "unknown field"),
    ("two NSDs in one file", lambda d: d["nsd"]["nsd"].append(dict(nsd(d))), "nsd.nsd", "exactly one NSD"),
]


@pytest.mark.parametrize(
    ("change", "where", "message"), [c[1:] for c in BROKEN_NSD], ids=[c[0] for c in BROKEN_NSD]
)
def test_broken_nsd_refused(osm, change, where, message):
    edit(osm, NSD_FILE, change)
    assert_refused(osm, NSD_FILE, where, message)


def _problems_for(root: Path, rel: str) -> list[str]:
    return [p for p in tool.check(root) if p.startswith(f"{root / rel}:")]


def test_two_yamls_at_the_top_refused(osm):
    (osm / "cdn_knf" / "values.yaml").write_text("a: 1\n")
    problems = _problems_for(osm, "cdn_knf")
    assert any("2 YAML files at the package's top (cdn_vnfd.yaml, values.yaml)" in p for p in problems), (
        problems
    )


def test_bundle_at_the_top_refused(osm):
    (osm / BUNDLE_FILE).rename(osm / "cdn_knf" / "bundle.yaml")
    problems = _problems_for(osm, "cdn_knf")
    assert any("2 YAML files at the package's top" in p and "juju-bundles/" in p for p in problems), problems


def test_descriptor_name_refused(osm):
    (osm / VNFD_FILE).rename(osm / "cdn_knf" / "cdn_descriptor.yaml")
    problems = _problems_for(osm, "cdn_knf/cdn_descriptor.yaml")
    assert any("ends in vnfd.yaml or nsd.yaml" in p for p in problems), problems


def test_package_folder_convention(osm):
    (osm / "cdn_knf").rename(osm / "cdn")
    problems = _problems_for(osm, "cdn/cdn_vnfd.yaml")
    assert any("<name>_knf/<name>_vnfd.yaml" in p for p in problems), problems


def test_yaml_outside_juju_bundles_refused(osm):
    (osm / "cdn_knf" / "charts").mkdir()
    (osm / "cdn_knf" / "charts" / "values.yaml").write_text("a: 1\n")
    assert _problems_for(osm, "cdn_knf/charts/values.yaml")


def test_checksums_in_the_source_refused(osm):
    (osm / "cdn_ns" / "checksums.txt").write_text("")
    assert _problems_for(osm, "cdn_ns/checksums.txt")


def test_check_command_fails(osm, capsys):
    edit(osm, NSD_FILE, lambda d: _constituent(d).update({"constituent-cpd-id": "mgmt"}))
    assert tool.main(["check", str(osm)]) == 1
    assert "constituent-cpd-id" in capsys.readouterr().err


# -- the build -------------------------------------------------------------------------------


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        stream = tar.extractfile(name)
        assert stream is not None
        return stream.read()


def test_build_is_reproducible_and_its_checksums_hold(tmp_path):
    first, missing, problems = tool.build(OSM, tmp_path / "a", [])
    second, _, _ = tool.build(OSM, tmp_path / "b", [])
    assert problems == []
    assert [p.name for p in first] == ["cdn_knf.tar.gz", "cdn_ns.tar.gz"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert missing == {"cdn_knf": [f"{c}_ubuntu@22.04-amd64.charm" for c in (*CDN_CHARMS, "l2sm-network")]}
    for archive in first:
        package = archive.name.removesuffix(".tar.gz")
        members = _members(archive)
        assert list(members) == sorted(members)
        assert all(m.mtime == tool.FIXED_MTIME and m.uid == 0 and m.uname == "" for m in members.values())
        assert all(name == package or name.startswith(f"{package}/") for name in members)
        lines = _read(archive, f"{package}/checksums.txt").decode().splitlines()
        listed = {}
        for line in lines:
            digest, name = line.split("\t")
            listed[name] = digest
        files = {n for n, m in members.items() if m.isfile() and n != f"{package}/checksums.txt"}
        assert set(listed) == files
        for name, digest in listed.items():
            assert hashlib.md5(_read(archive, name), usedforsecurity=False).hexdigest() == digest
        source = {
            f"{package}/{p.relative_to(OSM / package).as_posix()}"
            for p in (OSM / package).rglob("*")
            if p.is_file()
        }
        assert source <= files


def test_build_takes_the_packed_charms(tmp_path):
    packed = tmp_path / "build" / "cdn-cache"
    packed.mkdir(parents=True)
    (packed / "cdn-cache_ubuntu@22.04-amd64.charm").write_bytes(b"a charm")
    built, missing, _ = tool.build(OSM, tmp_path / "out", [tmp_path / "build"])
    knf = next(p for p in built if p.name == "cdn_knf.tar.gz")
    assert _read(knf, "cdn_knf/juju-bundles/cdn-cache_ubuntu@22.04-amd64.charm") == b"a charm"
    assert "cdn-cache_ubuntu@22.04-amd64.charm" not in missing["cdn_knf"]
    checksums = _read(knf, "cdn_knf/checksums.txt").decode()
    assert (
        f"{hashlib.md5(b'a charm', usedforsecurity=False).hexdigest()}\tcdn_knf/juju-bundles/cdn-cache"
        in checksums
    )


def test_build_command(tmp_path, capsys):
    assert tool.main(["build", str(OSM), "--out", str(tmp_path)]) == 0
    assert "not found, so not in the package" in capsys.readouterr().err
    assert tool.main(["build", str(OSM), "--out", str(tmp_path), "--require-charms"]) == 1


def test_build_refuses_a_broken_package(osm, tmp_path):
    edit(osm, VNFD_FILE, lambda d: vnfd(d).update({"mgmt-cp": "mgmt"}))
    built, _, problems = tool.build(osm, tmp_path / "out", [])
    assert built == [] and problems
    assert not (tmp_path / "out").exists()
