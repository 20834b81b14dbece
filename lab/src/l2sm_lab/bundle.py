"""Reading a Juju bundle and the charms it names, as `juju deploy` would take them.

A bundle names each charm by name (found in the project's `charms/` tree) or by path
(`./charms/...`, relative to the bundle file). Everything wrong is a BundleError naming the
bundle, the application and the option or endpoint, and the fix.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic
import yaml

from l2sm_core.validation import describe_validation_error, shown

# The offers the core bundle (bundles/l2sm.yaml) makes: the lab provides them for `saas:`.
CORE_OFFERS = {"l2sm-controller": ("l2sm-controller", "l2sm-controller")}
CONTROLLER_CHARM = "l2sm-controller"
SWITCH_CHARM = "l2sm-switch"
NETWORK_CHARM = "l2sm-network"
NETWORK_INTERFACE = "l2sm_network"
_JUJU_TYPES = {"string": str, "int": int, "boolean": bool, "float": (int, float)}


class BundleError(ValueError):
    """A bundle the lab (and Juju) would refuse: the message names where and how to fix it."""


@dataclass(frozen=True)
class Charm:
    name: str
    path: Path
    options: dict[str, dict[str, Any]]  # option -> {type, default, description}
    actions: dict[str, dict[str, Any]]
    requires: dict[str, str]  # endpoint -> interface
    provides: dict[str, str]
    peers: dict[str, str]

    def endpoint(self, name: str) -> tuple[str, str] | None:
        """(role, interface) of an endpoint, None when the charm has none of that name."""
        for role, table in (("requires", self.requires), ("provides", self.provides), ("peers", self.peers)):
            if name in table:
                return role, table[name]
        return None

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.options.items() if "default" in v}

    def models(self) -> ModuleType | None:
        """The charm's own models module (its typed config and action params), so the lab
        checks options and params with exactly the charm's rules."""
        source = self.path / "src" / "models.py"
        if not source.is_file():
            return None
        key = f"_l2sm_lab_models_{self.name.replace('-', '_')}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
        return module

    def config_model(self) -> type[pydantic.BaseModel] | None:
        module = self.models()
        if module is None:
            return None
        found = [
            v
            for k, v in vars(module).items()
            if k.endswith("Config")
            and isinstance(v, type)
            and issubclass(v, pydantic.BaseModel)
            and v.__module__ == module.__name__
        ]
        return found[0] if len(found) == 1 else None


def _endpoints(meta: Mapping[str, Any], key: str) -> dict[str, str]:
    return {str(k): str((v or {}).get("interface", "")) for k, v in (meta.get(key) or {}).items()}


def load_charm(path: Path) -> Charm:
    meta_file = path / "charmcraft.yaml"
    if not meta_file.is_file():
        raise BundleError(f"{path}: no charmcraft.yaml there: name a charm directory")
    meta = yaml.safe_load(meta_file.read_text()) or {}
    return Charm(
        name=str(meta.get("name", path.name)),
        path=path,
        options={str(k): dict(v or {}) for k, v in ((meta.get("config") or {}).get("options") or {}).items()},
        actions={str(k): dict(v or {}) for k, v in (meta.get("actions") or {}).items()},
        requires=_endpoints(meta, "requires"),
        provides=_endpoints(meta, "provides"),
        peers=_endpoints(meta, "peers"),
    )


def find_charms(root: Path) -> dict[str, Path]:
    """Charm name -> directory, for every charmcraft.yaml under root/charms."""
    found: dict[str, Path] = {}
    for meta in sorted((root / "charms").glob("**/charmcraft.yaml")):
        if "build" in meta.parts or ".venv" in meta.parts or "tests" in meta.relative_to(root).parts:
            continue
        name = (yaml.safe_load(meta.read_text()) or {}).get("name")
        if isinstance(name, str):
            found.setdefault(name, meta.parent)
    return found


def project_root(start: Path) -> Path | None:
    """The nearest directory at or above start with a charms/ tree."""
    for directory in (start, *start.parents):
        if (directory / "charms").is_dir():
            return directory
    return None


@dataclass
class App:
    name: str
    charm: Charm
    scale: int
    options: dict[str, Any]  # the charm's defaults, overridden by the bundle's
    given: dict[str, Any] = field(default_factory=dict)  # what the bundle sets
    config: pydantic.BaseModel | None = None  # typed by the charm's own model, if it has one

    def units(self) -> list[str]:
        return [f"{self.name}/{n}" for n in range(self.scale)]


@dataclass
class Bundle:
    path: Path
    name: str
    apps: dict[str, App]
    relations: list[tuple[tuple[str, str], tuple[str, str]]]
    saas: dict[str, str]  # local name -> offer url

    def by_charm(self, charm: str) -> list[App]:
        return [a for a in self.apps.values() if a.charm.name == charm]

    def related(self, app: str, endpoint: str) -> list[tuple[str, str]]:
        """(application, endpoint) pairs related to app:endpoint."""
        out = []
        for one, other in self.relations:
            if one == (app, endpoint):
                out.append(other)
            elif other == (app, endpoint):
                out.append(one)
        return out


def _where(bundle: Path, app: str | None = None) -> str:
    return f"{bundle}: application {app!r}" if app else str(bundle)


