"""Refusals that keep the last good configuration serving: a config that would take an
address, bad remote data, and reconciles that must not rewrite what did not change."""

import copy
import json

import pytest
from conftest import APP, CONTROLLER_DATA, MODEL, controller_relation, make_state, members, provider_data
from ops import testing

CIDR = {"cidr": "10.0.1.0/24"}


def _settled(ctx, kube, relations, config=CIDR):
    """Run once with a good config; return the state after it, as the next run's input."""
    out = ctx.run(ctx.on.config_changed(), make_state(relations, config=config))
    assert out.unit_status.name == "active", out.unit_status
    return out


def _databags(state):
    return {r.id: dict(r.local_app_data) for r in state.relations if r.endpoint == "network"}


def _rerun(ctx, state, config, event="config_changed"):
    """The same relations (with what the network wrote) under another config."""
    relations = [r for r in state.relations if r.endpoint == "network"]
    return ctx.run(getattr(ctx.on, event)(), make_state(relations, config=config))


# -- 1. `reserved` naming a held address ----------------------------------------------------


def test_reserving_a_held_address_is_refused_and_the_holder_keeps_it(ctx, kube):
    cache = members("cdn-cache", {0: ("", []), 1: ("", [])})
    settled = _settled(ctx, kube, [cache])
    assert provider_data(settled, cache).assignments == {
        "cdn-cache/0": "10.0.1.1/24",
        "cdn-cache/1": "10.0.1.2/24",
    }
    before, objects = _databags(settled), copy.deepcopy(kube.objects)

    out = _rerun(ctx, settled, CIDR | {"reserved": "10.0.1.9, 10.0.1.2"})
    assert out.unit_status == testing.BlockedStatus(
        "option 'reserved': 10.0.1.2 (held by cdn-cache/1): an assigned address is never taken "
        "back; remove it from reserved, or remove its holder's relation first"
    )
    assert _databags(out) == before
    assert kube.objects == objects
    # The action says the same and changes nothing either.
    with pytest.raises(testing.ActionFailed, match=r"option 'reserved': 10\.0\.1\.2 \(held by cdn-cache/1\)"):
        ctx.run(ctx.on.action("show"), out)


def test_reserving_a_free_or_released_address_is_fine(ctx, kube):
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [cache])
    out = _rerun(ctx, settled, CIDR | {"reserved": "10.0.1.2"})
    assert out.unit_status.name == "active"
    assert provider_data(out, cache).assignments == {"cdn-cache/0": "10.0.1.1/24"}
    # Once the holder has departed its address may be reserved.
    rel = out.get_relation(cache.id)
    gone = ctx.run(
        ctx.on.relation_departed(rel, remote_unit=0, departing_unit=0),
        make_state([rel], config=CIDR | {"reserved": "10.0.1.1"}),
    )
    assert gone.unit_status.name == "active"
    assert provider_data(gone, cache).assignments == {}


# -- 2. cidr rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [
        ("0.0.0.0/0", "too wide"),
        ("127.0.0.0/8", "overlaps 127.0.0.0/8"),
        ("224.0.1.0/24", "overlaps 224.0.0.0/4"),
        ("169.254.1.0/24", "overlaps 169.254.0.0/16"),
        ("240.0.0.0/8", "overlaps 240.0.0.0/4"),
        ("10.0.1.0/255.255.255.0", "a.b.c.d/len"),
        ("10.0.1.0/32", "no room for hosts"),
    ],
)
def test_special_cidrs_refused(ctx, kube, cidr, fragment):
    cache = members("cdn-cache", {0: ("", [])})
    out = ctx.run(ctx.on.config_changed(), make_state([cache], config={"cidr": cidr}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("option 'cidr': ")
    assert fragment in out.unit_status.message
    assert kube.writes == [] and _databags(out) == {cache.id: {}}


@pytest.mark.parametrize("cidr", ["10.0.2.0/24", "10.0.0.0/16", "10.0.1.0/25", ""])
def test_cidr_change_under_holders_is_refused_naming_them(ctx, kube, cidr):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [router, cache])
    before, objects = _databags(settled), copy.deepcopy(kube.objects)
    out = _rerun(ctx, settled, {"cidr": cidr})
    assert out.unit_status == testing.BlockedStatus(
        f"option 'cidr': {cidr or 'empty (pure L2)'} would take the addresses of "
        "cdn-cache/0 (10.0.1.2/24), cdn-router/0 (10.0.1.1/24): members are never renumbered; "
        "set cidr back to 10.0.1.0/24, or remove their relations first"
    )
    assert _databags(out) == before
    assert kube.objects == objects


def test_cidr_may_change_once_nobody_holds_an_address(ctx, kube):
    # A pure L2 network with members may gain a cidr: nobody loses an address.
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [cache], config={})
    out = _rerun(ctx, settled, {"cidr": "10.0.2.0/24"})
    assert provider_data(out, cache).assignments == {"cdn-cache/0": "10.0.2.1/24"}
    assert provider_data(out, cache).network.cidr == "10.0.2.0/24"


