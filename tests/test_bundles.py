"""Every bundle in bundles/, and every overlay merged onto its base, passes the bundle checker
(l2sm_lab.bundlecheck: charms, options, endpoints, interfaces, addresses, resources, offers and
saas; its own refusals are tested in lab/tests/test_bundlecheck.py). The checker runs here as
the README shows it, from the command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from l2sm_lab.bundlecheck import check

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted((ROOT / "bundles").glob("*.yaml"))
OVERLAYS = sorted((ROOT / "bundles" / "overlays").glob("*.yaml"))


def _base_of(overlay: Path) -> Path:
    # The first comment line names the base: "# overlay for bundles/<base>.yaml".
    first = overlay.read_text().splitlines()[0]
    assert first.startswith("# overlay for "), f"{overlay}: first line must name its base bundle"
    return ROOT / first.split("overlay for ", 1)[1].strip()


def test_there_are_bundles_and_overlays():
    assert {p.name for p in BUNDLES} >= {"l2sm.yaml", "cdn.yaml", "cdn-one-model.yaml"}
    assert OVERLAYS


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_bundle_is_consistent(path):
    assert yaml.safe_load(path.read_text()).get("bundle") == "kubernetes"
    assert [str(p) for p in check(path)] == []


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.name)
def test_overlay_onto_its_base_is_consistent(path):
    assert [str(p) for p in check(_base_of(path), [path])] == []


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.name)
def test_the_checker_command_passes_each_overlay(path):
    base = _base_of(path).relative_to(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "l2sm_lab.bundlecheck", str(base), "--overlay", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


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
