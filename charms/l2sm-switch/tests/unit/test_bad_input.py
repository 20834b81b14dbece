"""Every input the switch charm reads, driven with careless and hostile values: each one is
either taken (and then it is a value an independent, simpler rule calls sane) or refused with
a short status naming the field, and then nothing changed: no Kubernetes object or write,
no stored state, no relation data of ours."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pydantic
import pytest
from conftest import APP, CONTROLLER_DATA, cluster_snapshot, make_state
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from models import SwitchConfig
from ops import testing

from l2sm_core.validation import application_name, shown
from l2sm_testing.bad_input import databag_value, loose_booleans, tricky_text

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
STATUS_MAX = 320  # a refusal's status line stays readable, whatever was typed
CLUSTER_NODES = {"node-a", "node-b", "node-c", "cordoned", "win-1"}  # the kube fixture's
FABRIC_NODES = {"node-a", "node-b", "node-c"}  # the default fabric's (schedulable Linux)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)


# -- what an independent reading calls sane, per input ------------------------------------


def _node_list(value: str) -> bool:
    names = [p.strip() for p in value.split(",") if p.strip()]
    return (not value.strip() or bool(names)) and all(n in CLUSTER_NODES for n in names)


def _links(value: str) -> bool:
    if value.strip() == "full-mesh":
        return True
    parts = [p.strip() for p in value.split(",") if p.strip()]
    ends = [[e.strip() for e in p.split(":")] for p in parts]
    return bool(parts) and all(len(e) == 2 and e[0] != e[1] and set(e) <= FABRIC_NODES for e in ends)


def _image(value: str) -> bool:
    # Looser than the grammar (tags may end in dots): ASCII, no spaces, no empty part.
    return (
        len(value) <= 1024
        and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*", value, re.ASCII) is not None
        and "//" not in value
        and not value.endswith((":", "/", "@"))
    )


def _overlay_name(value: str) -> bool:
    return value == "" or (_LABEL.fullmatch(value) is not None and len(value) <= 50 and "veth" not in value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64


OPTIONS = {
    "nodes": (tricky_text(good=["node-a,node-b", "node-a"]), _node_list),
    "topology": (tricky_text(good=["full-mesh", "node-a:node-b,node-b:node-c"]), _links),
    "interfaces-per-node": (
        st.one_of(st.integers(-(2**40), 2**40), st.integers(-3, 70), st.booleans()),
        _count,
    ),
    "overlay-name": (
        st.one_of(
            tricky_text(good=["fabric"]),
            st.text(alphabet="abcvethz-0.", min_size=45, max_size=70),
        ),
        _overlay_name,
    ),
    "switch-image": (
        st.one_of(
            tricky_text(good=["alexdecb/talpa:1.3.8", "registry.example.com:5000/talpa@sha256:" + "a" * 64]),
            st.text(alphabet="aA0:/@.-_", min_size=1, max_size=30),
        ),
        _image,
    ),
}


def _host(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= 253
        and all(_LABEL.fullmatch(label) and len(label) <= 63 for label in value.split("."))
    )


def _ip(value: object) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", value, re.ASCII):
        return False
    octets = [int(o) for o in value.split(".")]
    return (
        all(o <= 255 for o in octets)
        and octets[0] not in (0, 127)
        and octets[0] < 224
        and octets[:2] != [169, 254]
    )


def _port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _url(value: object) -> bool:
    return (
        isinstance(value, str)
        and re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[\x21-\x7e]*)?", value) is not None
    )


def _ready(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))


def _secret(value: object) -> bool:
    # A Juju secret id or URI (Juju 3), or a Kubernetes Secret reference (Juju 2.9).
    if not isinstance(value, str):
        return False
    if re.fullmatch(r"secret:[A-Za-z0-9][A-Za-z0-9/:._-]*", value, re.ASCII):
        return True
    namespace, slash, name = value.removeprefix("kubernetes:").partition("/")
    return (
        value.startswith("kubernetes:")
        and bool(slash)
        and len(name) <= 253
        and _LABEL.fullmatch(namespace) is not None
        and len(namespace) <= 63
        and all(_LABEL.fullmatch(part) for part in name.split("."))
    )


def _spoiled(good: str) -> st.SearchStrategy[str]:
    return tricky_text(good=[good]).map(json.dumps)


FIELDS = {
    "host": _host,
    "namespace": lambda v: isinstance(v, str) and _LABEL.fullmatch(v) is not None and len(v) <= 63,
    "cluster-ip": _ip,
    "openflow-port": _port,
    "rest-url": _url,
    "ready": _ready,
    "credentials-secret": _secret,
}
FIELD_VALUES = {
    key: st.one_of(
        databag_value(),
        _spoiled(str(CONTROLLER_DATA[key])),
        st.just(json.dumps(str(CONTROLLER_DATA[key]))),  # right text, wrong JSON type for some
    )
    for key in FIELDS
}
FIELD_VALUES["cluster-ip"] = st.one_of(
    FIELD_VALUES["cluster-ip"],
    st.sampled_from(["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "169.254.1.1", "010.1.1.1"]).map(
        json.dumps
    ),
)
FIELD_VALUES["ready"] = st.one_of(FIELD_VALUES["ready"], loose_booleans().map(json.dumps))
FIELD_VALUES["openflow-port"] = st.one_of(
    FIELD_VALUES["openflow-port"],
    st.integers(-(2**33), 2**33).map(json.dumps),
    st.integers(-3, 70_000).map(json.dumps),
    st.just(json.dumps(6633.0)),
)


# -- the harness -----------------------------------------------------------------------------

_NOT_JSON = object()  # a raw value json.loads refused: sane for no field


def _ours(state: testing.State):
    """What the charm itself keeps: its stored state and what it wrote to relations."""
    stored = {s for s in state.stored_states if s.owner_path}
    written = {r.endpoint: (r.local_app_data, r.local_unit_data) for r in state.relations}
    return stored, written


@dataclasses.dataclass
class Fabric:
    """The serving fabric, and how to put it back after an input that was taken."""

    kube: object
    before: tuple
    objects: dict
    ours: tuple

    def restore(self):
        self.kube.objects = copy.deepcopy(self.objects)
        self.kube.writes[:] = self.before[1]


@pytest.fixture
def fabric(ctx, kube, serving):
    state = make_state()
    out = ctx.run(ctx.on.update_status(), state)
    assert cluster_snapshot(kube) == serving
    return Fabric(kube, serving, copy.deepcopy(kube.objects), _ours(out))


def _check(fabric, out, field, value, sane):
    status = out.unit_status
    try:
        if status.name in ("blocked", "waiting") and field in status.message:
            event("refused")
            assert len(status.message) <= STATUS_MAX, status.message
            assert cluster_snapshot(fabric.kube) == fabric.before, f"{field}={value!r} changed the cluster"
            assert _ours(out) == fabric.ours
            return
        # Taken: it must be what a simpler rule calls sane, or the charm let a bad value through.
        event("taken")
        assert sane(value), f"{field}={shown(value)} was taken: {status}"
    finally:
        fabric.restore()  # every example starts from the serving fabric


@pytest.mark.parametrize("option", sorted(OPTIONS))
@SETTINGS
@given(data=st.data())
def test_every_option(ctx, fabric, option, data):
    strategy, sane = OPTIONS[option]
    value = data.draw(strategy, label=option)
    out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))
    _check(fabric, out, f"option '{option}'", value, sane)


@pytest.mark.parametrize("key", sorted(FIELDS))
@SETTINGS
@given(data=st.data())
def test_every_controller_field(ctx, fabric, key, data):
    raw = data.draw(FIELD_VALUES[key], label=key)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = _NOT_JSON
    databag = {k: json.dumps(v) for k, v in CONTROLLER_DATA.items()} | {key: raw}
    relation = testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=databag)
    out = ctx.run(ctx.on.relation_changed(relation), make_state(relations={relation}))
    if key == "ready" and isinstance(value, (bool, str)) and str(value).lower() == "false":
        # Not ready is a state, not a mistake: the fabric waits, untouched.
        assert out.unit_status == testing.WaitingStatus("waiting for the controller to be ready")
        assert cluster_snapshot(fabric.kube) == fabric.before
        return
    _check(fabric, out, f"field '{key}'", value, FIELDS[key])


@SETTINGS
@given(missing=st.sets(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=len(FIELDS) - 1))
def test_missing_controller_fields(ctx, fabric, missing):
    databag = {k: json.dumps(v) for k, v in CONTROLLER_DATA.items() if k not in missing}
    relation = testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=databag)
    out = ctx.run(ctx.on.relation_changed(relation), make_state(relations={relation}))
    assert out.unit_status.name == "blocked"
    for key in missing:
        assert f"field '{key}'" in out.unit_status.message
    assert cluster_snapshot(fabric.kube) == fabric.before


@SETTINGS
@given(name=tricky_text(good=[APP]))
def test_show_topology_checks_the_application_name(ctx, fabric, name):
    # OSM's application-name only says which application runs the action: a Juju
    # application name or refused, naming it; nothing changes either way.
    try:
        if name:  # an empty string counts as absent
            application_name(name)
    except ValueError:
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("show-topology", params={"application-name": name}), make_state())
        assert failed.value.message.startswith("parameter 'application-name': ")
        assert len(failed.value.message) <= STATUS_MAX + 60
    else:
        ctx.run(ctx.on.action("show-topology", params={"application-name": name}), make_state())
        assert ctx.action_results["overlay"] == APP
    assert cluster_snapshot(fabric.kube) == fabric.before


def _config_refuses(option: str, value: object) -> bool:
    try:
        SwitchConfig.model_validate({option.replace("-", "_"): value})
    except pydantic.ValidationError:
        return True
    return False


@pytest.mark.parametrize("option", ["nodes", "overlay-name", "switch-image"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_show_topology_refuses_while_an_option_is_refused(ctx, fabric, option, data):
    value = data.draw(OPTIONS[option][0].filter(lambda v: _config_refuses(option, v)), label=option)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("show-topology"), make_state(config={option: value}))
    assert f"option '{option}'" in failed.value.message
    assert len(failed.value.message) <= STATUS_MAX + 60
    assert cluster_snapshot(fabric.kube) == fabric.before


def test_the_strategies_reach_both_sides():
    # A property that only ever saw refusals (or only sane values) would prove little.
    assert _image("alexdecb/talpa:1.3.8") and not _image("alexdecb/talpa:1.3.8\n")
    assert _overlay_name("fabric") and not _overlay_name("ov\n")
    assert _ip("10.152.183.20") and not _ip("0.0.0.0")
    assert _ready(True) and not _ready("yes")
    assert _node_list("node-a, node-b") and not _node_list(",")
    assert _links("node-a:node-b") and not _links("node-a:node-a")
