"""The KNF package stands alone (docs/decisions/0006-knf-library-distribution.md).

The test KNF charm, staged as charmcraft would pack it, carries l2sm_knf and l2sm_core and
nothing of the controller; its own suite passes in a clean virtualenv holding only the
charm's requirements (and pytest, ops[testing]); and it passes again against the two
packages built as wheels and installed by pip, as a third-party charm gets them.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_staged_charms import INTERPRETERS, _venv_for
from test_versions import LOCK, LOCK_FILE, _pins

if sys.version_info >= (3, 11):
    import tomllib  # novermin
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
KNF_CHARM = ROOT / "knf" / "tests" / "knf_charm"
PACKAGES = ("core", "knf")  # the KNF package and what it needs, as workspace directories
CONTROLLER_CODE = ("l2sm_controlplane", "l2sm_charmlib")
TEST_TOOLS = ("pytest", "ops")  # from the lock: ops[testing] brings ops.testing


def _project(package: str) -> dict:
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]


def _version(package: str) -> str:
    return _project(package)["version"]


def _dependencies(package: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    project = _project(package)
    lines = list(project.get("dependencies") or [])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _run(python: Path, cwd: Path, path: list[str], code: str, env: dict[str, str] | None = None):
    """`code` in an isolated interpreter (-I: no PYTHONPATH, no user site, no cwd on the path)
    with `path` first on sys.path, as the charm's dispatch script sets lib and src; -B writes
    no bytecode into the tree."""
    return subprocess.run(
        [str(python), "-I", "-B", "-c", f"import sys; sys.path[:0] = {path!r}; {code}"],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


RUN_SUITE = "import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/unit']))"


def _assert_suite_passed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 5, result.stdout
    assert not re.search(r"\d+ (skipped|xfailed)", result.stdout), result.stdout


def _assert_no_controller_code(python: Path, cwd: Path, path: list[str]) -> None:
    for module in CONTROLLER_CODE:
        result = _run(python, cwd, path, f"import {module}")
        assert f"No module named '{module}'" in result.stderr, (module, result.stderr)


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "stage.py"), "--out", str(out), str(KNF_CHARM)],
        check=True,
        capture_output=True,
    )
    return out / KNF_CHARM.name


@pytest.fixture
def test_venv(build_dir, tmp_path, request) -> Path:
    """A virtualenv with the charm's requirements and the test tools, cached by content."""
    tools = [line for line in LOCK_FILE.read_text().splitlines() if _requirement_name(line) in TEST_TOOLS]
    requirements = tmp_path / "requirements-knf-tests.txt"
    requirements.write_text((KNF_CHARM / "requirements.txt").read_text() + "\n".join(tools) + "\n")
    return _venv_for(requirements, build_dir / ".venvs", request.param)


def _requirement_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    return canonicalize_name(Requirement(line).name) if line else None


# -- what the package is and carries ------------------------------------------------------------


def test_the_knf_charm_pins_are_the_lock_s():
    pins = _pins(KNF_CHARM / "requirements.txt")
    assert pins, "knf/tests/knf_charm/requirements.txt pins nothing"
    for name, version in pins.items():
        assert LOCK.get(name) == version, f"{name}=={version}, {LOCK_FILE.name} has {LOCK.get(name)}"


def test_the_knf_charm_requirements_cover_the_two_packages():
    # What pip would install for l2sm-knf (and l2sm-core[netlink]) is all in requirements.txt.
    pins = _pins(KNF_CHARM / "requirements.txt")
    ours = {"l2sm-core", "l2sm-knf"}
    needed = _dependencies("knf") + _dependencies("core", ("netlink",))
    for requirement in needed:
        name = canonicalize_name(requirement.name)
        if name in ours:
            continue
        assert name in pins, f"{requirement} is not pinned in knf/tests/knf_charm/requirements.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"
    assert {canonicalize_name(r.name) for r in _dependencies("knf")} & {
        "l2sm-controlplane",
        "l2sm-charmlib",
    } == set()


