"""Config and action models cannot drift from charmcraft.yaml: for every charm with a
src/models.py, each config option is a field of its `*Config` model (dashes <-> underscores)
of a type that takes the option's Juju type and the same default, and each action's params are
exactly the fields of the params model its handler passes to `self.run_action` (by field name or
alias; `application-name`, OSM's, aside), of compatible types and defaults."""

from __future__ import annotations

import ast
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from l2sm_lab.bundle import load_charm

ROOT = Path(__file__).resolve().parent.parent
_CANDIDATES = [
    *ROOT.glob("charms/*/charmcraft.yaml"),
    *ROOT.glob("charms/cdn-knfs/*/charmcraft.yaml"),
    ROOT / "knf/tests/knf_charm/charmcraft.yaml",  # has no models today: skipped until it has
]
CHARM_DIRS = sorted(p.parent for p in _CANDIDATES if (p.parent / "src" / "models.py").is_file())
JUJU_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "integer": (int,),
    "boolean": (bool,),
    "float": (float, int),
    "number": (float, int),
}
OSM = "application-name"  # every action takes it (ActionParams): OSM passes it to primitives
# Known drift, reported rather than fixed here: (charm, option or action) -> why.
XFAIL: dict[tuple[str, str], str] = {}


def _core(annotation: Any) -> tuple[set[Any], bool]:
    """(the Python types a field ends up as, whether it parses its input first)."""
    parses = False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = typing.get_args(annotation)
        parses = any(
            isinstance(m, pydantic.BeforeValidator | pydantic.PlainValidator | pydantic.WrapValidator)
            for m in args[1:]
        )
        kinds, inner = _core(args[0])
        return kinds, parses or inner
    if origin in (typing.Union, types.UnionType):
        kinds: set[Any] = set()
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                more, inner = _core(arg)
                kinds |= more
                parses = parses or inner
        return kinds, parses
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}, False
    return {annotation}, False


def _type_problem(juju: str, field: pydantic.fields.FieldInfo) -> str | None:
    expected = JUJU_TYPES.get(juju)
    if expected is None:
        return f"Juju type {juju!r} is none of {', '.join(JUJU_TYPES)}"
    kinds, parses = _core(field.annotation)
    parses = parses or any(
        isinstance(m, pydantic.BeforeValidator | pydantic.PlainValidator) for m in field.metadata
    )
    if Any in kinds or kinds & set(expected):
        return None
    if parses and str in expected:
        return None  # a string parsed into its value (a size, a rate, a port range)
    return f"charmcraft.yaml says {juju}, the model's field is {field.annotation}"


def _default_problem(model: type[pydantic.BaseModel], name: str, spec: dict[str, Any]) -> str | None:
    field = model.model_fields[name]
    if "default" not in spec:
        return None
    declared = spec["default"]
    if field.is_required():
        return f"charmcraft.yaml defaults it to {declared!r}, the model requires it"
    if field.default == declared:
        return None
    try:
        typed = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        parsed = pydantic.TypeAdapter(typed).validate_python(declared)
    except pydantic.ValidationError as exc:
        return f"charmcraft.yaml's default {declared!r} is refused by the model: {exc.errors()[0]['msg']}"
    if parsed != field.default:
        return f"default differs: charmcraft.yaml {declared!r}, the model {field.default!r}"
    return None


def _models(charm_dir: Path) -> Any:
    return load_charm(charm_dir).models()


def _config_model(charm_dir: Path) -> type[pydantic.BaseModel]:
    model = load_charm(charm_dir).config_model()
    assert model is not None, f"{charm_dir.name}: src/models.py has no single *Config model"
    return model


def _action_models(charm_dir: Path) -> dict[str, str]:
    """action -> the params class its handler passes to self.run_action (read from src/charm.py)."""
    tree = ast.parse((charm_dir / "src" / "charm.py").read_text())
    handlers: dict[str, str] = {}  # method -> action
    uses: dict[str, str] = {}  # method -> params class
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "observe" and len(node.args) == 2:
            event, handler = node.args
            if (
                isinstance(event, ast.Attribute)
                and event.attr.endswith("_action")
                and isinstance(handler, ast.Attribute)
            ):
                handlers[handler.attr] = event.attr.removesuffix("_action").replace("_", "-")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "run_action"
                    and len(call.args) >= 2
                    and isinstance(call.args[1], ast.Name)
                ):
                    uses[node.name] = call.args[1].id
    return {action: uses[method] for method, action in handlers.items() if method in uses}


