import dataclasses
import json
import re

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
    joined = knf.Membership(
        "net-a", "net1", "10.0.1.10/24", mtu=1400, routes=(("10.0.2.0/24", "10.0.1.1"),), cidr="10.0.1.0/24"
    )
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
        cidr="10.0.1.0/24",
    )
    # It offers 10.0.2.0/24 itself, and it sits on 10.0.3.0/24 through another network.
    plan = router.plan(connected=("10.0.1.0/24", "10.0.3.0/24"))
    assert plan is not None
    assert plan.routes == (("10.0.9.0/24", "10.0.1.9"),)


# -- refusals: what the operator, the network or a pod editor may get wrong ----------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("net-a=10.0.1.10/24\n", "newline or control character"),
        ("net-a=10.0.1.10/24\nnet-b=10.0.2.1/24", "newline or control character"),
        ("net-a=10.0.1.10/24\t", "newline or control character"),
        ("x" * 10_000, "10000 characters long: at most 4096"),
        ("Net_A=10.0.1.10/24", "network name 'Net_A' is not a DNS-1123 label"),
        ("net-a=10.0.1.0/24", "10.0.1.0 is the network or broadcast address of 10.0.1.0/24"),
        ("net-a=10.0.1.255/24", "network or broadcast address"),
        ("net-a=10.0.1.10/32", "/32 leaves no room for hosts"),
        ("net-a=127.0.0.5/24", "is in 127.0.0.0/8"),
        ("net-a=10.0.1.10/255.255.255.0", "is not an IPv4 address with prefix length"),
        ("net-a=10.0.1.10/024", "is not an IPv4 address with prefix length"),
        ("net-a=10.0.1.10/24,net-b=10.0.1.10/24", "10.0.1.10 is given for 'net-a' too"),
    ],
)
def test_parse_addresses_refuses_what_could_be_misread(text, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        knf.parse_addresses(text)
    assert len(str(info.value)) < 300  # a 10 kB value is never echoed whole


def test_parse_addresses_refuses_a_non_string():
    with pytest.raises(ValueError, match="must be text"):
        knf.parse_addresses(42)  # type: ignore[arg-type]


def test_request_is_checked_against_the_published_cidr():
    assert knf.request_in_cidr("net-a", "10.0.1.10/24", 2, "10.0.1.0/24") == "10.0.1.12/24"
    with pytest.raises(
        ValueError, match=r"10\.0\.5\.10/24 \(unit 0\) is outside net-a's cidr 10\.0\.1\.0/24"
    ):
        knf.request_in_cidr("net-a", "10.0.5.10/24", 0, "10.0.1.0/24")
    with pytest.raises(ValueError, match=r"prefix length /16, but net-a's cidr is 10\.0\.1\.0/24: write /24"):
        knf.request_in_cidr("net-a", "10.0.1.10/16", 0, "10.0.1.0/24")
    with pytest.raises(ValueError, match="net-l2 is pure L2"):
        knf.request_in_cidr("net-l2", "10.0.1.10/24", 0, "")


def test_every_unit_asks_from_the_configured_address_with_the_old_exact_hint():
    # address-from is the configured address for every unit; address is unit N's N-th next,
    # for a network that does not know address-from.
    assert knf.unit_request("net-a", "10.0.1.1/24", 0, "10.0.1.0/24") == ("10.0.1.1/24", "10.0.1.1/24")
    assert knf.unit_request("net-a", "10.0.1.1/24", 1, "10.0.1.0/24") == ("10.0.1.2/24", "10.0.1.1/24")
    # Unit 2 of .254 would land on the broadcast address: no exact hint (an old network's
    # pool), and no refusal: the new network grants the first free one from .254.
    assert knf.unit_request("net-a", "10.0.1.254/24", 2, "10.0.1.0/24") == ("", "10.0.1.254/24")


def test_the_start_is_checked_against_the_published_cidr():
    with pytest.raises(ValueError, match=r"^10\.0\.5\.10/24 is outside net-a's cidr 10\.0\.1\.0/24$"):
        knf.unit_request("net-a", "10.0.5.10/24", 3, "10.0.1.0/24")
    with pytest.raises(ValueError, match=r"prefix length /16, but net-a's cidr is 10\.0\.1\.0/24: write /24"):
        knf.unit_request("net-a", "10.0.1.10/16", 0, "10.0.1.0/24")
    with pytest.raises(ValueError, match="net-l2 is pure L2"):
        knf.unit_request("net-l2", "10.0.1.10/24", 0, "")


GOOD = knf.Membership(
    "net-a", "net1", "10.0.1.10/24", mtu=1400, routes=(("10.0.9.0/24", "10.0.1.1"),), cidr="10.0.1.0/24"
)
LAST = knf.InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"),))


def test_a_good_plan_is_refused_nothing():
    assert GOOD.checked_plan(("10.0.1.0/24",), LAST) == knf.CheckedPlan(LAST)


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        (
            {"address": "10.0.5.10/24"},
            "assignments",
            "10.0.5.10/24 is outside the network's cidr 10.0.1.0/24",
        ),
        ({"address": "10.0.1.10/16"}, "assignments", "has prefix length /16, the cidr is 10.0.1.0/24"),
        ({"address": "10.0.1.255/24"}, "assignments", "broadcast address"),
        ({"address": "banana"}, "assignments", "not an IPv4 address"),
        ({"mtu": 9000}, "network", "mtu 9000 is outside 576-1400"),
        ({"mtu": 500}, "network", "mtu 500 is outside 576-1400"),
        ({"cidr": "127.0.0.0/24"}, "network", "cidr '127.0.0.0/24' overlaps 127.0.0.0/8"),
    ],
)
def test_a_refused_part_keeps_the_last_applied_value(change, field, fragment):
    checked = dataclasses.replace(GOOD, **change).checked_plan((), LAST)
    assert checked.plan == LAST
    assert len(checked.refused) == 1
    assert checked.refused[0].startswith(f"field '{field}': ")
    assert fragment in checked.refused[0]


