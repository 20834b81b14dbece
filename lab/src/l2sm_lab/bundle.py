"""Reading a Juju bundle and the charms it names, as `juju deploy` would take them.

A bundle names each charm by name (found in the project's `charms/` tree) or by path
(`./charms/...`, relative to the bundle file). Everything wrong is a BundleError naming the
bundle, the application and the option or endpoint, and the fix.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic
import yaml

from l2sm_core.validation import clip, shown

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


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle: where (bundle, application, option/endpoint) and the fix."""

    bundle: str
    app: str | None
    subject: str | None  # "option 'port'", "relation [...]", "saas 'x'", ...
    text: str

    def __str__(self) -> str:
        parts = [self.bundle]
        if self.app is not None:
            parts.append(f"application {self.app!r}")
        if self.subject:
            parts.append(self.subject)
        parts.append(self.text)
        return ": ".join(parts)


@dataclass(frozen=True)
class Offer:
    charm: str
    endpoints: tuple[str, ...]


@dataclass
class Reading:
    """A bundle (overlays merged) as read, with every problem found rather than the first."""

    where: str
    raw: dict[str, Any]  # the merged document, as far as it is a mapping
    bundle: Bundle | None
    problems: list[Problem]
    charms: Mapping[str, Path]
    offers: Mapping[str, Offer]


def _where(bundle: Path, app: str | None = None) -> str:
    return f"{bundle}: application {app!r}" if app else str(bundle)


def _this_project() -> Path | None:
    return project_root(Path(__file__).resolve().parent)


