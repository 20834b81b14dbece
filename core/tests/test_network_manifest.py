"""The L2Network builder: the last check before the cluster."""

import pytest

from l2sm_controlplane.crds import validate_custom_object
from l2sm_core.manifests.network import l2network


def test_l2network_with_and_without_cidr():
    pure = l2network("net-app", "cdn", "net-a", "application")
    validate_custom_object(pure)
    assert pure["spec"] == {"type": "vnet"}
    webhook = l2network("l2sm-controller", "l2sm", "legacy", "action", "10.0.3.0/24")
    validate_custom_object(webhook)
    assert webhook["spec"]["networkCIDR"] == "10.0.3.0/24"


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "127.0.0.0/8", "224.0.0.0/4", "169.254.0.0/16", "10.0.3.1/24"])
def test_l2network_refuses_a_cidr_no_network_may_have(cidr):
    with pytest.raises(ValueError, match=r"IPv4 prefix|too wide|overlaps|host bits"):
        l2network("l2sm-controller", "l2sm", "legacy", "action", cidr)


@pytest.mark.parametrize("name", ["Net_A", "net-a\n", "", "n" * 64])
def test_l2network_refuses_a_bad_name(name):
    with pytest.raises(ValueError):
        l2network("app", "cdn", name, "application")