def test_many_holders_are_listed_short(ctx, kube):
    rel = members("knf", {n: ("", []) for n in range(6)})
    settled = _settled(ctx, kube, [rel])
    out = _rerun(ctx, settled, {"cidr": "10.0.2.0/24"})
    assert "knf/2 (10.0.1.3/24) and 3 more" in out.unit_status.message


# -- 3. offered prefixes ---------------------------------------------------------------------


def _unit_data(address, offered):
    return {"address": json.dumps(address), "offered-prefixes": json.dumps(offered)}


@pytest.mark.parametrize(
    ("offered", "fragment"),
    [
        (["0.0.0.0/0"], "the default route"),
        (["127.0.0.0/8"], "overlaps 127.0.0.0/8"),
        (["224.0.0.0/4"], "overlaps 224.0.0.0/4"),
        (["169.254.0.0/16"], "overlaps 169.254.0.0/16"),
        (["240.1.0.0/16"], "overlaps 240.0.0.0/4"),
        ([f"10.{i}.0.0/16" for i in range(2, 35)], "at most 32 items"),
    ],
)
def test_bad_offers_are_refused_and_the_router_keeps_address_and_routes(ctx, kube, offered, fragment):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [router, cache])
    routes = provider_data(settled, cache).routes
    assert [r.prefix for r in routes] == ["10.0.2.0/24"]

    spoiled = testing.Relation(
        "network",
        id=router.id,
        remote_app_name="cdn-router",
        remote_units_data={0: _unit_data("10.0.1.1/24", offered)},
        local_app_data=settled.get_relation(router.id).local_app_data,
    )
    out = ctx.run(
        ctx.on.relation_changed(spoiled, remote_unit=0),
        make_state([spoiled, settled.get_relation(cache.id)], config=CIDR),
    )
    data = provider_data(out, spoiled)
    assert data.assignments == {"cdn-router/0": "10.0.1.1/24"}
    reason = data.rejections["cdn-router/0"]
    assert reason.startswith("bad relation data: field 'offered-prefixes")
    assert fragment in reason and len(reason) <= 300
    # Its earlier routes stay: the other members are not affected.
    assert out.get_relation(cache.id).local_app_data == settled.get_relation(cache.id).local_app_data


def test_a_new_member_with_bad_offers_is_told_and_gets_nothing(ctx, kube):
    odd = testing.Relation(
        "network", remote_app_name="odd", remote_units_data={0: _unit_data("", ["127.0.0.0/8"])}
    )
    out = ctx.run(ctx.on.relation_changed(odd), make_state([odd], config=CIDR))
    data = provider_data(out, odd)
    assert data.assignments == {} and data.routes == []
    assert "field 'offered-prefixes'" in data.rejections["odd/0"]


