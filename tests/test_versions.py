"""One source of versions: requirements-dev.txt pins everything `make` installs, and every
other list is checked against it, so a pin cannot drift in one place only."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib  # novermin
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "requirements-dev.txt"
CHARM_REQUIREMENTS = sorted(ROOT.glob("charms/**/requirements.txt"))
PROJECTS = sorted(p for p in ROOT.glob("*/pyproject.toml"))
OURS = {"l2sm-core", "l2sm-controlplane", "l2sm-knf", "l2sm-charmlib", "l2sm-testing", "l2sm-lab"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = specs[0].version
    return pins


LOCK = _pins(LOCK_FILE)


@pytest.mark.parametrize("path", CHARM_REQUIREMENTS, ids=lambda p: p.parent.name)
def test_charm_pins_are_the_lock_s(path):
    for name, version in _pins(path).items():
        assert name in LOCK, f"{path}: {name} is not in {LOCK_FILE.name}"
        assert version == LOCK[name], f"{path}: {name}=={version}, {LOCK_FILE.name} has {LOCK[name]}"


@pytest.mark.parametrize("path", PROJECTS, ids=lambda p: p.parent.name)
def test_package_ranges_admit_the_locked_versions(path):
    project = tomllib.loads(path.read_text()).get("project") or {}
    requirements = list(project.get("dependencies") or [])
    for extra in (project.get("optional-dependencies") or {}).values():
        requirements += extra
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name in OURS:
            continue
        assert name in LOCK, f"{path}: {name} is not pinned in {LOCK_FILE.name}"
        assert requirement.specifier.contains(LOCK[name]), (
            f"{path}: {line!r} does not admit the locked {name}=={LOCK[name]}"
        )


def test_every_locked_runtime_package_is_imported():
    # A pin nobody imports is a version to keep up for nothing (tools run as commands).
    tools = {
        "pytest",
        "pytest-cov",
        "coverage",
        "ruff",
        "codespell",
        "pyright",
        "vermin",
        "hypothesis",
        "tomli",
        # A pytest plugin: the integration suite uses its options and markers, never imports it.
        "pytest-jubilant",
    }
    indirect = {"lightkube-models", "jsonschema", "markupsafe"}  # of lightkube, kubernetes-validate, jinja2
    # os-ken's own dependencies (the lab's OpenFlow controller), pinned so CI installs the same.
    indirect |= {
        "eventlet", "greenlet", "dnspython", "oslo-config", "oslo-i18n", "ovs", "pbr", "netaddr", "msgpack",
        "ncclient", "lxml", "paramiko", "bcrypt", "pynacl", "invoke", "routes", "repoze-lru", "webob", "six",
        "stevedore", "requests", "urllib3", "certifi", "charset-normalizer", "rfc3986",
    }  # fmt: skip
    # matplotlib's own dependencies (the benchmarks' plots).
    indirect |= {
        "contourpy", "cycler", "fonttools", "kiwisolver", "numpy", "pillow", "pyparsing", "python-dateutil",
        "tzdata",
    }  # fmt: skip
    sources = "\n".join(
        p.read_text() for p in ROOT.glob("**/*.py") if ".venv" not in p.parts and "build" not in p.parts
    )
    for name in sorted(set(LOCK) - tools - indirect):
        module = {
            "pyyaml": "yaml",
            "kubernetes-validate": "kubernetes_validate",
            "ops": "ops",
            "charmlibs-interfaces-tls-certificates": r"charmlibs\.interfaces\.tls_certificates",
        }.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.MULTILINE), f"{name} is never imported"
