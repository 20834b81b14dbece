"""Property-based: any bad action parameter fails the action naming that parameter, and
changes nothing (the State after equals the State before; the content directory is as it was).
Also the params models on their own, for the values Juju's types would stop first."""

from __future__ import annotations

import dataclasses

import models
import pydantic
import pytest
from conftest import APP, joined
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from l2sm_core import probe
from l2sm_core.cdn import values
from l2sm_core.validation import application_name
from l2sm_testing.bad_input import tricky_text

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MESSAGE_MAX = 400


def refused_by(rule):
    def refused(value) -> bool:
        try:
            rule(value)
        except ValueError:
            return True
        return False

    return refused


def _bad_url(value: str) -> bool:
    # A URL the rule refuses, or one whose last segment is no content name.
    if refused_by(values.http_url)(value):
        return True
    return refused_by(values.content_name)(value.rpartition("/")[2])


BAD_NAMES = tricky_text(["a.bin", "video-1080p.mp4"]).filter(
    lambda v: v != "" and refused_by(values.content_name)(v)
)
BAD_WAITS = st.integers(max_value=-1) | st.integers(min_value=301)
CASES = {
    ("generate-content", "name"): BAD_NAMES.map(lambda v: {"name": v, "size": "1K"}),
    ("generate-content", "size"): tricky_text(["50M"])
    .filter(lambda v: v != "" and refused_by(values.size)(v))
    .map(lambda v: {"name": "g.bin", "size": v}),
    ("generate-content", "wait"): BAD_WAITS.map(lambda v: {"name": "g.bin", "size": "1K", "wait": v}),
    ("add-content", "url"): tricky_text(["http://10.0.2.10/a.bin"])
    .filter(lambda v: v != "" and _bad_url(v))
    .map(lambda v: {"url": v}),
    ("add-content", "name"): BAD_NAMES.map(lambda v: {"url": "http://192.0.2.1/x", "name": v}),
    ("add-content", "wait"): BAD_WAITS.map(lambda v: {"url": "http://192.0.2.1/x", "wait": v}),
    ("remove-content", "name"): st.one_of(BAD_NAMES, st.sampled_from(["absent.bin", "b.bin"])).map(
        lambda v: {"name": v}
    ),
    ("check-connectivity", "target"): tricky_text(["10.0.2.10"])
    .filter(refused_by(probe.validate_target))
    .map(lambda v: {"target": v}),
    ("check-connectivity", "count"): (st.integers(max_value=0) | st.integers(min_value=101)).map(
        lambda v: {"target": "10.0.2.10", "count": v}
    ),
}
GOOD = {
    "generate-content": {"name": "g.bin", "size": "1K"},
    "add-content": {"url": "http://192.0.2.1/x"},
    "remove-content": {"name": "a.bin"},
    "list-content": {},
    "check-connectivity": {"target": "10.0.2.10"},
}


@pytest.fixture
def settled(ctx, cluster, content):
    (content / "a.bin").write_bytes(b"a" * 8)
    (content / "c.bin.partial").write_bytes(b"c" * 3)
    return joined(ctx, cluster, content, relations=[testing.Relation("origin", remote_app_name="cdn-cache")])


def _fails_naming(ctx, settled, content, action, params, name):
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in content.iterdir())
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), settled)
    message = failed.value.message
    assert f"parameter '{name}'" in message, message
    assert len(message) <= MESSAGE_MAX
    assert ctx.emitted_events[-1].handle.kind == f"{action.replace('-', '_')}_action"
    assert _charm_state(failed.value.state) == _charm_state(settled)
    assert sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in content.iterdir()) == before


def _charm_state(out: testing.State) -> testing.State:
    # ops' own bookkeeping (the framework's event counter) moves with every dispatch.
    ours = frozenset(s for s in out.stored_states if s.owner_path)
    return dataclasses.replace(out, stored_states=ours)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[0]}:{c[1]}")
def test_a_bad_param_fails_naming_it_and_changes_nothing(ctx, settled, content, case):
    action, name = case

    @PROPERTY
    @given(CASES[case])
    def check(params):
        _fails_naming(ctx, settled, content, action, params, name)

    check()


@pytest.mark.parametrize("action", sorted(GOOD))
def test_a_bad_application_name_fails_naming_it(ctx, settled, content, action):
    @PROPERTY
    @given(tricky_text([APP]).filter(lambda v: v != "" and refused_by(application_name)(v)))
    def check(value):
        _fails_naming(
            ctx, settled, content, action, {**GOOD[action], "application-name": value}, "application-name"
        )

    check()


def test_the_fixture_state_is_good(ctx, settled):
    assert settled.unit_status.name == "active"
    assert settled.get_relation(
        next(r.id for r in settled.relations if r.endpoint == "origin")
    ).local_app_data


@pytest.mark.parametrize("wait, seconds", [(None, 0), ("", 0), ("30", 30), (300, 300)])
def test_wait_as_osm_sends_it(wait, seconds):
    assert models.GenerateParams(name="a.bin", size="1K", wait=wait).wait == seconds


@pytest.mark.parametrize("wait", ["soon", True, 1.5, "-1", "301"])
def test_a_bad_wait_names_it(wait):
    with pytest.raises(pydantic.ValidationError) as failed:
        models.AddParams(url="http://192.0.2.1/a", wait=wait)
    assert failed.value.errors()[0]["loc"] == ("wait",)


@pytest.mark.parametrize(
    "option, value", [("port", "80"), ("port", True), ("rate-limit", "fast"), ("autoindex", "yes")]
)
def test_bad_option_values_the_juju_types_let_through(option, value):
    with pytest.raises(pydantic.ValidationError) as failed:
        models.ServerConfig.model_validate({option.replace("-", "_"): value})
    assert failed.value.errors()[0]["loc"] == (option.replace("-", "_"),)
