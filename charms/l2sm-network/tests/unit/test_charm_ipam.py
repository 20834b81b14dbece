"""IPAM and routes through the charm, across two relations, leader changes and departures."""

import json

import pytest
from conftest import APP, MODEL, make_state, members, provider_data
from ops import testing

from l2sm_controlplane.crds import validate_custom_object

CIDR = {"cidr": "10.0.1.0/24"}


def test_two_relations_static_pool_and_routes(ctx, kube):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    cache = members("cdn-cache", {0: ("10.0.1.10/24", []), 1: ("", [])})
    out = ctx.run(ctx.on.relation_changed(cache), make_state([router, cache], config=CIDR))

    cache_data = provider_data(out, cache)
    router_data = provider_data(out, router)
    assert cache_data.network.name == APP and cache_data.network.cidr == "10.0.1.0/24"
    assert cache_data.network.mtu == 1400
    assert cache_data.assignments == {"cdn-cache/0": "10.0.1.10/24", "cdn-cache/1": "10.0.1.2/24"}
    assert router_data.assignments == {"cdn-router/0": "10.0.1.1/24"}
    # Routes span relations: the cache learns the router's other network.
    assert [r.model_dump() for r in cache_data.routes] == [{"prefix": "10.0.2.0/24", "via": "10.0.1.1"}]
    assert router_data.routes == cache_data.routes
    assert out.unit_status == testing.ActiveStatus(f"{APP} 10.0.1.0/24: 3 members")

    network = kube.find("L2Network", APP, MODEL)
    validate_custom_object(network)
    assert "networkCIDR" not in network["spec"]  # Juju addresses, not the webhook


def test_conflict_across_relations_lowest_unit_wins(ctx, kube):
    a = members("alpha", {0: ("10.0.1.5/24", [])})
    b = members("beta", {0: ("10.0.1.5/24", [])})
    out = ctx.run(ctx.on.relation_changed(b), make_state([a, b], config=CIDR))
    assert provider_data(out, a).assignments == {"alpha/0": "10.0.1.5/24"}
    assert provider_data(out, b).rejections == {"beta/0": "10.0.1.5 is held by alpha/0"}
    assert out.unit_status.message.endswith("2 members, 1 refused (see the show action)")


def test_assignments_survive_leader_change_and_are_not_moved(ctx, kube):
    # A new leader finds the state in the relation's databag, not in memory.
    earlier = {"assignments": json.dumps({"zeta/0": "10.0.1.5/24"})}
    z = members("zeta", {0: ("", [])}, local_app_data=earlier)
    a = members("alpha", {0: ("10.0.1.5/24", [])})
    out = ctx.run(ctx.on.leader_elected(), make_state([z, a], config=CIDR))
    assert provider_data(out, z).assignments == {"zeta/0": "10.0.1.5/24"}
    assert provider_data(out, a).rejections == {"alpha/0": "10.0.1.5 is held by zeta/0"}


def test_departure_releases_the_address(ctx, kube):
    cache = members("cdn-cache", {0: ("", []), 1: ("", [])})
    out = ctx.run(ctx.on.relation_changed(cache), make_state([cache], config=CIDR))
    assert provider_data(out, cache).assignments == {
        "cdn-cache/0": "10.0.1.1/24",
        "cdn-cache/1": "10.0.1.2/24",
    }
    state = make_state([out.get_relation(cache.id)], config=CIDR)
    out = ctx.run(
        ctx.on.relation_departed(out.get_relation(cache.id), remote_unit=0, departing_unit=0), state
    )
    assert provider_data(out, cache).assignments == {"cdn-cache/1": "10.0.1.2/24"}


def test_broken_relation_routes_withdrawn(ctx, kube):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    cache = members("cdn-cache", {0: ("", [])})
    out = ctx.run(ctx.on.relation_changed(cache), make_state([router, cache], config=CIDR))
    assert provider_data(out, cache).routes
    state = make_state([out.get_relation(router.id), out.get_relation(cache.id)], config=CIDR)
    out = ctx.run(ctx.on.relation_broken(out.get_relation(router.id)), state)
    assert provider_data(out, cache).routes == []


