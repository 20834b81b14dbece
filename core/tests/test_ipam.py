"""IPAM and routes: the rules of the l2sm_network contract, with properties over random inputs."""

import ipaddress
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from l2sm_core.ipam import (
    Member,
    allocate,
    compute_routes,
    offers_routed_via,
    renumbered,
    reserved_held,
    unit_order,
)

NET = "10.0.1.0/24"


def test_static_pool_and_order():
    members = [
        Member("router/0", "10.0.1.1/24"),
        Member("cache/0"),
        Member("cache/1"),
        Member("server/0", "10.0.1.10/24"),
    ]
    result = allocate(NET, ["10.0.1.2"], members, {})
    assert result.assignments == {
        "router/0": "10.0.1.1/24",
        "server/0": "10.0.1.10/24",
        "cache/0": "10.0.1.3/24",  # .2 is reserved
        "cache/1": "10.0.1.4/24",
    }
    assert result.rejections == {}


def test_lowest_unit_wins_and_loser_is_told_the_holder():
    members = [Member("b/0", "10.0.1.5/24"), Member("a/10", "10.0.1.5/24"), Member("a/9", "10.0.1.5/24")]
    result = allocate(NET, [], members, {})
    assert result.assignments == {"a/9": "10.0.1.5/24"}
    assert result.rejections == {"a/10": "10.0.1.5 is held by a/9", "b/0": "10.0.1.5 is held by a/9"}
    assert unit_order("a/10") > unit_order("a/9")


def test_existing_assignment_is_never_moved():
    existing = {"z/0": "10.0.1.7/24"}
    result = allocate(NET, [], [Member("a/0", "10.0.1.7/24"), Member("z/0")], existing)
    assert result.assignments == {"z/0": "10.0.1.7/24"}
    assert result.rejections == {"a/0": "10.0.1.7 is held by z/0"}


def test_existing_released_when_request_changes_or_becomes_invalid():
    existing = {"a/0": "10.0.1.7/24", "b/0": "10.0.1.8/24", "c/0": "10.0.2.9/24"}
    members = [Member("a/0", "10.0.1.20/24"), Member("b/0"), Member("c/0")]
    result = allocate(NET, ["10.0.1.8"], members, existing)
    # a asked for another address, b's became reserved, c's is from an old cidr.
    assert result.assignments == {"a/0": "10.0.1.20/24", "b/0": "10.0.1.1/24", "c/0": "10.0.1.2/24"}


def test_bad_static_requests():
    members = [
        Member("a/0", "10.0.1.0/24"),
        Member("a/1", "10.0.1.255/24"),
        Member("a/2", "10.0.2.5/24"),
        Member("a/3", "10.0.1.6/16"),
        Member("a/4", "10.0.1.9/24"),
    ]
    result = allocate(NET, ["10.0.1.9"], members, {})
    assert result.assignments == {}
    assert result.rejections == {
        "a/0": "10.0.1.0 is the network address of 10.0.1.0/24",
        "a/1": "10.0.1.255 is the broadcast address of 10.0.1.0/24",
        "a/2": "10.0.2.5 is outside 10.0.1.0/24",
        "a/3": "10.0.1.6/16 has prefix length /16: use 10.0.1.6/24 (10.0.1.0/24)",
        "a/4": "10.0.1.9 is reserved",
    }


def test_pool_exhaustion():
    members = [Member(f"a/{i}") for i in range(4)]
    result = allocate("10.0.1.0/30", [], members, {})
    assert result.assignments == {"a/0": "10.0.1.1/30", "a/1": "10.0.1.2/30"}
    assert result.rejections == {
        "a/2": "no free address left in 10.0.1.0/30",
        "a/3": "no free address left in 10.0.1.0/30",
    }


def test_pure_l2():
    result = allocate("", [], [Member("a/0"), Member("b/0", "10.0.1.5/24")], {"a/0": "10.0.1.1/24"})
    assert result.assignments == {}
    assert "pure L2" in result.rejections["b/0"]


def test_routes():
    members = [
        Member("router/0", offered=("10.0.2.0/24",)),
        Member("backup/0", offered=("10.0.2.0/24", "10.0.1.0/25", "192.168.0.0/16")),
        Member("cache/0"),
        Member("ghost/0", offered=("172.16.0.0/12",)),
    ]
    assignments = {"router/0": "10.0.1.1/24", "backup/0": "10.0.1.2/24", "cache/0": "10.0.1.3/24"}
    table = compute_routes(NET, members, assignments)
    # backup/0 sorts before router/0; its 10.0.1.0/25 overlaps this network and is on-link.
    assert table.routes == [
        {"prefix": "10.0.2.0/24", "via": "10.0.1.2"},
        {"prefix": "192.168.0.0/16", "via": "10.0.1.2"},
    ]
    assert table.shadowed == {"10.0.2.0/24": ["router/0"], "172.16.0.0/12": ["ghost/0"]}
    assert table.ignored == {"10.0.1.0/25": ["backup/0"]}  # on-link: reported, never routed