def test_nothing_of_the_knf_package_imports_the_controller_s_code():
    files = [*(ROOT / "knf").rglob("*.py"), *(ROOT / "core" / "src").rglob("*.py")]
    assert files
    for path in files:
        if "egg-info" in str(path) or "__pycache__" in path.parts:
            continue
        found = _imports(path) & set(CONTROLLER_CODE)
        assert not found, f"{path.relative_to(ROOT)} imports {', '.join(sorted(found))}"


def test_the_staged_knf_charm_carries_the_knf_package_alone(staged):
    assert sorted(p.name for p in (staged / "lib").iterdir()) == ["l2sm_core", "l2sm_knf"]
    assert (staged / "lib" / "l2sm_knf" / "l2sm_network.py").is_file()
    assert (staged / "requirements.txt").read_text() == (KNF_CHARM / "requirements.txt").read_text()
    assert not (staged / "tests").exists(), "tests are not packed"
    assert not list(staged.rglob("__pycache__"))


# -- in a clean virtualenv ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("test_venv", INTERPRETERS, indirect=True)
def test_the_knf_charm_suite_passes_with_the_staged_lib_alone(staged, test_venv, tmp_path):
    tree = tmp_path / "knf_charm"
    shutil.copytree(staged, tree)  # the staged tree itself stays as it would be packed
    shutil.copytree(KNF_CHARM / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    _assert_suite_passed(_run(test_venv, tree, ["lib", "src"], RUN_SUITE))
    _assert_no_controller_code(test_venv, tree, ["lib", "src"])

    # The same run fails without the staged core: the suite really uses lib/.
    shutil.rmtree(tree / "lib" / "l2sm_core")
    result = _run(test_venv, tree, ["lib", "src"], RUN_SUITE)
    assert result.returncode != 0 and "No module named 'l2sm_core'" in result.stdout + result.stderr


# Each requirement of the two installed packages (extras included) met by what is installed.
CHECK_REQUIREMENTS = """
from importlib import metadata
from packaging.requirements import Requirement
unmet = []
for dist, extras in (("l2sm-knf", ()), ("l2sm-core", ("netlink",))):
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{dist}: {req} not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{dist}: {req}, found {version}")
print(metadata.version("l2sm-knf"), metadata.version("l2sm-core"))
sys.exit("; ".join(unmet) or None)
"""


@pytest.mark.slow
@pytest.mark.parametrize("test_venv", INTERPRETERS, indirect=True)
def test_the_knf_package_installs_with_pip_and_the_suite_passes(test_venv, tmp_path):
    # Built from copies: an in-tree build would leave build/ and egg-info in the workspace.
    sources = tmp_path / "sources"
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            sources / package,
            ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "tests"),
        )
    wheels = tmp_path / "wheels"
    build = ["wheel", "--quiet", "--no-input", "--no-deps", "-w", str(wheels)]
    subprocess.run(
        [str(test_venv), "-m", "pip", *build, *(str(sources / p) for p in PACKAGES)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    built = sorted(p.name for p in wheels.iterdir())
    assert [re.sub(r"-[^-]+-py3-none-any\.whl$", "", name) for name in built] == ["l2sm_core", "l2sm_knf"]
    with zipfile.ZipFile(next(wheels.glob("l2sm_knf-*.whl"))) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"l2sm_knf"}

    # Into a directory of its own, so the cached virtualenv is not changed; --no-index:
    # everything else the packages need must already come from the charm's requirements.
    site = tmp_path / "site"
    install = ["install", "--quiet", "--no-input", "--no-deps", "--no-index", "--target", str(site)]
    subprocess.run(
        [str(test_venv), "-m", "pip", *install, *map(str, sorted(wheels.iterdir()))],
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = _run(test_venv, tmp_path, [str(site)], CHECK_REQUIREMENTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [_version("knf"), _version("core")]
    check = subprocess.run(
        [str(test_venv), "-m", "pip", "check"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # A third-party charm: the packages installed, the charm's own src, no lib/.
    charm = tmp_path / "third-party-charm"
    for entry in ("src", "tests"):
        shutil.copytree(KNF_CHARM / entry, charm / entry, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(KNF_CHARM / "charmcraft.yaml", charm)
    _assert_suite_passed(_run(test_venv, charm, [str(site), "src"], RUN_SUITE))
    _assert_no_controller_code(test_venv, charm, [str(site), "src"])