def test_hook_rerun_changes_nothing(ctx, kube):
    cache = members("cdn-cache", {0: ("", []), 3: ("", [])})
    first = ctx.run(ctx.on.relation_changed(cache), make_state([cache], config=CIDR))
    again = ctx.run(ctx.on.update_status(), make_state([first.get_relation(cache.id)], config=CIDR))
    assert first.get_relation(cache.id).local_app_data == again.get_relation(cache.id).local_app_data


def test_pure_l2_network(ctx, kube):
    cache = members("cdn-cache", {0: ("", []), 1: ("10.0.1.5/24", [])})
    out = ctx.run(ctx.on.relation_changed(cache), make_state([cache]))
    data = provider_data(out, cache)
    assert data.network.cidr == "" and data.assignments == {}
    assert "pure L2" in data.rejections["cdn-cache/1"]
    assert out.unit_status.message.startswith(f"{APP} (L2 only): 2 members")


def test_bad_member_data_is_refused_with_the_field(ctx, kube):
    bad = testing.Relation("network", remote_app_name="odd", remote_units_data={0: {"address": '"10.0.1.7"'}})
    out = ctx.run(ctx.on.relation_changed(bad), make_state([bad], config=CIDR))
    reason = provider_data(out, bad).rejections["odd/0"]
    assert reason.startswith("bad relation data: field 'address'")
    garbage = testing.Relation(
        "network", remote_app_name="junk", remote_units_data={0: {"address": "not json"}}
    )
    out = ctx.run(ctx.on.relation_changed(garbage), make_state([garbage], config=CIDR))
    assert provider_data(out, garbage).rejections["junk/0"] == "bad relation data: field 'address': not JSON"


def test_reserved_and_mtu(ctx, kube):
    cache = members("cdn-cache", {0: ("", [])})
    config = CIDR | {"reserved": "10.0.1.1, 10.0.1.2", "mtu": 1350}
    out = ctx.run(ctx.on.relation_changed(cache), make_state([cache], config=config))
    data = provider_data(out, cache)
    assert data.assignments == {"cdn-cache/0": "10.0.1.3/24"}
    assert data.network.mtu == 1350


@pytest.mark.parametrize("event", ["config_changed", "upgrade_charm", "update_status", "relation_joined"])
def test_events_of_interest_publish(ctx, kube, event):
    cache = members("cdn-cache", {0: ("", [])})
    state = make_state([cache], config=CIDR)
    trigger = (
        ctx.on.relation_joined(cache, remote_unit=0)
        if event == "relation_joined"
        else getattr(ctx.on, event)()
    )
    out = ctx.run(trigger, state)
    assert provider_data(out, cache).assignments == {"cdn-cache/0": "10.0.1.1/24"}


def test_leaving_leader_does_not_empty_the_databags(ctx, kube, monkeypatch):
    import ops

    cache = members("cdn-cache", {0: ("", []), 1: ("", [])})
    out = ctx.run(ctx.on.relation_changed(cache), make_state([cache], config=CIDR))
    before = out.get_relation(cache.id).local_app_data
    assert len(json.loads(before["assignments"])) == 2
    # Juju tells a leaving leader that each remote unit departs with JUJU_DEPARTING_UNIT set to
    # the leader itself; ops.testing can only name a remote unit there, so say it here.
    # From the leaving unit's side, remote units drop out of the relation hook by hook.
    monkeypatch.setattr(
        ops.RelationDepartedEvent, "departing_unit", property(lambda e: e.framework.model.unit)
    )
    shrunk = members("cdn-cache", {1: ("", [])}, local_app_data=before, relation_id=cache.id)
    out = ctx.run(ctx.on.relation_departed(shrunk, remote_unit=1), make_state([shrunk], config=CIDR))
    assert out.get_relation(cache.id).local_app_data == before