def _meta(charm_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((charm_dir / "charmcraft.yaml").read_text())


def _config_cases() -> list[Any]:
    out = []
    for d in CHARM_DIRS:
        name = _meta(d)["name"]
        for option in (_meta(d).get("config") or {}).get("options") or {}:
            marks = (
                [pytest.mark.xfail(reason=XFAIL[(name, option)], strict=True)]
                if (name, option) in XFAIL
                else []
            )
            out.append(pytest.param(d, option, id=f"{name}:{option}", marks=marks))
    return out


def _action_cases() -> list[Any]:
    out = []
    for d in CHARM_DIRS:
        name = _meta(d)["name"]
        for action in _meta(d).get("actions") or {}:
            marks = (
                [pytest.mark.xfail(reason=XFAIL[(name, action)], strict=True)]
                if (name, action) in XFAIL
                else []
            )
            out.append(pytest.param(d, action, id=f"{name}:{action}", marks=marks))
    return out


def test_every_charm_with_models_is_compared():
    names = {_meta(d)["name"] for d in CHARM_DIRS}
    assert names >= {
        "l2sm-controller",
        "l2sm-switch",
        "l2sm-network",
        "cdn-content-server",
        "cdn-router",
        "cdn-cache",
    }


@pytest.mark.parametrize("charm_dir", CHARM_DIRS, ids=lambda d: d.name)
def test_every_config_field_is_an_option(charm_dir):
    options = set((_meta(charm_dir).get("config") or {}).get("options") or {})
    fields = {f.replace("_", "-") for f in _config_model(charm_dir).model_fields}
    assert fields == options, (
        f"{charm_dir.name}: fields without an option: {sorted(fields - options)}; "
        f"options without a field: {sorted(options - fields)}"
    )


@pytest.mark.parametrize(("charm_dir", "option"), _config_cases())
def test_config_option_matches_its_field(charm_dir, option):
    charm = _meta(charm_dir)["name"]
    spec = _meta(charm_dir)["config"]["options"][option]
    model = _config_model(charm_dir)
    name = option.replace("-", "_")
    assert name in model.model_fields, f"{charm}: option {option!r} has no field {name!r} in {model.__name__}"
    juju = spec.get("type", "string")
    problems = [_type_problem(juju, model.model_fields[name]), _default_problem(model, name, spec)]
    problems = [p for p in problems if p]
    assert not problems, f"{charm}: option {option!r}: " + "; ".join(problems)


@pytest.mark.parametrize("charm_dir", CHARM_DIRS, ids=lambda d: d.name)
def test_every_action_has_a_params_model(charm_dir):
    actions = set(_meta(charm_dir).get("actions") or {})
    used = _action_models(charm_dir)
    assert set(used) == actions, (
        f"{charm_dir.name}: actions without a run_action handler: {sorted(actions - set(used))}; "
        f"handlers of undeclared actions: {sorted(set(used) - actions)}"
    )


@pytest.mark.parametrize(("charm_dir", "action"), _action_cases())
def test_action_params_match_their_model(charm_dir, action):
    charm = _meta(charm_dir)["name"]
    spec = _meta(charm_dir)["actions"][action] or {}
    model = getattr(_models(charm_dir), _action_models(charm_dir)[action])
    fields = {(f.alias or n).replace("_", "-"): n for n, f in model.model_fields.items()}
    params = dict(spec.get("params") or {})
    problems = []
    for missing in sorted(set(params) - set(fields)):
        problems.append(f"param {missing!r} is no field of {model.__name__}")
    for missing in sorted(set(fields) - set(params) - {OSM}):
        problems.append(f"field {fields[missing]!r} of {model.__name__} is no param")
    if OSM not in params:
        problems.append(f"param {OSM!r} missing (OSM passes it to every primitive)")
    required = set(spec.get("required") or [])
    for param in sorted(set(params) & set(fields)):
        field = model.model_fields[fields[param]]
        for problem in (
            _type_problem(params[param].get("type", "string"), field),
            _default_problem(model, fields[param], params[param]),
        ):
            if problem:
                problems.append(f"param {param!r}: {problem}")
        if field.is_required() != (param in required):
            problems.append(
                f"param {param!r}: the model {'requires' if field.is_required() else 'does not require'} it, "
                f"charmcraft.yaml {'lists' if param in required else 'does not list'} it in required"
            )
    if spec.get("additionalProperties") is not False:
        problems.append("additionalProperties: false missing (the model refuses unknown params)")
    assert not problems, f"{charm}: action {action!r}: " + "; ".join(problems)


def _fake_model(**fields: Any) -> type[pydantic.BaseModel]:
    return pydantic.create_model("Fake", **fields)


def test_the_comparison_can_fail():
    model = _fake_model(port=(int, 80), name=(str, ""), flag=(bool, False))
    assert _type_problem("string", model.model_fields["port"])
    assert _type_problem("boolean", model.model_fields["name"])
    assert _type_problem("boolean", model.model_fields["port"])
    assert _type_problem("int", model.model_fields["port"]) is None
    assert _default_problem(model, "port", {"default": 81})
    assert _default_problem(model, "port", {"default": "x"})
    assert _default_problem(model, "port", {}) is None
    required = _fake_model(name=(str, ...))
    assert _default_problem(required, "name", {"default": ""})