def _resolve_charm(bundle_path: Path, app: str, ref: Any, charms: Mapping[str, Path]) -> Charm:
    if not isinstance(ref, str) or not ref:
        raise BundleError(
            f"{_where(bundle_path, app)}: 'charm' must name a charm or a path, got {shown(ref)}"
        )
    if ref.startswith((".", "/")):
        path = (bundle_path.parent / ref).resolve()
        if path.suffix == ".charm":
            # A packed charm: the lab reads the source tree of the same name.
            path = Path(charms.get(path.stem.split("_")[0], path))
        return load_charm(path)
    name = ref.removeprefix("ch:").split("/")[-1]
    if name not in charms:
        known = ", ".join(sorted(charms)) or "none found"
        raise BundleError(f"{_where(bundle_path, app)}: charm {ref!r} is not one the lab knows ({known})")
    return load_charm(charms[name])


def _check_option(bundle_path: Path, app: str, charm: Charm, key: str, value: Any) -> None:
    if key not in charm.options:
        known = ", ".join(sorted(charm.options)) or "none"
        raise BundleError(
            f"{_where(bundle_path, app)}: option {key!r} is not an option of charm {charm.name} "
            f"(its options: {known})"
        )
    kind = charm.options[key].get("type", "string")
    expected = _JUJU_TYPES.get(kind, str)
    if (isinstance(value, bool) and kind != "boolean") or not isinstance(value, expected):
        raise BundleError(f"{_where(bundle_path, app)}: option {key!r} must be a {kind}, got {shown(value)}")


def read_bundle(path: Path, charms: Mapping[str, Path] | None = None) -> Bundle:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BundleError(f"{path}: cannot read the bundle: {exc}") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: a bundle is a YAML mapping with 'applications'")
    if charms is None:
        root = project_root(path.resolve().parent) or project_root(Path.cwd())
        charms = find_charms(root) if root else {}
    apps: dict[str, App] = {}
    for name, spec in (raw.get("applications") or {}).items():
        if not isinstance(spec, dict):
            raise BundleError(f"{_where(path, name)}: must be a mapping with 'charm'")
        charm = _resolve_charm(path, name, spec.get("charm"), charms)
        scale = spec.get("scale", spec.get("num_units", 1))
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 1000:
            raise BundleError(
                f"{_where(path, name)}: 'scale' must be a whole number 0-1000, got {shown(scale)}"
            )
        given = dict(spec.get("options") or {})
        for key, value in given.items():
            _check_option(path, name, charm, key, value)
        options = {**charm.defaults(), **given}
        app = App(name, charm, scale, options, given)
        model = charm.config_model()
        if model is not None:
            try:
                app.config = model.model_validate({k.replace("-", "_"): v for k, v in options.items()})
            except pydantic.ValidationError as exc:
                raise BundleError(
                    f"{_where(path, name)}: {describe_validation_error(exc, 'option')}"
                ) from None
        apps[name] = app
    saas: dict[str, str] = {}
    for name, spec in (raw.get("saas") or {}).items():
        url = (spec or {}).get("url", "") if isinstance(spec, dict) else ""
        offer = str(url).rpartition(".")[2]
        if offer not in CORE_OFFERS:
            raise BundleError(
                f"{path}: saas {name!r} consumes {url!r}, which the core bundle does not offer "
                f"(it offers: {', '.join(CORE_OFFERS)})"
            )
        saas[name] = str(url)
    relations = [_relation(path, pair, apps, saas) for pair in raw.get("relations") or []]
    return Bundle(path, str(raw.get("name", path.stem)), apps, relations, saas)


def _relation(
    path: Path, pair: Any, apps: Mapping[str, App], saas: Mapping[str, str]
) -> tuple[tuple[str, str], tuple[str, str]]:
    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
        raise BundleError(f"{path}: relation {shown(pair)} must be [app:endpoint, app:endpoint]")
    ends: list[tuple[str, str, str, str]] = []  # app, endpoint, role, interface
    for text in pair:
        app, _, endpoint = text.partition(":")
        if app in saas:
            offer = CORE_OFFERS[saas[app].rpartition(".")[2]]
            endpoint = endpoint or offer[1]
            ends.append((app, endpoint, "provides", "l2sm_controller"))
            continue
        if app not in apps:
            raise BundleError(f"{path}: relation {pair}: {app!r} is not an application or saas of the bundle")
        charm = apps[app].charm
        if not endpoint:
            raise BundleError(f"{path}: relation {pair}: name the endpoint of {app!r} (app:endpoint)")
        found = charm.endpoint(endpoint)
        if found is None:
            known = ", ".join(sorted({*charm.requires, *charm.provides})) or "none"
            raise BundleError(
                f"{_where(path, app)}: relation {pair}: charm {charm.name} has no endpoint "
                f"{endpoint!r} (its endpoints: {known})"
            )
        ends.append((app, endpoint, *found))
    (a, ea, ra, ia), (b, eb, rb, ib) = ends
    if ia != ib or {ra, rb} != {"requires", "provides"}:
        raise BundleError(
            f"{path}: relation {pair}: {a}:{ea} ({ra} {ia}) cannot relate to {b}:{eb} ({rb} {ib})"
        )
    return (a, ea), (b, eb)
