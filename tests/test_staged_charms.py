"""The packing check: each staged charm imports in a clean virtualenv holding only its own
requirements, with PYTHONPATH set as the charm's dispatch script sets it (lib, then src).

charmcraft cannot pack on this Debian host, so this is the proof that a packed charm carries
everything it imports.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHARM_DIRS = sorted(p.parent for p in ROOT.glob("charms/**/charmcraft.yaml"))
IMPORT_CHARM = "import charm; print(charm.__file__)"


def _python310() -> str | None:
    """Python 3.10, the interpreter of the ubuntu@22.04 base that Juju 2.9 deploys, if this
    machine has one (on PATH, or from pyenv)."""
    pyenv = sorted(glob.glob("/root/.pyenv/versions/3.10.*/bin/python3.10"))
    candidates = [*pyenv, shutil.which("python3.10")]
    for candidate in filter(None, candidates):
        # A pyenv shim may stand on PATH without the version behind it: it must really run.
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True).returncode == 0:
            return candidate
    return None


PYTHON310 = _python310()
# The interpreter running the tests (ubuntu@24.04's is 3.12; here whatever runs them), and 3.10.
INTERPRETERS = [
    pytest.param(sys.executable, id="test-python"),
    pytest.param(
        PYTHON310,
        id="python3.10",
        marks=pytest.mark.skipif(
            PYTHON310 is None,
            reason="no Python 3.10 here (ubuntu@22.04's interpreter): install python3.10 to run this check",
        ),
    ),
]


def _venv_for(requirements: Path, cache: Path, interpreter: str) -> Path:
    """A virtualenv with exactly these requirements, reused while the file is unchanged."""
    version = subprocess.run(
        [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = cache / f"venv-py{version}-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-input", "-r", str(requirements)],
            check=True,
        )
        (venv / ".complete").touch()
    return python


def _import_charm(python: Path, staged: Path) -> subprocess.CompletedProcess:
    # -B: no bytecode, so the staged tree stays as charmcraft would pack it (-I ignores PYTHON*).
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": "lib:src",
        "PYTHONNOUSERSITE": "1",
    }
    return subprocess.run(
        [str(python), "-I", "-B", "-c", f"import sys; sys.path[:0] = ['lib', 'src']; {IMPORT_CHARM}"],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_charm_is_staged(build_dir):
    assert CHARM_DIRS, "no charms found"
    for charm_dir in CHARM_DIRS:
        staged = build_dir / charm_dir.name
        assert (staged / "charmcraft.yaml").is_file(), f"{charm_dir.name} not staged"
        assert (staged / "lib" / "l2sm_core" / "__init__.py").is_file()
        assert (staged / "lib" / "l2sm_knf" / "kube.py").is_file()
        assert (staged / "LICENSE").is_file()
        assert not (staged / "tests").exists(), "tests are not packed"
        assert not list(staged.rglob("__pycache__"))
        meta = yaml.safe_load((staged / "charmcraft.yaml").read_text())
        assert meta["name"] == charm_dir.name


@pytest.mark.slow
@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize("charm_dir", CHARM_DIRS, ids=lambda p: p.name)
def test_staged_charm_imports_in_clean_venv(build_dir, charm_dir, interpreter, tmp_path):
    staged = build_dir / charm_dir.name
    python = _venv_for(staged / "requirements.txt", build_dir / ".venvs", interpreter)
    result = _import_charm(python, staged)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(staged / "src" / "charm.py")

    # The same check must fail when a module is missing: here, the staged domain core.
    broken = tmp_path / charm_dir.name
    shutil.copytree(staged, broken)
    shutil.rmtree(broken / "lib" / "l2sm_core")
    result = _import_charm(python, broken)
    assert result.returncode != 0
    assert "No module named 'l2sm_core'" in result.stderr
