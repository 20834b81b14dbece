"""Every charm deploys where its users are: OSM's Juju 2.9 (ubuntu@22.04 only) and Juju 3.6
LTS / 4 (ubuntu@24.04). Checked on the charmcraft.yaml files themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHARMCRAFT = sorted([*ROOT.glob("charms/**/charmcraft.yaml"), *ROOT.glob("knf/tests/**/charmcraft.yaml")])
BASES = {"ubuntu@22.04", "ubuntu@24.04"}
# What `assumes` may ask for: features Juju 2.9.43 knows.
ASSUMES_29 = {"k8s-api"}


def _bases(meta: dict) -> set[str]:
    """Bases of a unified charmcraft.yaml: a top-level base, or multi-base platform names
    (`ubuntu@22.04:amd64`), or platforms with build-on/build-for."""
    found = {meta["base"]} if meta.get("base") else set()
    for name, platform in (meta.get("platforms") or {}).items():
        match = re.fullmatch(r"(ubuntu@\d\d\.\d\d):[a-z0-9]+", name)
        if match:
            found.add(match[1])
        for entry in (platform or {}).get("build-for") or []:
            found.add(entry.split(":")[0])
    return found


@pytest.mark.parametrize("path", CHARMCRAFT, ids=lambda p: str(p.relative_to(ROOT).parent))
def test_both_bases_and_nothing_juju_29_lacks(path):
    meta = yaml.safe_load(path.read_text())
    assert _bases(meta) >= BASES, f"{path}: bases {sorted(_bases(meta))}, need {sorted(BASES)}"
    for entry in meta.get("assumes") or []:
        assert isinstance(entry, str) and entry in ASSUMES_29, f"{path}: assumes {entry!r}"


def test_platform_names_are_read_as_bases():
    meta = {"platforms": {"ubuntu@22.04:amd64": None, "ubuntu@24.04:amd64": None}}
    assert _bases(meta) == BASES
    assert _bases({"base": "ubuntu@24.04", "platforms": {"amd64": None}}) == {"ubuntu@24.04"}


@pytest.mark.parametrize("path", CHARMCRAFT, ids=lambda p: str(p.relative_to(ROOT).parent))
def test_every_action_takes_application_name_and_nothing_undeclared(path):
    # OSM puts application-name in every primitive and passes it on to the action; Juju
    # refuses a parameter the action does not declare.
    meta = yaml.safe_load(path.read_text())
    for name, action in (meta.get("actions") or {}).items():
        params = (action or {}).get("params") or {}
        assert "application-name" in params, f"{path}: action {name} lacks application-name"
        assert (action or {}).get("additionalProperties") is False, f"{path}: action {name} takes anything"


def test_the_charm_sets_are_all_found():
    names = {yaml.safe_load(p.read_text())["name"] for p in CHARMCRAFT}
    assert {"l2sm-controller", "l2sm-switch", "l2sm-network", "test-knf"} <= names
    assert {"cdn-content-server", "cdn-router", "cdn-cache"} <= names