def test_unit_that_has_not_asked_gets_nothing_yet(ctx, kube):
    # The seed: a pool cache and a router asking for .1 arrive together; the cache has not
    # written yet, so it must not take .1 from the pool first.
    quiet = testing.Relation("network", remote_app_name="cdn-cache", remote_units_data={1: {}})
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    out = ctx.run(ctx.on.relation_changed(quiet), make_state([quiet, router], config=CIDR))
    assert provider_data(out, quiet).assignments == {}
    assert provider_data(out, router).assignments == {"cdn-router/0": "10.0.1.1/24"}


def test_bad_data_keeps_the_held_address(ctx, kube):
    earlier = {"assignments": json.dumps({"odd/0": "10.0.1.7/24"})}
    bad = testing.Relation(
        "network",
        remote_app_name="odd",
        remote_units_data={0: {"address": '"10.0.1.7"'}},
        local_app_data=earlier,
    )
    other = members("alpha", {0: ("10.0.1.7/24", [])})
    out = ctx.run(ctx.on.relation_changed(bad), make_state([bad, other], config=CIDR))
    assert provider_data(out, bad).assignments == {"odd/0": "10.0.1.7/24"}
    assert provider_data(out, bad).rejections["odd/0"].startswith("bad relation data: field 'address'")
    assert provider_data(out, other).rejections == {"alpha/0": "10.0.1.7 is held by odd/0"}


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        ("10.0.1.0/24", "10.0.1.0 is the network address of 10.0.1.0/24"),
        ("10.0.1.255/24", "10.0.1.255 is the broadcast address of 10.0.1.0/24"),
        ("10.0.9.5/24", "10.0.9.5 is outside 10.0.1.0/24"),
        ("10.0.1.3/24", "10.0.1.3 is reserved"),
        ("10.0.1.5/16", "10.0.1.5/16 has prefix length /16: use 10.0.1.5/24 (10.0.1.0/24)"),
    ],
)
def test_static_request_rules_through_the_charm(ctx, kube, request_, reason):
    rel = members("knf", {0: (request_, [])})
    out = ctx.run(ctx.on.relation_changed(rel), make_state([rel], config=CIDR | {"reserved": "10.0.1.3"}))
    assert provider_data(out, rel).rejections == {"knf/0": reason}


def test_numeric_unit_order_and_pool_exhaustion(ctx, kube):
    rel = members("a", {10: ("10.0.1.1/30", []), 9: ("10.0.1.1/30", []), 11: ("", []), 12: ("", [])})
    out = ctx.run(ctx.on.relation_changed(rel), make_state([rel], config={"cidr": "10.0.1.0/30"}))
    data = provider_data(out, rel)
    assert data.assignments == {"a/9": "10.0.1.1/30", "a/11": "10.0.1.2/30"}
    assert data.rejections == {
        "a/10": "10.0.1.1 is held by a/9",
        "a/12": "no free address left in 10.0.1.0/30",
    }


def test_changed_request_releases_the_old_address(ctx, kube):
    rel = members("knf", {0: ("10.0.1.5/24", [])})
    out = ctx.run(ctx.on.relation_changed(rel), make_state([rel], config=CIDR))
    moved = members(
        "knf",
        {0: ("10.0.1.6/24", [])},
        local_app_data=out.get_relation(rel.id).local_app_data,
        relation_id=rel.id,
    )
    other = members("zeta", {0: ("10.0.1.5/24", [])})
    out = ctx.run(ctx.on.relation_changed(moved), make_state([moved, other], config=CIDR))
    assert provider_data(out, moved).assignments == {"knf/0": "10.0.1.6/24"}
    assert provider_data(out, other).assignments == {"zeta/0": "10.0.1.5/24"}