def test_without_a_last_plan_a_refused_part_is_left_out():
    plan = dataclasses.replace(GOOD, mtu=9000, address="10.0.5.10/24").plan()
    assert plan == knf.InterfacePlan("net1", None, (), ())  # MTU untouched, no address, no routes


def test_an_address_on_a_pure_l2_network_is_refused():
    checked = dataclasses.replace(GOOD, cidr="").checked_plan()
    assert checked.plan == knf.InterfacePlan("net1", 1400)
    assert checked.refused == ("field 'assignments': 10.0.1.10/24 given on a pure L2 network (no cidr)",)


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        (("10.0.7.0/24", "10.0.5.1"), "the gateway is not on-link (outside 10.0.1.0/24)"),
        (("10.0.7.0/24", "10.0.1.255"), "broadcast address"),
        (("127.0.0.0/8", "10.0.1.1"), "overlaps 127.0.0.0/8"),
        (("224.0.0.0/4", "10.0.1.1"), "overlaps 224.0.0.0/4"),
        (("0.0.0.0/0", "10.0.1.1"), "is the default route"),
        (("10.0.7.0/24", "0.0.0.0"), "not a usable host address"),
        (("10.0.7.1/24", "10.0.1.1"), "host bits set"),
    ],
)
def test_one_bad_route_is_refused_and_the_good_ones_stay(route, fragment):
    checked = dataclasses.replace(GOOD, routes=(("10.0.8.0/24", "10.0.1.2"), route)).checked_plan()
    assert checked.plan is not None
    assert checked.plan.routes == (("10.0.8.0/24", "10.0.1.2"),)
    assert len(checked.refused) == 1 and checked.refused[0].startswith("field 'routes': ")
    assert fragment in checked.refused[0]


def test_a_route_that_turns_bad_keeps_its_last_applied_gateway():
    moved = dataclasses.replace(GOOD, routes=(("10.0.9.0/24", "192.168.7.1"),))
    checked = moved.checked_plan((), LAST)
    assert checked.plan == LAST
    assert "not on-link" in checked.refused[0]


def test_rejection_status_line_is_clipped_to_one_line():
    line = knf.Membership("net-a", None, None, rejection="x\n" * 5000).status_line()
    assert "\n" not in line and len(line) < 250


def test_read_interfaces_never_raises_and_names_the_annotation():
    multus = json.dumps([{"name": "fabric-veth3"}, {"name": "fabric-veth4"}])
    good_status = [{"name": "l2sm/fabric-veth3", "interface": "net1"}]
    cases = {
        "[" * 5000: "k8s.v1.cni.cncf.io/network-status is not valid JSON",
        "{oops": "k8s.v1.cni.cncf.io/network-status is not valid JSON",
        json.dumps({"a": 1}): "must be a JSON list",
        json.dumps(
            [*good_status, {"name": "l2sm/fabric-veth4", "interface": ["x"]}]
        ): "no usable interface name",
        json.dumps(
            [*good_status, {"name": "l2sm/fabric-veth4", "interface": "a/b"}]
        ): "no usable interface name",
        json.dumps(
            [*good_status, {"name": "l2sm/fabric-veth4", "interface": "x" * 16}]
        ): "no usable interface",
        json.dumps(
            [
                {"name": "cni", "interface": "eth0", "default": True},
                {"name": "fabric-veth4", "interface": "eth0"},
            ]
        ): "the pod's own interface",
        json.dumps(
            [*good_status, {"name": "l2sm/fabric-veth4", "interface": "net1"}]
        ): "net1 is given for net-a, net-b",
    }
    for status, fragment in cases.items():
        interfaces, problems = knf.read_interfaces("net-a, net-b", multus, status)
        assert problems and fragment in problems[0], (status[:40], problems)
        assert "net-b" not in interfaces
    assert knf.read_interfaces(None, multus, "") == ({}, ["l2sm/networks must be a string"])
    assert knf.read_interfaces("net-a", 7, "")[1] == ["k8s.v1.cni.cncf.io/networks must be a string"]
    assert knf.read_interfaces("net-a", multus, 7)[1] == [
        "k8s.v1.cni.cncf.io/network-status must be a string"
    ]
    # One bad entry does not cost the good one its interface.
    bad_b = json.dumps([*good_status, {"name": "l2sm/fabric-veth4", "interface": 5}])
    assert knf.read_interfaces("net-a, net-b", multus, bad_b)[0] == {"net-a": "net1"}


