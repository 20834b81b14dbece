"""Property tests: every action parameter and config option of the controller, given bad
values, fails naming the field, and nothing changes: relation data, Kubernetes objects,
controller REST writes, stored state.

The controller only provides its relation (it reads no remote data), so its boundaries are
these. Type-wrong values cannot reach a charm through Juju (it checks action params and
config against their schema) nor through ops.testing's consistency checks, which are
switched off where a test sends them: the charm refuses them anyway.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re

import pytest
from conftest import make_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from l2sm_testing.bad_input import loose_booleans, tricky_text

FAST = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SPECIAL = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4")]
TYPE_WRONG = st.sampled_from([1, 0, 3.5, None, [], {}, ["net-a"], {"name": "net-a"}, True])


def _label(value) -> bool:
    # Written apart from the charm's own check, so the test does not trust it.
    return isinstance(value, str) and bool(_LABEL.fullmatch(value))


def _object_name(value) -> bool:
    # A Kubernetes object name (DNS-1123 subdomain): what show-network and delete-network take.
    return (
        isinstance(value, str)
        and len(value) <= 253
        and all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", part) for part in value.split("."))
    )


def _usable_cidr(value) -> bool:
    try:
        net = ipaddress.IPv4Network(value.strip(), strict=True)
    except (ValueError, AttributeError):
        return False
    text = value.strip()
    return (
        8 <= net.prefixlen <= 30
        and text == str(net)
        and not any(net.overlaps(s) for s in _SPECIAL)
        and not net.overlaps(ipaddress.ip_network("240.0.0.0/4"))
    )


BAD_NAMES = tricky_text(good=["net-a", "my-first-osm-net"]).filter(lambda v: not _label(v))
BAD_APP_NAMES = BAD_NAMES.filter(lambda v: v != "")
BAD_OBJECT_NAMES = tricky_text(good=["net-a", "cdn.video-net"]).filter(lambda v: not _object_name(v))
BAD_CIDRS = st.one_of(
    st.sampled_from(
        [
            "0.0.0.0/0",
            "10.0.0.0/7",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/24",
            "10.0.1.5/24",
            "10.0.1.0/31",
            "10.0.1.0/32",
            "fd00::/64",
            "10.0.1.0/255.255.255.0",
            "10.0.1.0/024",
            "10.0.1.0",
            " ",
        ]
    ),
    tricky_text(good=["10.0.1.0/24"]),
).filter(lambda v: v != "" and not _usable_cidr(v))
BAD_FLAGS = loose_booleans()


@pytest.fixture
def served(ctx, kube, controller, oar_dir, crds_installed):
    """A controller that runs and has published its relation data."""
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    controller.vnets_installed = True
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    assert out.unit_status.name == "active"
    return out


def _stored(state):
    # The charm's own; the framework counts events in its own stored state.
    return [dict(s.content) for s in state.stored_states if s.owner_path == "L2smControllerCharm"]


def _relation_data(state):
    return {r.id: dict(r.local_app_data) for r in state.relations}


def _snapshot(kube, controller, state):
    return (
        copy.deepcopy(kube.objects),
        len(kube.writes),
        len(controller.writes()),
        _relation_data(state),
        _stored(state),
    )


def _action_refused(ctx, kube, controller, state, action, params, field):
    before = _snapshot(kube, controller, state)
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action(action, params=params), state)
    message = info.value.message
    assert f"parameter '{field}'" in message, message
    assert len(message) < 600, "a refusal echoes its input clipped"
    after = info.value.state
    assert after is not None
    assert _snapshot(kube, controller, after) == before
    return message


@settings(FAST, max_examples=40)
@given(name=st.one_of(BAD_NAMES, TYPE_WRONG))
def test_network_name_refused_everywhere(ctx, kube, controller, served, monkeypatch, name):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    _action_refused(ctx, kube, controller, served, "create-network", {"name": name}, "name")
    if not _object_name(name):
        for action in ("show-network", "delete-network"):
            _action_refused(ctx, kube, controller, served, action, {"name": name}, "name")


@settings(FAST, max_examples=40)
@given(name=st.one_of(BAD_OBJECT_NAMES, TYPE_WRONG))
def test_an_existing_networks_name_is_any_object_name(ctx, kube, controller, served, monkeypatch, name):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    for action in ("show-network", "delete-network"):
        message = _action_refused(ctx, kube, controller, served, action, {"name": name}, "name")
        assert "no L2Network named" not in message  # refused as a name, not looked up


@FAST
@given(cidr=st.one_of(BAD_CIDRS, TYPE_WRONG))
def test_cidr_refused(ctx, kube, controller, served, monkeypatch, cidr):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    _action_refused(ctx, kube, controller, served, "create-network", {"name": "net-a", "cidr": cidr}, "cidr")


@FAST
@given(force=st.one_of(BAD_FLAGS, TYPE_WRONG.filter(lambda v: not isinstance(v, bool))))
def test_force_takes_only_true_or_false(ctx, kube, controller, served, monkeypatch, force):
    from conftest import l2network

    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    if kube.find("L2Network", "helm-net", "helm") is None:
        kube.add(l2network("helm-net", namespace="helm"))  # only force=true would delete it
    _action_refused(
        ctx, kube, controller, served, "delete-network", {"name": "helm-net", "force": force}, "force"
    )


@FAST
@given(
    action=st.sampled_from(
        ["list-networks", "show-network", "create-network", "delete-network", "controller-status"]
    ),
    app_name=st.one_of(BAD_APP_NAMES, TYPE_WRONG),
)
def test_application_name_refused(ctx, kube, controller, served, monkeypatch, action, app_name):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    params = {"application-name": app_name}
    if action in ("show-network", "create-network", "delete-network"):
        params["name"] = "net-a"
    _action_refused(ctx, kube, controller, served, action, params, "application-name")


@FAST
@given(
    action=st.sampled_from(
        ["list-networks", "show-network", "create-network", "delete-network", "controller-status"]
    ),
    key=st.sampled_from(["title", "Name", "cidr ", "force", "app-name", "x" * 300]),
    value=st.one_of(st.text(max_size=8), TYPE_WRONG),
)
def test_unknown_parameters_refused(ctx, kube, controller, served, monkeypatch, action, key, value):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    if action == "delete-network" and key == "force":
        key = "forced"
    params = {key: value}
    if action in ("show-network", "create-network", "delete-network"):
        params["name"] = "net-a"
    field = key.replace("_", "-")
    before = _snapshot(kube, controller, served)
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action(action, params=params), served)
    assert "unknown parameter" in info.value.message
    assert f"parameter '{field[:61]}" in info.value.message
    assert _snapshot(kube, controller, info.value.state) == before


_CERT = "webhook-certificate-days"
_RENEW = "webhook-renew-days"
BAD_CONFIG = st.one_of(
    st.builds(lambda v: {_CERT: v}, st.one_of(st.integers(max_value=6), st.integers(min_value=3651))),
    st.builds(lambda v: {_RENEW: v}, st.one_of(st.integers(max_value=0), st.integers(min_value=366))),
    # Renewal at or after expiry: each value fine alone, refused together.
    st.integers(min_value=7, max_value=365).flatmap(
        lambda days: st.builds(lambda r: {_CERT: days, _RENEW: r}, st.integers(min_value=days, max_value=365))
    ),
    st.builds(
        lambda k, v: {k: v},
        st.sampled_from([_CERT, _RENEW]),
        st.sampled_from(["30", "", "365 ", 30.0, True, None, [30]]),
    ),
)


@FAST
@given(config=BAD_CONFIG)
def test_refused_config_keeps_everything_serving(ctx, kube, controller, served, monkeypatch, config):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")
    before = _snapshot(kube, controller, served)
    state = served.__class__(**{**served.__dict__, "config": config})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    named = [k for k in config if k in out.unit_status.message]
    assert named, out.unit_status.message
    assert "(the last good config still serves)" in out.unit_status.message
    assert len(out.unit_status.message) < 400
    assert _snapshot(kube, controller, out) == before
    assert json.loads(_relation_data(out)[next(iter(_relation_data(out)))]["ready"]) is True
    assert out.get_container("manager").plan == served.get_container("manager").plan
