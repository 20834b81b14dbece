import pydantic
import pytest

from l2sm_core.interfaces import ControllerProviderAppData
from l2sm_testing.samples import CONTROLLER_APP_DATA

GOOD = CONTROLLER_APP_DATA


def test_round_trip_by_alias():
    data = ControllerProviderAppData(**GOOD)
    assert data.cluster_ip == "10.152.183.20"
    assert data.model_dump(by_alias=True) == GOOD


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("cluster-ip", "not-an-ip", "cluster-ip"),
        ("openflow-port", 70000, "openflow-port"),
        ("rest-url", "10.0.0.1:8181", "not an http"),
        ("credentials-secret", "karaf:karaf", "Juju secret id"),
        ("host", "Bad_Host.svc", "DNS-1123"),
        ("namespace", "L2SM", "DNS-1123"),
    ],
)
def test_bad_fields_refused(field, value, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment):
        ControllerProviderAppData(**(GOOD | {field: value}))


def test_network_databags_round_trip():
    from l2sm_core.interfaces import NetworkProviderAppData, NetworkRequirerUnitData

    unit = NetworkRequirerUnitData.model_validate(
        {"address": "10.0.1.10/24", "offered-prefixes": ["10.0.2.0/24"]}
    )
    assert unit.model_dump(by_alias=True) == {"address": "10.0.1.10/24", "offered-prefixes": ["10.0.2.0/24"]}
    assert NetworkRequirerUnitData().address == ""
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
        ({"offered-prefixes": ["10.0.2.1/24"]}, "host bits set"),
    ],
)
def test_bad_requirer_data(data, fragment):
    from l2sm_core.interfaces import NetworkRequirerUnitData

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
    from l2sm_core.interfaces import NetworkProviderAppData

    with pytest.raises(pydantic.ValidationError):
        NetworkProviderAppData.model_validate(bad)