# -- 4. the controller's data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ready", "yes"),
        ("ready", 1),
        ("cluster-ip", "0.0.0.0"),
        ("cluster-ip", "127.0.0.1"),
        ("rest-url", "http://"),
        ("openflow-port", "6633"),
    ],
)
def test_bad_controller_data_blocks_naming_the_field(ctx, kube, field, value):
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [cache])
    before, objects = _databags(settled), copy.deepcopy(kube.objects)
    state = testing.State(
        leader=True,
        model=testing.Model(name=MODEL),
        config=CIDR,
        relations={settled.get_relation(cache.id), controller_relation(CONTROLLER_DATA | {field: value})},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    assert f"controller relation data: field '{field}'" in out.unit_status.message
    assert _databags(out) == before and kube.objects == objects


# -- 5. a reconcile that changes nothing writes nothing ---------------------------------------


def test_a_second_reconcile_leaves_the_databag_byte_identical(ctx, kube):
    # Pool grants come after static ones and conflicts are found late: a write in the order
    # of the work would differ from the next run's, where everyone already holds.
    rel = members("knf", {3: ("", []), 1: ("10.0.1.9/24", []), 0: ("", []), 2: ("10.0.1.9/24", [])})
    router = members("r", {0: ("10.0.1.20/24", ["10.9.0.0/16", "10.8.0.0/16"])})
    first = ctx.run(ctx.on.relation_changed(rel), make_state([rel, router], config=CIDR))
    raw = first.get_relation(rel.id).local_app_data
    assert raw["assignments"] == json.dumps(
        {"knf/0": "10.0.1.1/24", "knf/1": "10.0.1.9/24", "knf/3": "10.0.1.2/24"}, sort_keys=True
    )
    for event in ("update_status", "config_changed", "leader_elected"):
        again = _rerun(ctx, first, CIDR, event)
        assert _databags(again) == _databags(first), event


# -- 6. bad remote unit data and refused options ----------------------------------------------


@pytest.mark.parametrize(
    ("unit_data", "fragment"),
    [
        ({"address": "10.0.1.7/24"}, "field 'address': not JSON"),
        ({"address": json.dumps(["junk", 1, None])}, "field 'address'"),
        ({"address": json.dumps("x" * 10_000)}, "field 'address'"),
        ({"address": json.dumps(7)}, "field 'address'"),
        ({"address": '""', "offered-prefixes": json.dumps("10.0.2.0/24")}, "field 'offered-prefixes'"),
        ({"address": '""', "offered-prefixes": json.dumps(["x" * 10_000] * 40)}, "field 'offered-prefixes'"),
        ({"address": '""', "offered-prefixes": "["}, "field 'offered-prefixes': not JSON"),
        ({"address": json.dumps("10.0.1.7/255.255.255.0")}, "a.b.c.d/len"),
    ],
)
def test_bad_unit_data_keeps_what_it_holds_others_unaffected(ctx, kube, unit_data, fragment):
    knf = members("knf", {0: ("10.0.1.7/24", []), 1: ("", [])})
    other = members("other", {0: ("", [])})
    settled = _settled(ctx, kube, [knf, other])
    held = provider_data(settled, knf).assignments
    spoiled = testing.Relation(
        "network",
        id=knf.id,
        remote_app_name="knf",
        remote_units_data={0: unit_data, 1: knf.remote_units_data[1]},
        local_app_data=settled.get_relation(knf.id).local_app_data,
    )
    out = ctx.run(
        ctx.on.relation_changed(spoiled, remote_unit=0),
        make_state([spoiled, settled.get_relation(other.id)], config=CIDR),
    )
    data = provider_data(out, spoiled)
    assert data.assignments == held
    assert list(data.rejections) == ["knf/0"]
    assert fragment in data.rejections["knf/0"] and len(data.rejections["knf/0"]) <= 300
    assert out.get_relation(other.id).local_app_data == settled.get_relation(other.id).local_app_data
    assert out.unit_status.name == "active"  # the network itself is fine


def test_junk_in_our_own_databag_does_not_wedge_the_charm(ctx, kube):
    junk = {"assignments": json.dumps({"knf/0": "nonsense", "knf/1": 5}), "routes": "{"}
    rel = members("knf", {0: ("", [])}, local_app_data=junk)
    out = ctx.run(ctx.on.config_changed(), make_state([rel], config=CIDR))
    assert provider_data(out, rel).assignments == {"knf/0": "10.0.1.1/24"}


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"network-name": "n" * 10_000}, "network-name"),
        ({"cidr": "1" * 10_000}, "cidr"),
        (CIDR | {"reserved": "10.0.1." + "9" * 10_000}, "reserved"),
        (CIDR | {"reserved": ",".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(300))}, "reserved"),
        ({"type": "v" * 10_000}, "type"),
    ],
)
def test_long_option_values_are_clipped_in_status(ctx, kube, config, option):
    cache = members("cdn-cache", {0: ("", [])})
    settled = _settled(ctx, kube, [cache])
    before, objects = _databags(settled), copy.deepcopy(kube.objects)
    out = _rerun(ctx, settled, config)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"option '{option}'")
    assert len(out.unit_status.message) < 300
    assert _databags(out) == before and kube.objects == objects


def test_published_network_info_is_the_contract_s(ctx, kube):
    cache = members("cdn-cache", {0: ("", [])})
    out = _settled(ctx, kube, [cache], config=CIDR | {"mtu": 1400, "network-name": "net-a"})
    info = provider_data(out, cache).network
    assert (info.name, info.cidr, info.mtu, info.type) == ("net-a", "10.0.1.0/24", 1400, "vnet")
    assert APP in out.unit_status.message or "net-a" in out.unit_status.message


@pytest.mark.parametrize(
    ("wanted", "reason"),
    [
        ("10.0.9.7/24", "10.0.9.7 is outside 10.0.1.0/24"),
        ("10.0.1.1/24", "10.0.1.1 is held by cdn-router/0"),
        ("10.0.1.7/16", "10.0.1.7/16 has prefix length /16: use 10.0.1.7/24 (10.0.1.0/24)"),
    ],
)
def test_a_refused_new_request_keeps_the_working_address(ctx, kube, wanted, reason):
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    cache = members("cdn-cache", {0: ("10.0.1.7/24", [])})
    settled = _settled(ctx, kube, [router, cache])
    moved = members(
        "cdn-cache",
        {0: (wanted, [])},
        local_app_data=settled.get_relation(cache.id).local_app_data,
        relation_id=cache.id,
    )
    out = ctx.run(
        ctx.on.relation_changed(moved, remote_unit=0),
        make_state([settled.get_relation(router.id), moved], config=CIDR),
    )
    data = provider_data(out, moved)
    assert data.assignments == {"cdn-cache/0": "10.0.1.7/24"}
    assert data.rejections == {"cdn-cache/0": reason}
    assert out.get_relation(router.id).local_app_data == settled.get_relation(router.id).local_app_data
