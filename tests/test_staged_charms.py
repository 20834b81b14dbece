"""The packing check: each staged charm imports in a clean virtualenv holding only its own
requirements, with PYTHONPATH set as the charm's dispatch script sets it (lib, then src).

charmcraft cannot pack on this Debian host, so this is the proof that a packed charm carries
everything it imports.
"""

from __future__ import annotations

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


def _venv_for(requirements: Path, cache: Path) -> Path:
    """A virtualenv with exactly these requirements, reused while the file is unchanged."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = cache / f"venv-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-input", "-r", str(requirements)],
            check=True,
        )
        (venv / ".complete").touch()
    return python


def _import_charm(python: Path, staged: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": "lib:src", "PYTHONNOUSERSITE": "1"}
    return subprocess.run(
        [str(python), "-I", "-c", f"import sys; sys.path[:0] = ['lib', 'src']; {IMPORT_CHARM}"],
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
        assert (staged / "lib" / "l2sm_charmlib" / "kube.py").is_file()
        assert (staged / "LICENSE").is_file()
        assert not (staged / "tests").exists(), "tests are not packed"
        assert not list(staged.rglob("__pycache__"))
        meta = yaml.safe_load((staged / "charmcraft.yaml").read_text())
        assert meta["name"] == charm_dir.name


@pytest.mark.slow
@pytest.mark.parametrize("charm_dir", CHARM_DIRS, ids=lambda p: p.name)
def test_staged_charm_imports_in_clean_venv(build_dir, charm_dir, tmp_path):
    staged = build_dir / charm_dir.name
    python = _venv_for(staged / "requirements.txt", build_dir / ".venvs")
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