units = st.builds(
    lambda app, n: f"{app}/{n}", st.sampled_from(["a", "b", "cache", "router"]), st.integers(0, 12)
)
hosts = st.integers(0, 15).map(lambda i: f"10.0.1.{i}/28")
member_lists = st.lists(
    st.builds(lambda u, r: Member(u, r), units, st.one_of(st.just(""), hosts)),
    max_size=20,
    unique_by=lambda m: m.unit,
)


@settings(max_examples=200)
@given(member_lists, st.lists(st.integers(1, 14).map(lambda i: f"10.0.1.{i}"), max_size=4), st.randoms())
def test_allocation_properties(members, reserved, rnd):
    net = ipaddress.IPv4Network("10.0.1.0/28")
    first = allocate(str(net), reserved, members, {})
    addresses = [ipaddress.IPv4Interface(a) for a in first.assignments.values()]
    assert len({a.ip for a in addresses}) == len(addresses)  # never two units on one address
    for a in addresses:
        assert a.network == net and a.ip not in (net.network_address, net.broadcast_address)
        assert str(a.ip) not in reserved
    assert set(first.assignments).isdisjoint(first.rejections)
    assert set(first.assignments) | set(first.rejections) <= {m.unit for m in members}
    # Same inputs in any order, same answer, with or without an existing state.
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert allocate(str(net), list(reversed(reserved)), shuffled, {}) == first
    # Re-running with its own result as the existing state changes nothing (hook re-runs).
    assert allocate(str(net), reserved, shuffled, first.assignments) == first
    half = dict(list(first.assignments.items())[::2])
    assert allocate(str(net), reserved, members, half) == allocate(str(net), reserved, shuffled, half)
    # The lowest free address goes first: no pool grant skips a free, usable address below it.
    pool_units = {m.unit for m in members if not m.requested}
    granted = {ipaddress.IPv4Interface(a).ip for a in first.assignments.values()}
    pool_ips = sorted(
        ipaddress.IPv4Interface(first.assignments[u]).ip for u in pool_units if u in first.assignments
    )
    if pool_ips:
        below = [h for h in net.hosts() if h < pool_ips[-1] and h not in granted and str(h) not in reserved]
        assert below == []


@given(member_lists)
def test_contested_address_goes_to_the_lowest_unit(members):
    result = allocate("10.0.1.0/28", [], members, {})
    for unit, reason in result.rejections.items():
        if " is held by " in reason:
            holder = reason.rsplit(" ", 1)[1]
            assert unit_order(holder) < unit_order(unit)


offers = st.lists(
    st.builds(
        lambda u, prefixes: Member(u, offered=tuple(prefixes)),
        units,
        st.lists(st.sampled_from(["10.0.2.0/24", "10.0.3.0/24", "10.0.1.0/25", "0.0.0.0/0"]), max_size=3),
    ),
    max_size=8,
    unique_by=lambda m: m.unit,
)


@given(offers, st.randoms())
def test_route_properties(members, rnd):
    assignments = {
        m.unit: f"10.0.1.{i + 1}/24" for i, m in enumerate(sorted(members, key=lambda m: unit_order(m.unit)))
    }
    table = compute_routes(NET, members, assignments)
    prefixes = [r["prefix"] for r in table.routes]
    assert len(prefixes) == len(set(prefixes))  # one next hop per prefix
    for route in table.routes:
        offering = sorted((m.unit for m in members if route["prefix"] in m.offered), key=unit_order)
        assert route["via"] == assignments[offering[0]].split("/")[0]  # the lowest offering unit
        assert not ipaddress.IPv4Network(route["prefix"]).overlaps(ipaddress.IPv4Network(NET))
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert compute_routes(NET, shuffled, assignments) == table