def test_every_checked_plan_passes_the_appliers_own_check():
    # A route kept from the last plan is dropped once its gateway is off the new address's network.
    last = knf.InterfacePlan("net1", 1400, ("10.0.1.10/24",), (("10.0.9.0/24", "10.0.1.1"),))
    moved = knf.Membership(
        "net-a", "net1", "10.0.5.10/24", mtu=1400, routes=(("10.0.9.0/24", "10.0.1.7"),), cidr="10.0.5.0/24"
    )
    checked = moved.checked_plan((), last)
    assert checked.plan == knf.InterfacePlan("net1", 1400, ("10.0.5.10/24",), ())
    assert knf.plan_problems(checked.plan) == []
    assert knf.plan_problems(knf.InterfacePlan("net1", True, ("x",))) == [  # type: ignore[arg-type]
        "'net1': mtu True is outside 576-1400",
        "'net1': address 'x': 'x' is not an IPv4 address with prefix length",
    ]


def test_the_template_patch_takes_only_network_names_once():
    from l2sm_core.manifests.knf import pod_template_patch

    patch = pod_template_patch("knf", "cdn", ["net-b", "net-a", "net-b"], ("charm",))
    annotation = patch["spec"]["template"]["metadata"]["annotations"]["l2sm/networks"]
    assert json.loads(annotation) == [{"name": "net-a"}, {"name": "net-b"}]
    with pytest.raises(ValueError, match="DNS-1123"):
        pod_template_patch("knf", "cdn", ["net-a\n"], ("charm",))


def _statefulset() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "router"},
        "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "charm", "image": "c"}]}}},
    }


def test_a_forwarding_pod_template_gets_the_ip_forward_sysctl():
    from l2sm_core.manifests.knf import merge_into, pod_template_patch, template_satisfies

    plain = pod_template_patch("router", "cdn", ["net-a"], ("charm",))
    forwarding = pod_template_patch("router", "cdn", ["net-a"], ("charm",), forwarding=True)
    assert "securityContext" not in plain["spec"]["template"]["spec"]
    assert forwarding["spec"]["template"]["spec"]["securityContext"] == {
        "sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}]
    }
    live = merge_into(_statefulset(), forwarding)
    assert live["spec"]["template"]["spec"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_forward", "value": "1"}
    ]
    assert template_satisfies(live, forwarding)
    # Forwarding on, the template without it: patched. Forwarding off, the sysctl still
    # there: patched too (the apply leaves it out, which removes it).
    assert not template_satisfies(merge_into(_statefulset(), plain), forwarding)
    assert not template_satisfies(live, plain)
    assert template_satisfies(merge_into(_statefulset(), plain), plain)
    # A sysctl someone else set (not ours) is not the patch's business.
    other = merge_into(_statefulset(), plain)
    other["spec"]["template"]["spec"]["securityContext"] = {
        "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]
    }
    assert template_satisfies(other, plain)
    assert not template_satisfies(other, forwarding)


def test_a_forwarding_template_validates_as_a_statefulset():
    import kubernetes_validate

    from l2sm_core.manifests.knf import merge_into, pod_template_patch

    merged = merge_into(
        _statefulset(), pod_template_patch("router", "cdn", ["net-a"], ("charm",), forwarding=True)
    )
    merged["spec"] |= {"selector": {"matchLabels": {"app": "router"}}, "serviceName": "router"}
    merged["spec"]["template"]["metadata"]["labels"] |= {"app": "router"}
    kubernetes_validate.validate(merged, "1.31", strict=True)


def test_offered_prefixes_are_the_other_networks_usable_cidrs_once_each():
    assert knf.offered_prefixes(["10.0.2.0/24", "", "10.0.2.0/24", "10.0.3.0/24", "bad"]) == [
        "10.0.2.0/24",
        "10.0.3.0/24",
    ]
    too_many = [f"10.{i}.0.0/16" for i in range(knf.MAX_OFFERED_PREFIXES + 1)]
    with pytest.raises(ValueError, match="join fewer networks"):
        knf.offered_prefixes(too_many)
    assert len(knf.offered_prefixes(too_many[:-1])) == knf.MAX_OFFERED_PREFIXES