def test_router_offering_the_network_itself_is_reported(ctx, kube):
    rel = members("r", {0: ("10.0.1.1/24", ["10.0.0.0/16"])})
    out = ctx.run(ctx.on.relation_changed(rel), make_state([rel], config=CIDR))
    assert provider_data(out, rel).routes == []
    ctx.run(ctx.on.action("show"), out)
    assert json.loads(ctx.action_results["ignored-offers"]) == {"10.0.0.0/16": ["r/0"]}


def _raw(**fields):
    """A member's unit databag written by hand: what that member's version writes."""
    return {key.replace("_", "-"): json.dumps(value) for key, value in fields.items()}


def test_a_from_request_gets_the_first_free_address_from_its_start(ctx, kube):
    cache = members("cdn-cache", {0: ("10.0.1.1/24", [])})
    router = testing.Relation(
        "network",
        remote_app_name="cdn-router",
        remote_units_data={
            0: _raw(address="10.0.1.1/24", address_from="10.0.1.1/24", offered_prefixes=[]),
            1: _raw(address="10.0.1.2/24", address_from="10.0.1.1/24", offered_prefixes=[]),
        },
    )
    out = ctx.run(ctx.on.relation_changed(router), make_state([cache, router], config=CIDR))
    # cdn-cache/0's exact request goes first; the routers take the first free ones from .1.
    assert provider_data(out, cache).assignments == {"cdn-cache/0": "10.0.1.1/24"}
    assert provider_data(out, router).assignments == {
        "cdn-router/0": "10.0.1.2/24",
        "cdn-router/1": "10.0.1.3/24",
    }
    assert provider_data(out, router).rejections == {}


def test_an_older_member_without_address_from_is_served_as_before(ctx, kube):
    # A member from before address-from: `address` alone is an exact request, refused by
    # name when held; its pool peer takes the lowest free address.
    earlier = {"assignments": json.dumps({"new/0": "10.0.1.5/24"})}
    new = testing.Relation(
        "network",
        remote_app_name="new",
        remote_units_data={0: _raw(address="10.0.1.5/24", address_from="10.0.1.5/24")},
        local_app_data=earlier,
    )
    old = testing.Relation(
        "network",
        remote_app_name="old",
        remote_units_data={
            0: _raw(address="10.0.1.5/24", offered_prefixes=[]),
            1: _raw(address="10.0.1.7/24", offered_prefixes=[]),
            2: _raw(address="", offered_prefixes=[]),
        },
    )
    out = ctx.run(ctx.on.relation_changed(old), make_state([new, old], config=CIDR))
    assert provider_data(out, old).assignments == {"old/1": "10.0.1.7/24", "old/2": "10.0.1.1/24"}
    assert provider_data(out, old).rejections == {"old/0": "10.0.1.5 is held by new/0"}


def test_a_member_sending_only_address_from_has_asked(ctx, kube):
    knf = testing.Relation(
        "network", remote_app_name="knf", remote_units_data={0: _raw(address_from="10.0.1.9/24")}
    )
    out = ctx.run(ctx.on.relation_changed(knf), make_state([knf], config=CIDR))
    assert provider_data(out, knf).assignments == {"knf/0": "10.0.1.9/24"}


def test_a_from_request_with_no_free_address_left_is_refused_and_keeps_what_it_holds(ctx, kube):
    earlier = {"assignments": json.dumps({"knf/0": "10.0.1.3/24", "knf/1": "10.0.1.254/24"})}
    knf = testing.Relation(
        "network",
        remote_app_name="knf",
        remote_units_data={
            0: _raw(address="10.0.1.254/24", address_from="10.0.1.254/24"),
            1: _raw(address="10.0.1.254/24", address_from="10.0.1.254/24"),
        },
        local_app_data=earlier,
    )
    out = ctx.run(ctx.on.relation_changed(knf), make_state([knf], config=CIDR))
    answer = provider_data(out, knf)
    assert answer.assignments == {"knf/0": "10.0.1.3/24", "knf/1": "10.0.1.254/24"}
    assert answer.rejections == {"knf/0": "no free address from 10.0.1.254 in 10.0.1.0/24"}
