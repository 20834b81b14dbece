"""Expected values are computed here from the upstream rule, independently of the module."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core import naming


def _expected(node: str) -> tuple[str, str]:
    bridge = "br-" + hashlib.sha256(f"{node}l2sm-controller".encode()).digest()[:4].hex()
    dpid = hashlib.sha256(bridge.encode()).digest()[:8].hex()
    return bridge, dpid


# Worked values, checked by hand against the upstream algorithm (sha256, lowercase hex).
@pytest.mark.parametrize(
    ("node", "bridge", "dpid"),
    [
        ("node-a", "br-b6b52ef8", "e5e40be8c6b4bf54"),
        ("worker1", "br-35dd8f6f", "cc4d87e0ca1f6b49"),
        ("kind-control-plane", "br-56baa69a", "17f5f571e2353768"),
    ],
)
def test_known_nodes(node, bridge, dpid):
    assert naming.OVERLAY_PROVIDER == "l2sm-controller"
    assert naming.bridge_name_for(node) == bridge
    assert naming.datapath_id(node) == dpid
    assert naming.device_id(node) == f"of:{dpid}"
    assert naming.port_endpoint(node, 3) == f"of:{dpid}/3"
    assert naming.interface_name(node, 1) == f"ls{dpid[:5]}1"
    assert naming.probe_interface_name(node) == f"ls{dpid[:5]}p1999"


@given(st.text(min_size=1, max_size=80))
def test_any_node_matches_the_rule(node):
    bridge, dpid = _expected(node)
    assert naming.bridge_name_for(node) == bridge
    assert naming.datapath_id_for_bridge(bridge) == dpid
    assert len(naming.interface_name(node, 999)) <= 15  # Linux IFNAMSIZ


def test_provider_is_part_of_the_name():
    assert naming.bridge_name_for("node-a", "other") != naming.bridge_name_for("node-a")


@pytest.mark.parametrize(("ip", "port"), [("10.1.0.5", "vxlan-488ff"), ("192.168.1.20", "vxlan-55235")])
def test_vxlan_port(ip, port):
    assert naming.vxlan_port_name(ip) == port
    assert port == "vxlan-" + hashlib.sha256(ip.encode()).hexdigest()[:5]


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        naming.bridge_name_for("")
    with pytest.raises(ValueError, match="start at 1"):
        naming.port_endpoint("node-a", 0)


@pytest.mark.parametrize("name", ["fabric", "l2sm-switch", "a", "f" * 50])
def test_good_overlay_names(name):
    assert naming.overlay_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("ov\n", "not a DNS-1123 label"),  # used to pass: `$` matches before a final newline
        ("Ov", "not a DNS-1123 label"),
        ("ov-", "not a DNS-1123 label"),
        ("", "non-empty"),
        ("o" * 64, "at most 63"),
        ("o" * 51, "at most 50"),
        ("my-veth-net", "contains 'veth'"),
    ],
)
def test_bad_overlay_names(name, fragment):
    with pytest.raises(ValueError, match=fragment):
        naming.overlay_name(name)


def test_attachment_names_fit_a_kubernetes_name():
    longest = naming.attachment_name("f" * naming.MAX_OVERLAY_NAME, 64)
    assert longest == "f" * 50 + "-veth64" and len(longest) <= 63
    with pytest.raises(ValueError, match="start at 1"):
        naming.attachment_name("fabric", 0)