@given(member_lists, st.randoms())
def test_existing_assignments_survive_newcomers(members, rnd):
    if not members:
        return
    first = allocate("10.0.1.0/28", [], members[: len(members) // 2], {})
    later = allocate("10.0.1.0/28", [], members, first.assignments)
    for unit, address in first.assignments.items():
        assert later.assignments[unit] == address


def test_routes_order_independent():
    members = [Member(f"r/{i}", offered=(f"10.{i % 3}.9.0/24",)) for i in range(6)]
    assignments = {f"r/{i}": f"10.0.1.{i + 1}/24" for i in range(6)}
    expected = compute_routes(NET, members, assignments)
    for seed in range(5):
        shuffled = list(members)
        random.Random(seed).shuffle(shuffled)
        assert compute_routes(NET, shuffled, assignments) == expected


# -- issue 8 ----------------------------------------------------------------------------------


def test_renumbered_names_every_holder_a_cidr_would_move():
    held = {"b/0": "10.0.1.2/24", "a/10": "10.0.1.3/24", "a/9": "10.0.1.4/24"}
    assert renumbered(NET, held) == {}
    assert list(renumbered("10.0.2.0/24", held)) == ["a/9", "a/10", "b/0"]  # unit order
    assert renumbered("10.0.0.0/16", held) == renumbered("10.0.2.0/24", held)  # same range, new length
    assert renumbered("", held) == renumbered("10.0.2.0/24", held)  # to pure L2
    assert renumbered("10.0.2.0/24", {}) == {}


def test_reserved_held_names_the_holder():
    held = {"cache/0": "10.0.1.1/24", "cache/1": "10.0.1.2/24"}
    assert reserved_held(["10.0.1.9", "10.0.1.2", "10.0.1.1"], held) == {
        "10.0.1.1": "cache/0",
        "10.0.1.2": "cache/1",
    }
    assert reserved_held(["10.0.1.9"], held) == {}


def test_offers_routed_via():
    routes = [
        {"prefix": "10.0.3.0/24", "via": "10.0.1.1"},
        {"prefix": "10.0.2.0/24", "via": "10.0.1.1"},
        {"prefix": "10.0.4.0/24", "via": "10.0.1.2"},
    ]
    assert offers_routed_via(routes, "10.0.1.1/24") == ("10.0.2.0/24", "10.0.3.0/24")
    assert offers_routed_via(routes, "10.0.1.9/24") == ()


def test_unroutable_and_repeated_offers_are_ignored_not_raised():
    members = [
        Member("r/0", offered=("10.0.2.0/24", "10.0.2.0/24", " 10.0.2.0/24", "banana", "127.0.0.0/8")),
        Member("s/0", offered=("0.0.0.0/0",)),
    ]
    table = compute_routes(NET, members, {"r/0": "10.0.1.1/24", "s/0": "10.0.1.2/24"})
    assert table.routes == [{"prefix": "10.0.2.0/24", "via": "10.0.1.1"}]
    assert table.shadowed == {}
    assert table.ignored == {"banana": ["r/0"], "127.0.0.0/8": ["r/0"], "0.0.0.0/0": ["s/0"]}


@settings(max_examples=100)
@given(member_lists, st.lists(st.integers(1, 14).map(lambda i: f"10.0.1.{i}"), max_size=4), st.randoms())
def test_allocation_is_written_in_one_order(members, reserved, rnd):
    # Canonical output: the same answer, whatever the input order or the existing state,
    # lists its units in the same order (a databag written from it is the same bytes).
    first = allocate("10.0.1.0/28", reserved, members, {})
    for result in (
        first,
        allocate("10.0.1.0/28", reserved, rnd.sample(members, len(members)), first.assignments),
    ):
        assert list(result.assignments) == sorted(result.assignments, key=unit_order)
        assert list(result.rejections) == sorted(result.rejections, key=unit_order)
    again = allocate("10.0.1.0/28", reserved, members, first.assignments)
    assert list(again.assignments.items()) == list(first.assignments.items())


@given(member_lists, st.lists(st.integers(1, 14).map(lambda i: f"10.0.1.{i}"), max_size=4))
def test_reserving_only_free_addresses_moves_nobody(members, reserved):
    # The charm refuses a `reserved` that names a held address; any other keeps every holder.
    first = allocate("10.0.1.0/28", [], members, {})
    free = [r for r in reserved if not reserved_held([r], first.assignments)]
    later = allocate("10.0.1.0/28", free, members, first.assignments)
    assert later.assignments == first.assignments | {
        u: a for u, a in later.assignments.items() if u not in first.assignments
    }


def test_a_refused_move_keeps_the_address_held():
    existing = {"a/0": "10.0.1.5/24", "b/0": "10.0.1.6/24", "c/0": "10.0.1.7/24"}
    members = [
        Member("a/0", "10.0.9.5/24"),  # outside: refused, keeps .5
        Member("b/0", "10.0.1.7/24"),  # held by c/0: refused, keeps .6
        Member("c/0", "10.0.1.7/24"),
        Member("d/0", "10.0.1.5/24"),  # a newcomer asking for a/0's address
    ]
    result = allocate(NET, [], members, existing)
    assert result.assignments == existing
    assert result.rejections == {
        "a/0": "10.0.9.5 is outside 10.0.1.0/24",
        "b/0": "10.0.1.7 is held by c/0",
        "d/0": "10.0.1.5 is held by a/0",
    }


def test_a_granted_move_frees_the_old_address():
    existing = {"a/0": "10.0.1.5/24"}
    result = allocate(NET, [], [Member("a/0", "10.0.1.9/24"), Member("z/0")], existing)
    assert result.assignments == {"a/0": "10.0.1.9/24", "z/0": "10.0.1.1/24"}
    later = allocate(NET, [], [Member("a/0", "10.0.1.9/24"), Member("b/0", "10.0.1.5/24")], existing)
    assert later.assignments == {"a/0": "10.0.1.9/24", "b/0": "10.0.1.5/24"}  # b sorts after a


@given(member_lists, member_lists, st.lists(st.integers(1, 14).map(lambda i: f"10.0.1.{i}"), max_size=4))
def test_nobody_loses_a_valid_address_to_a_refused_request(before, after, reserved):
    # Whatever anyone asks next, a unit holding a usable address ends with an address: the
    # one it had, or the one it asked for.
    first = allocate("10.0.1.0/28", [], before, {})
    free_reserved = [r for r in reserved if not reserved_held([r], first.assignments)]
    later = allocate("10.0.1.0/28", free_reserved, after, first.assignments)
    for member in after:
        if member.unit in first.assignments:
            got = later.assignments.get(member.unit)
            assert got in (first.assignments[member.unit], member.requested), (member, got)


# -- from-requests: "the first free address at or after this one" ---------------------------


def test_a_from_request_takes_the_first_free_address_at_or_after_its_start():
    members = [
        Member("cache/0", "10.0.1.10/24"),
        Member("router/0", start="10.0.1.9/24"),
        Member("router/1", start="10.0.1.9/24"),
        Member("pool/0"),
    ]
    result = allocate(NET, ["10.0.1.11"], members, {})
    # .10 is cache/0's exact request, .11 reserved: router/1 goes on to .12; the pool takes .1.
    assert result.assignments == {
        "cache/0": "10.0.1.10/24",
        "pool/0": "10.0.1.1/24",
        "router/0": "10.0.1.9/24",
        "router/1": "10.0.1.12/24",
    }
    assert result.rejections == {}


def test_a_unit_back_after_a_scale_to_zero_gets_its_predecessors_address():
    first = allocate(NET, [], [Member("cdn-router/0", "10.0.1.2/24", start="10.0.1.1/24")], {})
    assert first.assignments == {"cdn-router/0": "10.0.1.1/24"}  # `requested` is the old hint
    # Scaled to 0: cdn-router/0 is no member any more; cdn-router/1 asks from the same start.
    back = allocate(NET, [], [Member("cdn-router/1", "10.0.1.2/24", start="10.0.1.1/24")], first.assignments)
    assert back.assignments == {"cdn-router/1": "10.0.1.1/24"}


def test_a_holder_keeps_what_still_satisfies_its_from_request():
    existing = {"r/1": "10.0.1.7/24", "r/2": "10.0.1.3/24"}
    members = [Member("r/1", start="10.0.1.5/24"), Member("r/2", start="10.0.1.5/24")]
    result = allocate(NET, [], members, existing)
    # r/1's .7 is at or after .5: kept although .5 is free. r/2's .3 is before it: moved.
    assert result.assignments == {"r/1": "10.0.1.7/24", "r/2": "10.0.1.5/24"}


def test_exact_requests_go_before_from_requests_and_a_held_address_is_refused_by_name():
    members = [Member("a/0", start="10.0.1.1/24"), Member("z/0", "10.0.1.1/24")]
    assert allocate(NET, [], members, {}).assignments == {"a/0": "10.0.1.2/24", "z/0": "10.0.1.1/24"}
    held = allocate(NET, [], members, {"a/0": "10.0.1.1/24"})
    assert held.assignments == {"a/0": "10.0.1.1/24"}
    assert held.rejections == {"z/0": "10.0.1.1 is held by a/0"}


def test_from_requests_that_cannot_be_granted_say_why_and_keep_what_is_held():
    result = allocate(
        "10.0.1.0/29",
        ["10.0.1.6"],
        [
            Member("a/0", start="10.0.1.1/24"),  # another prefix length
            Member("b/0", start="10.0.2.1/29"),  # outside the cidr
            Member("c/0", start="10.0.1.5/29"),  # .5 free
            Member("d/0", start="10.0.1.5/29"),  # .6 reserved, .7 broadcast: none left
            Member("e/0", start="10.0.1.6/29"),  # holds .2, asks after it: refused, keeps .2
        ],
        {"e/0": "10.0.1.2/29"},
    )
    assert result.assignments == {"c/0": "10.0.1.5/29", "e/0": "10.0.1.2/29"}
    assert result.rejections == {
        "a/0": "10.0.1.1/24 has prefix length /24: use 10.0.1.1/29 (10.0.1.0/29)",
        "b/0": "10.0.2.1 is outside 10.0.1.0/29: no address from it",
        "d/0": "no free address from 10.0.1.5 in 10.0.1.0/29",
        "e/0": "no free address from 10.0.1.6 in 10.0.1.0/29",
    }


def test_a_from_request_may_start_on_the_network_address():
    result = allocate(NET, ["10.0.1.1"], [Member("a/0", start="10.0.1.0/24")], {})
    assert result.assignments == {"a/0": "10.0.1.2/24"}


def test_a_from_request_on_a_pure_l2_network_is_refused():
    result = allocate("", [], [Member("a/0", start="10.0.1.1/24")], {})
    assert result.rejections == {
        "a/0": "10.0.1.1/24 asked for, but this network is pure L2 (no cidr): no addresses"
    }


def test_the_start_supersedes_the_exact_hint():
    # A new requirer sends both: `requested` is for providers that do not know `start`.
    member = Member("a/3", "10.0.1.4/24", start="10.0.1.1/24")
    assert member.exact == ""
    assert allocate(NET, [], [member], {}).assignments == {"a/3": "10.0.1.1/24"}


mixed_members = st.lists(
    st.builds(
        lambda u, kind, host: Member(
            u, host if kind == "exact" else "", start=host if kind == "from" else ""
        ),
        units,
        st.sampled_from(["exact", "from", "pool"]),
        hosts,
    ),
    max_size=20,
    unique_by=lambda m: m.unit,
)


@settings(max_examples=300)
@given(
    mixed_members,
    mixed_members,
    st.lists(st.integers(1, 14).map(lambda i: f"10.0.1.{i}"), max_size=3),
    st.randoms(),
)
def test_from_request_properties(before, members, reserved, rnd):
    net = ipaddress.IPv4Network("10.0.1.0/28")
    existing = allocate(str(net), [], before, {}).assignments
    reserved = [r for r in reserved if not reserved_held([r], existing)]
    result = allocate(str(net), reserved, members, existing)
    # Any order of the same members (and of the reserved list): the same allocation.
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert allocate(str(net), list(reversed(reserved)), shuffled, existing) == result
    # No address handed out twice, none unusable.
    ips = [ipaddress.IPv4Interface(a).ip for a in result.assignments.values()]
    assert len(set(ips)) == len(ips)
    assert all(ip in net and ip not in (net[0], net[-1]) and str(ip) not in reserved for ip in ips)
    for member in members:
        got = result.assignments.get(member.unit)
        old = existing.get(member.unit)
        if old is None:
            continue
        old_ip = ipaddress.IPv4Interface(old).ip
        if member.start:
            start = ipaddress.IPv4Interface(member.start)
            satisfied = start.network == net and old_ip >= start.ip
        else:
            satisfied = not member.exact or member.exact == old
        if satisfied:
            assert got == old, (member, old, got)  # a holder that still satisfies keeps it
        else:
            assert got is not None  # and one that asks elsewhere never ends with nothing
        if member.start and got and got != old:
            # A granted from-request is the first free address at or after its start.
            got_ip = ipaddress.IPv4Interface(got).ip
            start_ip = ipaddress.IPv4Interface(member.start).ip
            assert got_ip >= start_ip
    # A re-run with its own result as the existing state changes nothing (unless a holder
    # moved: the address it left may be granted to a lower unit refused for it this round).
    moved = any(result.assignments.get(u) not in (None, a) for u, a in existing.items())
    if not moved:
        assert allocate(str(net), reserved, members, result.assignments) == result
