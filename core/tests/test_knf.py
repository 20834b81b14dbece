import json

import pytest

from l2sm_core import knf


def test_parse_addresses():
    text = " my-first-osm-net=10.0.1.1/24, my-second-osm-net = 10.0.2.1/24 ,"
    assert knf.parse_addresses(text) == {
        "my-first-osm-net": "10.0.1.1/24",
        "my-second-osm-net": "10.0.2.1/24",
    }
    assert knf.parse_addresses("") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("net-a", "'net-a' is not network=address/prefix"),
        ("net-a=", "is not network=address/prefix"),
        ("net-a=10.0.1.1", "give the prefix length, e.g. net-a=10.0.1.1/24"),
        ("net-a=banana/24", "'banana/24' is not an IPv4 address"),
        ("net-a=10.0.1.1/24,net-a=10.0.1.2/24", "given twice"),
    ],
)
def test_parse_addresses_errors_name_the_entry(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        knf.parse_addresses(text)


def test_unit_n_takes_the_nth_next_address():
    assert knf.address_for_unit("10.0.1.10/24", 0) == "10.0.1.10/24"
    assert knf.address_for_unit("10.0.1.10/24", 3) == "10.0.1.13/24"
    with pytest.raises(ValueError, match=r"outside the usable 10\.0\.1\.0/24"):
        knf.address_for_unit("10.0.1.250/24", 5)


def test_interfaces_from_annotations():
    multus = json.dumps(
        [{"name": "fabric-veth3", "namespace": "l2sm"}, {"name": "fabric-veth1", "namespace": "l2sm"}]
    )
    status = json.dumps(
        [
            {"name": "cilium", "interface": "eth0", "default": True},
            {"name": "l2sm/fabric-veth1", "interface": "net2"},
            {"name": "l2sm/fabric-veth3", "interface": "net1"},
        ]
    )
    assert knf.attachment_interfaces("net-b, net-a", multus, status) == {"net-b": "net1", "net-a": "net2"}
    # Multus has not reported yet: no interface, no guess.
    assert knf.attachment_interfaces("net-b", multus, "") == {}
    with pytest.raises(ValueError, match="network-status"):
        knf.attachment_interfaces("net-b", multus, "[oops")


def test_membership_plan_and_status_line():
    joined = knf.Membership("net-a", "net1", "10.0.1.10/24", mtu=1400, routes=(("10.0.2.0/24", "10.0.1.1"),))
    assert joined.plan() == knf.InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.2.0/24", "10.0.1.1"),))
    assert joined.status_line() == "net-a 10.0.1.10/24 on net1"
    waiting = knf.Membership("net-a", None, "10.0.1.10/24")
    assert waiting.plan() is None
    assert waiting.status_line() == "net-a 10.0.1.10/24 waiting for its interface"
    assert knf.Membership("net-b", "net2", None).status_line() == "net-b (L2 only) on net2"
    refused = knf.Membership("net-a", "net1", None, rejection="10.0.1.10 is held by x/0")
    assert refused.status_line() == "net-a: refused: 10.0.1.10 is held by x/0"
    assert refused.plan() == knf.InterfacePlan("net1")  # nothing of ours stays on it


def test_plan_leaves_out_routes_via_itself_and_to_its_own_networks():
    router = knf.Membership(
        "net-a",
        "net1",
        "10.0.1.1/24",
        routes=(("10.0.2.0/24", "10.0.1.1"), ("10.0.3.0/24", "10.0.1.9"), ("10.0.9.0/24", "10.0.1.9")),
    )
    # It offers 10.0.2.0/24 itself, and it sits on 10.0.3.0/24 through another network.
    plan = router.plan(connected=("10.0.1.0/24", "10.0.3.0/24"))
    assert plan is not None
    assert plan.routes == (("10.0.9.0/24", "10.0.1.9"),)