def core_offers(root: Path | None) -> dict[str, Offer]:
    """The offers the core bundle (root/bundles/l2sm.yaml `offers:`) makes, by offer name;
    CORE_OFFERS when that bundle cannot be read."""
    fallback = {k: Offer(charm, (endpoint,)) for k, (charm, endpoint) in CORE_OFFERS.items()}
    if root is None or not (root / "bundles" / "l2sm.yaml").is_file():
        return fallback
    try:
        raw = yaml.safe_load((root / "bundles" / "l2sm.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return fallback
    found: dict[str, Offer] = {}
    for spec in ((raw or {}).get("applications") or {}).values():
        charm = str((spec or {}).get("charm", ""))
        name = Path(charm).name.split("_")[0] if charm.endswith(".charm") else charm.split("/")[-1]
        for offer, detail in ((spec or {}).get("offers") or {}).items():
            found[str(offer)] = Offer(name, tuple(str(e) for e in (detail or {}).get("endpoints") or []))
    return found or fallback


def load_document(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """A bundle or overlay file as a mapping, or the problem why it is none."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        text = " ".join(str(exc).split())
        return None, [Problem(str(path), None, None, f"cannot read it as YAML: {text}; fix the file")]
    if not isinstance(raw, dict):
        return None, [
            Problem(
                str(path),
                None,
                None,
                f"a bundle is a YAML mapping with 'applications', got {shown(raw)}",
            )
        ]
    return raw, []


def _absolute_charm(ref: Any, base: Path) -> Any:
    if isinstance(ref, str) and ref.startswith("."):
        return str((base.parent / ref).resolve())
    return ref


def merge_overlay(base: dict[str, Any], overlay: dict[str, Any], overlay_path: Path) -> list[Problem]:
    """Apply an overlay onto base (in place) as `juju deploy --overlay` does: an application's
    keys merged (`options`, `resources` and other mappings entry by entry, the rest replaced),
    an application set to null removed with its relations, `relations` appended, `saas`
    merged. An overlay application the base lacks is new, so it must name a charm. Charm paths
    in the overlay are relative to the overlay file."""
    where = str(overlay_path)
    problems: list[Problem] = []
    apps = overlay.get("applications")
    if apps is not None and not isinstance(apps, dict):
        return [Problem(where, None, "'applications'", "must be a mapping of application name to its keys")]
    base_apps = base.get("applications")
    if not isinstance(base_apps, dict):
        base_apps = base["applications"] = {}
    for name, spec in (apps or {}).items():
        if spec is None:
            base_apps.pop(name, None)
            relations = base.get("relations")
            if isinstance(relations, list):
                base["relations"] = [
                    r
                    for r in relations
                    if not (isinstance(r, list) and any(str(e).partition(":")[0] == name for e in r))
                ]
            continue
        if not isinstance(spec, dict):
            problems.append(
                Problem(where, str(name), None, "must be a mapping (charm, options, ...) or null")
            )
            continue
        if name not in base_apps:
            if "charm" not in spec:
                known = ", ".join(sorted(map(str, base_apps))) or "none"
                problems.append(
                    Problem(
                        where,
                        str(name),
                        None,
                        "the base bundle has no such application and the overlay names no charm: "
                        f"fix the name (the base has: {known}) or add 'charm' to deploy a new one",
                    )
                )
                continue
            base_apps[name] = {}
        target = base_apps[name]
        if not isinstance(target, dict):
            target = base_apps[name] = {}
        for key, value in spec.items():
            if key == "charm":
                value = _absolute_charm(value, overlay_path)
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    relations = overlay.get("relations")
    if relations is not None:
        if not isinstance(relations, list):
            problems.append(
                Problem(where, None, "'relations'", "must be a list of [app:endpoint, app:endpoint]")
            )
        else:
            base_rel = base.get("relations")
            base["relations"] = (list(base_rel) if isinstance(base_rel, list) else []) + relations
    saas = overlay.get("saas")
    if saas is not None:
        if not isinstance(saas, dict):
            problems.append(Problem(where, None, "'saas'", "must be a mapping of name to {url: ...}"))
        else:
            base_saas = base.get("saas")
            base["saas"] = {**(base_saas if isinstance(base_saas, dict) else {}), **saas}
    return problems


def read_collecting(
    path: Path,
    charms: Mapping[str, Path] | None = None,
    overlays: Sequence[Path] = (),
    offers: Mapping[str, Offer] | None = None,
) -> Reading:
    """Read a bundle (and overlays) collecting every problem; `bundle` holds what could be read."""
    path = Path(path)
    where = str(path) + "".join(f" + overlay {o}" for o in overlays)
    root = project_root(path.resolve().parent) or project_root(Path.cwd()) or _this_project()
    if charms is None:
        charms = find_charms(root) if root else {}
    if offers is None:
        offers = core_offers(root if root and (root / "bundles" / "l2sm.yaml").is_file() else _this_project())
    raw, problems = load_document(path)
    if raw is None:
        return Reading(where, {}, None, problems, charms, offers)
    for overlay_path in overlays:
        overlay, more = load_document(Path(overlay_path))
        problems += more
        if overlay is not None:
            problems += merge_overlay(raw, overlay, Path(overlay_path))
    builder = _Builder(path, where, charms, offers)
    bundle = builder.build(raw)
    return Reading(where, raw, bundle, problems + builder.problems, charms, offers)


def read_bundle(
    path: Path, charms: Mapping[str, Path] | None = None, overlays: Sequence[Path] = ()
) -> Bundle:
    """The bundle, or a BundleError listing every problem (one a line)."""
    reading = read_collecting(path, charms, overlays)
    if reading.problems or reading.bundle is None:
        raise BundleError("\n".join(str(p) for p in reading.problems) or f"{path}: not a bundle")
    return reading.bundle


class _Builder:
    def __init__(self, path: Path, where: str, charms: Mapping[str, Path], offers: Mapping[str, Offer]):
        self.path = path
        self.where = where
        self.charms = charms
        self.offers = offers
        self.problems: list[Problem] = []
        self.broken: set[str] = set()  # applications already reported (no charm)

    def problem(self, app: str | None, subject: str | None, text: str) -> None:
        self.problems.append(Problem(self.where, app, subject, text))

    def build(self, raw: dict[str, Any]) -> Bundle:
        apps_raw = raw.get("applications")
        if apps_raw is None:
            apps_raw = {}
        if not isinstance(apps_raw, dict):
            self.problem(
                None,
                "'applications'",
                f"must be a mapping of application name to its keys, got {shown(apps_raw)}",
            )
            apps_raw = {}
        apps: dict[str, App] = {}
        for name, spec in apps_raw.items():
            if not isinstance(name, str) or not name:
                self.problem(
                    None, "'applications'", f"{shown(name)} is not an application name: use a DNS-1123 label"
                )
                continue
            app = self._app(name, spec)
            if app is None:
                self.broken.add(name)
            else:
                apps[name] = app
        saas = self._saas(raw.get("saas"), apps_raw)
        relations = self._relations(raw.get("relations"), apps, saas)
        name = raw.get("name", self.path.stem)
        return Bundle(self.path, str(name), apps, relations, saas)

    def _charm(self, app: str, ref: Any) -> Charm | None:
        if not isinstance(ref, str) or not ref:
            self.problem(app, "'charm'", f"must name a charm or a path, got {shown(ref)}")
            return None
        if ref.startswith((".", "/")):
            path = (self.path.parent / ref).resolve()
            if path.suffix == ".charm":
                # A packed charm: its source tree of the same name is what it was packed from.
                name = path.stem.split("_")[0]
                if name not in self.charms:
                    known = ", ".join(sorted(self.charms)) or "none found"
                    self.problem(app, "'charm'", f"{ref!r} is packed from no charm of this project ({known})")
                    return None
                path = Path(self.charms[name])
            if not (path / "charmcraft.yaml").is_file():
                self.problem(app, "'charm'", f"{ref!r}: no charmcraft.yaml at {path}: name a charm directory")
                return None
            return load_charm(path)
        name = ref.removeprefix("ch:").split("/")[-1]
        if name not in self.charms:
            known = ", ".join(sorted(self.charms)) or "none found"
            self.problem(app, "'charm'", f"charm {ref!r} is none of this project's ({known}): fix the name")
            return None
        return load_charm(Path(self.charms[name]))

    def _app(self, name: str, spec: Any) -> App | None:
        if not isinstance(spec, dict):
            self.problem(name, None, f"must be a mapping with 'charm', got {shown(spec)}")
            return None
        try:
            charm = self._charm(name, spec.get("charm"))
        except (OSError, yaml.YAMLError, BundleError) as exc:
            self.problem(name, "'charm'", f"cannot read the charm: {exc}")
            return None
        if charm is None:
            return None
        scale = spec.get("scale", spec.get("num_units", 1))
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 1000:
            self.problem(name, "'scale'", f"must be a whole number 0-1000, got {shown(scale)}")
            scale = 1
        given_raw = spec.get("options")
        if given_raw is None:
            given_raw = {}
        if not isinstance(given_raw, dict):
            self.problem(name, "'options'", f"must be a mapping of option to value, got {shown(given_raw)}")
            given_raw = {}
        given: dict[str, Any] = {}
        bad = False
        for key, value in given_raw.items():
            text = _option_problem(charm, key, value)
            if text:
                self.problem(name, f"option {shown(key)}", text)
                bad = True
            else:
                given[str(key)] = value
        options = {**charm.defaults(), **given}
        app = App(name, charm, scale, options, given)
        model = charm.config_model()
        if model is not None and not bad:
            try:
                app.config = model.model_validate({k.replace("-", "_"): v for k, v in options.items()})
            except pydantic.ValidationError as exc:
                for error in exc.errors():
                    loc = ".".join(str(part) for part in error["loc"]).replace("_", "-")
                    msg = error["msg"].removeprefix("Value error, ")
                    if error["type"] == "extra_forbidden":
                        msg = "unknown option"
                    # A whole-model check has no location: its message names the options.
                    self.problem(name, f"option {clip(loc, 64)!r}" if loc else None, clip(msg, 300))
        return app

    def _saas(self, raw: Any, apps_raw: Mapping[Any, Any]) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(None, "'saas'", f"must be a mapping of name to {{url: ...}}, got {shown(raw)}")
            return {}
        saas: dict[str, str] = {}
        offered = ", ".join(sorted(self.offers)) or "none"
        for name, spec in raw.items():
            subject = f"saas {shown(name)}"
            if name in apps_raw:
                self.problem(None, subject, "is also an application of the bundle: rename one of them")
                continue
            url = spec.get("url") if isinstance(spec, dict) else None
            if not isinstance(url, str) or "." not in url:
                self.broken.add(str(name))
                self.problem(None, subject, f"needs url: <owner>/<model>.<offer>, got {shown(url)}")
                continue
            offer = url.rpartition(".")[2]
            if offer not in self.offers:
                self.broken.add(str(name))  # its relations are not reported again
                self.problem(
                    None,
                    subject,
                    f"consumes {url!r}, which the core bundle (bundles/l2sm.yaml) does not offer "
                    f"(it offers: {offered}): consume one of those",
                )
                continue
            saas[str(name)] = url
        return saas

    def _end(
        self, text: str, pair: list[Any], apps: Mapping[str, App], saas: Mapping[str, str]
    ) -> tuple[str, str, str, str] | None:
        """(app, endpoint, role, interface) of one side, or None (reported)."""
        app, _, endpoint = text.partition(":")
        subject = f"relation {pair}"
        if app in saas:
            offer = self.offers[saas[app].rpartition(".")[2]]
            endpoint = endpoint or (offer.endpoints[0] if len(offer.endpoints) == 1 else "")
            if endpoint not in offer.endpoints:
                self.problem(
                    None,
                    subject,
                    f"saas {app!r} offers endpoints {', '.join(offer.endpoints) or 'none'}, "
                    f"not {endpoint!r}: name one of those",
                )
                return None
            path = self.charms.get(offer.charm)
            found = load_charm(Path(path)).endpoint(endpoint) if path else None
            role, interface = found if found else ("provides", "")
            return app, endpoint, role, interface
        if app in self.broken:
            return None  # its charm is already reported
        if app not in apps:
            known = ", ".join(sorted({*apps, *saas})) or "none"
            self.problem(None, subject, f"{app!r} is no application or saas of the bundle ({known})")
            return None
        charm = apps[app].charm
        known = ", ".join(sorted({*charm.requires, *charm.provides})) or "none"
        if not endpoint:
            self.problem(app, subject, f"name the endpoint of {app!r} (app:endpoint; its endpoints: {known})")
            return None
        found = charm.endpoint(endpoint)
        if found is None:
            self.problem(
                app,
                f"endpoint {endpoint!r}",
                f"relation {pair}: charm {charm.name} has no such endpoint (its endpoints: {known})",
            )
            return None
        if found[0] == "peers":
            self.problem(
                app,
                f"endpoint {endpoint!r}",
                f"relation {pair}: a peer endpoint relates the units of {app!r} by itself: "
                "drop this relation",
            )
            return None
        return app, endpoint, *found

    def _relations(
        self, raw: Any, apps: Mapping[str, App], saas: Mapping[str, str]
    ) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(
                None, "'relations'", f"must be a list of [app:endpoint, app:endpoint], got {shown(raw)}"
            )
            return []
        relations: list[tuple[tuple[str, str], tuple[str, str]]] = []
        for pair in raw:
            if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
                self.problem(None, f"relation {shown(pair)}", "must be [app:endpoint, app:endpoint]")
                continue
            first, second = (self._end(text, pair, apps, saas) for text in pair)
            if first is None or second is None:
                continue
            (a, ea, ra, ia), (b, eb, rb, ib) = first, second
            if ia != ib:
                self.problem(
                    a,
                    f"endpoint {ea!r}",
                    f"relation {pair}: {a}:{ea} ({ia}) cannot relate to {b}:{eb} ({ib}): the interfaces "
                    "differ; relate endpoints of the same interface",
                )
            elif {ra, rb} != {"requires", "provides"}:
                self.problem(
                    a,
                    f"endpoint {ea!r}",
                    f"relation {pair}: {a}:{ea} ({ra} {ia}) cannot relate to {b}:{eb} ({rb} {ib}): "
                    "one side must provide, the other require",
                )
            else:
                relations.append(((a, ea), (b, eb)))
        return relations


def _option_problem(charm: Charm, key: Any, value: Any) -> str | None:
    if key not in charm.options:
        known = ", ".join(sorted(charm.options)) or "none"
        return f"is not an option of charm {charm.name} (its options: {known})"
    kind = charm.options[key].get("type", "string")
    expected = _JUJU_TYPES.get(kind, str)
    if (isinstance(value, bool) and kind != "boolean") or not isinstance(value, expected):
        return f"must be of Juju type {kind}, got {shown(value)}"
    return None
