"""Property-based: any bad action parameter fails naming it and changes nothing (the State
before and after, and the loaded ruleset, are the same); any bad option is Blocked naming it
and keeps the last good ruleset."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import APP, nft_runs, settle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from l2sm_core.probe import COUNT_MAX
from l2sm_testing.bad_input import tricky_text

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MESSAGE_MAX = 600
GOOD = {
    "add-rule": {"name": "new", "from": "clients", "to": "caches", "protocol": "tcp", "port": "443"},
    "remove-rule": {"name": "added"},
    "set-link": {"network": "caches", "state": "down"},
    "check-connectivity": {"target": "10.0.2.10", "count": 1},
}
# Values each parameter takes (the rest are bad): tricky text is checked against these.
ACCEPTED = {
    ("add-rule", "protocol"): {"tcp", "udp", "icmp", "any"},
    ("set-link", "state"): {"up", "down"},
}
CASES = [(action, param) for action, params in GOOD.items() for param in params]


@pytest.fixture
def world(ctx, cluster, etc):
    """A settled router with one rule added by action ('added'), and its loaded ruleset."""
    out = settle(
        ctx, cluster, etc, config={"rules": "- {name: web, from: clients, to: caches, protocol: tcp}"}
    )
    out = ctx.run(
        ctx.on.action("add-rule", params={"name": "added", "from": "any", "to": "any", "protocol": "icmp"}),
        out,
    )
    nft_runs(ctx)
    return out


def _bad(action: str, param: str, value) -> bool:
    """Whether `value` is certainly refused for that parameter (a few good values slip through
    tricky text, e.g. a network name that happens to be valid: those are left out)."""
    if (action, param) in ACCEPTED:
        return value not in ACCEPTED[action, param]
    if param == "count":
        return not (isinstance(value, int) and 1 <= value <= COUNT_MAX)
    if not isinstance(value, str):
        return True
    if param == "port" and value == "":
        return False  # OSM's way of leaving an optional parameter out
    # Names, endpoints, ports: text that is none of these.
    return not value or any(c in value for c in " !@#$%^&*()+=[]{};:'\"\\,<>?\n\t") or value != value.strip()


@pytest.mark.parametrize(("action", "param"), CASES)
@PROPERTY
@given(data=st.data())
def test_a_bad_action_parameter_fails_naming_it_and_changes_nothing(ctx, world, etc, action, param, data):
    value = data.draw(tricky_text() if param != "count" else st.integers(min_value=-5, max_value=100_000))
    if not _bad(action, param, value):
        return
    before = (etc / "ruleset.nft").read_text()
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params={**GOOD[action], param: value}), world)
    message = failed.value.message
    assert failed.value.state is not None and _comparable(failed.value.state) == _comparable(world)
    assert f"parameter '{param}'" in message or f"'{param}'" in message, message
    assert len(message) <= MESSAGE_MAX
    assert nft_runs(ctx) == []
    assert (etc / "ruleset.nft").read_text() == before


@pytest.mark.parametrize("action", sorted(GOOD))
def test_a_refused_action_leaves_the_state_as_it_was(ctx, world, action):
    """The whole State, compared: peer data, stored state, status, containers."""
    params = {**GOOD[action], "application-name": "Not An App!"}
    with pytest.raises(testing.ActionFailed, match="parameter 'application-name'") as failed:
        ctx.run(ctx.on.action(action, params=params), world)
    assert failed.value.state is not None and _comparable(failed.value.state) == _comparable(world)


def _comparable(state: testing.State):
    """All but what any dispatch changes: the framework's event count (the status is the same
    line, collected again)."""
    stored = frozenset(s for s in state.stored_states if s.owner_path)
    return dataclasses.replace(state, stored_states=stored)


@PROPERTY
@given(text=tricky_text())
def test_any_rules_text_is_blocked_naming_the_option_or_loaded(ctx, world, etc, text):
    before = (etc / "ruleset.nft").read_text()
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(world, config={**world.config, "rules": text}))
    runs = nft_runs(ctx)
    if out.unit_status.name == "blocked":
        assert "rules" in out.unit_status.message or "rule " in out.unit_status.message
        assert runs == [] and (etc / "ruleset.nft").read_text() == before
    else:
        assert out.unit_status.name == "active", out.unit_status


@PROPERTY
@given(value=tricky_text(["drop", "accept"]))
def test_a_bad_default_policy_is_blocked_naming_it(ctx, world, etc, value):
    before = (etc / "ruleset.nft").read_text()
    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(world, config={**world.config, "default-policy": value})
    )
    if value in ("drop", "accept"):
        return
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("option 'default-policy'")
    assert nft_runs(ctx) == [] and (etc / "ruleset.nft").read_text() == before


def test_app_name(ctx):
    assert APP == "cdn-router"
