"""The `l2sm_network` interface's schema (l2sm_knf.l2sm_network): what each side may write.
Runs with the KNF package alone: nothing here imports the controller's code."""

import re

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings

from l2sm_core.validation import route_prefix
from l2sm_knf.databag import canonical_json
from l2sm_knf.l2sm_network import (
    MAX_OFFERED_PREFIXES,
    NetworkInfo,
    NetworkProviderAppData,
    NetworkRequirerUnitData,
    Route,
    interface_address,
)
from l2sm_testing.bad_input import tricky_text


def test_network_databags_round_trip():
    unit = NetworkRequirerUnitData.model_validate(
        {"address": "10.0.1.10/24", "offered-prefixes": ["10.0.2.0/24"]}
    )
    assert unit.model_dump(by_alias=True) == {
        "address": "10.0.1.10/24",
        "address-from": "",  # an older member's data: no from-request
        "offered-prefixes": ["10.0.2.0/24"],
    }
    assert NetworkRequirerUnitData().address == ""
    newer = NetworkRequirerUnitData.model_validate(
        {"address": "10.0.1.11/24", "address-from": "10.0.1.10/24"}
    )
    assert newer.address_from == "10.0.1.10/24"
    app = NetworkProviderAppData.model_validate(
        {
            "network": {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1400, "type": "vnet"},
            "assignments": {"cache/0": "10.0.1.10/24"},
            "rejections": {"cache/1": "10.0.1.10 is held by cache/0"},
            "routes": [{"prefix": "10.0.2.0/24", "via": "10.0.1.1"}],
        }
    )
    assert app.routes[0].via == "10.0.1.1"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"address": "10.0.1.10"}, "needs its prefix length"),
        ({"address": "banana/24"}, "not an IPv4 address"),
        ({"address-from": "10.0.1.10"}, "needs its prefix length"),
        ({"address-from": "127.0.0.1/24"}, "not a usable host address"),
        ({"offered-prefixes": ["10.0.2.1/24"]}, "host bits set"),
    ],
)
def test_bad_requirer_data(data, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment):
        NetworkRequirerUnitData.model_validate(data)


@pytest.mark.parametrize(
    "bad",
    [
        {"network": {"name": "Net", "mtu": 1400}},
        {"network": {"name": "n", "mtu": 100}},
        {"network": {"name": "n", "mtu": 1400, "cidr": "10.0.1.1/24"}},
        {"network": {"name": "n", "mtu": 1400}, "assignments": {"a/0": "10.0.1.1"}},
        {"network": {"name": "n", "mtu": 1400}, "routes": [{"prefix": "10.0.2.0/24", "via": "x"}]},
    ],
)
def test_bad_provider_data(bad):
    with pytest.raises(pydantic.ValidationError):
        NetworkProviderAppData.model_validate(bad)


