"""Packing readiness: what each charm's charmcraft.yaml `parts:` builds is what `make stage`
(tools/stage.py) lays out, so the two cannot drift. charmcraft's charm plugin takes every file
of the tree it packs (bar its default ignores), installs `charm-requirements` into venv/ and
writes a dispatch running `charm-entrypoint` with lib/ on PYTHONPATH; charmcraft itself does not
run here (it refuses non-Ubuntu hosts), so this holds the parts to that."""

from __future__ import annotations

import filecmp
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("l2sm_stage", ROOT / "tools" / "stage.py")
assert _spec is not None and _spec.loader is not None
stage = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = stage
_spec.loader.exec_module(stage)

CHARMS = sorted(p.parent for p in ROOT.glob("charms/**/charmcraft.yaml") if "tests" not in p.parts)
PART_KEYS = {
    "plugin",
    "source",
    "charm-entrypoint",
    "charm-requirements",
    "charm-binary-python-packages",
    "override-build",
}
# Compiled packages whose source build needs only what the charm plugin installs (python3-dev,
# libyaml-dev): C speed-ups with a pure fallback. Any other compiled one must come as a wheel.
BUILDS_FROM_SOURCE = {"markupsafe", "pyyaml"}
# charmcraft's default ignores (its jujuignore): a staged tree holding one would lose it.
IGNORED = {".git", ".svn", ".hg", ".bzr", ".tox", ".jujuignore", "build", "revision"}
NOT_PACKED = {"tests", "__pycache__", ".pytest_cache", ".coverage"}


def _part(charm: Path) -> dict:
    parts = yaml.safe_load((charm / "charmcraft.yaml").read_text())["parts"]
    assert set(parts) == {"charm"}, f"{charm.name}: one part, `charm`, not {sorted(parts)}"
    return parts["charm"]


def _files(top: Path) -> set[str]:
    return {
        str(p.relative_to(top))
        for p in top.rglob("*")
        if p.is_file() and not NOT_PACKED & set(p.relative_to(top).parts) and p.suffix != ".pyc"
    }


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_the_part_is_the_charm_plugin_on_the_staged_tree(charm: Path) -> None:
    part = _part(charm)
    assert set(part) <= PART_KEYS, (
        f"{charm.name}: keys {sorted(set(part) - PART_KEYS)} would change what is packed"
    )
    assert (part["plugin"], part["source"]) == ("charm", ".")
    assert part["charm-entrypoint"] == "src/charm.py"
    assert part["charm-requirements"] == ["requirements.txt"]


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_the_part_checks_for_the_packages_stage_vendors(charm: Path) -> None:
    script = _part(charm)["override-build"]
    listed = script.split("for package in", 1)[1].split(";", 1)[0].split()
    assert listed == [p.name for p in stage.needed_packages(charm / "src")]


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_the_staged_tree_is_what_the_plugin_packs(charm: Path, tmp_path: Path) -> None:
    staged = stage.stage(charm, tmp_path)
    files = _files(staged)
    assert not {part for f in files for part in Path(f).parts} & IGNORED
    expected = {f for f in _files(charm) if Path(f).parts[0] in stage.CHARM_ENTRIES} | {"LICENSE"}
    for package in stage.needed_packages(charm / "src"):
        expected |= {str(Path("lib") / package.name / f) for f in _files(package)}
    assert files == expected
    part = _part(charm)
    assert (staged / part["charm-entrypoint"]).is_file()
    for requirements in part["charm-requirements"]:
        assert filecmp.cmp(staged / requirements, charm / requirements, shallow=False)


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_stage_drops_nothing_packing_in_place_would_take(charm: Path) -> None:
    # A file stage does not copy would be in a pack made in charms/, not in one made in build/.
    tracked = subprocess.run(["git", "ls-files", "."], cwd=charm, capture_output=True, text=True, check=True)
    top = {Path(line).parts[0] for line in tracked.stdout.split()} - NOT_PACKED
    dropped = sorted(top - set(stage.CHARM_ENTRIES))
    assert not dropped, f"{charm.name}: {dropped} not staged"


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_the_guard_passes_on_the_staged_tree_and_stops_packing_in_place(charm: Path, tmp_path: Path) -> None:
    script = _part(charm)["override-build"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    craftctl = bin_dir / "craftctl"
    craftctl.write_text('#!/bin/sh\necho "craftctl $*"\n')
    craftctl.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    staged = stage.stage(charm, tmp_path / "build")
    done = subprocess.run(["bash", "-euc", script], cwd=staged, env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "craftctl default\n"), done.stderr
    done = subprocess.run(["bash", "-euc", script], cwd=charm, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "craftctl" not in done.stdout
    assert f"missing: run make stage, pack in build/{charm.name}/" in done.stderr


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _compiled(name: str) -> bool:
    """The wheel installed here (from the lock) holds platform code."""
    wheel = importlib.metadata.distribution(name).read_text("WHEEL") or ""
    return "Root-Is-Purelib: false" in wheel


def _closure(names: set[str]) -> dict[str, str]:
    """Every distribution the names pull in (markers as on this interpreter), with the version
    installed from the lock."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = sorted(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist.version
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


@pytest.mark.parametrize("charm", CHARMS, ids=lambda p: p.name)
def test_what_compiles_from_rust_is_packed_from_wheels(charm: Path) -> None:
    """charmcraft's plugin runs pip with --no-binary for every package the requirements name,
    and the part's build environment has no Rust: a named compiled package (cryptography) must
    be in charm-binary-python-packages, and pydantic-core too. Each pinned to the version the
    lock resolves, or pip would fetch another and clash with the requirements' pins."""
    binary = _part(charm).get("charm-binary-python-packages") or []
    lines = (charm / "requirements.txt").read_text().splitlines()
    named = {_name(line) for line in lines if line.strip() and not line.lstrip().startswith("#")}
    closure = _closure(named)
    pins = {}
    for entry in binary:
        name, _, version = entry.partition("==")
        assert version, f"{charm.name}: {entry!r} in charm-binary-python-packages: pin it (==)"
        pins[_name(name)] = version
    for name, version in sorted(pins.items()):
        assert closure.get(name) == version, (
            f"{charm.name}: charm-binary-python-packages has {name}=={version}, "
            f"the lock resolves {closure.get(name, 'nothing of that name')}"
        )
    need = {n for n in named if _compiled(n)} - BUILDS_FROM_SOURCE
    if "pydantic-core" in closure:
        need.add("pydantic-core")
    missing = sorted(need - set(pins))
    assert not missing, f"{charm.name}: add {missing} (==the lock's version) to charm-binary-python-packages"
