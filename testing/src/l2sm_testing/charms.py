"""Loading a charm's src/charm.py outside its own test run (every charm has modules named
`charm` and `models`), for suites that drive several charms in one process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import ops


def load_charm(charm_dir: Path, prefix: str) -> ModuleType:
    """charm_dir/src/charm.py under the module name `<prefix>_<charm dir>` (its models.py as
    `models` only while it loads), registered before it runs: ops.testing finds
    charmcraft.yaml from the module's file. Loaded once per name."""
    name = f"{prefix}_" + charm_dir.name.replace("-", "_")
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.modules.pop("models", None)
    try:
        models = charm_dir / "src" / "models.py"
        if models.is_file():
            sys.modules["models"] = _exec(f"{name}_models", models)
        return _exec(name, charm_dir / "src" / "charm.py")
    finally:
        sys.modules.pop("models", None)
        if saved is not None:
            sys.modules["models"] = saved


def charm_class(module: ModuleType) -> type[ops.CharmBase]:
    """The one CharmBase subclass the module defines."""
    [cls] = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ops.CharmBase) and v.__module__ == module.__name__
    ]
    return cls


def _exec(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
