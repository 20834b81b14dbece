"""Stage each charm as charmcraft would pack it: the charm's own files plus the workspace
packages it needs.

The packages a charm's src/ imports, and what those depend on (their pyproject.toml), are
copied into the charm's `lib/`, which the charm's dispatch script puts on PYTHONPATH
(docs/decisions/0001-domain-core-in-charms.md): a KNF charm gets l2sm_knf and l2sm_core, never
the controller's code. The result under build/<charm>/ is the tree to run `charmcraft pack` in.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib  # novermin
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# Workspace packages a charm may carry in lib/ (l2sm-testing is for tests only).
PACKAGE_DIRS = ("core", "controlplane", "knf", "charmlib")
# What a charm directory contributes; tests, caches and build output stay behind.
CHARM_ENTRIES = ("charmcraft.yaml", "src", "requirements.txt", "README.md", "LICENSE", "icon.svg")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".coverage")


def workspace_packages() -> dict[str, tuple[Path, set[str]]]:
    """Import name -> (source directory, import names of the workspace packages it depends on)."""
    projects = {}
    for name in PACKAGE_DIRS:
        project = tomllib.loads((ROOT / name / "pyproject.toml").read_text())["project"]
        (module,) = [p for p in (ROOT / name / "src").iterdir() if (p / "__init__.py").is_file()]
        requires = {re.split(r"[\[<>=~; ]", d, maxsplit=1)[0] for d in project.get("dependencies", [])}
        projects[project["name"]] = (module, requires)
    by_distribution = {dist: module.name for dist, (module, _) in projects.items()}
    return {
        module.name: (module, {by_distribution[d] for d in requires if d in by_distribution})
        for module, requires in projects.values()
    }


def imported_top_levels(src: Path) -> set[str]:
    names = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def needed_packages(charm_src: Path) -> list[Path]:
    """The workspace packages the charm's code imports, with everything they depend on."""
    packages = workspace_packages()
    wanted = imported_top_levels(charm_src) & set(packages)
    todo = list(wanted)
    while todo:
        for dependency in packages[todo.pop()][1] - wanted:
            wanted.add(dependency)
            todo.append(dependency)
    return [packages[name][0] for name in sorted(wanted)]


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
    for package in needed_packages(charm_dir / "src"):
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
