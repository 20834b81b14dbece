import pydantic
import pytest

from l2sm_core.interfaces import ControllerProviderAppData

GOOD = {
    "host": "l2sm-controller-sdn.l2sm.svc.cluster.local",
    "namespace": "l2sm",
    "cluster-ip": "10.152.183.20",
    "openflow-port": 6633,
    "rest-url": "http://10.152.183.20:8181",
    "ready": True,
    "credentials-secret": "secret:cs0qk4fmp25c77ek0av0",
}


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
