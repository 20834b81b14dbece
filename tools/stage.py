"""Stage each charm as charmcraft would pack it: the charm's own files plus the shared packages.

The domain core and the Kubernetes glue are copied into the charm's `lib/`, which the charm's
dispatch script puts on PYTHONPATH (docs/decisions/0001-domain-core-in-charms.md). The result
under build/<charm>/ is the tree to run `charmcraft pack` in.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Workspace packages every charm carries in lib/: the pure domain core and the Kubernetes glue.
SHARED = (ROOT / "core" / "src" / "l2sm_core", ROOT / "charmlib" / "src" / "l2sm_charmlib")
# What a charm directory contributes; tests, caches and build output stay behind.
CHARM_ENTRIES = ("charmcraft.yaml", "src", "requirements.txt", "README.md", "LICENSE", "icon.svg")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".coverage")


def stage(charm_dir: Path, out: Path) -> Path:
    if not (charm_dir / "charmcraft.yaml").is_file():
        raise SystemExit(f"{charm_dir}: no charmcraft.yaml, not a charm")
    if not (charm_dir / "src" / "charm.py").is_file():
        raise SystemExit(f"{charm_dir}: no src/charm.py")
    target = out / charm_dir.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in CHARM_ENTRIES:
        source = charm_dir / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=IGNORE)
        elif source.is_file():
            shutil.copy2(source, target / entry)
    license_file = target / "LICENSE"
    if not license_file.exists():
        shutil.copy2(ROOT / "LICENSE", license_file)
    for package in SHARED:
        shutil.copytree(package, target / "lib" / package.name, ignore=IGNORE)
    return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="where staged charms go")
    parser.add_argument("charms", nargs="+", type=Path, help="charm directories (with charmcraft.yaml)")
    args = parser.parse_args(argv)
    for charm_dir in args.charms:
        print(f"staged {stage(charm_dir.resolve(), args.out.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
