"""IPAM and routes through the charm, across two relations, leader changes and departures."""

import json

import pytest
from conftest import APP, MODEL, make_state, members, provider_data
from ops import testing

from l2sm_core.manifests.crds import validate_custom_object

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
    bad = members("odd", {0: ("10.0.1.7", [])})
    out = ctx.run(ctx.on.relation_changed(bad), make_state([bad], config=CIDR))
    reason = provider_data(out, bad).rejections["odd/0"]
    assert reason.startswith("bad relation data: field 'address'")
    garbage = testing.Relation(
        "network", remote_app_name="junk", remote_units_data={0: {"address": "not json"}}
    )
    out = ctx.run(ctx.on.relation_changed(garbage), make_state([garbage], config=CIDR))
    assert provider_data(out, garbage).rejections["junk/0"].startswith("bad relation data: not JSON")


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