NETWORK = {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1400, "type": "vnet"}


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("0.0.0.0/0", "the default route"),
        ("127.0.0.0/8", "127.0.0.0/8"),
        ("224.0.0.0/24", "224.0.0.0/4"),
        ("169.254.0.0/16", "169.254.0.0/16"),
        ("240.0.0.0/4", "240.0.0.0/4"),
        ("10.0.2.0/255.255.255.0", "a.b.c.d/len"),
        ("fd00::/64", "IPv6"),
    ],
)
def test_offered_prefixes_refused(prefix, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        NetworkRequirerUnitData.model_validate({"offered-prefixes": ["10.0.2.0/24", prefix]})


def test_offered_prefixes_capped():
    many = [f"10.{i}.0.0/16" for i in range(MAX_OFFERED_PREFIXES)]
    assert len(NetworkRequirerUnitData.model_validate({"offered-prefixes": many}).offered_prefixes) == 32
    with pytest.raises(pydantic.ValidationError, match="at most 32 items"):
        NetworkRequirerUnitData.model_validate({"offered-prefixes": [*many, "10.200.0.0/16"]})


@pytest.mark.parametrize(
    "address", ["10.0.1.10/255.255.255.0", "10.0.1.10/024", "010.0.1.10/24", " 10.0.1.10/24", 10]
)
def test_address_forms_refused(address):
    with pytest.raises(pydantic.ValidationError) as err:
        NetworkRequirerUnitData.model_validate({"address": address})
    assert err.value.errors()[0]["loc"] == ("address",)


def test_long_values_are_echoed_clipped():
    with pytest.raises(pydantic.ValidationError) as err:
        NetworkRequirerUnitData.model_validate({"address": "x" * 10_000 + "/24"})
    assert len(str(err.value.errors()[0]["msg"])) < 200


@pytest.mark.parametrize(
    ("network", "fragment"),
    [
        (NETWORK | {"mtu": 1500}, "less than or equal to 1400"),
        (NETWORK | {"mtu": 9000}, "less than or equal to 1400"),
        (NETWORK | {"mtu": "1400"}, "valid integer"),
        (NETWORK | {"cidr": "0.0.0.0/0"}, "too wide"),
        (NETWORK | {"cidr": "127.0.0.0/8"}, "127.0.0.0/8"),
        (NETWORK | {"cidr": "224.0.0.0/8"}, "224.0.0.0/4"),
        (NETWORK | {"cidr": "10.0.1.0/32"}, "no room for hosts"),
        (NETWORK | {"type": "bridge"}, "not an L2S-M network type"),
    ],
)
def test_network_info_refusals(network, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        NetworkInfo.model_validate(network)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"assignments": {"a/0": "10.0.2.5/24"}}, "not a host address of 10.0.1.0/24"),
        ({"assignments": {"a/0": "10.0.1.5/16"}}, "not a host address of 10.0.1.0/24"),
        ({"assignments": {"a/0": "10.0.1.255/24"}}, "not a host address of 10.0.1.0/24"),
        ({"network": NETWORK | {"cidr": ""}, "assignments": {"a/0": "10.0.1.5/24"}}, "pure L2"),
        ({"routes": [{"prefix": "0.0.0.0/0", "via": "10.0.1.1"}]}, "the default route"),
        ({"routes": [{"prefix": "10.0.2.0/24", "via": "0.0.0.0"}]}, "not a usable host address"),
        # Bounded, so a broken provider cannot flood a member's status or routing table.
        ({"rejections": {"a/0": "x" * 1025}}, "at most 1024 characters"),
        (
            {"routes": [{"prefix": f"10.{i // 256}.{i % 256}.0/24", "via": "10.0.1.1"} for i in range(1025)]},
            "at most 1024 items",
        ),
    ],
)
def test_provider_data_refusals(extra, fragment):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        NetworkProviderAppData.model_validate({"network": NETWORK} | extra)


def test_what_the_network_writes_still_loads():
    # Backward compatible for valid data: the shapes the network charm has always written.
    data = {
        "network": NETWORK,
        "assignments": {"cache/0": "10.0.1.10/24", "cache/1": "10.0.1.2/24"},
        "rejections": {"cache/2": "10.0.1.10 is held by cache/0"},
        "routes": [
            {"prefix": "10.0.2.0/24", "via": "10.0.1.1"},
            {"prefix": "10.9.9.9/32", "via": "10.0.1.1"},
        ],
    }
    assert NetworkProviderAppData.model_validate(data).model_dump(mode="json") == data
    pure = {"network": NETWORK | {"cidr": ""}, "assignments": {}, "rejections": {}, "routes": []}
    assert NetworkProviderAppData.model_validate(pure).network.cidr == ""
    assert Route(prefix="10.0.2.0/24", via="10.0.1.1").via == "10.0.1.1"


def test_canonical_json_is_order_free():
    assert canonical_json({"b/0": "x", "a/0": "y"}) == canonical_json({"a/0": "y", "b/0": "x"})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tricky_text(good=["10.0.1.10/24", "10.0.2.0/24"]))
def test_tricky_text_never_passes_as_an_address_or_prefix(text):
    for data in ({"address": text}, {"offered-prefixes": [text]}):
        try:
            loaded = NetworkRequirerUnitData.model_validate(data)
        except pydantic.ValidationError as exc:
            assert all(len(e["msg"]) < 300 for e in exc.errors())
            continue
        # Whatever passes obeys the rules and is kept in canonical form; hypothesis also
        # draws real addresses from the code's constants, so no fixed list of good values.
        if loaded.address:
            assert loaded.address == text == str(interface_address(text))
        for prefix in loaded.offered_prefixes:
            assert prefix == str(route_prefix(text))
